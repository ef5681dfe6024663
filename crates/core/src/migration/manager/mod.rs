//! [`Manager`]: one per daemon. It turns each migration step (one
//! [`MigrateRequest`](crate::migration::MigrateRequest) plus cookie bytes in, cookie bytes out) into checks,
//! a journalled phase change and a call of the driver's [`MigrationBackend`].
//!
//! The daemon's dispatch (every *_PARAMS / v3 / v2 / v1 wire variant) and the
//! p2p source's local endpoint call exactly these methods:
//!
//! | step | runs on | method |
//! |---|---|---|
//! | Begin3 | source | [`Manager::begin3`] |
//! | Prepare3 / PrepareTunnel3 / Prepare2 | destination | [`Manager::prepare3`] |
//! | Perform3 | source | [`Manager::perform3`] (v2 Perform: [`Manager::perform2`]) |
//! | Finish3 / Finish2 | destination | [`Manager::finish3`] |
//! | Confirm3 | source | [`Manager::confirm3`] |
//!
//! Like libvirt (`qemuMigrationSrcBegin`), a Begin without CHANGE_PROTECTION
//! leaves no job behind: Perform then starts the source job itself, so a
//! client that stops after a failed Prepare (no Confirm, libvirt-wire.md §8.6)
//! leaves no guest locked. With CHANGE_PROTECTION the job lives from Begin to
//! Confirm.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::cookie::Cookie;
use crate::domain::{DomainEvent, DomainEventKind, DomainRef, HostIdentity};
use crate::error::Result;
use crate::flags::MigrateFlags;
use crate::job::{
    DestinationEvent, JobHandle, JobOutcome, JobRegistry, JobStats, JobType, Journal, JournalEntry,
    Phase, RecoveryAction, SourceEvent,
};
use crate::migration::backend::{BeginOut, MigrationBackend};
use crate::migration::fault::PausePoint;
use crate::migration::request::Role;
use crate::xml::DomainDef;

mod destination;
mod source;

/// The port range QEMU's migration listener uses by default.
pub const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 49152..=49215;

/// Per-daemon migration settings.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// State directory; the journal goes to `<state_dir>/journal`.
    pub state_dir: PathBuf,
    /// This host.
    pub host: HostIdentity,
    /// Ports for incoming data listeners.
    pub port_range: RangeInclusive<u16>,
    /// Address incoming data listeners bind when the request names none; it is
    /// also the host part of Prepare's `uri_out`, so it must be reachable from
    /// the source (the daemon's `--migration-address`).
    pub listen_address: String,
    /// Debug builds: block forever at this point (for kill tests).
    pub pause_at: Option<PausePoint>,
    /// How long a prepared incoming migration may wait for Finish3 without
    /// progress (no data received) before the destination cancels it as
    /// abandoned; `None` = never (only the preparing connection's close
    /// cancels it).
    pub prepare_timeout: Option<Duration>,
}

/// Default [`ManagerConfig::prepare_timeout`]: far above any pause between
/// steps of a live client (they follow each other at once; keepalive notices
/// a dead peer within 30 s), small enough that an abandoned Prepare does not
/// hold its guest and job for long.
pub const DEFAULT_PREPARE_TIMEOUT: Duration = Duration::from_secs(300);

impl ManagerConfig {
    /// Settings with the default port range and 127.0.0.1 as data address.
    pub fn new(state_dir: impl Into<PathBuf>, host: HostIdentity) -> Self {
        Self {
            state_dir: state_dir.into(),
            host,
            port_range: DEFAULT_PORT_RANGE,
            listen_address: "127.0.0.1".into(),
            pause_at: None,
            prepare_timeout: Some(DEFAULT_PREPARE_TIMEOUT),
        }
    }
}

/// Begin3's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin3Out {
    /// Cookie for Prepare.
    pub cookie: Vec<u8>,
    /// The definition the destination must use (migratable XML).
    pub xml: String,
}

/// Prepare3's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare3Out {
    /// Cookie for Perform.
    pub cookie: Vec<u8>,
    /// Where Perform sends the data (direct migration).
    pub uri_out: Option<String>,
}

