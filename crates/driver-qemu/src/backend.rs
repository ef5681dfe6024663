//! [`QemuBackend`]: the migration engine's [`MigrationBackend`] over QEMU's
//! own migration. The manager in `migrated_core::migration` owns jobs,
//! phases, the journal and cookies; this module only moves the guest.
//!
//! | step | QEMU |
//! |---|---|
//! | Prepare (dest) | start QEMU with `-incoming defer`; with TLS a `tls-creds-x509` server object and `tls-creds` (see [`crate::tls`]); PARALLEL: `multifd` and `multifd-channels`; `migrate-incoming tcp:ADDR:PORT` on the first free port of the range, or `fd:` on one end of a socket pair whose other end relays the tunnel; NON_SHARED_*: an NBD server exporting the copied disks ([`crate::storage_migration`]) |
//! | Perform (source) | capabilities and parameters from the flags (`events`, `xbzrle` for COMPRESSED, `auto-converge`, `multifd` with `multifd-channels` for PARALLEL, `zero-copy-send` for ZEROCOPY, with QEMU's locked-memory limit raised for the transfer, `pause-before-switchover` with a storage copy), `max-bandwidth`, `downtime-limit`, TLS credentials and host name (or `""` for both without TLS); NON_SHARED_*: disk mirrors into the destination's NBD exports, in sync before the memory moves; then `migrate tcp:…` or `migrate fd:` into a relayed socket pair; waits on MIGRATION events, feeding job stats at each pass; abort → `migrate_cancel` |
//! | Finish (dest) | wait for QEMU's `completed`, stop the NBD server, define the persistent config, `cont` unless PAUSED; on failure kill the incoming QEMU |
//! | Confirm (source) | success: stop the source QEMU (shut off "migrated", undefine with UNDEFINE_SOURCE); cancelled: make sure the guest runs |
//!
//! Offline migrations move only the configuration, as on the test driver.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use async_trait::async_trait;
use migrated_core::cookie::GraphicsRelocation;
use migrated_core::domain::{DomainEvent, DomainRef, DomainState};
use migrated_core::driver::Driver;
use migrated_core::flags::{self, MigrateFlags};
use migrated_core::job::{JobHandle, JournalEntry, Postcopy, RecoveryAction};
use migrated_core::migration::{
    check_no_managed_save, check_no_snapshots, BeginOut, DataOut, DataUri, Incoming,
    MigrateRequest, MigrationBackend, PerformOut, PrepareOut, Step,
};
use migrated_core::support::SupportTable;
use migrated_core::typed_params::migrate_param;
use migrated_core::xml::{DomainDef, FormatOptions, GraphicsType};
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::driver::{PostcopyEnd, PostcopyMark};
use crate::memlock;
use crate::migration::{
    enable_events, set_capabilities, wait_for_completion, CAP_AUTO_CONVERGE, CAP_COMPRESS,
    CAP_EVENTS, CAP_MULTIFD, CAP_PAUSE_BEFORE_SWITCHOVER, CAP_POSTCOPY_RAM, CAP_XBZRLE,
    CAP_ZERO_COPY_SEND,
};
use crate::qmp::commands::{
    ClientMigrateInfo, Getfd, Migrate, MigrateCancel, MigrateContinue, MigrateIncoming,
    MigrateRecover, MigrateSetParameters, MigrateStartPostcopy, MigrationInfo, MigrationStatus,
    QueryMigrate, QueryMigrateCapabilities, QueryMigrateParameters, Stop,
};
use crate::qmp::message::names;
use crate::qmp::{Event, Qmp};
use crate::relay::{self, Relay};
use crate::storage_migration::{self as storage, MirrorMode, MirrorTarget, MirrorTls, Mirrors};
use crate::tls::{self, Endpoint};
use crate::{QemuDriver, SUPPORT};

/// QEMU's default bandwidth cap is 32 MiB/s; without a limit from the
/// caller the migration must not be throttled (libvirt sets its maximum too).
const UNLIMITED_BANDWIDTH: u64 = 1 << 40;

/// How often an outgoing migration's statistics are refreshed from QEMU
/// between its passes.
const STATS_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// Name under which the tunnel descriptor is handed to QEMU.
const TUNNEL_FD: &str = "migrated-tunnel";

/// Connections of a PARALLEL migration without `parallel.connections`:
/// QEMU's default, which libvirt leaves in place. Set explicitly all the
/// same, so a count left by an earlier migration of the same QEMU cannot
/// differ from the destination's.
const DEFAULT_PARALLEL_CONNECTIONS: u8 = 2;

/// The `multifd-channels` of `req`: `None` without PARALLEL, the default
/// without `parallel.connections`.
///
/// # Errors
/// [`Error::InvalidArg`] for a count outside QEMU's 1-255 (the core
/// refuses counts below 1 already; QEMU's parameter is a `uint8`).
fn multifd_channels(req: &MigrateRequest, step: Step) -> Result<Option<u8>> {
    if !req.has(MigrateFlags::PARALLEL) {
        return Ok(None);
    }
    let Some(n) = req.parallel_connections else {
        return Ok(Some(DEFAULT_PARALLEL_CONNECTIONS));
    };
    match u8::try_from(n) {
        Ok(channels) if channels > 0 => Ok(Some(channels)),
        _ => Err(Error::InvalidArg {
            operation: step.api_name(),
            reason: format!(
                "parameter '{}' must be 1-255 with QEMU, got {n}",
                migrate_param::PARALLEL_CONNECTIONS
            ),
        }),
    }
}

/// Refuses a zero-copy migration (`VIR_MIGRATE_ZEROCOPY`) that cannot be:
/// without PARALLEL with libvirt's words and code
/// (`qemuMigrationSrcBeginPhase`: "zero-copy is only available for parallel
/// migration", `VIR_ERR_OPERATION_INVALID`); with COMPRESSED or TLS before
/// any QEMU is touched, where libvirt lets QEMU 7.2 refuse the capability
/// at Perform ("Zero copy only available for non-compressed non-TLS multifd
/// migration").
///
/// # Errors
/// [`Error::OperationInvalid`] without PARALLEL, [`Error::ArgumentConflict`]
/// (`VIR_ERR_ARGUMENT_UNSUPPORTED`) naming the flag zero-copy excludes.
fn check_zerocopy(req: &MigrateRequest) -> Result<()> {
    if !req.has(MigrateFlags::ZEROCOPY) {
        return Ok(());
    }
    if !req.has(MigrateFlags::PARALLEL) {
        return Err(Error::invalid(
            "zero-copy is only available for parallel migration",
        ));
    }
    for other in [MigrateFlags::COMPRESSED, MigrateFlags::TLS] {
        if req.has(other) {
            return Err(Error::ArgumentConflict {
                first: "migration flag ZEROCOPY".into(),
                second: format!("migration flag {other}"),
            });
        }
    }
    Ok(())
}

/// The compression methods of a COMPRESSED migration, as libvirt 9.0's
/// `qemuMigrationParamsSetCompression` resolves them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Compression {
    /// XBZRLE deltas of re-sent pages (`xbzrle`; the default method).
    xbzrle: bool,
    /// zlib in several threads (`mt`: QEMU's `compress` capability).
    mt: bool,
}

impl Compression {
    /// The methods `req` asks for: none without COMPRESSED, `xbzrle` when
    /// it names none.
    ///
    /// # Errors
    /// [`Error::InvalidArg`] with libvirt's words for tuning a method that
    /// is off ("Turn multithread compression on to tune it", "Turn xbzrle
    /// compression on to tune it") and for thread counts outside QEMU's
    /// 1-255; [`Error::ArgumentConflict`] for `mt` with PARALLEL (QEMU
    /// refuses `compress` with `multifd`: "Multifd is not compatible with
    /// compress"), refused before any QEMU is touched.
    fn of(req: &MigrateRequest, step: Step) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidArg {
            operation: step.api_name(),
            reason,
        };
        let mut methods = Self::default();
        for m in &req.compression {
            match m.as_str() {
                "xbzrle" => methods.xbzrle = true,
                "mt" => methods.mt = true,
                other => {
                    return Err(Error::ArgumentUnsupported {
                        what: format!("compression method '{other}'"),
                        driver: SUPPORT.driver,
                    })
                }
            }
        }
        let mt_tuned = req.compression_mt_level.is_some()
            || req.compression_mt_threads.is_some()
            || req.compression_mt_dthreads.is_some();
        if mt_tuned && !methods.mt {
            return Err(invalid("Turn multithread compression on to tune it".into()));
        }
        // As libvirt, before `xbzrle` becomes the default method: a cache
        // size needs `xbzrle` named.
        if req.compression_xbzrle_cache.is_some() && !methods.xbzrle {
            return Err(invalid("Turn xbzrle compression on to tune it".into()));
        }
        if !req.has(MigrateFlags::COMPRESSED) {
            return Ok(Self::default());
        }
        if req.compression.is_empty() {
            methods.xbzrle = true;
        }
        for (key, threads) in [
            (
                migrate_param::COMPRESSION_MT_THREADS,
                req.compression_mt_threads,
            ),
            (
                migrate_param::COMPRESSION_MT_DTHREADS,
                req.compression_mt_dthreads,
            ),
        ] {
            if let Some(n) = threads.filter(|n| !(1..=255).contains(n)) {
                return Err(invalid(format!(
                    "parameter '{key}' must be 1-255 with QEMU, got {n}"
                )));
            }
        }
        if methods.mt && req.has(MigrateFlags::PARALLEL) {
            return Err(Error::ArgumentConflict {
                first: "compression method 'mt'".into(),
                second: "migration flag PARALLEL".into(),
            });
        }
        Ok(methods)
    }

    /// Sets the capabilities and parameters of these methods on the
    /// destination's QEMU before `migrate-incoming` (`mt` needs
    /// `compress` there too, with its decompression threads).
    async fn set_up_incoming(self, qmp: &Qmp, dom: &DomainRef, req: &MigrateRequest) -> Result<()> {
        if !self.mt {
            return Ok(());
        }
        let qemu = |e: crate::Error| e.into_core("migration");
        set_capabilities(qmp, &[(CAP_COMPRESS, true)])
            .await
            .map_err(qemu)?;
        let threads = req
            .compression_mt_dthreads
            .and_then(|n| u32::try_from(n).ok());
        if threads.is_some() {
            qmp.execute(&MigrateSetParameters {
                decompress_threads: threads,
                ..MigrateSetParameters::default()
            })
            .await
            .map_err(qemu)?;
        }
        let params = qmp.execute(&QueryMigrateParameters).await.map_err(qemu)?;
        info!(
            dom = %dom.name,
            decompress_threads = ?params.decompress_threads,
            "incoming migration: multithreaded decompression set up"
        );
        Ok(())
    }
}

