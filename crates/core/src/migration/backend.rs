//! [`MigrationBackend`]: what a driver implements so that the
//! [`Manager`](super::Manager) can migrate its guests. The manager owns jobs,
//! phases, the journal, cookies and checks; the backend only moves the guest.

use std::ops::RangeInclusive;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::cookie::{GraphicsRelocation, LockState, Nbd};
use crate::domain::{paused_reason, DomainEvent, DomainRef, DomainState, StateReason};
use crate::error::Result;
use crate::flags::MigrateFlags;
use crate::job::{JobHandle, JournalEntry, RecoveryAction};
use crate::migration::tunnel::{TunnelReader, TunnelWriter};
use crate::migration::MigrateRequest;
use crate::support::SupportTable;
use crate::xml::DomainDef;

/// Where Perform sends the guest's data.
pub enum DataOut {
    /// Connect to the destination's data listener (`tcp:host:port` or `tcp://host:port`).
    Direct {
        /// The URI Prepare answered (or the caller's `migrate_uri`).
        uri: String,
        /// The destination's NBD server of a storage copy (Prepare's cookie).
        nbd: Option<Nbd>,
    },
    /// Write into the daemon-to-daemon stream (TUNNELLED).
    Tunnel(TunnelWriter),
}

impl std::fmt::Debug for DataOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataOut::Direct { uri, nbd } => f
                .debug_struct("Direct")
                .field("uri", uri)
                .field("nbd", nbd)
                .finish(),
            DataOut::Tunnel(_) => f.write_str("Tunnel"),
        }
    }
}

/// Where Prepare receives the guest's data from.
pub enum Incoming {
    /// Listen on `listen_address` with a port from `port_range`.
    Direct {
        /// Address to bind (an IP literal).
        listen_address: String,
        /// Ports to try, in order.
        port_range: RangeInclusive<u16>,
        /// The disks the source will copy (Begin's cookie), for which an
        /// NBD server must be started; `None` without a storage copy.
        nbd: Option<Nbd>,
    },
    /// Read from the daemon-to-daemon stream (TUNNELLED).
    Tunnel(TunnelReader),
    /// OFFLINE: no data comes; Finish only defines the configuration.
    Offline,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Incoming::Direct {
                listen_address,
                port_range,
                nbd,
            } => f
                .debug_struct("Direct")
                .field("listen_address", listen_address)
                .field("port_range", port_range)
                .field("nbd", nbd)
                .finish(),
            Incoming::Tunnel(_) => f.write_str("Tunnel"),
            Incoming::Offline => f.write_str("Offline"),
        }
    }
}

/// What the source's Begin step found out about the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginOut {
    /// The migratable definition (secure, without runtime-only state).
    pub def: DomainDef,
    /// The persistent (inactive) definition, if the guest has one.
    pub persistent: Option<DomainDef>,
    /// Whether the guest runs (or is paused).
    pub active: bool,
    /// Whether it is paused (the destination then keeps it paused: PAUSED).
    pub paused: bool,
    /// Graphics to relocate.
    pub graphics: Option<GraphicsRelocation>,
    /// Lock state to hand over.
    pub lockstate: Option<LockState>,
    /// The disks a storage copy (NON_SHARED_DISK / NON_SHARED_INC) will
    /// copy, for the destination's Prepare; `None` without one.
    pub nbd: Option<Nbd>,
}

/// What Perform reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerformOut {
    /// Negotiated capabilities actually used (`compression` = `lz4`, …).
    pub capabilities: Vec<(String, String)>,
}

/// What Prepare answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrepareOut {
    /// Where the source must send the data (`tcp:127.0.0.1:49152`); `None`
    /// for tunnelled and offline migrations.
    pub uri_out: Option<String>,
    /// Capabilities this side accepts.
    pub capabilities: Vec<(String, String)>,
    /// The NBD server started for a storage copy (its port), for Perform.
    pub nbd: Option<Nbd>,
}