/// Finish3's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish3Out {
    /// The guest on this host.
    pub dom: DomainRef,
    /// Cookie for Confirm.
    pub cookie: Vec<u8>,
}

/// A journalled job found at start-up and what was done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The journal entry.
    pub entry: JournalEntry,
    /// The decision taken.
    pub action: RecoveryAction,
}

/// Source-side data kept between Begin and Confirm.
#[derive(Debug, Clone)]
struct SourceContext {
    /// What the job's start (Begin3, or Perform3 without change protection)
    /// found, the pre-migration state included.
    begin: BeginOut,
    dest_host: Option<HostIdentity>,
}

impl SourceContext {
    /// Whether the guest ran when the job began (libvirt's
    /// `preMigrationState` = running): a cancelled or failed migration then
    /// runs it again, whoever paused it since.
    fn ran_at_begin(&self) -> bool {
        self.begin.active && !self.begin.paused
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon's migration engine; see the module doc.
pub struct Manager {
    config: ManagerConfig,
    backend: Arc<dyn MigrationBackend>,
    registry: Arc<JobRegistry>,
    journal: Journal,
    sources: Mutex<HashMap<Uuid, SourceContext>>,
    /// Destination: the definition each incoming guest was prepared with.
    incoming: Arc<Mutex<HashMap<Uuid, DomainDef>>>,
    /// Destination: incoming guests removed after their stream failed, by name,
    /// with the reason, until their Finish arrives.
    failed_incoming: Arc<Mutex<HashMap<String, String>>>,
    /// Recovered source jobs kept paused until someone knows the peer's outcome.
    held: Mutex<HashMap<Uuid, JournalEntry>>,
    /// The driver's event channel ([`MigrationBackend::events`]).
    events: Option<broadcast::Sender<DomainEvent>>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("host", &self.config.host)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for `backend`, journalling under `config.state_dir`.
    ///
    /// # Errors
    /// [`Error::System`](crate::Error::System) if the journal directory cannot be created.
    pub fn new(config: ManagerConfig, backend: Arc<dyn MigrationBackend>) -> Result<Self> {
        let journal = Journal::open(&config.state_dir)?;
        let events = backend.events();
        Ok(Self {
            config,
            backend,
            registry: Arc::new(JobRegistry::with_events(events.clone())),
            journal,
            sources: Mutex::new(HashMap::new()),
            incoming: Arc::new(Mutex::new(HashMap::new())),
            failed_incoming: Arc::new(Mutex::new(HashMap::new())),
            held: Mutex::new(HashMap::new()),
            events,
        })
    }

    /// The jobs (for GET_JOB_INFO/STATS, ABORT_JOB, tuning and change protection).
    pub fn registry(&self) -> &JobRegistry {
        &self.registry
    }

    /// This host.
    pub fn host(&self) -> &HostIdentity {
        &self.config.host
    }

    /// The state directory (the journal lives in `<state_dir>/journal`).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.config.state_dir
    }

    /// The driver's name.
    pub fn driver(&self) -> &'static str {
        self.backend.support().driver
    }

    fn persist(
        &self,
        job: &JobHandle,
        flags: MigrateFlags,
        peer: Option<Uuid>,
        phase: &Phase,
    ) -> Result<()> {
        record(&self.journal, job, flags, peer, phase)
    }

    fn source_step(
        &self,
        job: &JobHandle,
        flags: MigrateFlags,
        peer: Option<Uuid>,
        event: SourceEvent,
    ) -> Result<Phase> {
        job.transition(
            |p| match p {
                Phase::Source(s) => s.advance(event).map(Phase::Source),
                other => Ok(other),
            },
            |p| self.persist(job, flags, peer, p),
        )
    }

    fn destination_step(
        &self,
        job: &JobHandle,
        flags: MigrateFlags,
        peer: Option<Uuid>,
        event: DestinationEvent,
    ) -> Result<Phase> {
        job.transition(
            |p| match p {
                Phase::Destination(d) => d.advance(event).map(Phase::Destination),
                other => Ok(other),
            },
            |p| self.persist(job, flags, peer, p),
        )
    }

