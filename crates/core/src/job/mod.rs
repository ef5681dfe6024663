//! Migration jobs: the per-role state machines ([`phase`]), the journal that
//! records each phase before it is acted on ([`journal`]), what a restart does
//! with a journalled job ([`recovery`]), the registry enforcing one job per
//! guest with change protection and tuning ([`registry`]), job statistics
//! ([`stats`]) and what a job's end reports ([`report`]); the jobs a driver
//! runs by itself, such as a core dump ([`local`]).

pub mod journal;
pub mod local;
pub mod phase;
pub mod recovery;
pub mod registry;
pub mod report;
pub mod stats;

pub use journal::{Journal, JournalEntry};
pub use local::{Abort, LocalJob, LocalJobs};
pub use phase::{DestinationEvent, DestinationPhase, JobError, Phase, SourceEvent, SourcePhase};
pub use recovery::{recover, RecoveryAction};
pub use registry::{
    AbortSignal, JobHandle, JobOutcome, JobRegistry, Postcopy, TimeoutAction, Tuning,
    DEFAULT_MAX_DOWNTIME_MS, JOB_WAIT_TIME,
};
pub use report::{JobEnd, JobObserver};
pub use stats::{JobInfo, JobStats, JobType, PhaseTiming};