/// Refuses what libvirt's QEMU driver refuses with `VIR_MIGRATE_POSTCOPY`
/// (qemuMigrationSrcBeginPhase), in its words.
///
/// # Errors
/// [`Error::ArgumentRefused`].
fn check_postcopy(req: &MigrateRequest) -> Result<()> {
    if !req.has(MigrateFlags::POSTCOPY) {
        return Ok(());
    }
    let refuse = |reason: &str| {
        Err(Error::ArgumentRefused {
            reason: reason.into(),
        })
    };
    // A source whose post-copy failed is paused by the failure, not by
    // the caller: a recovery may carry PAUSED from a client that saw it so.
    let paused = req.has(MigrateFlags::PAUSED) && !req.has(MigrateFlags::POSTCOPY_RESUME);
    if !req.has(MigrateFlags::LIVE) || paused {
        return refuse(migrated_core::migration::request::POSTCOPY_NOT_LIVE);
    }
    if req.is_tunnelled() {
        return refuse("post-copy is not supported with tunnelled migration");
    }
    Ok(())
}

/// The post-copy bandwidth of `job` in bytes/s: MIGRATE_SET_MAX_SPEED with
/// the POSTCOPY flag, else the request's `bandwidth.postcopy`, else
/// unlimited (QEMU's 0).
fn postcopy_bandwidth(req: &MigrateRequest, job: &JobHandle) -> u64 {
    job.max_postcopy_bytes_per_sec()
        .or(req
            .bandwidth_postcopy_mib_s
            .map(|m| m.saturating_mul(1 << 20)))
        .unwrap_or(0)
}

fn failed(reason: impl Into<String>) -> Error {
    Error::OperationFailed {
        operation: "migration",
        reason: reason.into(),
    }
}

/// How long a cancelled outgoing migration may take to stop.
const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What Prepare leaves for Finish.
struct IncomingRun {
    qmp: Qmp,
    events: broadcast::Receiver<Event>,
    relay: Option<Relay>,
    /// Whether an NBD server receives a storage copy.
    nbd: bool,
}

/// The storage copy a Perform runs: the disks and where they go.
struct StoragePlan {
    targets: Vec<String>,
    to: MirrorTarget,
}

/// The QEMU driver's migration backend. Cheap to share behind an `Arc`.
pub struct QemuBackend {
    driver: QemuDriver,
    incoming: Mutex<HashMap<Uuid, IncomingRun>>,
}

impl std::fmt::Debug for QemuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuBackend").finish_non_exhaustive()
    }
}

impl QemuBackend {
    /// A backend migrating `driver`'s guests.
    pub fn new(driver: QemuDriver) -> Self {
        Self {
            driver,
            incoming: Mutex::new(HashMap::new()),
        }
    }

