//! Job statistics: what GET_JOB_INFO, GET_JOB_STATS and the cookie's
//! `<statistics>` report (libvirt-wire.md §3.3, §7.3).

use crate::typed_params::{job_stats as key, TypedParams, TypedValue};

/// `virDomainJobType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(i32)]
pub enum JobType {
    /// No job.
    #[default]
    None = 0,
    /// A job with a known end (migration: bounded by memory size).
    Bounded = 1,
    /// A job without a known end.
    Unbounded = 2,
    /// Finished successfully.
    Completed = 3,
    /// Failed.
    Failed = 4,
    /// Cancelled (aborted).
    Cancelled = 5,
}

/// One step's entry in the job's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseTiming {
    /// Phase name (`begin3`, `perform3`, …).
    pub phase: &'static str,
    /// Milliseconds from the job's start to the phase's start.
    pub started_ms: u64,
    /// How long the phase took; `None` while it runs.
    pub duration_ms: Option<u64>,
}

/// The 12 fields of `DOMAIN_GET_JOB_INFO`'s reply, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobInfo {
    /// [`JobType`] as i32.
    pub job_type: i32,
    /// ms.
    pub time_elapsed: u64,
    /// ms.
    pub time_remaining: u64,
    /// bytes.
    pub data_total: u64,
    /// bytes.
    pub data_processed: u64,
    /// bytes.
    pub data_remaining: u64,
    /// bytes.
    pub mem_total: u64,
    /// bytes.
    pub mem_processed: u64,
    /// bytes.
    pub mem_remaining: u64,
    /// bytes.
    pub file_total: u64,
    /// bytes.
    pub file_processed: u64,
    /// bytes.
    pub file_remaining: u64,
}

/// Statistics of one migration job; times in ms, sizes in bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobStats {
    /// Running, completed, failed or cancelled.
    pub job_type: JobType,
    /// `virDomainJobOperation` (MIGRATION_OUT 5 / MIGRATION_IN 4).
    pub operation: i32,
    /// Time since the job started.
    pub time_elapsed_ms: u64,
    /// Estimated time left.
    pub time_remaining_ms: u64,
    /// Bytes the transfer will send in total (grows with re-sent dirty pages).
    pub data_total: u64,
    /// Bytes sent.
    pub data_processed: u64,
    /// Bytes left to send.
    pub data_remaining: u64,
    /// Pages sent as a "zero page" marker.
    pub memory_constant: u64,
    /// Pages sent in full.
    pub memory_normal: u64,
    /// Bytes of pages sent in full.
    pub memory_normal_bytes: u64,
    /// Transfer rate in bytes/s.
    pub memory_bps: u64,
    /// Pages dirtied per second during the last iteration.
    pub memory_dirty_rate: u64,
    /// Page size.
    pub memory_page_size: u64,
    /// Pre-copy iterations so far.
    pub memory_iteration: u64,
    /// Pages the destination requested during post-copy.
    pub memory_postcopy_requests: u64,
    /// Expected downtime (running) or measured downtime (completed).
    pub downtime_ms: u64,
    /// Time from the job's start to the first byte sent.
    pub setup_time_ms: u64,
    /// Current auto-converge throttle in percent.
    pub auto_converge_throttle: i32,
    /// Compressed bytes sent.
    pub compression_bytes: u64,
    /// Pages sent compressed.
    pub compression_pages: u64,
    /// Bytes of the disks a storage migration copies (0: no storage copy).
    pub disk_total: u64,
    /// Disk bytes copied.
    pub disk_processed: u64,
    /// Disk bytes left to copy.
    pub disk_remaining: u64,
    /// Steps and their durations.
    pub timeline: Vec<PhaseTiming>,
    /// Error of a failed job.
    pub errmsg: Option<String>,
}

impl JobStats {
    /// Whether the job is still running.
    pub fn is_active(&self) -> bool {
        matches!(self.job_type, JobType::Bounded | JobType::Unbounded)
    }

