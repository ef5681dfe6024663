//! [`JobRegistry`]: at most one migration job per guest, change protection,
//! per-job and per-domain tuning, and the statistics of the last completed job.
//!
//! A [`JobHandle`] is what the data plane sees: it reports progress (each
//! new pass of an outgoing migration also goes to the driver's event
//! channel as a MIGRATION_ITERATION event), reads the tuning that an
//! operator may change while the job runs, and watches the abort signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::domain::{DomainEvent, DomainEventKind, DomainRef};
use crate::error::{Error, Result};
use crate::job::phase::{DestinationPhase, JobError, Phase, SourcePhase};
use crate::job::report::{JobEnd, JobObserver};
use crate::job::stats::{JobStats, JobType, PhaseTiming};
use crate::migration::Role;
use crate::typed_params::job_stats::operation;

/// QEMU's default maximum downtime, used until someone sets another.
pub const DEFAULT_MAX_DOWNTIME_MS: u64 = 300;

/// How long a call that a running migration job does not allow waits for the
/// job to end before it fails (libvirt's `VIR_JOB_WAIT_TIME`).
pub const JOB_WAIT_TIME: Duration = Duration::from_secs(30);

/// What to do when a migration exceeds its completion timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Abort the migration; the guest keeps running on the source.
    Abort,
    /// Pause the guest so the remaining data can be sent without new dirtying.
    Pause,
}

/// Tuning of one guest's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Bandwidth limit in MiB/s; 0 = unlimited.
    pub max_speed_mib_s: u64,
    /// Bandwidth limit of the post-copy phase in MiB/s; 0 = unlimited
    /// (`VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`).
    pub max_postcopy_speed_mib_s: u64,
    /// Longest acceptable pause for the final copy, in ms.
    pub max_downtime_ms: u64,
    /// Completion timeout and its action.
    pub completion_timeout: Option<(Duration, TimeoutAction)>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_speed_mib_s: 0,
            max_postcopy_speed_mib_s: 0,
            max_downtime_ms: DEFAULT_MAX_DOWNTIME_MS,
            completion_timeout: None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these locks is plain data updated in one statement; a panic
    // elsewhere cannot leave it half-written, so poisoning is ignored.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Shared {
    job_id: Uuid,
    role: Role,
    dom: Mutex<DomainRef>,
    started: Instant,
    phase: Mutex<Phase>,
    stats: Mutex<JobStats>,
    timeline_origin: Instant,
    /// A watch, so a data plane can apply what an operator changes while
    /// the job runs ([`JobHandle::tuning_changes`]).
    tuning: watch::Sender<Tuning>,
    abort: watch::Sender<bool>,
    pause_now: watch::Sender<bool>,
    postcopy: watch::Sender<Postcopy>,
    transfer: watch::Sender<Transfer>,
    /// Destination: the data plane says its stream is flowing although it
    /// counts no bytes (see [`JobHandle::set_receiving`]).
    receiving: AtomicBool,
    ended: watch::Sender<bool>,
    /// The driver's event channel, if it has one.
    events: Option<broadcast::Sender<DomainEvent>>,
}

/// Where an outgoing migration stands with post-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Postcopy {
    /// Started without `VIR_MIGRATE_POSTCOPY`: it can only converge.
    Disabled,
    /// Post-copy is possible; the migration still copies before switching.
    Enabled,
    /// MIGRATE_START_POST_COPY asked the data plane to switch.
    Requested,
    /// The guest runs on the destination, which pulls the remaining pages:
    /// the source's memory is stale from here on and it must never run again.
    Active,
}

/// What the destination knows about its incoming data stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Transfer {
    Running,
    Failed(String),
    Ended,
}

/// A live migration job, shared by the manager, the data plane and the
/// callers of GET_JOB_INFO / ABORT_JOB.
#[derive(Clone)]
pub struct JobHandle(Arc<Shared>);

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("job_id", &self.0.job_id)
            .field("role", &self.0.role)
            .field("phase", &self.phase().name())
            .finish_non_exhaustive()
    }
}

/// A receiver of a job's abort request.
#[derive(Debug, Clone)]
pub struct AbortSignal(watch::Receiver<bool>);