/// A driver's migration operations. Each runs inside a job the
/// [`Manager`](super::Manager) created, after its checks and journal write.
///
/// Backends emit the lifecycle events of what they do (suspended/resumed
/// "migrated", stopped "migrated", started "migrated"); the job events
/// (migration iterations, job completed) go through [`MigrationBackend::events`].
///
/// # Errors
/// Implementations return the calls-layer [`Error`](crate::Error) of what failed:
/// `OperationFailed` (domain QEMU) for data-plane failures, `OperationAborted`
/// for an abort, `NoDomain` for an unknown guest.
#[async_trait]
pub trait MigrationBackend: Send + Sync {
    /// The driver's table (name, migration flags, params, defaults).
    fn support(&self) -> &'static SupportTable;

    /// The driver's domain event channel, the one its
    /// [`Driver::subscribe_events`](crate::driver::Driver::subscribe_events)
    /// subscribes to. The manager and the jobs send their events there:
    /// MIGRATION_ITERATION at each pass of an outgoing migration (reported
    /// with [`JobHandle::report_iteration`]) and JOB_COMPLETED when an
    /// outgoing migration has completed. `None` (the default): no job events.
    fn events(&self) -> Option<broadcast::Sender<DomainEvent>> {
        None
    }

    /// Flags this driver always uses whatever the caller asks (a caller that
    /// explicitly refuses one gets `ArgumentUnsupported`).
    fn forced_flags(&self) -> MigrateFlags {
        MigrateFlags::empty()
    }

    /// Source, Begin: the guest's definitions and state. Changes nothing.
    async fn begin(&self, dom: &DomainRef, req: &MigrateRequest) -> Result<BeginOut>;