    fn incoming(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, IncomingRun>> {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn def_of(&self, dom: &DomainRef, flags: u32) -> Result<DomainDef> {
        let xml = self.driver.get_xml_desc(dom, flags).await?;
        Ok(DomainDef::parse(&xml)?)
    }

    /// The persistent definition of `dom`, if it has one (for PERSIST_DEST).
    async fn persistent_def(&self, dom: &DomainRef) -> Result<Option<DomainDef>> {
        if !self.driver.is_persistent(dom).await? {
            return Ok(None);
        }
        self.def_of(dom, flags::xml::SECURE | flags::xml::INACTIVE)
            .await
            .map(Some)
    }

    /// Refuses a live TLS migration this host cannot do before anything
    /// starts: over the tunnel (QEMU's TLS needs its own connection to the
    /// peer), or without the credentials `endpoint` needs.
    fn check_tls(&self, req: &MigrateRequest, endpoint: Endpoint) -> Result<()> {
        if !req.has(MigrateFlags::TLS) || req.is_offline() {
            return Ok(());
        }
        if req.is_tunnelled() {
            return Err(Error::ArgumentConflict {
                first: "migration flag TLS".into(),
                second: "migration flag TUNNELLED".into(),
            });
        }
        self.driver.migration_tls().check(endpoint)
    }

    /// Capabilities and parameters of the outgoing migration from the
    /// request; `tls_host` is the destination host QEMU verifies with TLS.
    /// Every capability the flags map to is set, on or off, so nothing an
    /// earlier (failed) migration of this QEMU turned on stays.
    async fn tune(
        &self,
        qmp: &Qmp,
        req: &MigrateRequest,
        job: &JobHandle,
        tls_host: Option<&str>,
        storage: bool,
    ) -> Result<PerformOut> {
        let channels = multifd_channels(req, Step::Perform)?;
        let compression = Compression::of(req, Step::Perform)?;
        let auto_converge = req.has(MigrateFlags::AUTO_CONVERGE);
        let zero_copy = req.has(MigrateFlags::ZEROCOPY);
        let caps = [
            (CAP_EVENTS, true),
            (CAP_XBZRLE, compression.xbzrle),
            (CAP_COMPRESS, compression.mt),
            (CAP_AUTO_CONVERGE, auto_converge),
            (CAP_MULTIFD, channels.is_some()),
            (CAP_PAUSE_BEFORE_SWITCHOVER, storage),
            (CAP_ZERO_COPY_SEND, zero_copy),
            (CAP_POSTCOPY_RAM, req.has(MigrateFlags::POSTCOPY)),
        ];
        let mut params = MigrateSetParameters {
            max_postcopy_bandwidth: req
                .has(MigrateFlags::POSTCOPY)
                .then(|| postcopy_bandwidth(req, job)),
            ..migration_limits(job, req.bandwidth_mib_s)
        };
        let mut used = Vec::new();
        if compression.mt {
            let int = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
            params.compress_level = int(req.compression_mt_level);
            params.compress_threads = int(req.compression_mt_threads);
            used.push(("compression".to_owned(), "mt".to_owned()));
        }
        if compression.xbzrle {
            params.xbzrle_cache_size = req.compression_xbzrle_cache;
            if channels.is_some() {
                // libvirt 9.0 turns both on and QEMU accepts it, but QEMU
                // sends every page of a multifd migration as it is.
                warn!("xbzrle compression is not used by a parallel (multifd) migration");
            } else {
                used.push(("compression".to_owned(), "xbzrle".to_owned()));
            }
        }
        if let Some(n) = channels {
            params.multifd_channels = Some(n.into());
            used.push(("parallel-connections".to_owned(), n.to_string()));
        }
        if auto_converge {
            params.cpu_throttle_initial = req
                .auto_converge_initial
                .and_then(|v| u32::try_from(v).ok());
            params.cpu_throttle_increment = req
                .auto_converge_increment
                .and_then(|v| u32::try_from(v).ok());
            used.push(("auto-converge".to_owned(), "yes".to_owned()));
        }
        if req.has(MigrateFlags::TLS) {
            let host = req.tls_destination.as_deref().or(tls_host);
            self.driver
                .migration_tls()
                .enable(qmp, Endpoint::Client, host, &mut params)
                .await?;
        } else {
            // Never reuse credentials an earlier TLS migration of this
            // long-running QEMU set (libvirt's qemuMigrationParamsDisableTLS).
            tls::disable(&mut params);
        }
        set_capabilities(qmp, &caps)
            .await
            .map_err(|e| e.into_core("migration"))?;
        qmp.execute(&params)
            .await
            .map_err(|e| e.into_core("migration"))?;
        if zero_copy {
            // What QEMU reports, so an operator (and the tests) can see
            // zero-copy was really turned on.
            let set = qmp
                .execute(&QueryMigrateCapabilities)
                .await
                .map_err(|e| e.into_core("migration"))?;
            let on = set
                .iter()
                .any(|c| c.capability == CAP_ZERO_COPY_SEND && c.state);
            info!(dom = %job.domain().name, zero_copy_send = on, "outgoing migration: zero-copy send set up");
            used.push(("zero-copy".to_owned(), "yes".to_owned()));
        }
        if compression != Compression::default() {
            // The cache is the request's `compression.xbzrle.cache`, else
            // whatever MIGRATE_SET_COMPRESSION_CACHE (or QEMU) left; the
            // `mt` figures are the request's or QEMU's defaults.
            let set = qmp
                .execute(&QueryMigrateParameters)
                .await
                .map_err(|e| e.into_core("migration"))?;
            info!(
                dom = %job.domain().name,
                xbzrle = compression.xbzrle,
                mt = compression.mt,
                xbzrle_cache_size = ?set.xbzrle_cache_size,
                compress_level = ?set.compress_level,
                compress_threads = ?set.compress_threads,
                "outgoing migration: compression set up"
            );
        }
        Ok(PerformOut { capabilities: used })
    }

    /// After a TLS migration (on the source whatever its outcome, on the
    /// destination once it completed): the guest runs on in this QEMU, which
    /// must not keep the credentials.
    async fn reset_tls(&self, qmp: &Qmp, req: &MigrateRequest) {
        if req.has(MigrateFlags::TLS) {
            tls::reset(qmp).await;
        }
    }

    /// With ZEROCOPY: lets the guest's QEMU lock as much memory as the
    /// guest has ([`memlock::raise`], libvirt's `qemuDomainSetMaxMemLock`
    /// in `qemuMigrationSrcRun`); the old limit, if it changed, is returned
    /// for [`memlock::restore`].
    ///
    /// # Errors
    /// `VIR_ERR_SYSTEM_ERROR` when the limit cannot be raised.
    async fn raise_memlock(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
    ) -> Result<Option<memlock::Saved>> {
        if !req.has(MigrateFlags::ZEROCOPY) {
            return Ok(None);
        }
        let def = self.def_of(dom, flags::xml::SECURE).await?;
        let bytes = def.memory_kib.saturating_mul(1024);
        memlock::raise(self.driver.pid(dom)?, bytes).map_err(|e| e.into_core("migration"))
    }

    /// The storage copy `req` asks of Perform, if any: the disks to copy
    /// (chosen as at Begin) and the destination's NBD server (Prepare's
    /// cookie, or `disks_uri`), with TLS when the migration uses it.
    async fn storage_plan(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: &DataOut,
        tls_host: Option<&str>,
    ) -> Result<Option<StoragePlan>> {
        if !storage::requested(req) {
            return Ok(None);
        }
        let def = self.def_of(dom, flags::xml::SECURE).await?;
        storage::check_request(&def, req, Step::Perform)?;
        let targets: Vec<String> = storage::selected_disks(&def, req)
            .into_iter()
            .map(|d| d.target.dev.clone())
            .collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let DataOut::Direct { uri, nbd } = out else {
            // check_request refused TUNNELLED, the only way to a tunnel.
            return Err(Error::internal(
                "a storage migration needs a direct connection",
            ));
        };
        let mut to = MirrorTarget::new(nbd.as_ref(), req, &DataUri::parse(uri)?.host)?;
        if req.has(MigrateFlags::TLS) {
            let host = req
                .tls_destination
                .as_deref()
                .or(tls_host)
                .unwrap_or_default();
            to.tls = Some(MirrorTls {
                creds: tls::OBJECT_ID.to_owned(),
                hostname: host.to_owned(),
            });
        }
        Ok(Some(StoragePlan { targets, to }))
    }

    /// Perform with a storage copy: mirrors the disks until they are in
    /// sync, migrates the memory up to `pre-switchover` while watching the
    /// mirrors, ends the mirrors with the guest paused, then lets QEMU
    /// switch over. Every failure force-cancels the mirrors and removes
    /// their nodes; the source keeps its images.
    async fn send_with_storage(
        &self,
        qmp: &Qmp,
        events: &mut broadcast::Receiver<Event>,
        req: &MigrateRequest,
        job: &JobHandle,
        uri: String,
        plan: StoragePlan,
    ) -> Result<MigrationInfo> {
        let speed = job
            .max_bytes_per_sec()
            .or(req.bandwidth_mib_s.map(|m| m.saturating_mul(1 << 20)))
            .unwrap_or(0);
        let mode = MirrorMode::of(req, speed);
        let mirrors = Mirrors::start(qmp, &plan.targets, &plan.to, mode).await?;
        if let Err(e) = mirrors.wait_ready(job).await {
            mirrors.abort().await;
            return Err(e);
        }
        let paused = send_memory(qmp, events, job, uri, Some(&mirrors)).await;
        if let Err(e) = paused {
            mirrors.abort().await;
            return Err(e);
        }
        if let Err(e) = mirrors.complete(job).await {
            cancel_migration(qmp, events).await;
            return Err(e);
        }
        let go_on = qmp
            .execute(&MigrateContinue {
                state: MigrationStatus::PreSwitchover,
            })
            .await;
        if let Err(e) = go_on {
            cancel_migration(qmp, events).await;
            return Err(e.into_core("migration"));
        }
        let postcopy = job.postcopy() != Postcopy::Disabled;
        wait(qmp, events, job, true, false, postcopy).await
    }

    /// Begin of a post-copy recovery (POSTCOPY_RESUME): the guest must be
    /// the paused source of a post-copy migration whose stream broke; its
    /// definition goes to the destination as for any migration.
    async fn begin_resume(&self, dom: &DomainRef) -> Result<BeginOut> {
        self.driver
            .check_postcopy_resumable(dom, PostcopyEnd::Source)
            .await?;
        let def = self
            .def_of(dom, flags::xml::SECURE | flags::xml::MIGRATABLE)
            .await?;
        let persistent = self.persistent_def(dom).await?;
        Ok(BeginOut {
            def,
            persistent,
            active: true,
            // Paused by the failure, not by the user: the destination runs.
            paused: false,
            graphics: None,
            lockstate: None,
            nbd: None,
        })
    }

    /// Prepare of a post-copy recovery: the incoming guest of `def` must
    /// run here "post-copy failed" with QEMU in `postcopy-paused`; QEMU then
    /// listens for the source (`migrate-recover`) on a port of the range.
    async fn prepare_resume(
        &self,
        def: &DomainDef,
        incoming: Incoming,
        job: &JobHandle,
    ) -> Result<PrepareOut> {
        let Incoming::Direct {
            listen_address,
            port_range,
            ..
        } = incoming
        else {
            // Offline and tunnelled post-copy are refused before this.
            return Err(Error::internal(
                "a post-copy recovery needs a direct connection",
            ));
        };
        let dom = self.driver.lookup_by_uuid(&def.uuid).await?;
        self.driver
            .check_postcopy_resumable(&dom, PostcopyEnd::Destination)
            .await?;
        job.set_domain(dom.clone());
        let qmp = self.driver.qmp(&dom)?;
        let events = qmp.events();
        let port = listen_on_free_port(&qmp, &listen_address, &port_range, Listen::Recover).await?;
        info!(dom = %dom.name, port, "post-copy recovery: waiting for the source");
        watch_incoming(&qmp, job, false);
        self.incoming().insert(
            dom.uuid,
            IncomingRun {
                qmp,
                events,
                relay: None,
                nbd: false,
            },
        );
        Ok(PrepareOut {
            uri_out: Some(DataUri::format_libvirt(&listen_address, port)),
            capabilities: Vec::new(),
            nbd: None,
        })
    }

    /// Perform of a post-copy recovery: reconnects the paused source QEMU
    /// to the destination's `migrate-recover` listener (`migrate` with
    /// `resume: true`; capabilities cannot change mid-migration, only the
    /// post-copy bandwidth) and returns once pages flow again. The guest is
    /// then paused "post-copy" here; on failure it stays paused "post-copy
    /// failed", recoverable again.
    async fn perform_resume(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<PerformOut> {
        let DataOut::Direct { uri, .. } = out else {
            return Err(Error::internal(
                "a post-copy recovery needs a direct connection",
            ));
        };
        let data = DataUri::parse(&uri)?;
        let addr = data.socket_addr()?;
        self.check_tls(req, Endpoint::Client)?;
        self.driver
            .check_postcopy_resumable(dom, PostcopyEnd::Source)
            .await?;
        let qmp = self.driver.qmp(dom)?;
        // No cancel from here on: QEMU cannot cancel post-copy.
        job.enable_postcopy();
        job.set_postcopy_active();
        let mut events = qmp.events();
        let resumed = async {
            let mut params = MigrateSetParameters {
                max_postcopy_bandwidth: Some(postcopy_bandwidth(req, job)),
                ..MigrateSetParameters::default()
            };
            if req.has(MigrateFlags::TLS) {
                // The first Perform removed the credentials once it switched;
                // the destination keeps its own until the last page.
                let host = req.tls_destination.as_deref().unwrap_or(&data.host);
                self.driver
                    .migration_tls()
                    .enable(&qmp, Endpoint::Client, Some(host), &mut params)
                    .await?;
            }
            qmp.execute(&params)
                .await
                .map_err(|e| e.into_core("migration"))?;
            qmp.execute(&Migrate {
                uri: format!("tcp:{addr}"),
                resume: true,
            })
            .await
            .map_err(|e| e.into_core("migration"))?;
            wait_recovered(&qmp, &mut events, job).await
        }
        .await;
        match resumed {
            Ok(info) => {
                if info.status == Some(MigrationStatus::PostcopyActive) {
                    feed_postcopy_stats(&qmp, job);
                    self.driver.mark_postcopy(dom, PostcopyMark::SourceActive)?;
                }
                info!(dom = %dom.name, status = ?info.status, "post-copy migration recovered");
                Ok(PerformOut::default())
            }
            Err(err) => {
                warn!(dom = %dom.name, error = %err, "post-copy recovery failed: the source stays paused");
                self.driver.mark_postcopy(dom, PostcopyMark::SourceFailed)?;
                Err(err)
            }
        }
    }

    /// Whether the post-copy migration of source `dom` still reaches the
    /// destination (QEMU in `postcopy-active` or `postcopy-recover`) or has
    /// already completed, rather than waiting paused for a recovery. A QEMU
    /// that cannot be asked counts as paused.
    async fn postcopy_flows(&self, dom: &DomainRef) -> bool {
        let Ok(qmp) = self.driver.qmp(dom) else {
            return false;
        };
        qmp.execute(&QueryMigrate).await.is_ok_and(|info| {
            matches!(
                info.status,
                Some(
                    MigrationStatus::PostcopyActive
                        | MigrationStatus::PostcopyRecover
                        | MigrationStatus::Completed
                )
            )
        })
    }

    /// Confirm with `cancelled` of a live migration: the guest runs here
    /// again, unless it switched to post-copy. Then a Finish that failed
    /// while pages still flow (e.g. its daemon died after the switch) does
    /// not stop the destination QEMU, which receives the rest and runs the
    /// guest: as libvirt does, this QEMU stops once it has sent the last
    /// page, as after a successful Confirm, but the source's configuration
    /// stays. A broken stream leaves it paused "post-copy failed".
    async fn confirm_cancelled(&self, dom: &DomainRef) -> Result<()> {
        if !(self.driver.source_in_postcopy(dom).await? && self.postcopy_flows(dom).await) {
            return self.driver.resume_migration_source(dom).await;
        }
        warn!(dom = %dom.name, "finish failed, but the post-copy migration goes on: the source stops once it completes");
        self.finish_postcopy_source(dom).await?;
        self.driver.stop_migrated(dom).await
    }

    /// Recovery of a post-copy source whose destination may still pull
    /// pages from this QEMU: it stops (and with `undefine` goes) only once
    /// QEMU completes, or stays paused "post-copy failed", without holding
    /// up the daemon's start.
    fn stop_source_after_postcopy(&self, dom: DomainRef, undefine: bool) {
        let backend = Self::new(self.driver.clone());
        tokio::spawn(async move {
            if backend.finish_postcopy_source(&dom).await.is_err() {
                return;
            }
            if let Err(e) = backend.driver.stop_migrated(&dom).await {
                warn!(dom = %dom.name, error = %e, "could not stop the post-copy source");
            } else if undefine && backend.driver.lookup_by_uuid(&dom.uuid).await.is_ok() {
                if let Err(e) = backend.driver.undefine(&dom, 0).await {
                    warn!(dom = %dom.name, error = %e, "could not undefine the post-copy source");
                }
            }
        });
    }

    /// Confirm of a source in post-copy: the destination runs the guest and
    /// pulls the pages left here, so this QEMU may stop only once QEMU
    /// reports the migration completed. A broken stream leaves it paused
    /// "post-copy failed" (both QEMUs kept, for a recovery).
    ///
    /// # Errors
    /// The failure of the post-copy migration.
    async fn finish_postcopy_source(&self, dom: &DomainRef) -> Result<()> {
        let qmp = self.driver.qmp(dom)?;
        let mut events = qmp.events();
        match wait_for_completion(&qmp, &mut events).await {
            Ok(info) => {
                info!(
                    dom = %dom.name,
                    postcopy_requests = info.ram.unwrap_or_default().postcopy_requests,
                    "outgoing post-copy migration completed"
                );
                Ok(())
            }
            Err(e) => {
                self.driver.mark_postcopy(dom, PostcopyMark::SourceFailed)?;
                warn!(dom = %dom.name, error = %e, "post-copy migration failed: the source stays paused");
                Err(e.into_core("migration"))
            }
        }
    }

    /// Removes an incoming guest that did not become this host's. One that
    /// switched to post-copy is kept whatever happened: it is the only
    /// up-to-date copy (the source's memory is stale), marked running
    /// "post-copy failed" when its stream is no longer whole.
    async fn kill_incoming(&self, dom: &DomainRef) {
        // Dropping the run aborts its relay.
        drop(self.incoming().remove(&dom.uuid));
        if self.driver.incoming_in_postcopy(dom).await {
            warn!(dom = %dom.name, "incoming guest switched to post-copy: kept, not killed");
            return;
        }
        if let Err(e) = self.driver.destroy(dom, 0).await {
            debug!(dom = %dom.name, error = %e, "incoming guest already gone");
        }
    }

    async fn finish_live(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        persistent: Option<DomainDef>,
        job: &JobHandle,
    ) -> Result<DomainRef> {
        let run = self.incoming().remove(&dom.uuid).ok_or_else(|| {
            Error::invalid(format!("no incoming migration for domain {}", dom.name))
        })?;
        let IncomingRun {
            qmp,
            mut events,
            relay,
            nbd,
        } = run;
        let postcopy = req.has(MigrateFlags::POSTCOPY);
        let waited = wait(&qmp, &mut events, job, false, false, postcopy).await;
        if let Some(relay) = relay {
            match relay.await {
                Ok(Ok(bytes)) => debug!(bytes, "tunnel relay done"),
                Ok(Err(e)) if waited.is_ok() => {
                    debug!(error = %e, "tunnel relay ended with an error after completion")
                }
                Ok(Err(e)) => warn!(error = %e, "tunnel relay failed"),
                Err(e) => warn!(error = %e, "tunnel relay task failed"),
            }
        }
        let in_postcopy = waited?.status == Some(MigrationStatus::PostcopyActive);
        let resume = req.has(MigrateFlags::POSTCOPY_RESUME);
        if resume {
            // Recorded before the watch starts, which may record the
            // completion at once.
            let mark = if in_postcopy {
                PostcopyMark::DestinationResumed
            } else {
                PostcopyMark::DestinationCompleted
            };
            self.driver.mark_postcopy(dom, mark)?;
            info!(dom = %dom.name, in_postcopy, "incoming post-copy migration recovered");
        }
        if nbd {
            // Before the guest runs: nothing may write its disks but itself.
            storage::stop_nbd_server(&qmp).await;
        }
        if in_postcopy {
            // The pages still flow: the credentials go once they are all here.
            self.watch_postcopy_incoming(dom, req, &qmp, events);
        } else {
            self.reset_tls(&qmp, req).await;
        }
        if let Some(def) = persistent {
            let xml = def.format(&FormatOptions {
                secure: true,
                inactive: true,
                migratable: false,
            });
            self.driver.define_xml(&xml, 0).await?;
        }
        if resume {
            // The guest never stopped here: nothing to start.
            return self.driver.lookup_by_uuid(&dom.uuid).await;
        }
        self.driver
            .finish_incoming(dom, req.has(MigrateFlags::PAUSED), in_postcopy)
            .await
    }

    /// Destination of a post-copy migration whose guest runs while pages
    /// still arrive: once the last one is here the guest is running
    /// "migrated" and QEMU forgets the TLS credentials; a broken stream
    /// makes it running "post-copy failed" (the guest waits on every missing
    /// page until the migration is recovered). Ends with QEMU.
    fn watch_postcopy_incoming(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        qmp: &Qmp,
        mut events: broadcast::Receiver<Event>,
    ) {
        let driver = self.driver.clone();
        let (dom, qmp, tls) = (dom.clone(), qmp.clone(), req.has(MigrateFlags::TLS));
        tokio::spawn(async move {
            let mark = match wait_for_completion(&qmp, &mut events).await {
                Ok(_) => {
                    if tls {
                        tls::reset(&qmp).await;
                    }
                    info!(dom = %dom.name, "incoming post-copy migration completed");
                    PostcopyMark::DestinationCompleted
                }
                Err(crate::Error::QmpClosed { .. }) => return,
                Err(e) => {
                    warn!(dom = %dom.name, error = %e, "incoming post-copy migration failed");
                    PostcopyMark::DestinationFailed
                }
            };
            if let Err(e) = driver.mark_postcopy(&dom, mark) {
                debug!(dom = %dom.name, error = %e, "post-copy guest gone");
            }
        });
    }
}

/// The bandwidth and downtime limits of `job`'s migration as QEMU
/// parameters; `requested_mib_s` (the request's bandwidth) applies when the
/// job has none.
fn migration_limits(job: &JobHandle, requested_mib_s: Option<u64>) -> MigrateSetParameters {
    MigrateSetParameters {
        max_bandwidth: Some(
            job.max_bytes_per_sec()
                .or(requested_mib_s.map(|m| m.saturating_mul(1 << 20)))
                .unwrap_or(UNLIMITED_BANDWIDTH),
        ),
        downtime_limit: Some(
            job.max_downtime()
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        )
        .filter(|&ms| ms > 0),
        ..MigrateSetParameters::default()
    }
}

/// Waits for the migration on `qmp` to end (or, with `pre_switchover`, to
/// pause before its switch-over, or with `postcopy` to switch to post-copy,
/// answering the `postcopy-active` status); updates the job's statistics at
/// every RAM pass (reporting each outgoing pass, QEMU's `MIGRATION_PASS`, as
/// an iteration) and every [`STATS_REFRESH`] in between, hands the running
/// migration the limits MIGRATE_SET_MAX_SPEED and MIGRATE_SET_MAX_DOWNTIME
/// set meanwhile (libvirt applies them to QEMU at once), and cancels the
/// migration when the job is aborted. An outgoing migration started with
/// post-copy switches when the job asks (MIGRATE_START_POST_COPY).
async fn wait(
    qmp: &Qmp,
    events: &mut broadcast::Receiver<Event>,
    job: &JobHandle,
    outgoing: bool,
    pre_switchover: bool,
    postcopy: bool,
) -> Result<MigrationInfo> {
    let mut abort = job.abort_signal();
    let mut tuning = job.tuning_changes();
    // Once more at the start: a change between Perform's set-up and the
    // subscription must not be lost (setting the same limits is harmless).
    tuning.mark_changed();
    let mut tuning_open = true;
    let mut cancelled = false;
    let mut paused = false;
    let mut switching = false;
    let mut postcopy_speed = job.max_postcopy_bytes_per_sec();
    loop {
        if outgoing && postcopy {
            apply_postcopy_speed(qmp, job, &mut postcopy_speed).await;
        }
        // SUSPEND while the guest is being sent: stop the vCPUs now, as
        // libvirt does (the STOP is recorded as paused "migrating"); QEMU
        // then sends the rest and completes.
        if outgoing && !paused && job.pause_requested() {
            paused = true;
            qmp.execute(&Stop)
                .await
                .map_err(|e| e.into_core("virDomainSuspend"))?;
        }
        let info = qmp
            .execute(&QueryMigrate)
            .await
            .map_err(|e| e.into_core("migration"))?;
        if outgoing {
            feed_stats(job, &info);
        }
        match info.status {
            Some(MigrationStatus::PreSwitchover) if pre_switchover && !cancelled => {
                return Ok(info)
            }
            Some(MigrationStatus::PostcopyActive) if postcopy => {
                if outgoing {
                    // From here on the source's memory is stale.
                    job.set_postcopy_active();
                }
                return Ok(info);
            }
            Some(MigrationStatus::PostcopyPaused) => {
                return Err(failed(format!(
                    "post-copy migration failed: {}",
                    info.error_desc
                        .unwrap_or_else(|| "the migration stream broke".into())
                )))
            }
            Some(MigrationStatus::Completed) => {
                if outgoing {
                    // The last passes' events may still wait in the channel
                    // (QEMU sent them before this answer).
                    report_pending_passes(events, job);
                }
                return Ok(info);
            }
            Some(MigrationStatus::Failed) => {
                return Err(failed(
                    info.error_desc
                        .unwrap_or_else(|| "qemu reported failure".into()),
                ))
            }
            Some(MigrationStatus::Cancelled) => {
                return Err(Error::OperationAborted {
                    operation: if outgoing {
                        "migration out"
                    } else {
                        "migration in"
                    },
                })
            }
            _ => {}
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if outgoing && e.event == names::MIGRATION_PASS => report_pass(&e, job),
                Ok(e) if e.event == names::MIGRATION || e.event == names::MIGRATION_PASS => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(failed("qemu went away during the migration"))
                }
            },
            // Once the switch to post-copy is asked for, a cancel could
            // catch QEMU half-way (QEMU 7.2 cannot cancel post-copy).
            () = abort.aborted(), if !cancelled && !switching => {
                cancelled = true;
                if outgoing {
                    qmp.execute(&MigrateCancel).await.map_err(|e| e.into_core("migration"))?;
                } else {
                    return Err(Error::OperationAborted { operation: "migration in" });
                }
            }
            () = job.pause_wanted(), if outgoing && !paused => {}
            () = job.postcopy_wanted(), if outgoing && postcopy && !switching && !cancelled => {
                switching = true;
                match qmp.execute(&MigrateStartPostcopy).await {
                    Ok(_) => info!(dom = %job.domain().name, "switching to post-copy"),
                    Err(e) => warn!(dom = %job.domain().name, error = %e, "migrate-start-postcopy"),
                }
            }
            changed = tuning.changed(), if outgoing && tuning_open && !cancelled => match changed {
                Ok(()) => {
                    qmp.execute(&migration_limits(job, None))
                        .await
                        .map_err(|e| e.into_core("migration"))?;
                }
                // The job is gone: nobody can change its tuning any more.
                Err(_) => tuning_open = false,
            },
            // Passes are far apart on a slow link or a large guest:
            // GET_JOB_INFO meanwhile must not show the figures of the pass
            // before (libvirt asks QEMU at every call), and a new post-copy
            // speed is looked for in between too.
            () = tokio::time::sleep(STATS_REFRESH), if outgoing => {}
            reason = qmp.closed() => return Err(failed(format!("qemu monitor closed: {reason}"))),
        }
    }
}

/// Starts the outgoing migration to `uri` and waits for it to complete, or
/// with `mirrors` (a storage copy) to pause before its switch-over while
/// every mirror stays in sync; a mirror that fails cancels the migration.
async fn send_memory(
    qmp: &Qmp,
    events: &mut broadcast::Receiver<Event>,
    job: &JobHandle,
    uri: String,
    mirrors: Option<&Mirrors>,
) -> Result<MigrationInfo> {
    qmp.execute(&Migrate { uri, resume: false })
        .await
        .map_err(|e| e.into_core("migration"))?;
    let postcopy = job.postcopy() != Postcopy::Disabled;
    let Some(mirrors) = mirrors else {
        return wait(qmp, events, job, true, false, postcopy).await;
    };
    let failure = tokio::select! {
        waited = wait(qmp, events, job, true, true, postcopy) => return waited,
        failure = mirrors.watch(job) => failure,
    };
    cancel_migration(qmp, events).await;
    Err(failure)
}

/// Cancels the outgoing migration and waits (bounded) until QEMU has
/// stopped it, so the guest's resumption does not race QEMU's own.
async fn cancel_migration(qmp: &Qmp, events: &mut broadcast::Receiver<Event>) {
    if let Err(e) = qmp.execute(&MigrateCancel).await {
        warn!(error = %e, "migrate_cancel");
        return;
    }
    if tokio::time::timeout(CANCEL_TIMEOUT, wait_for_completion(qmp, events))
        .await
        .is_err()
    {
        warn!("the cancelled migration did not stop in time");
    }
}

/// What an incoming QEMU listens for ([`listen_on_free_port`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// A new migration (`migrate-incoming`).
    Incoming,
    /// The source of a broken post-copy migration reconnecting
    /// (`migrate-recover`).
    Recover,
}