impl AbortSignal {
    /// Whether abort was requested.
    pub fn is_aborted(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when abort is requested (never, if the job ends first).
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches a flag.
    pub async fn aborted(&mut self) {
        // An Err means the job is gone; nobody will abort it any more.
        if self.0.wait_for(|a| *a).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl JobHandle {
    fn new(
        job_id: Uuid,
        role: Role,
        dom: DomainRef,
        phase: Phase,
        tuning: Tuning,
        events: Option<broadcast::Sender<DomainEvent>>,
    ) -> Self {
        let now = Instant::now();
        let stats = JobStats {
            job_type: JobType::Unbounded,
            operation: match role {
                Role::Source => operation::MIGRATION_OUT,
                Role::Destination => operation::MIGRATION_IN,
            },
            timeline: vec![PhaseTiming {
                phase: phase.name(),
                started_ms: 0,
                duration_ms: None,
            }],
            ..JobStats::default()
        };
        Self(Arc::new(Shared {
            job_id,
            role,
            dom: Mutex::new(dom),
            started: now,
            phase: Mutex::new(phase),
            stats: Mutex::new(stats),
            timeline_origin: now,
            tuning: watch::channel(tuning).0,
            abort: watch::channel(false).0,
            pause_now: watch::channel(false).0,
            postcopy: watch::channel(Postcopy::Disabled).0,
            transfer: watch::channel(Transfer::Running).0,
            receiving: AtomicBool::new(false),
            ended: watch::channel(false).0,
            events,
        }))
    }

    /// The job id (also in the cookie and both hosts' logs).
    pub fn job_id(&self) -> Uuid {
        self.0.job_id
    }

    /// Which side this job runs.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The guest.
    pub fn domain(&self) -> DomainRef {
        lock(&self.0.dom).clone()
    }

    /// Updates the guest reference (its id changes when the incoming guest starts).
    pub fn set_domain(&self, dom: DomainRef) {
        *lock(&self.0.dom) = dom;
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        lock(&self.0.phase).clone()
    }

    /// The libvirt call that holds the guest's state change lock in the
    /// current phase, as libvirt names it when another call gives up waiting
    /// (its async job's owner: the call that last moved the job on).
    pub fn owner_api(&self) -> &'static str {
        match self.phase() {
            Phase::Source(SourcePhase::Begin3 { .. }) => "remoteDispatchDomainMigrateBegin3Params",
            Phase::Source(SourcePhase::Perform3 | SourcePhase::Perform3Done) => {
                "remoteDispatchDomainMigratePerform3Params"
            }
            Phase::Source(SourcePhase::Confirm3 | SourcePhase::Confirm3Cancelled) => {
                "remoteDispatchDomainMigrateConfirm3Params"
            }
            Phase::Destination(DestinationPhase::Prepare3 { .. }) => {
                "remoteDispatchDomainMigratePrepare3Params"
            }
            Phase::Destination(_) => "remoteDispatchDomainMigrateFinish3Params",
        }
    }

    /// Moves to the phase `next` computes from the current one, after `persist`
    /// accepted it (the journal write), all under the phase lock so concurrent
    /// steps of one job serialise.
    ///
    /// # Errors
    /// What `next` (usually [`JobError::InvalidPhase`]) or `persist` returns.
    pub fn transition(
        &self,
        next: impl FnOnce(Phase) -> std::result::Result<Phase, JobError>,
        persist: impl FnOnce(&Phase) -> Result<()>,
    ) -> Result<Phase> {
        let mut phase = lock(&self.0.phase);
        let new = next(phase.clone())?;
        persist(&new)?;
        tracing::info!(job_id = %self.0.job_id, from = phase.name(), to = new.name(), "migration phase");
        *phase = new.clone();
        drop(phase);
        let at = self.0.timeline_origin.elapsed().as_millis() as u64;
        let mut stats = lock(&self.0.stats);
        if let Some(last) = stats.timeline.last_mut() {
            last.duration_ms
                .get_or_insert(at.saturating_sub(last.started_ms));
        }
        if !new.is_terminal() {
            stats.timeline.push(PhaseTiming {
                phase: new.name(),
                started_ms: at,
                duration_ms: None,
            });
        }
        Ok(new)
    }

    /// A snapshot of the statistics with the elapsed time filled in.
    pub fn stats(&self) -> JobStats {
        let mut s = lock(&self.0.stats).clone();
        s.time_elapsed_ms = self.0.started.elapsed().as_millis() as u64;
        s
    }

    /// Changes the statistics (the data plane's progress reports).
    pub fn update_stats(&self, f: impl FnOnce(&mut JobStats)) {
        f(&mut lock(&self.0.stats));
    }

    /// Data plane: pass `iteration` (from 1) over the guest's memory starts.
    /// Recorded in the statistics; on the source it is also the
    /// MIGRATION_ITERATION event libvirt sends for QEMU's `MIGRATION_PASS`.
    pub fn report_iteration(&self, iteration: u64) {
        self.update_stats(|s| s.memory_iteration = iteration);
        if self.0.role == Role::Source {
            self.emit(DomainEventKind::MigrationIteration {
                iteration: i32::try_from(iteration).unwrap_or(i32::MAX),
            });
        }
    }

    /// Sends an event about this job's guest to the driver's subscribers.
    fn emit(&self, kind: DomainEventKind) {
        if let Some(events) = &self.0.events {
            // An error only means nobody listens right now.
            let _ = events.send(DomainEvent {
                dom: self.domain(),
                kind,
            });
        }
    }

    /// The current tuning (may change while the job runs).
    pub fn tuning(&self) -> Tuning {
        *self.0.tuning.borrow()
    }

    /// A receiver that sees every later change of the tuning
    /// (MIGRATE_SET_MAX_SPEED, MIGRATE_SET_MAX_DOWNTIME during the job), for
    /// a data plane whose hypervisor must be told (QEMU's
    /// `migrate-set-parameters`).
    pub fn tuning_changes(&self) -> watch::Receiver<Tuning> {
        self.0.tuning.subscribe()
    }

    /// The bandwidth limit in bytes/s, `None` = unlimited.
    pub fn max_bytes_per_sec(&self) -> Option<u64> {
        Some(self.tuning().max_speed_mib_s)
            .filter(|&m| m != 0)
            .map(|m| m.saturating_mul(1 << 20))
    }

    /// The post-copy bandwidth limit in bytes/s, `None` = unlimited.
    pub fn max_postcopy_bytes_per_sec(&self) -> Option<u64> {
        Some(self.tuning().max_postcopy_speed_mib_s)
            .filter(|&m| m != 0)
            .map(|m| m.saturating_mul(1 << 20))
    }

    /// The acceptable downtime.
    pub fn max_downtime(&self) -> Duration {
        Duration::from_millis(self.tuning().max_downtime_ms)
    }

    /// Sets this job's bandwidth limit only (the `bandwidth` parameter of the
    /// request); MIGRATE_SET_MAX_SPEED later still overrides it.
    pub fn set_max_speed_mib_s(&self, mib_s: u64) {
        self.set_tuning(|t| t.max_speed_mib_s = mib_s);
    }

    fn set_tuning(&self, f: impl FnOnce(&mut Tuning)) {
        self.0.tuning.send_modify(f);
    }

    /// Requests abort; the data plane fails its step, the source resumes.
    pub fn abort(&self) {
        self.0.abort.send_replace(true);
    }

    /// Whether abort was requested.
    pub fn is_aborted(&self) -> bool {
        *self.0.abort.borrow()
    }

    /// A receiver of the abort request.
    pub fn abort_signal(&self) -> AbortSignal {
        AbortSignal(self.0.abort.subscribe())
    }

    /// Asks the data plane to pause the guest now and send the rest (the
    /// completion timeout's "pause" action).
    pub fn request_pause(&self) {
        self.0.pause_now.send_replace(true);
    }

    /// Whether [`JobHandle::request_pause`] was called.
    pub fn pause_requested(&self) -> bool {
        *self.0.pause_now.borrow()
    }

    /// Completes once [`JobHandle::request_pause`] is called (at once if it
    /// was), for a data plane that waits on events rather than polling.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches a flag.
    pub async fn pause_wanted(&self) {
        let mut rx = self.0.pause_now.subscribe();
        // The sender lives as long as this handle, so this only ends by the flag.
        let _ = rx.wait_for(|p| *p).await;
    }

    /// Where the job stands with post-copy.
    pub fn postcopy(&self) -> Postcopy {
        *self.0.postcopy.borrow()
    }

    /// Source data plane: the migration runs with post-copy enabled on both
    /// ends, so MIGRATE_START_POST_COPY may switch it.
    pub fn enable_postcopy(&self) {
        self.advance_postcopy(Postcopy::Enabled);
    }

    /// MIGRATE_START_POST_COPY: asks the data plane to switch to post-copy.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] with libvirt's words when the migration
    /// was not started with `VIR_MIGRATE_POSTCOPY`.
    pub fn request_postcopy(&self) -> Result<()> {
        if self.postcopy() == Postcopy::Disabled {
            return Err(Error::invalid(
                "switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag",
            ));
        }
        self.advance_postcopy(Postcopy::Requested);
        Ok(())
    }

    /// Completes once post-copy was requested (at once if it was).
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches a value.
    pub async fn postcopy_wanted(&self) {
        let mut rx = self.0.postcopy.subscribe();
        // The sender lives as long as this handle, so this only ends by the value.
        let _ = rx.wait_for(|p| *p >= Postcopy::Requested).await;
    }

    /// Source data plane: the switch-over to post-copy happened. From here
    /// on the job cannot be aborted and the source must not resume.
    pub fn set_postcopy_active(&self) {
        self.advance_postcopy(Postcopy::Active);
    }

    /// Post-copy only moves forward (a request after the switch changes nothing).
    fn advance_postcopy(&self, to: Postcopy) {
        self.0.postcopy.send_if_modified(|p| {
            let moved = to > *p;
            if moved {
                *p = to;
            }
            moved
        });
    }

    /// Destination data plane: the incoming stream failed for good (the source
    /// went away, the tunnel broke, the data was bad, or an abort). The manager
    /// then removes the incoming guest without waiting for Finish.
    pub fn report_transfer_failure(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.0.transfer.send_if_modified(|t| {
            if *t == Transfer::Running {
                *t = Transfer::Failed(reason);
                true
            } else {
                false
            }
        });
    }

    /// Destination data plane that receives without counting bytes (QEMU
    /// reads its migration stream itself): whether the incoming stream is
    /// flowing now. While it is, the job is not an abandoned Prepare, however
    /// long the transfer takes.
    pub fn set_receiving(&self, flowing: bool) {
        self.0.receiving.store(flowing, Ordering::Relaxed);
    }

    /// What the data plane last said with [`JobHandle::set_receiving`].
    pub fn is_receiving(&self) -> bool {
        self.0.receiving.load(Ordering::Relaxed)
    }

    /// Completes with the failure reported by the data plane, or `None` once
    /// the job has ended without one.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches a value.
    pub async fn transfer_failure(&self) -> Option<String> {
        let mut rx = self.0.transfer.subscribe();
        let state = rx.wait_for(|t| *t != Transfer::Running).await.ok()?;
        match &*state {
            Transfer::Failed(reason) => Some(reason.clone()),
            Transfer::Running | Transfer::Ended => None,
        }
    }

    /// Completes once the job has left the registry (its cleanup is done).
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches a flag.
    pub async fn ended(&self) {
        let mut rx = self.0.ended.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|e| *e).await;
    }

    fn mark_ended(&self) {
        self.0.ended.send_replace(true);
        self.0.transfer.send_if_modified(|t| {
            if *t == Transfer::Running {
                *t = Transfer::Ended;
                true
            } else {
                false
            }
        });
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }
}

/// How a job ended, for its completed statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The guest moved.
    Completed,
    /// The job failed with this message.
    Failed(String),
    /// The job was cancelled (aborted, or the peer cancelled).
    Cancelled,
}