    /// The 12-field GET_JOB_INFO layout, as libvirt fills it: `data_*` is
    /// memory and disks together, `mem_*` memory (our `data_*` fields),
    /// `file_*` the disks of a storage copy.
    pub fn to_job_info(&self) -> JobInfo {
        JobInfo {
            job_type: self.job_type as i32,
            time_elapsed: self.time_elapsed_ms,
            time_remaining: self.time_remaining_ms,
            data_total: self.data_total.saturating_add(self.disk_total),
            data_processed: self.data_processed.saturating_add(self.disk_processed),
            data_remaining: self.data_remaining.saturating_add(self.disk_remaining),
            mem_total: self.data_total,
            mem_processed: self.data_processed,
            mem_remaining: self.data_remaining,
            file_total: self.disk_total,
            file_processed: self.disk_processed,
            file_remaining: self.disk_remaining,
        }
    }

    /// GET_JOB_STATS' typed parameters (keys of libvirt-wire.md §7.3); none
    /// without a job, as libvirt answers only the type then. As in libvirt,
    /// `data_*` counts memory and disks together; the `disk_*` keys come
    /// only with a storage copy.
    pub fn to_typed_params(&self) -> TypedParams {
        if self.job_type == JobType::None {
            return TypedParams::new();
        }
        let info = self.to_job_info();
        let mut p = TypedParams::new().with(key::OPERATION, TypedValue::Int(self.operation));
        let u = [
            (key::TIME_ELAPSED, self.time_elapsed_ms),
            (key::TIME_REMAINING, self.time_remaining_ms),
            (key::DOWNTIME, self.downtime_ms),
            (key::SETUP_TIME, self.setup_time_ms),
            (key::DATA_TOTAL, info.data_total),
            (key::DATA_PROCESSED, info.data_processed),
            (key::DATA_REMAINING, info.data_remaining),
            (key::MEMORY_TOTAL, self.data_total),
            (key::MEMORY_PROCESSED, self.data_processed),
            (key::MEMORY_REMAINING, self.data_remaining),
            (key::MEMORY_CONSTANT, self.memory_constant),
            (key::MEMORY_NORMAL, self.memory_normal),
            (key::MEMORY_NORMAL_BYTES, self.memory_normal_bytes),
            (key::MEMORY_BPS, self.memory_bps),
            (key::MEMORY_DIRTY_RATE, self.memory_dirty_rate),
            (key::MEMORY_PAGE_SIZE, self.memory_page_size),
            (key::MEMORY_ITERATION, self.memory_iteration),
        ];
        for (k, v) in u {
            p.push(k, TypedValue::ULLong(v));
        }
        // libvirt sends the compression keys only when XBZRLE was in use
        // (`xbzrle_set`); a job that compressed nothing did not use it.
        if self.compression_bytes > 0 || self.compression_pages > 0 {
            for (k, v) in [
                (key::COMPRESSION_BYTES, self.compression_bytes),
                (key::COMPRESSION_PAGES, self.compression_pages),
            ] {
                p.push(k, TypedValue::ULLong(v));
            }
        }
        if self.disk_total > 0 {
            for (k, v) in [
                (key::DISK_TOTAL, self.disk_total),
                (key::DISK_PROCESSED, self.disk_processed),
                (key::DISK_REMAINING, self.disk_remaining),
            ] {
                p.push(k, TypedValue::ULLong(v));
            }
        }
        // libvirt 9.0 sends the key whenever QEMU reports the figure (QEMU
        // 7.2 always does), so virsh shows "Postcopy requests: 0" after a
        // pre-copy migration too.
        p.push(
            key::MEMORY_POSTCOPY_REQUESTS,
            TypedValue::ULLong(self.memory_postcopy_requests),
        );
        // As libvirt: only a throttled guest has the key.
        if self.auto_converge_throttle != 0 {
            p.push(
                key::AUTO_CONVERGE_THROTTLE,
                TypedValue::Int(self.auto_converge_throttle),
            );
        }
        match self.job_type {
            JobType::Completed => p.push(key::SUCCESS, TypedValue::Boolean(true)),
            JobType::Failed | JobType::Cancelled => {
                p.push(key::SUCCESS, TypedValue::Boolean(false));
                if let Some(msg) = &self.errmsg {
                    p.push(key::ERRMSG, TypedValue::String(msg.clone()));
                }
            }
            JobType::None | JobType::Bounded | JobType::Unbounded => {}
        }
        p
    }

