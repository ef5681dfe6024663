//! Jobs a driver runs on one domain by itself (a core dump), outside the
//! migration registry: GET_JOB_INFO / GET_JOB_STATS report them and
//! ABORT_JOB reaches them, as libvirt reports and aborts its async jobs.
//!
//! ```text
//! LocalJobs::begin ──▶ LocalJob (active: stats, abort signal)
//!        progress ──▶ LocalJob::update
//!   ABORT_JOB     ──▶ LocalJobs::abort ──▶ refused (the job's reason) or
//!                                          LocalJob::aborted() fires
//!   LocalJob::finish / drop ──▶ completed stats kept for
//!                               GET_JOB_STATS(COMPLETED)
//! ```
//!
//! One job per domain: a second [`LocalJobs::begin`] is refused with
//! libvirt's job-lock error naming the call that holds the job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;
use uuid::Uuid;

use super::stats::{JobStats, JobType};
use crate::error::{Error, Result};

/// What ABORT_JOB does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// The job can be cancelled: ABORT_JOB signals it.
    Allowed,
    /// The job cannot be cancelled; ABORT_JOB answers
    /// `VIR_ERR_OPERATION_INVALID` with this reason (libvirt's "cannot
    /// abort memory-only dump").
    Refused(&'static str),
}

struct Active {
    started: Instant,
    stats: JobStats,
    abort: Abort,
    aborted: Arc<Notify>,
    abort_requested: bool,
}

#[derive(Default)]
struct Inner {
    active: HashMap<Uuid, Active>,
    completed: HashMap<Uuid, JobStats>,
}

