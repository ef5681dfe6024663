//! The end of a migration job as operators see it: one structured `info`
//! log line with the step timeline, and the [`JobObserver`]s (the daemon's
//! metrics) told about every job that ends, whatever the path that ended it.
//!
//! Each host only times its own steps. On the source, `begin_ms` runs from
//! Begin3 until Perform3 starts, so it contains the destination's Prepare
//! and the client's round trips; `finish_ms` runs from the end of Perform3
//! until Confirm3 starts, so it contains the destination's Finish. The
//! destination's own line has `prepare_ms` (Prepare3 until Finish3 starts,
//! i.e. including the data transfer) and `finish_ms`.

use std::fmt::Write as _;

use uuid::Uuid;

use crate::domain::DomainRef;
use crate::job::stats::{JobStats, JobType};
use crate::migration::Role;

/// A job that has just ended, with its final statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    /// The job's id (shared by both hosts).
    pub job_id: Uuid,
    /// Which side of the migration this host was.
    pub role: Role,
    /// The guest.
    pub dom: DomainRef,
    /// The completed statistics (job type completed, failed or cancelled).
    pub stats: JobStats,
}

/// Told about every job that ends (registered with
/// [`JobRegistry::add_observer`](crate::job::JobRegistry::add_observer)).
pub trait JobObserver: Send + Sync {
    /// Called once per job, after its completed statistics are stored.
    fn job_ended(&self, end: &JobEnd);
}

impl JobEnd {
    /// `completed`, `failed` or `cancelled`.
    pub fn outcome(&self) -> &'static str {
        match self.stats.job_type {
            JobType::Completed => "completed",
            JobType::Cancelled => "cancelled",
            JobType::Failed | JobType::None | JobType::Bounded | JobType::Unbounded => "failed",
        }
    }

    /// The job's wall time in milliseconds.
    pub fn total_ms(&self) -> u64 {
        self.stats.time_elapsed_ms
    }

    /// How long the timeline's `phase` took (0 when the job never got there).
    pub fn phase_ms(&self, phase: &str) -> u64 {
        self.stats
            .timeline
            .iter()
            .filter(|t| t.phase == phase)
            .filter_map(|t| t.duration_ms)
            .sum()
    }

    /// Time after the last timed phase: the terminal step (Confirm3 on the
    /// source), which the timeline does not list as a phase of its own.
    fn tail_ms(&self) -> u64 {
        let timed_until = self
            .stats
            .timeline
            .iter()
            .map(|t| t.started_ms + t.duration_ms.unwrap_or(0))
            .max()
            .unwrap_or(0);
        self.total_ms().saturating_sub(timed_until)
    }

    /// The timeline as `phase=ms` pairs, in order.
    pub fn timeline_text(&self) -> String {
        let mut out = String::new();
        for t in &self.stats.timeline {
            if !out.is_empty() {
                out.push(' ');
            }
            // Infallible: writing to a String cannot fail.
            let _ = write!(out, "{}={}ms", t.phase, t.duration_ms.unwrap_or(0));
        }
        out
    }

    /// Emits the structured `info` line for this job.
    pub fn log(&self) {
        let s = &self.stats;
        let error = s.errmsg.as_deref().unwrap_or("");
        match self.role {
            Role::Source => tracing::info!(
                job_id = %self.job_id,
                dom = %self.dom.name,
                role = "source",
                outcome = self.outcome(),
                total_ms = self.total_ms(),
                begin_ms = self.phase_ms("begin3"),
                perform_ms = self.phase_ms("perform3"),
                finish_ms = self.phase_ms("perform3_done"),
                confirm_ms = self.tail_ms(),
                bytes = s.data_processed,
                iterations = s.memory_iteration,
                downtime_ms = s.downtime_ms,
                timeline = %self.timeline_text(),
                error,
                "migration job ended"
            ),
            Role::Destination => tracing::info!(
                job_id = %self.job_id,
                dom = %self.dom.name,
                role = "destination",
                outcome = self.outcome(),
                total_ms = self.total_ms(),
                prepare_ms = self.phase_ms("prepare3"),
                finish_ms = self.phase_ms("finish3") + self.tail_ms(),
                bytes = s.data_processed,
                iterations = s.memory_iteration,
                downtime_ms = s.downtime_ms,
                timeline = %self.timeline_text(),
                error,
                "migration job ended"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::stats::PhaseTiming;

    fn ended(job_type: JobType, timeline: Vec<PhaseTiming>, total: u64) -> JobEnd {
        JobEnd {
            job_id: Uuid::from_u128(7),
            role: Role::Source,
            dom: DomainRef {
                name: "g".into(),
                uuid: Uuid::from_u128(1),
                id: 1,
            },
            stats: JobStats {
                job_type,
                time_elapsed_ms: total,
                timeline,
                ..JobStats::default()
            },
        }
    }

    fn step(phase: &'static str, started_ms: u64, duration_ms: u64) -> PhaseTiming {
        PhaseTiming {
            phase,
            started_ms,
            duration_ms: Some(duration_ms),
        }
    }

    #[test]
    fn phases_and_the_untimed_tail_add_up_to_the_total() {
        let end = ended(
            JobType::Completed,
            vec![
                step("begin3", 0, 40),
                step("perform3", 40, 300),
                step("perform3_done", 340, 20),
            ],
            375,
        );
        assert_eq!(end.outcome(), "completed");
        assert_eq!(end.phase_ms("begin3"), 40);
        assert_eq!(end.phase_ms("perform3"), 300);
        assert_eq!(end.phase_ms("prepare3"), 0);
        assert_eq!(end.tail_ms(), 15);
        assert_eq!(
            end.timeline_text(),
            "begin3=40ms perform3=300ms perform3_done=20ms"
        );
    }

    #[test]
    fn outcomes_follow_the_job_type() {
        assert_eq!(ended(JobType::Cancelled, vec![], 1).outcome(), "cancelled");
        assert_eq!(ended(JobType::Failed, vec![], 1).outcome(), "failed");
    }
}