#[derive(Default)]
struct Inner {
    active: HashMap<Uuid, JobHandle>,
    tuning: HashMap<Uuid, Tuning>,
    completed: HashMap<Uuid, JobStats>,
}

/// Every migration job of one daemon, by guest UUID.
pub struct JobRegistry {
    inner: Mutex<Inner>,
    /// Concurrent jobs allowed (the daemon's `max_jobs`); unlimited by default.
    max_jobs: std::sync::atomic::AtomicUsize,
    /// Told about every job that ends (log line aside: the daemon's metrics).
    observers: Mutex<Vec<Arc<dyn JobObserver>>>,
    /// The driver's event channel, handed to every job.
    events: Option<broadcast::Sender<DomainEvent>>,
}

impl Default for JobRegistry {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            max_jobs: std::sync::atomic::AtomicUsize::new(usize::MAX),
            observers: Mutex::default(),
            events: None,
        }
    }
}

impl std::fmt::Debug for JobRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRegistry")
            .field("active", &lock(&self.inner).active.len())
            .finish()
    }
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose jobs send their events (migration
    /// iterations) to `events`, the driver's event channel.
    pub fn with_events(events: Option<broadcast::Sender<DomainEvent>>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    /// Limits the number of concurrent jobs (source and destination alike);
    /// jobs already running are not affected.
    pub fn set_max_jobs(&self, max: usize) {
        self.max_jobs
            .store(max, std::sync::atomic::Ordering::Relaxed);
    }

    /// Adds an observer told about every job that ends from now on.
    pub fn add_observer(&self, observer: Arc<dyn JobObserver>) {
        lock(&self.observers).push(observer);
    }

    /// Registers a new job for `dom`, starting in `phase`.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] "another migration job is already active for domain X",
    /// or "too many concurrent migration jobs" when `max_jobs` jobs are active.
    pub fn start(&self, job_id: Uuid, dom: &DomainRef, phase: Phase) -> Result<JobHandle> {
        let mut inner = lock(&self.inner);
        if inner.active.contains_key(&dom.uuid) {
            return Err(Error::invalid(format!(
                "another migration job is already active for domain {}",
                dom.name
            )));
        }
        let max = self.max_jobs.load(std::sync::atomic::Ordering::Relaxed);
        if inner.active.len() >= max {
            return Err(Error::invalid(format!(
                "too many concurrent migration jobs ({max} active, the limit max_jobs); \
                 cannot migrate domain {}",
                dom.name
            )));
        }
        let tuning = inner.tuning.get(&dom.uuid).copied().unwrap_or_default();
        let handle = JobHandle::new(
            job_id,
            phase.role(),
            dom.clone(),
            phase,
            tuning,
            self.events.clone(),
        );
        inner.active.insert(dom.uuid, handle.clone());
        Ok(handle)
    }

    /// The active job of `uuid`.
    pub fn get(&self, uuid: &Uuid) -> Option<JobHandle> {
        lock(&self.inner).active.get(uuid).cloned()
    }

    /// The active job of `uuid` with the given role.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] "no migration job is active for domain X" (e.g.
    /// Finish3 without Prepare3, Confirm3 twice).
    pub fn expect(&self, uuid: &Uuid, name: &str, role: Role) -> Result<JobHandle> {
        self.get(uuid).filter(|j| j.role() == role).ok_or_else(|| {
            Error::invalid(format!(
                "no {role} migration job is active for domain {name}"
            ))
        })
    }

    /// The active destination job of the guest now called `name`.
    pub fn find_destination_by_name(&self, name: &str) -> Option<JobHandle> {
        lock(&self.inner)
            .active
            .values()
            .find(|j| j.role() == Role::Destination && j.domain().name == name)
            .cloned()
    }

    /// Ends the job of `uuid`, keeping its statistics as "completed"; returns
    /// them (`None` when no job was active).
    pub fn finish(&self, uuid: &Uuid, outcome: JobOutcome) -> Option<JobStats> {
        let mut inner = lock(&self.inner);
        let job = inner.active.remove(uuid)?;
        job.mark_ended();
        let mut stats = job.stats();
        match outcome {
            JobOutcome::Completed => stats.job_type = JobType::Completed,
            JobOutcome::Failed(msg) => {
                stats.job_type = JobType::Failed;
                stats.errmsg = Some(msg);
            }
            JobOutcome::Cancelled => stats.job_type = JobType::Cancelled,
        }
        stats.time_remaining_ms = 0;
        if let Some(last) = stats.timeline.last_mut() {
            let at = stats.time_elapsed_ms;
            last.duration_ms
                .get_or_insert(at.saturating_sub(last.started_ms));
        }
        inner.completed.insert(*uuid, stats.clone());
        drop(inner);
        // Every path that ends a job comes through here, so this is the one
        // place for the log line and the observers.
        let end = JobEnd {
            job_id: job.job_id(),
            role: job.role(),
            dom: job.domain(),
            stats,
        };
        end.log();
        let observers = lock(&self.observers).clone();
        for observer in observers {
            observer.job_ended(&end);
        }
        Some(end.stats)
    }

    /// Whether a migration job owns the guest.
    pub fn is_locked(&self, uuid: &Uuid) -> bool {
        lock(&self.inner).active.contains_key(uuid)
    }

    /// Change protection: refuses a state-changing call on a guest a job owns.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] naming the domain and the job's phase.
    pub fn guard(&self, dom: &DomainRef) -> Result<()> {
        match self.get(&dom.uuid) {
            None => Ok(()),
            Some(job) => Err(Error::invalid(format!(
                "domain {} is being migrated (job {}, phase {})",
                dom.name,
                job.job_id(),
                job.phase().name()
            ))),
        }
    }

    /// Waits until no migration job owns the guest, at most `limit`: a call
    /// the job does not allow queues behind it, as behind libvirt's state
    /// change lock, and then runs on whatever state the job left.
    ///
    /// # Errors
    /// [`Error::JobLockTimeout`] naming the call that holds the job when it
    /// outlives `limit`.
    pub async fn wait_unlocked(&self, uuid: &Uuid, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        // Each turn ends a job or the wait: bounded by the deadline.
        while let Some(job) = self.get(uuid) {
            if tokio::time::timeout_at(deadline, job.ended())
                .await
                .is_err()
            {
                return Err(Error::JobLockTimeout {
                    blocker: job.owner_api(),
                });
            }
        }
        Ok(())
    }

    /// Statistics of the active job (`completed` = false) or of the last finished
    /// one (`completed` = true); a guest without either reports job type NONE.
    pub fn stats(&self, uuid: &Uuid, completed: bool) -> JobStats {
        if completed {
            return lock(&self.inner)
                .completed
                .get(uuid)
                .cloned()
                .unwrap_or_default();
        }
        self.get(uuid).map(|j| j.stats()).unwrap_or_default()
    }

    /// Forgets the completed statistics (GET_JOB_STATS without KEEP_COMPLETED).
    pub fn clear_completed(&self, uuid: &Uuid) {
        lock(&self.inner).completed.remove(uuid);
    }

    /// Requests abort of the active job.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] "no job is active on the domain".
    pub fn abort(&self, uuid: &Uuid) -> Result<()> {
        let job = self
            .get(uuid)
            .ok_or_else(|| Error::invalid("no job is active on the domain"))?;
        job.abort();
        Ok(())
    }

    fn tune(&self, uuid: &Uuid, f: impl Fn(&mut Tuning)) {
        let mut inner = lock(&self.inner);
        f(inner.tuning.entry(*uuid).or_default());
        if let Some(job) = inner.active.get(uuid) {
            job.set_tuning(&f);
        }
    }

    /// The guest's tuning: the active job's, else the per-domain setting.
    pub fn tuning(&self, uuid: &Uuid) -> Tuning {
        if let Some(job) = self.get(uuid) {
            return job.tuning();
        }
        lock(&self.inner)
            .tuning
            .get(uuid)
            .copied()
            .unwrap_or_default()
    }

    /// MIGRATE_SET_MAX_SPEED: applies to the running job and later ones.
    pub fn set_max_speed(&self, uuid: &Uuid, mib_s: u64) {
        self.tune(uuid, |t| t.max_speed_mib_s = mib_s);
    }

    /// MIGRATE_SET_MAX_SPEED with `VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY`.
    pub fn set_max_postcopy_speed(&self, uuid: &Uuid, mib_s: u64) {
        self.tune(uuid, |t| t.max_postcopy_speed_mib_s = mib_s);
    }

    /// MIGRATE_SET_MAX_DOWNTIME.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] for 0 ms.
    pub fn set_max_downtime(&self, uuid: &Uuid, ms: u64) -> Result<()> {
        if ms == 0 {
            return Err(Error::InvalidArg {
                operation: "virDomainMigrateSetMaxDowntime",
                reason: "downtime must be greater than 0 ms".into(),
            });
        }
        self.tune(uuid, |t| t.max_downtime_ms = ms);
        Ok(())
    }

    /// Sets the completion timeout of the guest's migrations.
    pub fn set_completion_timeout(&self, uuid: &Uuid, timeout: Option<(Duration, TimeoutAction)>) {
        self.tune(uuid, |t| t.completion_timeout = timeout);
    }

    /// Active jobs.
    pub fn active(&self) -> Vec<JobHandle> {
        lock(&self.inner).active.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::job::phase::{SourceEvent, SourcePhase};

    fn dom(name: &str, n: u128) -> DomainRef {
        DomainRef {
            name: name.into(),
            uuid: Uuid::from_u128(n),
            id: 1,
        }
    }

    fn begin() -> Phase {
        Phase::Source(SourcePhase::Begin3 { offline: false })
    }

    #[tokio::test]
    async fn post_copy_is_requested_only_when_enabled_and_only_moves_forward() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("a");
        let refused = job.request_postcopy().expect_err("not enabled");
        assert_eq!(refused.code(), ErrorCode::OperationInvalid);
        assert!(refused.to_string().contains(
            "switching to post-copy requires migration to be started with VIR_MIGRATE_POSTCOPY flag"
        ));
        job.enable_postcopy();
        assert_eq!(job.postcopy(), Postcopy::Enabled);
        job.request_postcopy().expect("enabled");
        // Resolves at once: the request is already there.
        job.postcopy_wanted().await;
        job.set_postcopy_active();
        job.enable_postcopy();
        job.request_postcopy()
            .expect("a second request changes nothing");
        assert_eq!(job.postcopy(), Postcopy::Active);
    }

    #[test]
    fn post_copy_speed_is_tuned_apart_from_the_pre_copy_speed() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        reg.set_max_postcopy_speed(&a.uuid, 16);
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("a");
        assert_eq!(job.max_postcopy_bytes_per_sec(), Some(16 << 20));
        assert_eq!(job.max_bytes_per_sec(), None);
        reg.set_max_postcopy_speed(&a.uuid, 0);
        assert_eq!(job.max_postcopy_bytes_per_sec(), None);
    }

    #[test]
    fn observers_hear_of_every_ended_job_once_with_its_outcome() {
        struct Seen(Mutex<Vec<(String, &'static str, Role)>>);
        impl JobObserver for Seen {
            fn job_ended(&self, end: &JobEnd) {
                lock(&self.0).push((end.dom.name.clone(), end.outcome(), end.role));
            }
        }
        let reg = JobRegistry::new();
        let seen = Arc::new(Seen(Mutex::default()));
        reg.add_observer(seen.clone());
        let a = dom("a", 1);
        let b = dom("b", 2);
        reg.start(Uuid::new_v4(), &a, begin()).expect("a");
        reg.start(Uuid::new_v4(), &b, begin()).expect("b");
        reg.finish(&a.uuid, JobOutcome::Completed);
        reg.finish(&b.uuid, JobOutcome::Failed("boom".into()));
        reg.finish(&b.uuid, JobOutcome::Completed);
        assert_eq!(
            *lock(&seen.0),
            vec![
                ("a".to_owned(), "completed", Role::Source),
                ("b".to_owned(), "failed", Role::Source),
            ]
        );
    }

    #[test]
    fn jobs_over_max_jobs_are_refused_until_one_ends() {
        let reg = JobRegistry::new();
        reg.set_max_jobs(2);
        reg.start(Uuid::new_v4(), &dom("a", 1), begin())
            .expect("first");
        reg.start(Uuid::new_v4(), &dom("b", 2), begin())
            .expect("second");
        let err = reg
            .start(Uuid::new_v4(), &dom("c", 3), begin())
            .expect_err("third is over the limit");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
        assert!(err.to_string().contains("max_jobs"), "{err}");
        reg.finish(&Uuid::from_u128(1), JobOutcome::Cancelled);
        reg.start(Uuid::new_v4(), &dom("c", 3), begin())
            .expect("a slot was freed");
    }

    #[test]
    fn a_second_job_on_one_guest_is_refused_until_the_first_ends() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        reg.start(Uuid::new_v4(), &a, begin()).expect("first");
        let err = reg.start(Uuid::new_v4(), &a, begin()).expect_err("second");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
        assert!(
            err.to_string()
                .contains("another migration job is already active for domain a"),
            "{err}"
        );
        reg.start(Uuid::new_v4(), &dom("b", 2), begin())
            .expect("other guests are independent");
        reg.finish(&a.uuid, JobOutcome::Cancelled);
        reg.start(Uuid::new_v4(), &a, begin())
            .expect("after the end");
    }

    #[test]
    fn change_protection_refuses_while_a_job_owns_the_guest() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        reg.guard(&a).expect("no job");
        reg.start(Uuid::new_v4(), &a, begin()).expect("job");
        assert!(reg.is_locked(&a.uuid));
        let err = reg.guard(&a).expect_err("locked");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
        assert!(err.to_string().contains("begin3"), "{err}");
        reg.finish(&a.uuid, JobOutcome::Completed);
        reg.guard(&a).expect("unlocked");
    }

    #[test]
    fn tuning_set_before_or_during_a_job_reaches_it() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        reg.set_max_speed(&a.uuid, 10);
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("job");
        assert_eq!(job.max_bytes_per_sec(), Some(10 << 20));
        let mut changes = job.tuning_changes();
        assert!(!changes.has_changed().expect("job alive"));
        reg.set_max_downtime(&a.uuid, 50).expect("valid");
        assert_eq!(job.max_downtime(), Duration::from_millis(50));
        // The data plane sees the change, with the new value.
        assert!(changes.has_changed().expect("job alive"));
        assert_eq!(changes.borrow_and_update().max_downtime_ms, 50);
        assert!(reg.set_max_downtime(&a.uuid, 0).is_err());
        reg.set_max_speed(&a.uuid, 0);
        assert_eq!(job.max_bytes_per_sec(), None);
    }

    #[tokio::test]
    async fn a_call_waits_for_the_job_and_times_out_naming_its_owner() {
        let reg = Arc::new(JobRegistry::new());
        let a = dom("a", 1);
        reg.wait_unlocked(&a.uuid, Duration::ZERO)
            .await
            .expect("no job: no wait");
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("job");
        let err = reg
            .wait_unlocked(&a.uuid, Duration::from_millis(20))
            .await
            .expect_err("the job outlives the wait");
        assert_eq!(err.code(), ErrorCode::OperationTimeout);
        assert_eq!(
            err.to_string(),
            "Timed out during operation: cannot acquire state change lock \
             (held by monitor=remoteDispatchDomainMigrateBegin3Params)"
        );
        drop(job);
        let waiter = tokio::spawn({
            let reg = reg.clone();
            async move { reg.wait_unlocked(&a.uuid, Duration::from_secs(60)).await }
        });
        reg.finish(&Uuid::from_u128(1), JobOutcome::Completed);
        waiter
            .await
            .expect("task")
            .expect("the job ended within the wait");
    }

    #[tokio::test]
    async fn abort_wakes_the_data_plane() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("job");
        let mut signal = job.abort_signal();
        assert!(!signal.is_aborted());
        reg.abort(&a.uuid).expect("active");
        tokio::time::timeout(Duration::from_secs(1), signal.aborted())
            .await
            .expect("woken");
        assert!(reg.abort(&dom("b", 2).uuid).is_err(), "no job");
    }

    #[test]
    fn finished_jobs_report_completed_stats_with_a_timeline() {
        let reg = JobRegistry::new();
        let a = dom("a", 1);
        let job = reg.start(Uuid::new_v4(), &a, begin()).expect("job");
        job.transition(
            |p| match p {
                Phase::Source(s) => s.advance(SourceEvent::PerformStarted).map(Phase::Source),
                other => Ok(other),
            },
            |_| Ok(()),
        )
        .expect("begin → perform");
        job.update_stats(|s| s.data_processed = 42);
        assert_eq!(reg.stats(&a.uuid, false).data_processed, 42);
        reg.finish(&a.uuid, JobOutcome::Failed("boom".into()));
        assert_eq!(reg.stats(&a.uuid, false).job_type, JobType::None);
        let done = reg.stats(&a.uuid, true);
        assert_eq!(done.job_type, JobType::Failed);
        assert_eq!(done.errmsg.as_deref(), Some("boom"));
        let phases: Vec<_> = done.timeline.iter().map(|t| t.phase).collect();
        assert_eq!(phases, vec!["begin3", "perform3"]);
        assert!(done.timeline.iter().all(|t| t.duration_ms.is_some()));
    }

    #[test]
    fn a_refused_journal_write_leaves_the_phase_unchanged() {
        let reg = JobRegistry::new();
        let job = reg
            .start(Uuid::new_v4(), &dom("a", 1), begin())
            .expect("job");
        let err = job
            .transition(
                |p| match p {
                    Phase::Source(s) => s.advance(SourceEvent::PerformStarted).map(Phase::Source),
                    other => Ok(other),
                },
                |_| Err(Error::internal("disk full")),
            )
            .expect_err("persist failed");
        assert!(err.to_string().contains("disk full"));
        assert_eq!(job.phase(), begin());
    }
}
