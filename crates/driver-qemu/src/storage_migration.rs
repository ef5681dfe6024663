//! Storage migration (`VIR_MIGRATE_NON_SHARED_DISK` / `NON_SHARED_INC`)
//! over NBD, the way libvirt 9.0 does it with `-blockdev` QEMUs
//! (`qemu_migration.c`):
//!
//! | step | what happens |
//! |---|---|
//! | Begin (source) | choose the disks ([`selected_disks`]) and list them with their sizes in the cookie's `<nbd>` |
//! | Prepare (destination) | check every listed disk's image exists ([`check_destination_images`]: no pre-creation, as libvirt without a storage pool), then once QEMU runs `nbd-server-start` on the listen address and a port of the migration range (or `disks_port` / `disks_uri`), and `block-export-add` each disk writable; the port goes back in the cookie |
//! | Perform (source) | per disk `blockdev-add` an NBD client node of the destination's export and `blockdev-mirror` into it (`sync` `full`, or `top` for NON_SHARED_INC; `copy-mode` `write-blocking` for NON_SHARED_SYNCHRONOUS_WRITES); wait until every mirror is `ready`, then migrate the memory with `pause-before-switchover`; at `pre-switchover` (guest paused) cancel the mirrors without `force` (they finish the copy), delete the nodes and let QEMU switch over. Any failure or abort: force-cancel the mirrors, delete the nodes, the guest runs on from its own images |
//! | Finish (destination) | `nbd-server-stop` before the guest resumes |
//!
//! Names follow libvirt's: the export and the mirror job are the disk's
//! alias (`drive-vdb`), the source's NBD node `migration-vdb-storage`.

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use migrated_core::cookie::{Nbd, NbdDisk};
use migrated_core::flags::MigrateFlags;
use migrated_core::job::JobHandle;
use migrated_core::migration::{MigrateRequest, Step};
use migrated_core::xml::{Disk, DiskDevice, DiskType, DomainDef};
use migrated_core::{Error, Result};
use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::qmp::commands::{
    BlockExportAddNbd, BlockJobCancel, BlockJobInfo, BlockdevAddNbd, BlockdevDel, BlockdevMirror,
    InetSocketAddress, JobDismiss, JobStatus, NbdServerStart, NbdServerStop, QueryBlockJobs,
    QueryNamedBlockNodes, SocketAddress, UnixSocketAddress,
};
use crate::qmp::message::names;
use crate::qmp::{Event, Qmp};

/// How often the job's disk figures are refreshed while mirrors run (QEMU
/// sends no event for progress).
const STATS_PERIOD: Duration = Duration::from_millis(500);

/// How long cancelled mirrors may take to conclude: a `ready` mirror of a
/// paused guest has little left to copy, a force-cancelled one nothing.
const CONCLUDE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether `req` asks for a storage migration.
pub fn requested(req: &MigrateRequest) -> bool {
    req.flags
        .intersects(MigrateFlags::NON_SHARED_DISK | MigrateFlags::NON_SHARED_INC)
}

/// The block node (and export, and mirror job) name of the disk `target`,
/// as the command line names it.
pub fn disk_node(target: &str) -> String {
    format!("drive-{target}")
}

/// The source's NBD client node for the disk `target`.
fn nbd_node(target: &str) -> String {
    format!("migration-{target}-storage")
}

fn unsupported(reason: impl Into<String>) -> Error {
    Error::OperationUnsupported {
        reason: reason.into(),
    }
}

fn failed(reason: impl Into<String>) -> Error {
    Error::OperationFailed {
        operation: "storage migration",
        reason: reason.into(),
    }
}

fn qemu(e: crate::Error) -> Error {
    e.into_core("storage migration")
}

/// The disks a storage migration copies: those `migrate_disks` names, or
/// else every disk with a source that is neither read-only nor shareable
/// (libvirt's `qemuMigrationAnyCopyDisk`).
pub fn selected_disks<'a>(def: &'a DomainDef, req: &MigrateRequest) -> Vec<&'a Disk> {
    def.devices
        .disks
        .iter()
        .filter(|d| {
            if req.migrate_disks.is_empty() {
                !d.shareable && !d.readonly && d.source.is_some()
            } else {
                req.migrate_disks.contains(&d.target.dev)
            }
        })
        .collect()
}