/// Makes the incoming QEMU listen on `tcp:ADDR:PORT` for the first port of
/// `port_range` it can bind, and answers that port.
///
/// # Errors
/// `VIR_ERR_OPERATION_FAILED` naming QEMU's last refusal when no port of
/// the range is free.
async fn listen_on_free_port(
    qmp: &Qmp,
    listen_address: &str,
    port_range: &std::ops::RangeInclusive<u16>,
    what: Listen,
) -> Result<u16> {
    let host = if listen_address.contains(':') {
        format!("[{listen_address}]")
    } else {
        listen_address.to_owned()
    };
    let mut last = None;
    for port in port_range.clone() {
        let uri = format!("tcp:{host}:{port}");
        let listening = match what {
            Listen::Incoming => qmp.execute(&MigrateIncoming { uri }).await.map(drop),
            Listen::Recover => qmp.execute(&MigrateRecover { uri }).await.map(drop),
        };
        match listening {
            Ok(()) => return Ok(port),
            // Usually "address in use": try the next port.
            Err(e) => last = Some(e.chain()),
        }
    }
    Err(failed(format!(
        "no free port to listen on {listen_address} in {}-{}: {}",
        port_range.start(),
        port_range.end(),
        last.unwrap_or_default()
    )))
}

/// How long a recovered post-copy migration may take to leave
/// `postcopy-paused` (QEMU reports no failure to connect otherwise).
const RECOVER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Source of a post-copy recovery (`migrate` with `resume: true` issued):
/// waits until QEMU's migration runs again (`postcopy-active`, or already
/// `completed`). A stream that breaks again (`postcopy-recover`, then
/// `postcopy-paused`), a failed migration or no progress within
/// [`RECOVER_TIMEOUT`] fails.
async fn wait_recovered(
    qmp: &Qmp,
    events: &mut broadcast::Receiver<Event>,
    job: &JobHandle,
) -> Result<MigrationInfo> {
    let deadline = tokio::time::Instant::now() + RECOVER_TIMEOUT;
    let mut recovering = false;
    loop {
        let info = qmp
            .execute(&QueryMigrate)
            .await
            .map_err(|e| e.into_core("migration"))?;
        feed_stats(job, &info);
        match info.status {
            Some(MigrationStatus::PostcopyActive | MigrationStatus::Completed) => return Ok(info),
            Some(MigrationStatus::PostcopyRecover) => recovering = true,
            Some(MigrationStatus::PostcopyPaused) if recovering => {
                return Err(failed(format!(
                    "post-copy recovery failed: {}",
                    info.error_desc
                        .unwrap_or_else(|| "the migration stream broke again".into())
                )))
            }
            Some(MigrationStatus::Failed | MigrationStatus::Cancelled) => {
                return Err(failed(
                    info.error_desc
                        .unwrap_or_else(|| "qemu reported failure".into()),
                ))
            }
            _ => {}
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.event == names::MIGRATION => {
                    if e.data.get("status").and_then(|s| s.as_str()) == Some("postcopy-recover") {
                        recovering = true;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err(failed("qemu went away during the post-copy recovery"))
                }
            },
            () = tokio::time::sleep(STATS_REFRESH) => {}
            () = tokio::time::sleep_until(deadline) => {
                return Err(failed(format!(
                    "post-copy recovery did not start within {} s: {}",
                    RECOVER_TIMEOUT.as_secs(),
                    info.error_desc.unwrap_or_else(|| "no connection to the destination".into())
                )))
            }
        }
    }
}