    /// Ends a job: completed statistics kept (and returned), journal entry
    /// and context dropped.
    fn end(&self, job: &JobHandle, outcome: JobOutcome) -> Option<JobStats> {
        let uuid = job.domain().uuid;
        lock(&self.sources).remove(&uuid);
        lock(&self.incoming).remove(&uuid);
        let stats = self.registry.finish(&uuid, outcome);
        if let Err(err) = self.journal.remove(&job.job_id()) {
            tracing::warn!(job_id = %job.job_id(), error = %err, "could not remove journal entry");
        }
        stats
    }

    /// JOB_COMPLETED for a job that ended with `stats`, if it completed. The
    /// guest no longer runs on this host, so its id is the inactive one, as
    /// in libvirt's event.
    fn announce_completed(&self, dom: DomainRef, stats: &JobStats) {
        let Some(events) = &self.events else { return };
        if stats.job_type != JobType::Completed {
            return;
        }
        // An error only means nobody listens right now.
        let _ = events.send(DomainEvent {
            dom: DomainRef {
                id: DomainRef::INACTIVE_ID,
                ..dom
            },
            kind: DomainEventKind::JobCompleted {
                stats: stats.to_typed_params(),
            },
        });
    }

    async fn pause_point(&self, point: PausePoint) {
        let state_dir = &self.config.state_dir;
        if self.config.pause_at == Some(point)
            || crate::migration::fault::requested(state_dir, point)
        {
            crate::migration::fault::hold(state_dir, point).await;
        }
    }

    fn decode_cookie(&self, bytes: &[u8], local_role: Role) -> Result<Option<Cookie>> {
        let cookie = Cookie::decode(bytes)?;
        if let Some(c) = &cookie {
            c.check_not_same_host(&self.config.host, local_role)?;
        }
        Ok(cookie)
    }

    /// Start-up: applies [`crate::job::recover`] to every journalled job.
    /// Source jobs kept paused stay registered (the guest stays locked) until
    /// [`Manager::resolve`].
    ///
    /// # Errors
    /// [`Error::System`](crate::Error::System) if the journal cannot be listed; a failing recovery
    /// action is logged and the entry kept for the next start.
    pub async fn recover(&self) -> Result<Vec<Recovered>> {
        let mut out = Vec::new();
        for entry in self.journal.load()? {
            let action = crate::job::recover(&entry);
            tracing::warn!(job_id = %entry.job_id, dom = %entry.name, phase = entry.phase.name(), ?action, "recovering migration job");
            if let Err(err) = self.backend.recover(&entry, action).await {
                tracing::error!(job_id = %entry.job_id, error = %err, "migration recovery failed");
                continue;
            }
            let dom = DomainRef {
                name: entry.name.clone(),
                uuid: entry.uuid,
                id: DomainRef::INACTIVE_ID,
            };
            if action == RecoveryAction::KeepPausedUntilPeerOutcome {
                if self
                    .registry
                    .start(entry.job_id, &dom, entry.phase.clone())
                    .is_ok()
                {
                    lock(&self.held).insert(entry.uuid, entry.clone());
                }
            } else if let Err(err) = self.journal.remove(&entry.job_id) {
                tracing::warn!(error = %err, "could not remove recovered journal entry");
            }
            out.push(Recovered { entry, action });
        }
        Ok(out)
    }

    /// Recovered jobs waiting for the peer's outcome.
    pub fn held(&self) -> Vec<JournalEntry> {
        lock(&self.held).values().cloned().collect()
    }
}

/// Journals `phase` of `job`.
fn record(
    journal: &Journal,
    job: &JobHandle,
    flags: MigrateFlags,
    peer: Option<Uuid>,
    phase: &Phase,
) -> Result<()> {
    let dom = job.domain();
    journal.record(&JournalEntry {
        job_id: job.job_id(),
        name: dom.name,
        uuid: dom.uuid,
        phase: phase.clone(),
        flags: flags.bits(),
        peer_host: peer,
    })
}