    /// The statistics carried in a cookie's `<statistics>`.
    pub fn to_cookie_pairs(&self) -> Vec<(String, u64)> {
        [
            (key::TIME_ELAPSED, self.time_elapsed_ms),
            (key::DOWNTIME, self.downtime_ms),
            (key::SETUP_TIME, self.setup_time_ms),
            (key::DATA_TOTAL, self.data_total),
            (key::DATA_PROCESSED, self.data_processed),
            (key::MEMORY_ITERATION, self.memory_iteration),
            (key::MEMORY_DIRTY_RATE, self.memory_dirty_rate),
            (key::MEMORY_BPS, self.memory_bps),
            (key::MEMORY_CONSTANT, self.memory_constant),
            (key::MEMORY_NORMAL, self.memory_normal),
            (key::MEMORY_NORMAL_BYTES, self.memory_normal_bytes),
            (key::MEMORY_PAGE_SIZE, self.memory_page_size),
            (key::MEMORY_POSTCOPY_REQUESTS, self.memory_postcopy_requests),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Takes over the transfer figures a peer sent in its cookie (the destination
    /// learns downtime, iterations and the page counts from the source this
    /// way, so its `domjobinfo --completed` shows them as libvirt's does).
    pub fn merge_cookie_pairs(&mut self, pairs: &[(String, u64)]) {
        for (k, v) in pairs {
            let v = *v;
            match k.as_str() {
                key::DOWNTIME => self.downtime_ms = v,
                key::SETUP_TIME => self.setup_time_ms = v,
                key::DATA_TOTAL => self.data_total = v,
                key::DATA_PROCESSED => self.data_processed = v,
                key::MEMORY_ITERATION => self.memory_iteration = v,
                key::MEMORY_DIRTY_RATE => self.memory_dirty_rate = v,
                key::MEMORY_BPS => self.memory_bps = v,
                key::MEMORY_CONSTANT => self.memory_constant = v,
                key::MEMORY_NORMAL => self.memory_normal = v,
                key::MEMORY_NORMAL_BYTES => self.memory_normal_bytes = v,
                key::MEMORY_PAGE_SIZE => self.memory_page_size = v,
                key::MEMORY_POSTCOPY_REQUESTS => self.memory_postcopy_requests = v,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed_params::job_stats;

    fn sample() -> JobStats {
        JobStats {
            job_type: JobType::Unbounded,
            operation: job_stats::operation::MIGRATION_OUT,
            time_elapsed_ms: 1500,
            data_total: 10_000,
            data_processed: 4_000,
            data_remaining: 6_000,
            memory_iteration: 2,
            downtime_ms: 300,
            ..JobStats::default()
        }
    }

    #[test]
    fn job_info_has_the_twelve_fields_in_wire_order() {
        let info = sample().to_job_info();
        assert_eq!(info.job_type, 2);
        assert_eq!(info.time_elapsed, 1500);
        assert_eq!(
            (info.data_total, info.data_processed, info.data_remaining),
            (10_000, 4_000, 6_000)
        );
        assert_eq!(
            (info.mem_total, info.mem_processed, info.mem_remaining),
            (10_000, 4_000, 6_000)
        );
        assert_eq!(info.file_total, 0);
    }

    #[test]
    fn typed_stats_use_libvirt_keys_and_types() {
        let p = sample().to_typed_params();
        p.validate(job_stats::SPECS)
            .expect("every key and type is libvirt's");
        assert_eq!(
            p.get_ullong(job_stats::DATA_REMAINING).expect("u64"),
            Some(6_000)
        );
        assert_eq!(p.get_int(job_stats::OPERATION).expect("int"), Some(5));
        assert_eq!(
            p.get_bool(job_stats::SUCCESS).expect("bool"),
            None,
            "running"
        );

        let mut failed = sample();
        failed.job_type = JobType::Failed;
        failed.errmsg = Some("boom".into());
        let p = failed.to_typed_params();
        assert_eq!(p.get_bool(job_stats::SUCCESS).expect("bool"), Some(false));
        assert_eq!(p.get_string(job_stats::ERRMSG).expect("str"), Some("boom"));
        assert!(p.len() <= crate::typed_params::MAX_PARAMS);
    }

    #[test]
    fn a_storage_copy_adds_its_disks_to_the_data_figures() {
        let mut s = sample();
        assert!(s
            .to_typed_params()
            .get_ullong(job_stats::DISK_TOTAL)
            .expect("u64")
            .is_none());
        s.disk_total = 1_000;
        s.disk_processed = 400;
        s.disk_remaining = 600;
        let info = s.to_job_info();
        assert_eq!(
            (info.data_total, info.data_processed, info.data_remaining),
            (11_000, 4_400, 6_600)
        );
        assert_eq!((info.mem_total, info.file_total), (10_000, 1_000));
        let p = s.to_typed_params();
        p.validate(job_stats::SPECS).expect("libvirt's keys");
        let get = |k| p.get_ullong(k).expect("u64");
        assert_eq!(get(job_stats::DISK_TOTAL), Some(1_000));
        assert_eq!(get(job_stats::DISK_PROCESSED), Some(400));
        assert_eq!(get(job_stats::DISK_REMAINING), Some(600));
        assert_eq!(get(job_stats::DATA_TOTAL), Some(11_000));
        assert_eq!(get(job_stats::MEMORY_TOTAL), Some(10_000));
    }

    #[test]
    fn cookie_statistics_round_trip_into_the_peer() {
        let mut peer = JobStats::default();
        peer.merge_cookie_pairs(&sample().to_cookie_pairs());
        assert_eq!(peer.downtime_ms, 300);
        assert_eq!(peer.memory_iteration, 2);
        assert_eq!(peer.data_processed, 4_000);
        let sent = JobStats {
            memory_constant: 24_562,
            memory_normal: 20_592,
            memory_normal_bytes: 20_592 * 4096,
            memory_page_size: 4096,
            ..sample()
        };
        let mut peer = JobStats::default();
        peer.merge_cookie_pairs(&sent.to_cookie_pairs());
        assert_eq!(
            (
                peer.memory_constant,
                peer.memory_normal,
                peer.memory_normal_bytes,
                peer.memory_page_size
            ),
            (24_562, 20_592, 20_592 * 4096, 4096)
        );
    }

    #[test]
    fn compression_and_throttle_keys_come_only_when_used() {
        let plain = sample().to_typed_params();
        assert_eq!(
            plain.get_ullong(job_stats::COMPRESSION_BYTES).expect("u64"),
            None
        );
        assert_eq!(
            plain.get_ullong(job_stats::COMPRESSION_PAGES).expect("u64"),
            None
        );
        assert_eq!(
            plain
                .get_int(job_stats::AUTO_CONVERGE_THROTTLE)
                .expect("int"),
            None
        );

        let mut busy = sample();
        busy.compression_pages = 3;
        busy.compression_bytes = 900;
        busy.auto_converge_throttle = 20;
        let p = busy.to_typed_params();
        assert_eq!(
            p.get_ullong(job_stats::COMPRESSION_PAGES).expect("u64"),
            Some(3)
        );
        assert_eq!(
            p.get_ullong(job_stats::COMPRESSION_BYTES).expect("u64"),
            Some(900)
        );
        assert_eq!(
            p.get_int(job_stats::AUTO_CONVERGE_THROTTLE).expect("int"),
            Some(20)
        );
    }

    #[test]
    fn postcopy_requests_are_reported_after_a_pre_copy_migration_too() {
        let p = sample().to_typed_params();
        assert_eq!(
            p.get_ullong(job_stats::MEMORY_POSTCOPY_REQUESTS)
                .expect("u64"),
            Some(0)
        );
    }

    #[test]
    fn no_job_has_no_parameters() {
        assert!(JobStats::default().to_typed_params().is_empty());
    }
}