/// Tells `job` whether the incoming stream flows, from the destination
/// QEMU's MIGRATION events: QEMU reads the stream itself and counts no bytes
/// the manager could see, so without this any transfer longer than the
/// prepare timeout would look like an abandoned Prepare and be killed. With
/// a storage copy (`nbd`) the disks arrive over NBD before any memory, with
/// no event at all: the stream counts as flowing from the start, and an
/// abandoned Prepare is then found only by its caller's connection closing,
/// as in libvirt. The watch ends with the migration, with QEMU, or with the
/// job.
fn watch_incoming(qmp: &Qmp, job: &JobHandle, nbd: bool) {
    let mut events = qmp.events();
    let job = job.clone();
    job.set_receiving(nbd);
    tokio::spawn(async move {
        let flow = async {
            loop {
                match events.recv().await {
                    Ok(e) if e.event == names::MIGRATION => {
                        let status = e
                            .data
                            .get("status")
                            .cloned()
                            .and_then(|s| serde_json::from_value::<MigrationStatus>(s).ok());
                        match status {
                            Some(
                                MigrationStatus::Completed
                                | MigrationStatus::Failed
                                | MigrationStatus::Cancelled,
                            ) => return,
                            // Only a connected source makes QEMU leave
                            // `setup`; an unconnected listener is not a flow.
                            Some(
                                MigrationStatus::Active
                                | MigrationStatus::Device
                                | MigrationStatus::PostcopyActive,
                            ) => job.set_receiving(true),
                            _ => {}
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        };
        tokio::select! {
            () = flow => {}
            () = job.ended() => {}
        }
        job.set_receiving(false);
    });
}

/// Turns on `multifd` with `channels` connections on an incoming QEMU and
/// logs what QEMU then reports, so an operator (and the tests) can see
/// parallel migration was really set up.
async fn incoming_multifd(qmp: &Qmp, dom: &DomainRef, channels: u8) -> Result<()> {
    let qemu = |e: crate::Error| e.into_core("migration");
    set_capabilities(qmp, &[(CAP_MULTIFD, true)])
        .await
        .map_err(qemu)?;
    qmp.execute(&MigrateSetParameters {
        multifd_channels: Some(channels.into()),
        ..MigrateSetParameters::default()
    })
    .await
    .map_err(qemu)?;
    let caps = qmp.execute(&QueryMigrateCapabilities).await.map_err(qemu)?;
    let params = qmp.execute(&QueryMigrateParameters).await.map_err(qemu)?;
    let multifd = caps.iter().any(|c| c.capability == CAP_MULTIFD && c.state);
    info!(
        dom = %dom.name,
        multifd,
        multifd_channels = ?params.multifd_channels,
        "incoming migration: parallel connections set up"
    );
    Ok(())
}

/// How often the statistics of a post-copy phase are refreshed.
const POSTCOPY_STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Source in post-copy: Perform has returned, but the pages still flow until
/// Confirm sees QEMU complete; keeps `job`'s statistics (`domjobinfo`, and
/// the completed job's: postcopy requests, bytes) current meanwhile. Ends
/// with the job, with the post-copy phase, or with QEMU.
fn feed_postcopy_stats(qmp: &Qmp, job: &JobHandle) {
    let (qmp, job) = (qmp.clone(), job.clone());
    tokio::spawn(async move {
        let mut speed = job.max_postcopy_bytes_per_sec();
        loop {
            tokio::select! {
                () = job.ended() => return,
                () = tokio::time::sleep(POSTCOPY_STATS_INTERVAL) => {}
            }
            apply_postcopy_speed(&qmp, &job, &mut speed).await;
            let Ok(info) = qmp.execute(&QueryMigrate).await else {
                return;
            };
            feed_stats(&job, &info);
            if !info.status.is_some_and(MigrationStatus::is_postcopy) {
                return;
            }
        }
    });
}

/// Source with post-copy: gives QEMU a post-copy speed set by
/// MIGRATE_SET_MAX_SPEED since `applied` (libvirt changes QEMU's
/// `max-postcopy-bandwidth` at once, also mid-migration).
async fn apply_postcopy_speed(qmp: &Qmp, job: &JobHandle, applied: &mut Option<u64>) {
    let wanted = job.max_postcopy_bytes_per_sec();
    if wanted == *applied {
        return;
    }
    *applied = wanted;
    let bytes = wanted.unwrap_or(0);
    let set = qmp
        .execute(&MigrateSetParameters {
            max_postcopy_bandwidth: Some(bytes),
            ..MigrateSetParameters::default()
        })
        .await;
    match set {
        Ok(_) => {
            info!(dom = %job.domain().name, max_postcopy_bandwidth = bytes, "post-copy bandwidth changed")
        }
        Err(e) => {
            warn!(dom = %job.domain().name, error = %e, "could not change the post-copy bandwidth")
        }
    }
}

/// A new pass over RAM (QEMU's `MIGRATION_PASS`): libvirt's MIGRATION_ITERATION.
fn report_pass(event: &Event, job: &JobHandle) {
    if let Some(pass) = event.data.get("pass").and_then(serde_json::Value::as_u64) {
        job.report_iteration(pass);
    }
}

/// Reports the `MIGRATION_PASS` events already received and not yet handled.
fn report_pending_passes(events: &mut broadcast::Receiver<Event>, job: &JobHandle) {
    loop {
        match events.try_recv() {
            Ok(e) if e.event == names::MIGRATION_PASS => report_pass(&e, job),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed) => {
                return
            }
        }
    }
}

fn feed_stats(job: &JobHandle, info: &MigrationInfo) {
    if info.ram.is_some() {
        job.update_stats(|s| crate::migration::fill_stats(s, info));
    }
}

async fn give_fd(qmp: &Qmp, fd: OwnedFd) -> Result<()> {
    qmp.execute_with_fd(
        &Getfd {
            fdname: TUNNEL_FD.into(),
        },
        fd.as_fd(),
    )
    .await
    .map_err(|e| e.into_core("migration"))?;
    Ok(())
}

/// Where SPICE clients should go, as `client_migrate_info`: from Prepare's
/// cookie (`graphics`, a wildcard or absent listen address replaced by the
/// destination's host name), overridden by the caller's `graphics_uri`
/// (`spice://host[:port][/][?tlsPort=N&tlsSubject=S]`), as libvirt's
/// `qemuMigrationSrcGraphicsRelocate`. `None` when there is nothing to tell
/// QEMU (no data, not SPICE, no port).
fn relocation(
    graphics_uri: Option<&str>,
    graphics: Option<&GraphicsRelocation>,
    dest_hostname: Option<&str>,
) -> std::result::Result<Option<ClientMigrateInfo>, String> {
    let mut kind = None;
    let mut host = None;
    let (mut port, mut tls_port, mut subject) = (-1_i64, -1_i64, None);
    if let Some(g) = graphics {
        kind = Some(g.kind.clone());
        host = g
            .listen
            .clone()
            .filter(|l| {
                !matches!(
                    l.trim_start_matches('[').trim_end_matches(']'),
                    "0.0.0.0" | "::" | ""
                )
            })
            .or_else(|| dest_hostname.map(str::to_owned));
        port = g.port.into();
        tls_port = g.tls_port.into();
        subject = g.tls_subject.clone();
    }
    if let Some(uri) = graphics_uri {
        let parsed = parse_graphics_uri(uri)?;
        kind = Some(parsed.scheme);
        if let Some(h) = parsed.host {
            host = Some(h);
        }
        if let Some(p) = parsed.port {
            port = p.into();
        }
        if let Some(p) = parsed.tls_port {
            tls_port = p;
        }
        if parsed.tls_subject.is_some() {
            subject = parsed.tls_subject;
        }
    }
    if kind.as_deref() != Some("spice") || (port <= 0 && tls_port <= 0) {
        return Ok(None);
    }
    let hostname = host.ok_or("no host name for the graphics clients")?;
    Ok(Some(ClientMigrateInfo {
        protocol: "spice".into(),
        hostname,
        port: Some(port).filter(|&p| p > 0),
        tls_port: Some(tls_port).filter(|&p| p > 0),
        cert_subject: subject,
    }))
}

/// A parsed `graphics_uri` migration parameter.
#[derive(Debug, Default, PartialEq, Eq)]
struct GraphicsUri {
    scheme: String,
    host: Option<String>,
    port: Option<u16>,
    tls_port: Option<i64>,
    tls_subject: Option<String>,
}

fn parse_graphics_uri(uri: &str) -> std::result::Result<GraphicsUri, String> {
    let bad = |why: &str| format!("invalid graphics_uri '{uri}': {why}");
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if !matches!(scheme, "spice" | "vnc") {
        return Err(bad("unknown graphics type"));
    }
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let mut out = GraphicsUri {
        scheme: scheme.to_owned(),
        host: Some(percent_decode(host)).filter(|h| !h.is_empty()),
        port: match port {
            None | Some("") => None,
            Some(p) => Some(p.parse().map_err(|_| bad("bad port"))?),
        },
        ..GraphicsUri::default()
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.eq_ignore_ascii_case("tlsPort") {
            out.tls_port = Some(v.parse().map_err(|_| bad("bad tlsPort"))?);
        } else if k.eq_ignore_ascii_case("tlsSubject") {
            out.tls_subject = Some(percent_decode(v));
        }
    }
    Ok(out)
}

/// `%XX` and `+` decoding of a URI component (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl MigrationBackend for QemuBackend {
    fn support(&self) -> &'static SupportTable {
        &SUPPORT
    }

    fn events(&self) -> Option<broadcast::Sender<DomainEvent>> {
        Some(self.driver.event_sender())
    }

    async fn begin(&self, dom: &DomainRef, req: &MigrateRequest) -> Result<BeginOut> {
        check_zerocopy(req)?;
        check_postcopy(req)?;
        if req.has(MigrateFlags::POSTCOPY_RESUME) {
            return self.begin_resume(dom).await;
        }
        self.check_tls(req, Endpoint::Client)?;
        // Refused here rather than once the destination runs.
        multifd_channels(req, Step::Begin)?;
        Compression::of(req, Step::Begin)?;
        let state = self.driver.get_state(dom, 0).await?;
        let active = state.state.is_active();
        // As libvirt's qemuMigrationSrcIsAllowed: internal snapshots and
        // their metadata would not follow the guest.
        check_no_snapshots(&self.driver, dom).await?;
        if !active {
            check_no_managed_save(&self.driver, dom).await?;
        }
        let def = if active {
            self.def_of(dom, flags::xml::SECURE | flags::xml::MIGRATABLE)
                .await?
        } else {
            self.def_of(dom, flags::xml::SECURE | flags::xml::INACTIVE)
                .await?
        };
        storage::check_request(&def, req, Step::Begin)?;
        let nbd = if active && !req.is_offline() {
            storage::begin_disks(&self.driver.qmp(dom)?, &def, req).await?
        } else {
            None
        };
        let persistent = self.persistent_def(dom).await?;
        Ok(BeginOut {
            def,
            persistent,
            active,
            paused: state.state == DomainState::Paused,
            // The destination's graphics go in Prepare's cookie, not ours
            // (libvirt's Begin cookie carries no graphics either).
            graphics: None,
            lockstate: None,
            nbd,
        })
    }

    async fn perform(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<PerformOut> {
        if req.has(MigrateFlags::POSTCOPY_RESUME) {
            return self.perform_resume(dom, req, out, job).await;
        }
        check_zerocopy(req)?;
        self.check_tls(req, Endpoint::Client)?;
        let qmp = self.driver.qmp(dom)?;
        let tls_host = match &out {
            DataOut::Direct { uri, .. } => Some(DataUri::parse(uri)?.host),
            DataOut::Tunnel(_) => None,
        };
        let plan = self
            .storage_plan(dom, req, &out, tls_host.as_deref())
            .await?;
        let tuned = async {
            let used = self
                .tune(&qmp, req, job, tls_host.as_deref(), plan.is_some())
                .await?;
            Ok::<_, Error>((used, self.raise_memlock(dom, req).await?))
        }
        .await;
        let (used, memlock) = match tuned {
            Ok(tuned) => tuned,
            Err(e) => {
                self.reset_tls(&qmp, req).await;
                return Err(e);
            }
        };
        let mut events = qmp.events();
        if req.has(MigrateFlags::POSTCOPY) {
            job.enable_postcopy();
        }
        self.driver.set_migrating(dom, true)?;
        let result = async {
            let (uri, relay) = match out {
                DataOut::Direct { uri, .. } => {
                    let addr = DataUri::parse(&uri)?.socket_addr()?;
                    (format!("tcp:{addr}"), None)
                }
                DataOut::Tunnel(writer) => {
                    let (theirs, relay) = relay::outgoing(writer)?;
                    give_fd(&qmp, theirs).await?;
                    (format!("fd:{TUNNEL_FD}"), Some(relay))
                }
            };
            // On an early return the relay is dropped, which aborts it.
            let waited = match plan {
                None => send_memory(&qmp, &mut events, job, uri, None).await,
                Some(plan) => {
                    self.send_with_storage(&qmp, &mut events, req, job, uri, plan)
                        .await
                }
            };
            if let Some(relay) = relay {
                match relay.await {
                    Ok(Ok(bytes)) => debug!(bytes, "tunnel relay done"),
                    Ok(Err(e)) if waited.is_ok() => {
                        return Err(failed(format!("tunnel relay failed: {e}")))
                    }
                    Ok(Err(e)) => {
                        debug!(error = %e, "tunnel relay failed after the migration failed")
                    }
                    Err(e) => return Err(failed(format!("tunnel relay task failed: {e}"))),
                }
            }
            waited
        }
        .await;
        self.reset_tls(&qmp, req).await;
        // Whatever the outcome QEMU sends no more: a source that runs on
        // gets its old limit back (one that stops no longer needs it).
        if let Some(saved) = memlock {
            memlock::restore(saved);
        }
        match result {
            Ok(info) if info.status == Some(MigrationStatus::PostcopyActive) => {
                feed_stats(job, &info);
                feed_postcopy_stats(&qmp, job);
                self.driver.mark_postcopy(dom, PostcopyMark::SourceActive)?;
                info!(
                    dom = %dom.name,
                    transferred = info.ram.unwrap_or_default().transferred,
                    "outgoing migration switched to post-copy; the destination pulls the rest"
                );
                Ok(used)
            }
            Ok(info) => {
                feed_stats(job, &info);
                let ram = info.ram.unwrap_or_default();
                info!(
                    dom = %dom.name,
                    transferred = ram.transferred,
                    multifd_bytes = ram.multifd_bytes,
                    iterations = ram.dirty_sync_count,
                    mt_pages = info.compression.map_or(0, |c| c.pages),
                    xbzrle_pages = info.xbzrle_cache.map_or(0, |x| x.pages),
                    zero_copy_missed = ram.dirty_sync_missed_zero_copy,
                    "outgoing migration completed"
                );
                Ok(used)
            }
            Err(err) => {
                // Unless it switched to post-copy: then it stays paused
                // ("post-copy failed"), never resumed.
                warn!(dom = %dom.name, error = %err, "perform failed; resuming the guest");
                if let Err(e) = self.driver.resume_migration_source(dom).await {
                    warn!(dom = %dom.name, error = %e, "could not resume the guest after a failed perform");
                }
                Err(err)
            }
        }
    }

    async fn confirm(&self, dom: &DomainRef, req: &MigrateRequest, cancelled: bool) -> Result<()> {
        let undefine = req.has(MigrateFlags::UNDEFINE_SOURCE);
        match (cancelled, req.is_offline()) {
            (true, true) => Ok(()),
            (true, false) => self.confirm_cancelled(dom).await,
            (false, true) if undefine => self.driver.undefine(dom, 0).await,
            (false, true) => Ok(()),
            (false, false) => {
                if self.driver.source_in_postcopy(dom).await? {
                    self.finish_postcopy_source(dom).await?;
                }
                self.driver.stop_migrated(dom).await?;
                if undefine && self.driver.lookup_by_uuid(&dom.uuid).await.is_ok() {
                    self.driver.undefine(dom, 0).await?;
                }
                Ok(())
            }
        }
    }

    async fn restore_running(&self, dom: &DomainRef) -> Result<()> {
        self.driver.restore_migration_source(dom).await
    }

    async fn prepare(
        &self,
        def: DomainDef,
        req: &MigrateRequest,
        incoming: Incoming,
        job: &JobHandle,
    ) -> Result<PrepareOut> {
        check_postcopy(req)?;
        if req.has(MigrateFlags::POSTCOPY_RESUME) {
            return self.prepare_resume(&def, incoming, job).await;
        }
        let channels = multifd_channels(req, Step::Prepare)?;
        let compression = Compression::of(req, Step::Prepare)?;
        if let Ok(existing) = self.driver.lookup_by_uuid(&def.uuid).await {
            if existing.is_active() {
                return Err(Error::invalid(format!(
                    "domain '{}' is already active",
                    existing.name
                )));
            }
        }
        if matches!(incoming, Incoming::Offline) {
            return Ok(PrepareOut::default());
        }
        // Before QEMU starts, so a refusal leaves nothing behind.
        self.check_tls(req, Endpoint::Server)?;
        storage::check_request(&def, req, Step::Prepare)?;
        let copied = match &incoming {
            Incoming::Direct { nbd: Some(nbd), .. }
                if storage::requested(req) && !nbd.disks.is_empty() =>
            {
                storage::check_destination_images(&def, nbd, req)?;
                Some(nbd.clone())
            }
            _ => None,
        };
        let tls_creds = req.has(MigrateFlags::TLS).then_some(tls::OBJECT_ID);
        let xml = def.format(&FormatOptions {
            secure: true,
            inactive: false,
            migratable: true,
        });
        let (dom, qmp) = self.driver.start_incoming(&xml).await?;
        job.set_domain(dom.clone());
        let prepared = async {
            enable_events(&qmp)
                .await
                .map_err(|e| e.into_core("migration"))?;
            // A fresh QEMU has no credentials set, so only TLS needs a call.
            if req.has(MigrateFlags::TLS) {
                let mut params = MigrateSetParameters::default();
                self.driver
                    .migration_tls()
                    .enable(&qmp, Endpoint::Server, None, &mut params)
                    .await?;
                qmp.execute(&params)
                    .await
                    .map_err(|e| e.into_core("migration"))?;
            }
            if let Some(n) = channels {
                // Before migrate-incoming, as libvirt: QEMU sizes its
                // receiving channels when it starts listening.
                incoming_multifd(&qmp, &dom, n).await?;
            }
            compression.set_up_incoming(&qmp, &dom, req).await?;
            if req.has(MigrateFlags::POSTCOPY) {
                // Both ends need it before the stream starts (libvirt sets
                // it on the destination too).
                set_capabilities(&qmp, &[(CAP_POSTCOPY_RAM, true)])
                    .await
                    .map_err(|e| e.into_core("migration"))?;
            }
            let events = qmp.events();
            match incoming {
                Incoming::Offline => Ok((None, events, None, None)),
                Incoming::Direct {
                    listen_address,
                    port_range,
                    ..
                } => {
                    let port =
                        listen_on_free_port(&qmp, &listen_address, &port_range, Listen::Incoming)
                            .await?;
                    let nbd = match &copied {
                        Some(nbd) => Some(
                            storage::start_nbd_server(
                                &qmp,
                                nbd,
                                req,
                                &listen_address,
                                port_range,
                                Some(port),
                                tls_creds,
                            )
                            .await?,
                        ),
                        None => None,
                    };
                    Ok((
                        Some(DataUri::format_libvirt(&listen_address, port)),
                        events,
                        None,
                        nbd,
                    ))
                }
                Incoming::Tunnel(reader) => {
                    // On an early return the relay is dropped, which aborts it.
                    let (theirs, relay) = relay::incoming(reader)?;
                    give_fd(&qmp, theirs).await?;
                    qmp.execute(&MigrateIncoming {
                        uri: format!("fd:{TUNNEL_FD}"),
                    })
                    .await
                    .map_err(|e| e.into_core("migration"))?;
                    Ok((None, events, Some(relay), None))
                }
            }
        }
        .await;
        match prepared {
            Ok((uri_out, events, relay, nbd)) => {
                watch_incoming(&qmp, job, nbd.is_some());
                self.incoming().insert(
                    dom.uuid,
                    IncomingRun {
                        qmp,
                        events,
                        relay,
                        nbd: nbd.is_some(),
                    },
                );
                Ok(PrepareOut {
                    uri_out,
                    capabilities: Vec::new(),
                    nbd,
                })
            }
            Err(e) => {
                self.kill_incoming(&dom).await;
                Err(e)
            }
        }
    }

    async fn finish(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        persistent: Option<DomainDef>,
        cancelled: bool,
        job: &JobHandle,
    ) -> Result<DomainRef> {
        if cancelled {
            if !req.is_offline() {
                self.kill_incoming(dom).await;
            }
            return Ok(dom.clone());
        }
        if req.is_offline() {
            let def = persistent
                .ok_or_else(|| failed("offline migration carried no persistent definition"))?;
            let xml = def.format(&FormatOptions {
                secure: true,
                inactive: true,
                migratable: false,
            });
            return self.driver.define_xml(&xml, 0).await;
        }
        match self.finish_live(dom, req, persistent, job).await {
            Ok(dom) => Ok(dom),
            Err(err) => {
                warn!(dom = %dom.name, error = %err, "finish failed; killing the incoming guest");
                self.kill_incoming(dom).await;
                Err(err)
            }
        }
    }

    async fn incoming_graphics(&self, dom: &DomainRef) -> Option<GraphicsRelocation> {
        let def = self.def_of(dom, flags::xml::SECURE).await.ok()?;
        // As libvirt: only a single VNC or SPICE display is relocated.
        let [g] = def.devices.graphics.as_slice() else {
            return None;
        };
        Some(GraphicsRelocation {
            kind: g.kind.as_str().to_owned(),
            port: g.port.unwrap_or(-1),
            tls_port: g.tls_port.unwrap_or(-1),
            listen: g
                .listen
                .clone()
                .or_else(|| g.listens.iter().find_map(|l| l.address.clone())),
            tls_subject: None,
        })
    }

    async fn relocate_graphics(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        graphics: Option<&GraphicsRelocation>,
        dest_hostname: Option<&str>,
    ) {
        if req.is_offline() {
            return;
        }
        let target = match relocation(req.graphics_uri.as_deref(), graphics, dest_hostname) {
            Ok(Some(target)) => target,
            Ok(None) => return,
            Err(reason) => {
                warn!(dom = %dom.name, %reason, "unable to provide data for graphics client relocation");
                return;
            }
        };
        // client_migrate_info is SPICE's; only a guest with a SPICE server has
        // clients to move.
        let has_spice = self.def_of(dom, flags::xml::SECURE).await.is_ok_and(|def| {
            def.devices
                .graphics
                .iter()
                .any(|g| g.kind == GraphicsType::Spice)
        });
        if !has_spice {
            return;
        }
        let result = match self.driver.qmp(dom) {
            Ok(qmp) => qmp
                .execute(&target)
                .await
                .map(|_| ())
                .map_err(|e| e.chain()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => info!(
                dom = %dom.name,
                hostname = %target.hostname,
                port = ?target.port,
                tls_port = ?target.tls_port,
                "graphics relocation: client_migrate_info accepted"
            ),
            Err(reason) => {
                warn!(dom = %dom.name, %reason, "unable to provide data for graphics client relocation")
            }
        }
    }

    async fn recover(&self, entry: &JournalEntry, action: RecoveryAction) -> Result<()> {
        let Ok(dom) = self.driver.lookup_by_uuid(&entry.uuid).await else {
            // Nothing of the guest is left here: nothing to undo.
            return Ok(());
        };
        let undefine = MigrateFlags(entry.flags).contains(MigrateFlags::UNDEFINE_SOURCE);
        match action {
            RecoveryAction::ResumeSource
                if dom.is_active() && self.driver.source_in_postcopy(&dom).await? =>
            {
                if self.postcopy_flows(&dom).await {
                    // A post-copy recovery interrupted after QEMU reconnected,
                    // or a cancelled Confirm after a Finish that failed while
                    // pages still flowed: the destination runs the guest and
                    // pulls the rest. No Finish succeeded, so the source's
                    // configuration stays (libvirt's unattended completion
                    // keeps it too).
                    self.stop_source_after_postcopy(dom, false);
                    return Ok(());
                }
                // Neither cancelled (QEMU cannot cancel post-copy) nor
                // resumed: its memory is stale. Paused "post-copy failed"
                // it waits for a recovery (a new job), which is all there
                // is left to do with this one.
                self.driver
                    .mark_postcopy(&dom, PostcopyMark::SourceFailed)?;
                warn!(dom = %dom.name, "post-copy source recovered paused: recover the migration (--postcopy-resume)");
                Ok(())
            }
            RecoveryAction::ResumeSource if dom.is_active() => {
                // A restart during Perform leaves QEMU still sending to a
                // destination whose job is gone; migrate_cancel is a no-op
                // when nothing is being sent.
                if let Ok(qmp) = self.driver.qmp(&dom) {
                    if let Err(e) = qmp.execute(&MigrateCancel).await {
                        warn!(dom = %dom.name, error = %e, "could not cancel QEMU's migration");
                    }
                    // A storage copy's mirrors and NBD nodes go too.
                    match Mirrors::leftover(&qmp).await {
                        Ok(Some(mirrors)) => mirrors.abort().await,
                        Ok(None) => {}
                        Err(e) => {
                            warn!(dom = %dom.name, error = %e, "could not look for storage mirrors")
                        }
                    }
                }
                self.driver.resume_migration_source(&dom).await
            }
            RecoveryAction::KillIncoming | RecoveryAction::KeepRunning
                if dom.is_active() && self.driver.incoming_in_postcopy(&dom).await =>
            {
                // The only up-to-date copy: kept, and watched again so its
                // state follows QEMU's (completed, or failed and recoverable).
                let qmp = self.driver.qmp(&dom)?;
                let req = MigrateRequest {
                    flags: MigrateFlags(entry.flags),
                    ..MigrateRequest::default()
                };
                self.watch_postcopy_incoming(&dom, &req, &qmp, qmp.events());
                Ok(())
            }
            RecoveryAction::ResumeSource | RecoveryAction::KeepRunning => Ok(()),
            RecoveryAction::KeepPausedUntilPeerOutcome => Ok(()),
            RecoveryAction::CompleteSourceCleanup
                if dom.is_active() && self.driver.source_in_postcopy(&dom).await? =>
            {
                self.stop_source_after_postcopy(dom, undefine);
                Ok(())
            }
            RecoveryAction::CompleteSourceCleanup => {
                if dom.is_active() {
                    self.driver.stop_migrated(&dom).await?;
                }
                if undefine && self.driver.lookup_by_uuid(&dom.uuid).await.is_ok() {
                    self.driver.undefine(&dom, 0).await?;
                }
                Ok(())
            }
            RecoveryAction::KillIncoming => {
                if dom.is_active() {
                    self.kill_incoming(&dom).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrated_core::error::ErrorCode;

    fn compressed(methods: &[&str]) -> MigrateRequest {
        MigrateRequest {
            flags: MigrateFlags::LIVE | MigrateFlags::COMPRESSED,
            compression: methods.iter().map(|&m| m.to_owned()).collect(),
            ..MigrateRequest::default()
        }
    }

    #[test]
    fn post_copy_refusals_are_libvirts() {
        let with = |flags: MigrateFlags| MigrateRequest {
            flags: flags | MigrateFlags::POSTCOPY,
            ..MigrateRequest::default()
        };
        check_postcopy(&with(MigrateFlags::LIVE)).expect("live post-copy");
        check_postcopy(&MigrateRequest::default()).expect("no post-copy");
        for (flags, words) in [
            (MigrateFlags::empty(), "non-live or paused"),
            (
                MigrateFlags::LIVE | MigrateFlags::PAUSED,
                "non-live or paused",
            ),
            (
                MigrateFlags::LIVE | MigrateFlags::PEER2PEER | MigrateFlags::TUNNELLED,
                "not supported with tunnelled migration",
            ),
        ] {
            let err = check_postcopy(&with(flags)).expect_err("refused");
            assert_eq!(
                err.code(),
                migrated_core::error::ErrorCode::ArgumentUnsupported
            );
            assert!(err
                .to_string()
                .starts_with("argument unsupported: post-copy"));
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn compression_methods_as_libvirt_resolves_them() {
        let of = |req: &MigrateRequest| Compression::of(req, Step::Begin);
        let none = MigrateRequest::default();
        assert_eq!(of(&none).expect("no compression"), Compression::default());
        let default = of(&compressed(&[])).expect("xbzrle");
        assert!(default.xbzrle && !default.mt);
        let both = of(&compressed(&["mt", "xbzrle"])).expect("both");
        assert!(both.xbzrle && both.mt);
        let mt = MigrateRequest {
            compression_mt_level: Some(9),
            compression_mt_threads: Some(4),
            compression_mt_dthreads: Some(2),
            ..compressed(&["mt"])
        };
        let only_mt = of(&mt).expect("mt");
        assert!(only_mt.mt && !only_mt.xbzrle);
        let refusals = [
            (
                MigrateRequest {
                    compression_mt_threads: Some(2),
                    ..compressed(&["xbzrle"])
                },
                ErrorCode::InvalidArg,
                "Turn multithread compression on to tune it",
            ),
            (
                MigrateRequest {
                    compression_xbzrle_cache: Some(1 << 20),
                    ..compressed(&[])
                },
                ErrorCode::InvalidArg,
                "Turn xbzrle compression on to tune it",
            ),
            (
                MigrateRequest {
                    compression_mt_dthreads: Some(0),
                    ..compressed(&["mt"])
                },
                ErrorCode::InvalidArg,
                "compression.mt.dthreads' must be 1-255",
            ),
            (
                MigrateRequest {
                    flags: MigrateFlags::LIVE | MigrateFlags::COMPRESSED | MigrateFlags::PARALLEL,
                    ..compressed(&["mt"])
                },
                ErrorCode::ArgumentUnsupported,
                "PARALLEL",
            ),
        ];
        for (req, code, words) in refusals {
            let err = of(&req).expect_err("refused");
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn zero_copy_needs_parallel_and_excludes_compression_and_tls() {
        let zc = |extra: MigrateFlags| MigrateRequest {
            flags: MigrateFlags::LIVE | MigrateFlags::ZEROCOPY | extra,
            ..MigrateRequest::default()
        };
        check_zerocopy(&zc(MigrateFlags::PARALLEL)).expect("parallel zero-copy");
        check_zerocopy(&MigrateRequest::default()).expect("no zero-copy");
        let err = check_zerocopy(&zc(MigrateFlags::empty())).expect_err("not parallel");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
        assert_eq!(
            err.to_string(),
            "Requested operation is not valid: zero-copy is only available for parallel migration"
        );
        for other in [MigrateFlags::COMPRESSED, MigrateFlags::TLS] {
            let err = check_zerocopy(&zc(MigrateFlags::PARALLEL | other)).expect_err("conflict");
            assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
            let msg = err.to_string();
            assert!(
                msg.contains("ZEROCOPY") && msg.contains(&other.to_string()),
                "{msg}"
            );
        }
    }

    fn spice(listen: Option<&str>) -> GraphicsRelocation {
        GraphicsRelocation {
            kind: "spice".into(),
            port: 5905,
            tls_port: -1,
            listen: listen.map(str::to_owned),
            tls_subject: None,
        }
    }

    #[test]
    fn relocation_from_the_cookie() {
        let info = relocation(None, Some(&spice(Some("192.0.2.7"))), Some("b"))
            .expect("ok")
            .expect("some");
        assert_eq!(
            info,
            ClientMigrateInfo {
                protocol: "spice".into(),
                hostname: "192.0.2.7".into(),
                port: Some(5905),
                tls_port: None,
                cert_subject: None,
            }
        );
        // A wildcard (or no) listen address: the destination's host name.
        for listen in [Some("0.0.0.0"), Some("::"), Some("[::]"), None] {
            let info = relocation(None, Some(&spice(listen)), Some("hostb"))
                .expect("ok")
                .expect("some");
            assert_eq!(info.hostname, "hostb", "{listen:?}");
        }
    }

    #[test]
    fn nothing_to_relocate() {
        let mut vnc = spice(Some("192.0.2.7"));
        vnc.kind = "vnc".into();
        assert_eq!(relocation(None, Some(&vnc), None), Ok(None));
        assert_eq!(relocation(None, None, None), Ok(None));
        let mut no_port = spice(Some("192.0.2.7"));
        no_port.port = 0;
        assert_eq!(relocation(None, Some(&no_port), None), Ok(None));
    }

    #[test]
    fn graphics_uri_overrides_the_cookie() {
        let info = relocation(
            Some("spice://[2001:db8::1]:6000/?tlsPort=6001&tlsSubject=C%3DXX,O=a+b"),
            Some(&spice(Some("192.0.2.7"))),
            None,
        )
        .expect("ok")
        .expect("some");
        assert_eq!(
            info,
            ClientMigrateInfo {
                protocol: "spice".into(),
                hostname: "2001:db8::1".into(),
                port: Some(6000),
                tls_port: Some(6001),
                cert_subject: Some("C=XX,O=a b".into()),
            }
        );
        // Host only: the cookie's ports stay.
        let info = relocation(Some("spice://gw.example"), Some(&spice(None)), None)
            .expect("ok")
            .expect("some");
        assert_eq!(
            (info.hostname.as_str(), info.port),
            ("gw.example", Some(5905))
        );
        for bad in [
            "nonsense",
            "rdp://h:1",
            "spice://h:port",
            "spice://h:1?tlsPort=x",
        ] {
            assert!(relocation(Some(bad), None, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%2Cb%zz%4"), "a,b%zz%4");
    }
}