/// The checks libvirt's Begin and Prepare make of the storage parameters.
///
/// # Errors
/// - `OperationUnsupported` for a storage migration through a tunnel, and
///   for `migrate_disks` without a storage migration (libvirt's words);
/// - `InvalidArg` for a `migrate_disks` target the guest lacks, both
///   `disks_port` and `disks_uri`, a port outside 0-65535, or a bad URI;
/// - `OperationUnsupported` for a chosen disk that is read-only or empty.
pub fn check_request(def: &DomainDef, req: &MigrateRequest, step: Step) -> Result<()> {
    let invalid = |reason: String| Error::InvalidArg {
        operation: step.api_name(),
        reason,
    };
    if !requested(req) {
        if !req.migrate_disks.is_empty() {
            return Err(unsupported(
                "use of 'VIR_MIGRATE_PARAM_MIGRATE_DISKS' requires use of 'VIR_MIGRATE_NON_SHARED_DISK' or 'VIR_MIGRATE_NON_SHARED_INC' flag",
            ));
        }
        return Ok(());
    }
    if req.is_tunnelled() {
        return Err(unsupported(
            "migration of non-shared storage is not supported with tunnelled migration and this QEMU",
        ));
    }
    for target in &req.migrate_disks {
        if !def.devices.disks.iter().any(|d| &d.target.dev == target) {
            return Err(invalid(format!("disk target {target} not found")));
        }
    }
    if req.disks_uri.is_some() && req.disks_port.is_some_and(|p| p != 0) {
        return Err(invalid(
            "Both port and URI requested for disk migration while being mutually exclusive".into(),
        ));
    }
    if let Some(p) = req.disks_port {
        if u16::try_from(p).is_err() {
            return Err(invalid("nbd port must be in range 0-65535".into()));
        }
    }
    if let Some(uri) = &req.disks_uri {
        let parsed = DisksUri::parse(uri).map_err(invalid)?;
        if matches!(parsed, DisksUri::Unix { .. }) && req.has(MigrateFlags::TLS) {
            return Err(unsupported(
                "NBD migration with TLS is not supported over UNIX socket",
            ));
        }
    }
    for disk in selected_disks(def, req) {
        if disk.readonly || disk.source.is_none() || disk.device != DiskDevice::Disk {
            return Err(unsupported(format!(
                "Cannot migrate empty or read-only disk {}",
                disk.target.dev
            )));
        }
    }
    Ok(())
}

/// `disks_uri`: where the destination's NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DisksUri {
    /// `tcp://host[:port]`.
    Tcp { host: String, port: Option<u16> },
    /// `unix:///path`.
    Unix { path: String },
}

impl DisksUri {
    /// Parses `tcp://host[:port][/]` or `unix:///path`; the error is
    /// libvirt's reason.
    fn parse(uri: &str) -> std::result::Result<Self, String> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(format!("No URI scheme specified: {uri}"));
        };
        match scheme {
            "tcp" => {
                let authority = rest.split('/').next().unwrap_or_default();
                let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
                    let (h, after) = v6
                        .split_once(']')
                        .ok_or_else(|| format!("Unable to parse URI {uri}"))?;
                    (h, after.strip_prefix(':'))
                } else {
                    match authority.rsplit_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (authority, None),
                    }
                };
                if host.is_empty() {
                    return Err(format!(
                        "URI with tcp scheme did not provide a server part: {uri}"
                    ));
                }
                let port = match port {
                    None | Some("") => None,
                    Some(p) => Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("Unable to parse URI {uri}"))?,
                    )
                    .filter(|&p| p != 0),
                };
                Ok(DisksUri::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "unix" => {
                let path = rest.trim_start_matches(|c| c != '/');
                if path.is_empty() {
                    return Err("UNIX disks URI does not include path".into());
                }
                Ok(DisksUri::Unix {
                    path: path.to_owned(),
                })
            }
            other => Err(format!("Unsupported scheme in disks URI: {other}")),
        }
    }
}