/// The driver's own jobs, one per domain at most.
#[derive(Clone, Default)]
pub struct LocalJobs(Arc<Mutex<Inner>>);

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LocalJobs {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a job of `operation` (`VIR_DOMAIN_JOB_OPERATION_*`) on `uuid`,
    /// called `api` in libvirt's job-lock error of a concurrent call.
    ///
    /// # Errors
    /// [`Error::JobLockTimeout`] naming the call holding the domain's
    /// current job.
    pub fn begin(
        &self,
        uuid: Uuid,
        operation: i32,
        api: &'static str,
        abort: Abort,
    ) -> Result<LocalJob> {
        let mut inner = lock(&self.0);
        if inner.active.contains_key(&uuid) {
            return Err(Error::JobLockTimeout { blocker: api });
        }
        let stats = JobStats {
            job_type: JobType::Unbounded,
            operation,
            ..JobStats::default()
        };
        let aborted = Arc::new(Notify::new());
        inner.active.insert(
            uuid,
            Active {
                started: Instant::now(),
                stats,
                abort,
                aborted: Arc::clone(&aborted),
                abort_requested: false,
            },
        );
        Ok(LocalJob {
            jobs: self.clone(),
            uuid,
            aborted,
            ended: false,
        })
    }

    /// The active job's statistics (elapsed time current), or with
    /// `completed` the last finished one's; `None` when there is none.
    pub fn stats(&self, uuid: &Uuid, completed: bool) -> Option<JobStats> {
        let inner = lock(&self.0);
        if completed {
            return inner.completed.get(uuid).cloned();
        }
        inner.active.get(uuid).map(|a| {
            let mut s = a.stats.clone();
            s.time_elapsed_ms = u64::try_from(a.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            s
        })
    }

    /// Forgets the completed statistics of `uuid`.
    pub fn clear_completed(&self, uuid: &Uuid) {
        lock(&self.0).completed.remove(uuid);
    }

    /// Whether `uuid` has an active job.
    pub fn is_active(&self, uuid: &Uuid) -> bool {
        lock(&self.0).active.contains_key(uuid)
    }

    /// ABORT_JOB: signals the active job of `uuid`. Answers `false` when
    /// there is none.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] with the job's reason when it cannot be
    /// aborted.
    pub fn abort(&self, uuid: &Uuid) -> Result<bool> {
        let mut inner = lock(&self.0);
        let Some(active) = inner.active.get_mut(uuid) else {
            return Ok(false);
        };
        match active.abort {
            Abort::Refused(reason) => Err(Error::invalid(reason)),
            Abort::Allowed => {
                active.abort_requested = true;
                // notify_one keeps the permit for a job not waiting yet.
                active.aborted.notify_one();
                Ok(true)
            }
        }
    }

    fn end(&self, uuid: &Uuid, outcome: JobType, errmsg: Option<String>) {
        let mut inner = lock(&self.0);
        if let Some(active) = inner.active.remove(uuid) {
            let mut stats = active.stats;
            stats.time_elapsed_ms =
                u64::try_from(active.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            stats.job_type = outcome;
            stats.errmsg = errmsg;
            inner.completed.insert(*uuid, stats);
        }
    }
}

/// One running job; ending it (or dropping it: a failure) records its
/// completed statistics and frees the domain for the next job.
pub struct LocalJob {
    jobs: LocalJobs,
    uuid: Uuid,
    aborted: Arc<Notify>,
    ended: bool,
}

impl LocalJob {
    /// Changes the job's statistics (progress).
    pub fn update(&self, f: impl FnOnce(&mut JobStats)) {
        if let Some(active) = lock(&self.jobs.0).active.get_mut(&self.uuid) {
            f(&mut active.stats);
        }
    }

    /// Whether ABORT_JOB asked this job to stop.
    pub fn abort_requested(&self) -> bool {
        lock(&self.jobs.0)
            .active
            .get(&self.uuid)
            .is_some_and(|a| a.abort_requested)
    }

    /// Resolves when ABORT_JOB asks this job to stop.
    ///
    /// # Cancel safety
    /// Cancel-safe: a request that arrives while nobody waits is kept for
    /// the next call.
    pub async fn aborted(&self) {
        self.aborted.notified().await;
    }

    /// Ends the job: completed, or failed/cancelled with `result`'s error.
    pub fn finish<T>(mut self, result: &Result<T>) {
        self.ended = true;
        match result {
            Ok(_) => self.jobs.end(&self.uuid, JobType::Completed, None),
            Err(Error::OperationAborted { .. }) => {
                self.jobs.end(&self.uuid, JobType::Cancelled, None)
            }
            Err(e) => self
                .jobs
                .end(&self.uuid, JobType::Failed, Some(e.to_string())),
        }
    }
}

impl Drop for LocalJob {
    fn drop(&mut self) {
        if !self.ended {
            self.jobs.end(
                &self.uuid,
                JobType::Failed,
                Some("the job ended early".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn one_job_per_domain_and_stats_follow_it() {
        let jobs = LocalJobs::new();
        let uuid = Uuid::from_u128(1);
        let job = jobs
            .begin(uuid, 8, "remoteDispatchDomainCoreDump", Abort::Allowed)
            .expect("first job");
        let second = jobs
            .begin(uuid, 8, "remoteDispatchDomainCoreDump", Abort::Allowed)
            .err()
            .expect("second job refused");
        assert_eq!(second.code(), ErrorCode::OperationTimeout);
        assert!(second.to_string().contains("remoteDispatchDomainCoreDump"));
        job.update(|s| {
            s.data_total = 100;
            s.data_processed = 40;
            s.data_remaining = 60;
        });
        let stats = jobs.stats(&uuid, false).expect("active");
        assert_eq!(stats.job_type, JobType::Unbounded);
        assert_eq!(stats.operation, 8);
        assert_eq!(stats.to_job_info().data_remaining, 60);
        assert!(jobs.stats(&Uuid::from_u128(2), false).is_none());
        job.finish(&Ok(()));
        assert!(jobs.stats(&uuid, false).is_none());
        let done = jobs.stats(&uuid, true).expect("completed");
        assert_eq!(done.job_type, JobType::Completed);
        jobs.clear_completed(&uuid);
        assert!(jobs.stats(&uuid, true).is_none());
        // The domain is free again.
        drop(jobs.begin(uuid, 8, "x", Abort::Allowed).expect("next job"));
        assert_eq!(
            jobs.stats(&uuid, true).expect("dropped job").job_type,
            JobType::Failed
        );
    }

    #[tokio::test]
    async fn abort_signals_an_abortable_job_and_refuses_the_others() {
        let jobs = LocalJobs::new();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(!jobs.abort(&a).expect("no job"));
        let job = jobs.begin(a, 8, "x", Abort::Allowed).expect("job");
        assert!(jobs.abort(&a).expect("aborted"));
        // The request was made before anyone waited: it is kept.
        job.aborted().await;
        assert!(job.abort_requested());
        job.finish::<()>(&Err(Error::OperationAborted { operation: "dump" }));
        assert_eq!(
            jobs.stats(&a, true).expect("done").job_type,
            JobType::Cancelled
        );
        let fixed = jobs
            .begin(b, 8, "x", Abort::Refused("cannot abort memory-only dump"))
            .expect("job");
        let err = jobs.abort(&b).expect_err("refused");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
        assert!(err.to_string().contains("cannot abort memory-only dump"));
        assert!(!fixed.abort_requested());
    }
}