    /// Source, Perform: streams the guest to `out`. On success the guest is
    /// paused here with all its state sent; on failure (or abort through
    /// `job`) it runs here again as before.
    async fn perform(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<PerformOut>;

    /// Source, Confirm: `cancelled` = false → stop the guest (and undefine it with
    /// UNDEFINE_SOURCE); true → make sure it runs here (resume it).
    async fn confirm(&self, dom: &DomainRef, req: &MigrateRequest, cancelled: bool) -> Result<()>;

    /// Source, once a migration of a guest that ran when its job began was
    /// cancelled (Confirm with `cancelled`) or failed (Perform): runs the
    /// guest again if it is paused now for any reason
    /// [`resumes_after_migration`] accepts with `ran_at_begin` — an
    /// operator's SUSPEND between Begin and Perform included — as libvirt's
    /// `qemuMigrationSrcRestoreDomainState`: running "migration canceled",
    /// event resumed / migrated. A guest that is not paused (or no longer
    /// active) is left as it is. The [`Manager`](super::Manager) calls it
    /// after [`MigrationBackend::confirm`] or a failed
    /// [`MigrationBackend::perform`], never for a post-copy source.
    async fn restore_running(&self, dom: &DomainRef) -> Result<()>;

    /// Destination, Prepare: creates the incoming guest from `def` (already renamed
    /// to the destination name, paused, not yet persistent) and starts receiving.
    async fn prepare(
        &self,
        def: DomainDef,
        req: &MigrateRequest,
        incoming: Incoming,
        job: &JobHandle,
    ) -> Result<PrepareOut>;

    /// Destination, Finish: `cancelled` = false → wait for the data, verify it,
    /// define `persistent` if given, then resume unless PAUSED; true (or any
    /// failure) → kill the incoming guest, leaving nothing behind.
    async fn finish(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        persistent: Option<DomainDef>,
        cancelled: bool,
        job: &JobHandle,
    ) -> Result<DomainRef>;

    /// After a restart: carries out `action` for a journalled job.
    async fn recover(&self, entry: &JournalEntry, action: RecoveryAction) -> Result<()>;

    /// Destination, after a successful Prepare: where graphics clients of
    /// the incoming guest `dom` will connect (its actual ports), for
    /// Prepare's cookie. `None` (the default) when it has no graphics.
    async fn incoming_graphics(&self, _dom: &DomainRef) -> Option<GraphicsRelocation> {
        None
    }

    /// Source, right before Perform sends data: tells the guest's graphics
    /// server where its clients should reconnect (`graphics` from Prepare's
    /// cookie, `dest_hostname` for a wildcard listen address; the request's
    /// `graphics_uri` overrides both). Best effort, as in libvirt: failures
    /// are the backend's to log, never the migration's. Default: nothing.
    async fn relocate_graphics(
        &self,
        _dom: &DomainRef,
        _req: &MigrateRequest,
        _graphics: Option<&GraphicsRelocation>,
        _dest_hostname: Option<&str>,
    ) {
    }
}

/// Whether a source guest in `state` is run again at the end of a migration
/// that was cancelled or failed. A pause of the migration's own (the final
/// copy, `--timeout-suspend`) always ends; any other pause (an operator's
/// SUSPEND) only if the guest ran when the job began (`ran_at_begin`), as
/// libvirt's `qemuMigrationSrcRestoreDomainState`. A post-copy source (its
/// memory is stale) and a guest stopped by an I/O error never run again
/// this way.
pub fn resumes_after_migration(state: StateReason, ran_at_begin: bool) -> bool {
    state.state == DomainState::Paused
        && match state.reason {
            paused_reason::MIGRATION => true,
            paused_reason::POSTCOPY | paused_reason::POSTCOPY_FAILED | paused_reason::IOERROR => {
                false
            }
            _ => ran_at_begin,
        }
}

/// The refusal of an incoming migration of a guest whose shut-off definition
/// here has a managed save image: the image would be resumable beside the
/// guest that arrives (see [`check_no_managed_save`]).
pub fn managed_save_on_destination(name: &str) -> crate::Error {
    crate::Error::invalid(format!(
        "domain '{name}' has a managed save image on the destination host: \
         remove it (virsh managedsave-remove) before migrating the guest here"
    ))
}

/// Refuses an offline migration of a guest that has a managed save image.
///
/// Only the definition would move: started on the destination it would boot
/// afresh while the source could still resume the saved state, two copies of
/// one guest. libvirt does not check this; migrated does, as its invariant
/// asks (exactly one running or resumable copy). Drivers without managed
/// save answer `NO_SUPPORT` to the question, which passes.
///
/// # Errors
/// [`crate::Error::OperationInvalid`] naming the way out; the driver's
/// lookup error.
pub async fn check_no_managed_save(
    driver: &dyn crate::driver::Driver,
    dom: &DomainRef,
) -> Result<()> {
    match driver.has_managed_save(dom, 0).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(crate::Error::invalid(format!(
            "domain '{}' has a managed save image: start it, or remove the image \
             (virsh managedsave-remove), before an offline migration",
            dom.name
        ))),
        Err(e) if e.code() == crate::error::ErrorCode::NoSupport => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses to migrate a domain with snapshots, as libvirt's
/// `qemuMigrationSrcIsAllowed`: their metadata (and a QEMU guest's internal
/// snapshots) would not follow it. A driver without snapshots passes.
///
/// # Errors
/// [`crate::Error::OperationInvalid`] with libvirt's message; the driver's
/// lookup error.
pub async fn check_no_snapshots(driver: &dyn crate::driver::Driver, dom: &DomainRef) -> Result<()> {
    match driver.snapshot_list(dom, None, 0).await {
        Ok(names) if names.is_empty() => Ok(()),
        Ok(names) => Err(crate::Error::invalid(format!(
            "cannot migrate domain with {} snapshots",
            names.len()
        ))),
        Err(e) if e.code() == crate::error::ErrorCode::NoSupport => Ok(()),
        Err(e) => Err(e),
    }
}