/// Source, Begin: the cookie's `<nbd>` (the disks to copy and their sizes),
/// `None` when no disk is to be copied (the migration then moves memory
/// only, as libvirt's).
///
/// # Errors
/// QMP errors; `Internal` when QEMU lacks a disk's node.
pub async fn begin_disks(qmp: &Qmp, def: &DomainDef, req: &MigrateRequest) -> Result<Option<Nbd>> {
    let disks = selected_disks(def, req);
    if !requested(req) || disks.is_empty() {
        return Ok(None);
    }
    let nodes = qmp
        .execute(&QueryNamedBlockNodes { flat: true })
        .await
        .map_err(qemu)?;
    let disks = disks
        .into_iter()
        .map(|d| {
            let node = disk_node(&d.target.dev);
            let capacity = nodes
                .iter()
                .find(|n| n.node_name.as_deref() == Some(node.as_str()))
                .map(|n| n.image.virtual_size)
                .ok_or_else(|| {
                    Error::internal(format!("no block node {node} for disk {}", d.target.dev))
                })?;
            Ok(NbdDisk {
                target: d.target.dev.clone(),
                capacity,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some(Nbd { port: None, disks }))
}

/// Destination, before QEMU starts: every disk of `nbd` must be a disk of
/// `def` whose image exists. libvirt creates a missing image only as a
/// volume of the storage pool holding its directory; this daemon has no
/// storage pools, so it answers what libvirt answers when no pool does.
///
/// # Errors
/// `Internal` "unable to find disk by target"; for a missing image
/// `OperationUnsupported` (NON_SHARED_INC) or `NoStoragePool` naming the
/// directory; `Internal` for a missing block device.
pub fn check_destination_images(def: &DomainDef, nbd: &Nbd, req: &MigrateRequest) -> Result<()> {
    for wanted in &nbd.disks {
        let disk = def
            .devices
            .disks
            .iter()
            .find(|d| d.target.dev == wanted.target)
            .ok_or_else(|| {
                Error::internal(format!("unable to find disk by target: {}", wanted.target))
            })?;
        let Some(source) = &disk.source else { continue };
        let path = Path::new(&source.path);
        if path.exists() {
            continue;
        }
        if req.has(MigrateFlags::NON_SHARED_INC) {
            return Err(unsupported(
                "pre-creation of storage targets for incremental storage migration is not supported",
            ));
        }
        if disk.kind == DiskType::Block {
            return Err(Error::internal(
                "cannot precreate storage for disk type 'block'",
            ));
        }
        let dir = match source.path.rsplit_once('/') {
            Some((dir, _)) => dir,
            None => {
                return Err(Error::InvalidArg {
                    operation: Step::Prepare.api_name(),
                    reason: format!("malformed disk path: {}", source.path),
                })
            }
        };
        warn!(disk = %wanted.target, path = %source.path, "destination image of a storage migration is missing");
        return Err(Error::NoStoragePool {
            reason: format!("no storage pool with matching target path '{dir}'"),
        });
    }
    Ok(())
}

/// Destination: starts QEMU's NBD server for the disks of `nbd` and exports
/// each writable; returns Prepare's `<nbd>` (the port; `None` on a UNIX
/// socket). The server listens on `listen_address` with the first free
/// port of `port_range` other than `taken` (the migration's own), or where
/// `disks_port` / `disks_uri` say. `tls_creds`: the credentials object of a
/// TLS migration.
///
/// # Errors
/// `OperationFailed` when no port is free, QMP errors of the exports.
pub async fn start_nbd_server(
    qmp: &Qmp,
    nbd: &Nbd,
    req: &MigrateRequest,
    listen_address: &str,
    port_range: RangeInclusive<u16>,
    taken: Option<u16>,
    tls_creds: Option<&str>,
) -> Result<Nbd> {
    let tcp = |host: &str, ports| Listen::Tcp {
        host: host.to_owned(),
        ports,
    };
    let listen = match req.disks_uri.as_deref().map(DisksUri::parse) {
        Some(Err(reason)) => {
            return Err(Error::InvalidArg {
                operation: Step::Prepare.api_name(),
                reason,
            })
        }
        Some(Ok(DisksUri::Unix { path })) => Listen::Unix(path),
        Some(Ok(DisksUri::Tcp {
            host,
            port: Some(p),
        })) => tcp(&host, p..=p),
        Some(Ok(DisksUri::Tcp { host, port: None })) => tcp(&host, port_range),
        None => match req.disks_port.and_then(|p| u16::try_from(p).ok()) {
            Some(p) if p != 0 => tcp(listen_address, p..=p),
            _ => tcp(listen_address, port_range),
        },
    };
    let port = match listen {
        Listen::Unix(path) => {
            start_server(
                qmp,
                SocketAddress::Unix(UnixSocketAddress { path }),
                tls_creds,
            )
            .await?;
            None
        }
        Listen::Tcp { host, ports } => {
            let mut last = None;
            let mut bound = None;
            for port in ports.clone().filter(|&p| Some(p) != taken) {
                let addr = SocketAddress::Inet(InetSocketAddress {
                    host: host.clone(),
                    port: port.to_string(),
                });
                match start_server(qmp, addr, tls_creds).await {
                    Ok(()) => {
                        bound = Some(port);
                        break;
                    }
                    // Usually "address in use": try the next port.
                    Err(e) => last = Some(e.to_string()),
                }
            }
            let Some(port) = bound else {
                return Err(failed(format!(
                    "no free port for the NBD server on {host} in {}-{}: {}",
                    ports.start(),
                    ports.end(),
                    last.unwrap_or_default()
                )));
            };
            Some(port)
        }
    };
    for disk in &nbd.disks {
        let node = disk_node(&disk.target);
        let exported = qmp
            .execute(&BlockExportAddNbd {
                kind: "nbd",
                id: node.clone(),
                node_name: node.clone(),
                name: node,
                writable: true,
            })
            .await;
        if let Err(e) = exported {
            stop_nbd_server(qmp).await;
            return Err(qemu(e));
        }
    }
    info!(port = ?port, disks = nbd.disks.len(), "NBD server for the incoming storage migration started");
    Ok(Nbd {
        port,
        disks: Vec::new(),
    })
}

/// Where the destination's NBD server listens.
enum Listen {
    /// A UNIX socket (`disks_uri` `unix:///path`).
    Unix(String),
    /// TCP on `host`, at the first free port of `ports`.
    Tcp {
        host: String,
        ports: RangeInclusive<u16>,
    },
}

async fn start_server(qmp: &Qmp, addr: SocketAddress, tls_creds: Option<&str>) -> Result<()> {
    let cmd = NbdServerStart {
        addr: addr.into(),
        tls_creds: tls_creds.map(str::to_owned),
    };
    qmp.execute(&cmd).await.map_err(qemu)?;
    Ok(())
}

/// Destination, Finish (before the guest resumes) and failures: stops the
/// NBD server, closing its exports. Best effort, as libvirt's (a server
/// that was never started is no error).
pub async fn stop_nbd_server(qmp: &Qmp) {
    if let Err(e) = qmp.execute(&NbdServerStop).await {
        debug!(error = %e, "no NBD server to stop");
    }
}

/// The TLS of a mirror's NBD connection.
#[derive(Debug, Clone)]
pub struct MirrorTls {
    /// The `tls-creds-x509` object of the migration.
    pub creds: String,
    /// The host name the destination's certificate must carry.
    pub hostname: String,
}

/// Where the source's mirrors write: the destination's NBD server.
#[derive(Debug, Clone)]
pub struct MirrorTarget {
    /// The server's address.
    pub server: SocketAddress,
    /// With TLS: the credentials and the name to verify.
    pub tls: Option<MirrorTls>,
}

impl MirrorTarget {
    /// The destination's NBD server as Prepare announced it (`nbd`'s port
    /// at `data_host`, the migration URI's host), unless `disks_uri` names
    /// another.
    ///
    /// # Errors
    /// `Internal` when Prepare announced no NBD server ("NBD is not set
    /// up", libvirt's words), `InvalidArg` for a bad `disks_uri`.
    pub fn new(nbd: Option<&Nbd>, req: &MigrateRequest, data_host: &str) -> Result<Self> {
        let not_set_up =
            || Error::internal("migration of non-shared disks requested but NBD is not set up");
        let nbd = nbd.ok_or_else(not_set_up)?;
        let parsed = req
            .disks_uri
            .as_deref()
            .map(DisksUri::parse)
            .transpose()
            .map_err(|reason| Error::InvalidArg {
                operation: Step::Perform.api_name(),
                reason,
            })?;
        let server = match parsed {
            Some(DisksUri::Unix { path }) => SocketAddress::Unix(UnixSocketAddress { path }),
            Some(DisksUri::Tcp { host, port }) => SocketAddress::Inet(InetSocketAddress {
                host,
                port: port.or(nbd.port).ok_or_else(not_set_up)?.to_string(),
            }),
            None => SocketAddress::Inet(InetSocketAddress {
                host: data_host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: nbd.port.ok_or_else(not_set_up)?.to_string(),
            }),
        };
        Ok(Self { server, tls: None })
    }
}

/// How the mirrors of a storage migration copy, as libvirt's
/// `qemuMigrationSrcNBDStorageCopyBlockdev` asks QEMU to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorMode {
    /// Only the top image's own data (`sync` `top`, NON_SHARED_INC); else
    /// the whole backing chain (`full`).
    pub shallow: bool,
    /// Each guest write completes only once the destination has it too
    /// (`copy-mode` `write-blocking`, NON_SHARED_SYNCHRONOUS_WRITES), so a
    /// guest writing faster than the copy cannot keep the mirror from
    /// converging; else QEMU's `background` copy.
    pub write_blocking: bool,
    /// Bytes per second, 0 for unlimited.
    pub speed: u64,
}

impl MirrorMode {
    /// The mode `req` asks for, at `speed` bytes per second.
    pub fn of(req: &MigrateRequest, speed: u64) -> Self {
        Self {
            shallow: req.has(MigrateFlags::NON_SHARED_INC),
            write_blocking: req.has(MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES),
            speed,
        }
    }

    /// The `blockdev-mirror` of the disk `target` into its NBD node.
    fn mirror(self, target: &str) -> BlockdevMirror {
        BlockdevMirror {
            job_id: disk_node(target),
            device: disk_node(target),
            target: nbd_node(target),
            sync: if self.shallow { "top" } else { "full" },
            speed: self.speed,
            auto_dismiss: false,
            copy_mode: self.write_blocking.then_some("write-blocking"),
        }
    }
}

/// The source's running mirrors, one per copied disk. End them with
/// [`Mirrors::complete`] or [`Mirrors::abort`].
pub struct Mirrors {
    qmp: Qmp,
    targets: Vec<String>,
}

impl Mirrors {
    /// Starts a mirror of each disk `targets` names into the destination's
    /// export, copying as `mode` says. On failure what was started is
    /// removed again.
    ///
    /// # Errors
    /// QMP errors (e.g. the NBD connection refused).
    pub async fn start(
        qmp: &Qmp,
        targets: &[String],
        to: &MirrorTarget,
        mode: MirrorMode,
    ) -> Result<Self> {
        let mut mirrors = Self {
            qmp: qmp.clone(),
            targets: Vec::new(),
        };
        for target in targets {
            if let Err(e) = mirrors.start_one(target, to, mode).await {
                mirrors.abort().await;
                return Err(e);
            }
        }
        info!(
            disks = ?mirrors.targets,
            shallow = mode.shallow,
            write_blocking = mode.write_blocking,
            "storage migration mirrors started"
        );
        Ok(mirrors)
    }

    async fn start_one(&mut self, target: &str, to: &MirrorTarget, mode: MirrorMode) -> Result<()> {
        let node = nbd_node(target);
        self.qmp
            .execute(&BlockdevAddNbd {
                driver: "nbd",
                node_name: node.clone(),
                server: to.server.clone(),
                export: disk_node(target),
                tls_creds: to.tls.as_ref().map(|t| t.creds.clone()),
                tls_hostname: to.tls.as_ref().map(|t| t.hostname.clone()),
            })
            .await
            .map_err(qemu)?;
        let mirror = self.qmp.execute(&mode.mirror(target)).await;
        if let Err(e) = mirror {
            delete_node(&self.qmp, &node).await;
            return Err(qemu(e));
        }
        self.targets.push(target.to_owned());
        Ok(())
    }

    /// Our jobs as QEMU reports them, with the disk each copies; a job
    /// QEMU no longer lists is `None`.
    async fn jobs(&self) -> Result<Vec<(String, Option<BlockJobInfo>)>> {
        let all = self.qmp.execute(&QueryBlockJobs).await.map_err(qemu)?;
        Ok(self
            .targets
            .iter()
            .map(|t| {
                let id = disk_node(t);
                (t.clone(), all.iter().find(|j| j.device == id).cloned())
            })
            .collect())
    }

    /// The mirrors an interrupted Perform left in `qmp`'s QEMU (found by
    /// their NBD nodes), e.g. across a daemon restart; `None` when there
    /// are none.
    ///
    /// # Errors
    /// QMP errors.
    pub async fn leftover(qmp: &Qmp) -> Result<Option<Self>> {
        let nodes = qmp
            .execute(&QueryNamedBlockNodes { flat: true })
            .await
            .map_err(qemu)?;
        let targets: Vec<String> = nodes
            .iter()
            .filter_map(|n| {
                n.node_name
                    .as_deref()?
                    .strip_prefix("migration-")?
                    .strip_suffix("-storage")
                    .map(str::to_owned)
            })
            .collect();
        Ok((!targets.is_empty()).then(|| Self {
            qmp: qmp.clone(),
            targets,
        }))
    }

    /// Reads the jobs, feeds the job's disk figures and fails if one
    /// mirror stopped; `Ok(true)` once every mirror is in sync.
    async fn check(&self, job: &JobHandle) -> Result<bool> {
        let jobs = self.jobs().await?;
        let (total, done) = jobs
            .iter()
            .filter_map(|(_, j)| j.as_ref())
            .fold((0u64, 0u64), |(t, d), j| {
                (t.saturating_add(j.len), d.saturating_add(j.offset))
            });
        job.update_stats(|s| {
            s.disk_total = total;
            s.disk_processed = done;
            s.disk_remaining = total.saturating_sub(done);
        });
        let mut all_ready = true;
        for (target, info) in &jobs {
            match info {
                None => {
                    return Err(failed(format!(
                        "migration of disk {target} failed: the mirror job is gone"
                    )))
                }
                Some(j)
                    if matches!(
                        j.status,
                        JobStatus::Concluded | JobStatus::Aborting | JobStatus::Null
                    ) =>
                {
                    return Err(failed(match &j.error {
                        Some(e) => format!("migration of disk {target} failed: {e}"),
                        None => format!("migration of disk {target} failed"),
                    }))
                }
                Some(j) => all_ready &= j.ready,
            }
        }
        Ok(all_ready)
    }

    /// Waits until every mirror is in sync, feeding the job's disk figures.
    ///
    /// # Errors
    /// `OperationFailed` when a mirror fails (the destination went away…)
    /// or QEMU does; `OperationAborted` when the job is aborted.
    pub async fn wait_ready(&self, job: &JobHandle) -> Result<()> {
        let mut events = self.qmp.events();
        let mut abort = job.abort_signal();
        loop {
            if self.check(job).await? {
                info!(disks = ?self.targets, "storage migration mirrors are in sync");
                return Ok(());
            }
            tokio::select! {
                () = next_job_event(&mut events) => {}
                () = tokio::time::sleep(STATS_PERIOD) => {}
                () = abort.aborted() => return Err(Error::OperationAborted { operation: "migration out" }),
                reason = self.qmp.closed() => return Err(failed(format!("qemu monitor closed: {reason}"))),
            }
        }
    }

    /// Watches the mirrors while the memory migrates: completes with the
    /// error when one stops being in sync (it pends while all are), and
    /// keeps the job's disk figures current.
    pub async fn watch(&self, job: &JobHandle) -> Error {
        let mut events = self.qmp.events();
        loop {
            if let Err(e) = self.check(job).await {
                return e;
            }
            tokio::select! {
                () = next_job_event(&mut events) => {}
                () = tokio::time::sleep(STATS_PERIOD) => {}
            }
        }
    }

    /// With the guest paused (pre-switchover): cancels every mirror without
    /// `force`, so each copies what is left and concludes with source and
    /// destination identical, then removes the jobs and the NBD nodes.
    ///
    /// # Errors
    /// `OperationFailed` naming the disk whose mirror failed; the jobs and
    /// nodes are removed all the same.
    pub async fn complete(self, job: &JobHandle) -> Result<()> {
        match self.check(job).await {
            Ok(true) => {
                self.end(false).await?;
                job.update_stats(|s| {
                    s.disk_processed = s.disk_total;
                    s.disk_remaining = 0;
                });
                Ok(())
            }
            Ok(false) => {
                self.abort().await;
                Err(failed("a disk mirror lost its sync before the switch-over"))
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// After a failure or an abort: force-cancels every mirror (the
    /// destination's copy no longer matters) and removes the jobs and the
    /// NBD nodes. The source's images are untouched. Best effort.
    pub async fn abort(self) {
        if let Err(e) = self.end(true).await {
            warn!(error = %e, "cancelling the storage migration mirrors");
        }
    }

    /// Cancels every job still running, waits for all to conclude (bounded),
    /// dismisses them and deletes the NBD nodes; the first failure a
    /// non-forced end met is the result.
    async fn end(&self, force: bool) -> Result<()> {
        let mut first_error = None;
        let mut events = self.qmp.events();
        for target in &self.targets {
            let cancel = self
                .qmp
                .execute(&BlockJobCancel {
                    device: disk_node(target),
                    force,
                })
                .await;
            if let Err(e) = cancel {
                // Already concluded (or gone): nothing to cancel.
                debug!(disk = %target, error = %e, "block-job-cancel");
            }
        }
        let deadline = tokio::time::Instant::now() + CONCLUDE_TIMEOUT;
        let jobs = loop {
            let jobs = self.jobs().await?;
            let pending = jobs.iter().any(|(_, j)| {
                j.as_ref()
                    .is_some_and(|j| !matches!(j.status, JobStatus::Concluded | JobStatus::Null))
            });
            if !pending {
                break jobs;
            }
            if tokio::time::Instant::now() >= deadline {
                first_error.get_or_insert_with(|| {
                    failed(format!(
                        "disk mirrors did not end within {} s",
                        CONCLUDE_TIMEOUT.as_secs()
                    ))
                });
                break jobs;
            }
            tokio::select! {
                () = next_job_event(&mut events) => {}
                () = tokio::time::sleep(STATS_PERIOD) => {}
                reason = self.qmp.closed() => return Err(failed(format!("qemu monitor closed: {reason}"))),
            }
        };
        for (target, info) in jobs {
            let Some(info) = info else { continue };
            if let (false, Some(e)) = (force, &info.error) {
                first_error.get_or_insert_with(|| {
                    failed(format!("migration of disk {target} failed: {e}"))
                });
            }
            if info.status == JobStatus::Concluded {
                if let Err(e) = self.qmp.execute(&JobDismiss { id: info.device }).await {
                    warn!(disk = %target, error = %e, "job-dismiss");
                }
            }
        }
        for target in &self.targets {
            delete_node(&self.qmp, &nbd_node(target)).await;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

async fn delete_node(qmp: &Qmp, node: &str) {
    if let Err(e) = qmp
        .execute(&BlockdevDel {
            node_name: node.to_owned(),
        })
        .await
    {
        warn!(node, error = %e, "blockdev-del of a storage migration node");
    }
}

/// Completes at the next job status change (or when events were lost);
/// pends forever once QEMU's event channel closed (the monitor's closing is
/// watched separately).
async fn next_job_event(events: &mut broadcast::Receiver<Event>) {
    loop {
        match events.recv().await {
            Ok(e) if e.event == names::JOB_STATUS_CHANGE => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> DomainDef {
        DomainDef::parse(
            "<domain type='qemu'><name>d</name><uuid>00000000-0000-0000-0000-000000000001</uuid>
               <memory unit='MiB'>64</memory>
               <os><type arch='x86_64'>hvm</type></os>
               <devices>
                 <disk type='file' device='disk'><driver name='qemu' type='raw'/>
                   <source file='/img/a.raw'/><target dev='vda' bus='virtio'/></disk>
                 <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
                   <source file='/img/b.qcow2'/><target dev='vdb' bus='virtio'/></disk>
                 <disk type='file' device='disk'><driver name='qemu' type='raw'/>
                   <source file='/img/ro.raw'/><target dev='vdc' bus='virtio'/><readonly/></disk>
                 <disk type='file' device='disk'><driver name='qemu' type='raw'/>
                   <source file='/img/shared.raw'/><target dev='vdd' bus='virtio'/><shareable/></disk>
               </devices></domain>",
        )
        .expect("parses")
    }

    fn req(flags: MigrateFlags) -> MigrateRequest {
        MigrateRequest {
            flags: flags | MigrateFlags::LIVE,
            ..MigrateRequest::default()
        }
    }

    fn targets(def: &DomainDef, req: &MigrateRequest) -> Vec<String> {
        selected_disks(def, req)
            .iter()
            .map(|d| d.target.dev.clone())
            .collect()
    }

    #[test]
    fn synchronous_writes_make_write_blocking_mirrors() {
        let mode = MirrorMode::of(
            &req(MigrateFlags::NON_SHARED_INC | MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES),
            1 << 20,
        );
        assert_eq!(
            mode,
            MirrorMode {
                shallow: true,
                write_blocking: true,
                speed: 1 << 20,
            }
        );
        let mirror =
            |mode: MirrorMode| serde_json::to_value(mode.mirror("vdb")).expect("serializes");
        let blocking = mirror(mode);
        assert_eq!(
            (
                &blocking["copy-mode"],
                &blocking["sync"],
                &blocking["target"]
            ),
            (
                &serde_json::json!("write-blocking"),
                &serde_json::json!("top"),
                &serde_json::json!("migration-vdb-storage")
            )
        );
        let background = MirrorMode::of(&req(MigrateFlags::NON_SHARED_DISK), 0);
        assert!(!background.shallow && !background.write_blocking);
        assert!(
            mirror(background).get("copy-mode").is_none(),
            "QEMU's default copy mode is left to QEMU"
        );
    }

    #[test]
    fn default_selection_skips_read_only_and_shareable_disks() {
        let def = def();
        let mut r = req(MigrateFlags::NON_SHARED_DISK);
        assert_eq!(targets(&def, &r), ["vda", "vdb"]);
        r.migrate_disks = vec!["vdb".into()];
        assert_eq!(targets(&def, &r), ["vdb"]);
        check_request(&def, &r, Step::Begin).expect("fine");
    }

    #[test]
    fn requests_libvirt_refuses_are_refused_with_its_words() {
        let def = def();
        let code = |r: &MigrateRequest| {
            let e = check_request(&def, r, Step::Begin).expect_err("refused");
            (e.code() as i32, e.to_string())
        };
        let mut r = req(MigrateFlags::NON_SHARED_DISK | MigrateFlags::TUNNELLED);
        let (c, m) = code(&r);
        assert_eq!(c, 84);
        assert!(m.contains("not supported with tunnelled migration"), "{m}");

        r = req(MigrateFlags::empty());
        r.migrate_disks = vec!["vdb".into()];
        let (c, m) = code(&r);
        assert_eq!(c, 84);
        assert!(
            m.contains("'VIR_MIGRATE_PARAM_MIGRATE_DISKS' requires"),
            "{m}"
        );

        r = req(MigrateFlags::NON_SHARED_INC);
        r.migrate_disks = vec!["vdz".into()];
        assert_eq!(code(&r).0, 8);
        r.migrate_disks = vec!["vdc".into()];
        let (c, m) = code(&r);
        assert_eq!(c, 84);
        assert!(
            m.contains("Cannot migrate empty or read-only disk vdc"),
            "{m}"
        );

        r = req(MigrateFlags::NON_SHARED_DISK);
        r.disks_port = Some(70000);
        assert_eq!(code(&r).0, 8);
        r.disks_port = Some(49000);
        r.disks_uri = Some("tcp://127.0.0.1:49001".into());
        assert_eq!(code(&r).0, 8);
        r.disks_port = None;
        r.disks_uri = Some("udp://x".into());
        assert_eq!(code(&r).0, 8);
    }

    #[test]
    fn disks_uris_parse_as_libvirt_reads_them() {
        assert_eq!(
            DisksUri::parse("tcp://192.0.2.1:49300"),
            Ok(DisksUri::Tcp {
                host: "192.0.2.1".into(),
                port: Some(49300)
            })
        );
        assert_eq!(
            DisksUri::parse("tcp://[::1]/"),
            Ok(DisksUri::Tcp {
                host: "::1".into(),
                port: None
            })
        );
        assert_eq!(
            DisksUri::parse("unix:///run/nbd.sock"),
            Ok(DisksUri::Unix {
                path: "/run/nbd.sock".into()
            })
        );
        for bad in ["nothing", "tcp://:5000", "unix://", "ftp://h"] {
            assert!(DisksUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_destination_images_are_refused_as_libvirt_without_a_pool() {
        let dir = tempfile::tempdir().expect("tmp");
        let present = dir.path().join("b.qcow2");
        std::fs::write(&present, b"").expect("write");
        let xml = def()
            .format(&Default::default())
            .replace("/img/b.qcow2", present.to_str().expect("utf-8"));
        let def = DomainDef::parse(&xml).expect("parses");
        let nbd = |t: &str| Nbd {
            port: None,
            disks: vec![NbdDisk {
                target: t.into(),
                capacity: 1,
            }],
        };
        check_destination_images(&def, &nbd("vdb"), &req(MigrateFlags::NON_SHARED_DISK))
            .expect("present");
        let e = check_destination_images(&def, &nbd("vda"), &req(MigrateFlags::NON_SHARED_DISK))
            .expect_err("missing");
        assert_eq!((e.code() as i32, e.domain() as i32), (49, 18));
        assert_eq!(
            e.to_string(),
            "storage pool not found: no storage pool with matching target path '/img'"
        );
        let e = check_destination_images(&def, &nbd("vda"), &req(MigrateFlags::NON_SHARED_INC))
            .expect_err("missing");
        assert_eq!(e.code() as i32, 84);
        let e = check_destination_images(&def, &nbd("vdq"), &req(MigrateFlags::NON_SHARED_DISK))
            .expect_err("unknown");
        assert!(
            e.to_string().contains("unable to find disk by target: vdq"),
            "{e}"
        );
    }
}
