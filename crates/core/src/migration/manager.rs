//! [`Manager`]: one per daemon. It turns each migration step (one
//! [`MigrateRequest`] plus cookie bytes in, cookie bytes out) into checks,
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

use uuid::Uuid;

use crate::abi::check_abi_stability;
use crate::cookie::{feature, Capability, Cookie};
use crate::domain::{DomainRef, HostIdentity};
use crate::error::{Error, Result};
use crate::flags::MigrateFlags;
use crate::job::{
    DestinationEvent, DestinationPhase, JobHandle, JobOutcome, JobRegistry, JobStats, Journal,
    JournalEntry, Phase, RecoveryAction, SourceEvent, SourcePhase, TimeoutAction,
};
use crate::migration::backend::{
    BeginOut, DataOut, Incoming, MigrationBackend, TunnelReader, TunnelWriter,
};
use crate::migration::fault::PausePoint;
use crate::migration::request::{MigrateRequest, Role, Step};
use crate::migration::uri::DataUri;
use crate::xml::{DomainDef, FormatOptions};

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
}

impl ManagerConfig {
    /// Settings with the default port range and 127.0.0.1 as data address.
    pub fn new(state_dir: impl Into<PathBuf>, host: HostIdentity) -> Self {
        Self {
            state_dir: state_dir.into(),
            host,
            port_range: DEFAULT_PORT_RANGE,
            listen_address: "127.0.0.1".into(),
            pause_at: None,
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
    begin: BeginOut,
    dest_host: Option<HostIdentity>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The daemon's migration engine; see the module doc.
pub struct Manager {
    config: ManagerConfig,
    backend: Arc<dyn MigrationBackend>,
    registry: JobRegistry,
    journal: Journal,
    sources: Mutex<HashMap<Uuid, SourceContext>>,
    /// Destination: the definition each incoming guest was prepared with.
    incoming: Mutex<HashMap<Uuid, DomainDef>>,
    /// Recovered source jobs kept paused until someone knows the peer's outcome.
    held: Mutex<HashMap<Uuid, JournalEntry>>,
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
    /// [`Error::System`] if the journal directory cannot be created.
    pub fn new(config: ManagerConfig, backend: Arc<dyn MigrationBackend>) -> Result<Self> {
        let journal = Journal::open(&config.state_dir)?;
        Ok(Self {
            config,
            backend,
            registry: JobRegistry::new(),
            journal,
            sources: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
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
        let dom = job.domain();
        self.journal.record(&JournalEntry {
            job_id: job.job_id(),
            name: dom.name,
            uuid: dom.uuid,
            phase: phase.clone(),
            flags: flags.bits(),
            peer_host: peer,
        })
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

    /// Ends a job: completed statistics kept, journal entry and context dropped.
    fn end(&self, job: &JobHandle, outcome: JobOutcome) {
        let uuid = job.domain().uuid;
        lock(&self.sources).remove(&uuid);
        lock(&self.incoming).remove(&uuid);
        self.registry.finish(&uuid, outcome);
        if let Err(err) = self.journal.remove(&job.job_id()) {
            tracing::warn!(job_id = %job.job_id(), error = %err, "could not remove journal entry");
        }
    }

    async fn pause_point(&self, point: PausePoint) {
        if self.config.pause_at == Some(point) {
            crate::migration::fault::block_at(point).await;
        }
    }

    fn decode_cookie(&self, bytes: &[u8], local_role: Role) -> Result<Option<Cookie>> {
        let cookie = Cookie::decode(bytes)?;
        if let Some(c) = &cookie {
            c.check_not_same_host(&self.config.host, local_role)?;
        }
        Ok(cookie)
    }

    fn requested_capabilities(req: &MigrateRequest) -> Vec<Capability> {
        let mut caps = Vec::new();
        if req.has(MigrateFlags::COMPRESSED) {
            caps.push(Capability {
                name: "compression".into(),
                value: if req.compression.is_empty() {
                    "default".into()
                } else {
                    req.compression.join(",")
                },
            });
        }
        if req.has(MigrateFlags::AUTO_CONVERGE) {
            caps.push(Capability {
                name: "auto-converge".into(),
                value: "yes".into(),
            });
        }
        caps
    }

    /// Checks the request, reads the guest and (with CHANGE_PROTECTION) starts the
    /// job that locks it until Confirm.
    async fn begin_inner(
        &self,
        dom: &DomainRef,
        req: &mut MigrateRequest,
        keep_job: bool,
    ) -> Result<(BeginOut, Option<JobHandle>, Uuid)> {
        let support = self.backend.support();
        req.validate(Step::Begin, support)?;
        if self.registry.is_locked(&dom.uuid) {
            return Err(Error::invalid(format!(
                "another migration job is already active for domain {}",
                dom.name
            )));
        }
        let begin = self.backend.begin(dom, req).await?;
        req.apply_defaults(support, begin.active);
        req.validate(Step::Begin, support)?;
        req.check_guest_state(begin.active)?;
        let forced = self.backend.forced_flags().difference(req.flags);
        if let Some(name) = forced.names().first() {
            return Err(Error::ArgumentUnsupported {
                what: format!("a migration without flag {name}"),
                driver: support.driver,
            });
        }
        if begin.paused {
            req.flags |= MigrateFlags::PAUSED;
        }
        let job_id = Uuid::new_v4();
        let job = if keep_job {
            let job = self.registry.start(
                job_id,
                dom,
                Phase::Source(SourcePhase::Begin3 {
                    offline: req.is_offline(),
                }),
            )?;
            if let Err(err) = self.persist(&job, req.flags, None, &job.phase()) {
                self.registry
                    .finish(&dom.uuid, JobOutcome::Failed(err.to_string()));
                return Err(err);
            }
            Some(job)
        } else {
            None
        };
        Ok((begin, job, job_id))
    }

    /// The definition the destination runs: the caller's `destination_xml` after
    /// the ABI check, or the source's migratable definition.
    fn destination_def(begin: &BeginOut, req: &MigrateRequest) -> Result<DomainDef> {
        match &req.dest_xml {
            None => Ok(begin.def.clone()),
            Some(xml) => {
                let dst = DomainDef::parse(xml)?;
                check_abi_stability(&begin.def, &dst).map_err(|m| Error::ConfigUnsupported {
                    reason: format!("destination XML refused: {m}"),
                })?;
                Ok(dst)
            }
        }
    }

    /// Source, Begin3: checks the request (flags, params, contradictions, guest
    /// state, `destination_xml` ABI), and answers the definition and cookie.
    ///
    /// # Errors
    /// The request checks' errors ([`MigrateRequest::validate`]), `NoDomain`,
    /// `OperationInvalid` when another job owns the guest, `ConfigUnsupported`
    /// naming a guest-visible change in `destination_xml`, `XmlError`.
    pub async fn begin3(&self, dom: &DomainRef, mut req: MigrateRequest) -> Result<Begin3Out> {
        let protect = req.has(MigrateFlags::CHANGE_PROTECTION);
        let (begin, job, job_id) = self.begin_inner(dom, &mut req, protect).await?;
        let result = (|| -> Result<Begin3Out> {
            let def = Self::destination_def(&begin, &req)?;
            let xml = def.format(&FormatOptions {
                secure: true,
                inactive: false,
                migratable: true,
            });
            let mut cookie = Cookie::new(&dom.name, dom.uuid, job_id);
            cookie.source = Some(self.config.host.clone());
            cookie.graphics = begin.graphics.clone();
            cookie.lockstate = begin.lockstate.clone();
            cookie.capabilities = Self::requested_capabilities(&req);
            Ok(Begin3Out {
                cookie: cookie.encode()?,
                xml,
            })
        })();
        match (&result, job) {
            (Ok(_), Some(job)) => {
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                tracing::info!(job_id = %job.job_id(), dom = %dom.name, "migration job begun");
            }
            (Err(err), Some(job)) => self.end(&job, JobOutcome::Failed(err.to_string())),
            (_, None) => {}
        }
        result
    }

    /// Destination, Prepare3 (and PrepareTunnel3 with `tunnel`, Prepare2 with an
    /// empty cookie): creates the incoming guest and answers where to send data.
    ///
    /// # Errors
    /// Request checks, cookie errors (size, garbage, same host), `InvalidArg`
    /// without a definition, `OperationInvalid` when a job already owns the
    /// guest, and the backend's errors (e.g. `DomainExists`). Nothing is left
    /// behind on error.
    pub async fn prepare3(
        &self,
        req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelReader>,
    ) -> Result<Prepare3Out> {
        let support = self.backend.support();
        req.validate(Step::Prepare, support)?;
        let cookie = self.decode_cookie(cookie_in, Role::Destination)?;
        let xml = req.dest_xml.as_deref().ok_or_else(|| Error::InvalidArg {
            operation: Step::Prepare.api_name(),
            reason: "no domain XML for the incoming guest".into(),
        })?;
        let mut def = DomainDef::parse(xml)?;
        if let Some(c) = &cookie {
            if c.uuid != def.uuid {
                return Err(Error::MigrateCookie {
                    reason: format!(
                        "cookie is for guest {} but the definition is for {}",
                        c.uuid, def.uuid
                    ),
                });
            }
        }
        let source_name = def.name.clone();
        if let Some(dname) = &req.dname {
            def.name = dname.clone();
        }
        let incoming = match (req.is_offline(), tunnel, req.is_tunnelled()) {
            (true, _, _) => Incoming::Offline,
            (false, Some(reader), _) => Incoming::Tunnel(reader),
            (false, None, true) => {
                return Err(Error::InvalidArg {
                    operation: Step::Prepare.api_name(),
                    reason: "a tunnelled migration must use PREPARE_TUNNEL3".into(),
                })
            }
            (false, None, false) => self.direct_incoming(&req)?,
        };
        let job_id = cookie.as_ref().map_or_else(Uuid::new_v4, |c| c.job_id);
        let peer = cookie
            .as_ref()
            .and_then(|c| c.source.as_ref())
            .map(|h| h.uuid);
        let dom = DomainRef {
            name: def.name.clone(),
            uuid: def.uuid,
            id: DomainRef::INACTIVE_ID,
        };
        let job = self.registry.start(
            job_id,
            &dom,
            Phase::Destination(DestinationPhase::Prepare3 {
                offline: req.is_offline(),
            }),
        )?;
        if let Err(err) = self.persist(&job, req.flags, peer, &job.phase()) {
            self.registry
                .finish(&dom.uuid, JobOutcome::Failed(err.to_string()));
            return Err(err);
        }
        lock(&self.incoming).insert(dom.uuid, def.clone());
        match self.backend.prepare(def, &req, incoming, &job).await {
            Ok(mut out) => {
                out.uri_out = out.uri_out.map(|u| self.reachable_uri(u));
                let mut reply = Cookie::new(source_name, dom.uuid, job_id);
                reply.source = cookie.and_then(|c| c.source);
                reply.destination = Some(self.config.host.clone());
                reply.capabilities = out
                    .capabilities
                    .into_iter()
                    .map(|(name, value)| Capability { name, value })
                    .collect();
                match reply.encode() {
                    Ok(bytes) => {
                        tracing::info!(job_id = %job_id, dom = %dom.name, uri_out = ?out.uri_out, "incoming migration prepared");
                        Ok(Prepare3Out {
                            cookie: bytes,
                            uri_out: out.uri_out,
                        })
                    }
                    Err(err) => {
                        self.cancel_incoming(&job, &req).await;
                        Err(err)
                    }
                }
            }
            Err(err) => {
                self.end(&job, JobOutcome::Failed(err.to_string()));
                Err(err)
            }
        }
    }

    /// Kills a prepared incoming guest after a local failure.
    async fn cancel_incoming(&self, job: &JobHandle, req: &MigrateRequest) {
        let dom = job.domain();
        if let Err(err) = self.destination_step(
            job,
            req.flags,
            None,
            DestinationEvent::FinishStarted { cancelled: true },
        ) {
            tracing::warn!(job_id = %job.job_id(), error = %err, "recording the cancelled incoming job");
        }
        if let Err(err) = self.backend.finish(&dom, req, None, true, job).await {
            tracing::warn!(job_id = %job.job_id(), error = %err, "cleaning up incoming guest failed");
        }
        self.end(job, JobOutcome::Cancelled);
    }

    /// A listener bound to a wildcard address is announced under this host's
    /// name, as libvirt's Prepare does (`tcp:<hostname>:<port>`).
    fn reachable_uri(&self, uri: String) -> String {
        match DataUri::parse(&uri) {
            Ok(DataUri {
                host,
                port: Some(port),
            }) if host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified()) =>
            {
                DataUri::format_libvirt(&self.config.host.hostname, port)
            }
            _ => uri,
        }
    }

    fn direct_incoming(&self, req: &MigrateRequest) -> Result<Incoming> {
        let mut listen_address = req
            .listen_address
            .clone()
            .unwrap_or_else(|| self.config.listen_address.clone());
        let mut port_range = self.config.port_range.clone();
        if let Some(uri) = &req.uri {
            let parsed = DataUri::parse(uri)?;
            if req.listen_address.is_none() {
                listen_address = parsed.host;
            }
            if let Some(port) = parsed.port {
                port_range = port..=port;
            }
        }
        Ok(Incoming::Direct {
            listen_address,
            port_range,
        })
    }

    /// Source, Perform3: sends the guest. On success it stays paused here
    /// until Confirm; on failure it runs here again and the job ends.
    ///
    /// # Errors
    /// Request/cookie checks, `InvalidArg` without a data URI, `OperationInvalid`
    /// in the wrong phase, the backend's data-plane errors, `OperationAborted`.
    pub async fn perform3(
        &self,
        dom: &DomainRef,
        mut req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelWriter>,
    ) -> Result<Vec<u8>> {
        let job = match self.registry.get(&dom.uuid) {
            Some(job) => job,
            None => {
                // No change protection: Begin left no job, so this step starts it.
                let (begin, job, _) = self.begin_inner(dom, &mut req, true).await?;
                let job = job.ok_or_else(|| Error::internal("perform started no job"))?;
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                job
            }
        };
        if job.role() != Role::Source {
            return Err(Error::invalid(format!(
                "domain {} has an incoming migration job, not an outgoing one",
                dom.name
            )));
        }
        let flags = req.flags;
        let result = self.perform_job(&job, dom, req, cookie_in, tunnel).await;
        if let Err(err) = &result {
            // No Confirm follows a failed Perform (libvirt-wire.md §8.6): a job
            // that never started sending ends here, or the guest stays locked.
            if matches!(job.phase(), Phase::Source(SourcePhase::Begin3 { .. })) {
                if let Err(e) = self.source_step(
                    &job,
                    flags,
                    None,
                    SourceEvent::Confirmed { cancelled: true },
                ) {
                    tracing::warn!(error = %e, "recording the refused perform");
                }
                self.end(&job, JobOutcome::Failed(err.to_string()));
            }
        }
        result
    }

    async fn perform_job(
        &self,
        job: &JobHandle,
        dom: &DomainRef,
        mut req: MigrateRequest,
        cookie_in: &[u8],
        tunnel: Option<TunnelWriter>,
    ) -> Result<Vec<u8>> {
        let job = job.clone();
        let cookie = self.decode_cookie(cookie_in, Role::Source)?;
        req.validate(Step::Perform, self.backend.support())?;
        if let Some(c) = &cookie {
            if c.job_id != job.job_id() {
                tracing::warn!(cookie_job = %c.job_id, job_id = %job.job_id(), "cookie names another job id");
            }
        }
        let dest_host = cookie.as_ref().and_then(|c| c.destination.clone());
        let peer = dest_host.as_ref().map(|h| h.uuid);
        let context = lock(&self.sources).get(&dom.uuid).cloned();
        let Some(mut context) = context else {
            return Err(Error::invalid(format!(
                "no migration context for domain {}",
                dom.name
            )));
        };
        context.dest_host = dest_host;
        // The caller's flags for this step get the same driver defaults Begin applied.
        req.apply_defaults(self.backend.support(), context.begin.active);
        // Build the reply's fixed part now: a cookie that cannot be sent must fail
        // before the guest is paused, not after.
        let mut reply = Cookie::new(&dom.name, dom.uuid, job.job_id());
        reply.source = Some(self.config.host.clone());
        reply.destination = context.dest_host.clone();
        if req.has(MigrateFlags::PERSIST_DEST) {
            reply.persistent = Some(self.persistent_xml(&context.begin, &req)?);
            reply.require(feature::PERSISTENT);
        }
        let mut probe = reply.clone();
        probe.statistics = JobStats::default()
            .to_cookie_pairs()
            .into_iter()
            .map(|(k, _)| (k, u64::MAX))
            .collect();
        probe.encode()?;

        let out = match (tunnel, req.uri.clone()) {
            (Some(w), _) => DataOut::Tunnel(w),
            (None, Some(uri)) => DataOut::Direct { uri },
            (None, None) => {
                return Err(Error::InvalidArg {
                    operation: Step::Perform.api_name(),
                    reason: "no migration URI (Prepare answered none and the caller gave none)"
                        .into(),
                })
            }
        };
        self.source_step(&job, req.flags, peer, SourceEvent::PerformStarted)?;
        lock(&self.sources).insert(dom.uuid, context);
        if let Some(bw) = req.bandwidth_mib_s {
            job.set_max_speed_mib_s(bw);
        }
        let result = self.run_perform(dom, &req, out, &job).await;
        match result {
            Ok(perform) => {
                self.source_step(&job, req.flags, peer, SourceEvent::PerformSucceeded)?;
                self.pause_point(PausePoint::PerformDone).await;
                reply.capabilities = perform
                    .capabilities
                    .into_iter()
                    .map(|(name, value)| Capability { name, value })
                    .collect();
                reply.statistics = job.stats().to_cookie_pairs();
                reply.require(feature::STATISTICS);
                reply.encode()
            }
            Err(err) => {
                let outcome = if job.is_aborted() {
                    JobOutcome::Cancelled
                } else {
                    JobOutcome::Failed(err.to_string())
                };
                if let Err(j) = self.source_step(&job, req.flags, peer, SourceEvent::PerformFailed)
                {
                    tracing::warn!(error = %j, "recording the failed perform");
                }
                self.end(&job, outcome);
                Err(err)
            }
        }
    }

    /// Runs the backend's perform under the job's completion timeout.
    async fn run_perform(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<crate::migration::backend::PerformOut> {
        let perform = self.backend.perform(dom, req, out, job);
        let Some((timeout, action)) = job.tuning().completion_timeout else {
            return perform.await;
        };
        tokio::pin!(perform);
        tokio::select! {
            r = &mut perform => return r,
            () = tokio::time::sleep(timeout) => {}
        }
        tracing::warn!(job_id = %job.job_id(), ?action, "migration completion timeout");
        match action {
            TimeoutAction::Abort => job.abort(),
            TimeoutAction::Pause => job.request_pause(),
        }
        perform.await
    }

    fn persistent_xml(&self, begin: &BeginOut, req: &MigrateRequest) -> Result<String> {
        let def = match &req.persist_xml {
            Some(xml) => {
                let def = DomainDef::parse(xml)?;
                check_abi_stability(&begin.def, &def).map_err(|m| Error::ConfigUnsupported {
                    reason: format!("persistent XML refused: {m}"),
                })?;
                def
            }
            None => begin
                .persistent
                .clone()
                .unwrap_or_else(|| begin.def.clone()),
        };
        Ok(def.format(&FormatOptions {
            secure: true,
            inactive: true,
            migratable: true,
        }))
    }

    /// v2/v1 Perform (no Begin, no Confirm): Perform3, then the source is
    /// confirmed (stopped) right away on success, as libvirt's v2 does.
    ///
    /// # Errors
    /// As [`Manager::perform3`].
    pub async fn perform2(
        &self,
        dom: &DomainRef,
        req: MigrateRequest,
        cookie_in: &[u8],
    ) -> Result<()> {
        self.perform3(dom, req.clone(), cookie_in, None).await?;
        self.confirm3(dom, req, &[], false).await
    }

    /// Destination, Finish3 (and Finish2): `cancelled` = false → verify the data,
    /// define the persistent config (PERSIST_DEST), start the guest (unless
    /// PAUSED); true → kill the incoming guest and answer
    /// [`Error::MigrateFinishOk`] as stock libvirt does.
    ///
    /// `dname` is the guest's name on this host (the client fills in the source
    /// name when the user gave none).
    ///
    /// # Errors
    /// `OperationInvalid` without a prepared job (Finish3 without Prepare3),
    /// cookie errors, the backend's errors (checksum mismatch…); the incoming
    /// guest is gone after any error.
    pub async fn finish3(
        &self,
        dname: &str,
        req: MigrateRequest,
        cookie_in: &[u8],
        cancelled: bool,
    ) -> Result<Finish3Out> {
        let cookie = self.decode_cookie(cookie_in, Role::Destination);
        let job = match &cookie {
            Ok(Some(c)) => self.registry.get(&c.uuid),
            Ok(None) | Err(_) => self.registry.find_destination_by_name(dname),
        }
        .filter(|j| j.role() == Role::Destination)
        .ok_or_else(|| {
            Error::invalid(format!(
                "no incoming migration job is active for domain {dname}"
            ))
        })?;
        let cookie = match cookie {
            Ok(c) => c,
            Err(err) => {
                // The source resumes after a failed Finish, so the incoming copy
                // must go now, not linger paused and locked.
                self.cancel_incoming(&job, &req).await;
                return Err(err);
            }
        };
        let peer = cookie
            .as_ref()
            .and_then(|c| c.source.as_ref())
            .map(|h| h.uuid);
        let dom = job.domain();
        self.destination_step(
            &job,
            req.flags,
            peer,
            DestinationEvent::FinishStarted { cancelled },
        )?;
        if cancelled {
            if let Err(err) = self.backend.finish(&dom, &req, None, true, &job).await {
                tracing::warn!(job_id = %job.job_id(), error = %err, "cleaning up incoming guest failed");
            }
            self.end(&job, JobOutcome::Cancelled);
            return Err(Error::MigrateFinishOk);
        }
        let result = async {
            let persistent = if req.has(MigrateFlags::PERSIST_DEST) {
                let xml = req
                    .persist_xml
                    .clone()
                    .or_else(|| cookie.as_ref().and_then(|c| c.persistent.clone()))
                    .or_else(|| req.dest_xml.clone());
                let def = match xml {
                    Some(xml) => Some(DomainDef::parse(&xml)?),
                    // Offline without a persistent definition in the cookie or
                    // params: the one Prepare received is the config.
                    None => lock(&self.incoming).get(&dom.uuid).cloned(),
                };
                def.map(|mut def| {
                    def.name = dom.name.clone();
                    def
                })
            } else {
                None
            };
            if let Some(c) = &cookie {
                job.update_stats(|s| s.merge_cookie_pairs(&c.statistics));
            }
            self.backend
                .finish(&dom, &req, persistent, false, &job)
                .await
        }
        .await;
        match result {
            Ok(running) => {
                job.set_domain(running.clone());
                self.destination_step(&job, req.flags, peer, DestinationEvent::FinishSucceeded)?;
                let mut reply = Cookie::new(
                    cookie.as_ref().map_or(dname, |c| c.name.as_str()),
                    dom.uuid,
                    job.job_id(),
                );
                reply.destination = Some(self.config.host.clone());
                reply.statistics = job.stats().to_cookie_pairs();
                reply.require(feature::STATISTICS);
                self.end(&job, JobOutcome::Completed);
                tracing::info!(job_id = %job.job_id(), dom = %running.name, "incoming migration finished");
                Ok(Finish3Out {
                    dom: running,
                    cookie: reply.encode()?,
                })
            }
            Err(err) => {
                if let Err(j) =
                    self.destination_step(&job, req.flags, peer, DestinationEvent::FinishFailed)
                {
                    tracing::warn!(error = %j, "recording the failed finish");
                }
                self.end(&job, JobOutcome::Failed(err.to_string()));
                Err(err)
            }
        }
    }

    /// Source, Confirm3: `cancelled` = false → stop the guest here (undefine with
    /// UNDEFINE_SOURCE); true → resume it here. Ends the job.
    ///
    /// # Errors
    /// `OperationInvalid` without a source job in a phase that allows it (e.g.
    /// Confirm3 twice), cookie errors, the backend's errors.
    pub async fn confirm3(
        &self,
        dom: &DomainRef,
        req: MigrateRequest,
        cookie_in: &[u8],
        cancelled: bool,
    ) -> Result<()> {
        // Confirm's cookie only carries statistics while `cancelled` decides the
        // guest's fate: a bad cookie is reported, but the guest is still settled
        // (refusing would leave it paused and locked on this host).
        let (cookie, cookie_err) = match self.decode_cookie(cookie_in, Role::Source) {
            Ok(c) => (c, None),
            Err(e) => (None, Some(e)),
        };
        let mut req = req;
        let job = match self.registry.get(&dom.uuid) {
            // Offline without change protection: no Perform started a job, so
            // Confirm does (as Perform does for live migrations).
            None if req.is_offline() => {
                let (begin, job, _) = self.begin_inner(dom, &mut req, true).await?;
                let job = job.ok_or_else(|| Error::internal("confirm started no job"))?;
                lock(&self.sources).insert(
                    dom.uuid,
                    SourceContext {
                        begin,
                        dest_host: None,
                    },
                );
                job
            }
            _ => self.registry.expect(&dom.uuid, &dom.name, Role::Source)?,
        };
        if let Some(c) = &cookie {
            job.update_stats(|s| s.merge_cookie_pairs(&c.statistics));
        }
        let peer = cookie
            .as_ref()
            .and_then(|c| c.destination.as_ref())
            .map(|h| h.uuid);
        self.source_step(&job, req.flags, peer, SourceEvent::Confirmed { cancelled })?;
        lock(&self.held).remove(&dom.uuid);
        let result = self.backend.confirm(dom, &req, cancelled).await;
        let outcome = match (&result, cancelled) {
            (Ok(()), false) => JobOutcome::Completed,
            (Ok(()), true) => JobOutcome::Cancelled,
            (Err(err), _) => JobOutcome::Failed(err.to_string()),
        };
        self.end(&job, outcome);
        result?;
        cookie_err.map_or(Ok(()), Err)
    }

    /// ABORT_JOB: a running transfer fails (the source resumes); a job still in
    /// Begin3 simply ends.
    ///
    /// # Errors
    /// `OperationInvalid` without an active job, or once the source has paused
    /// for the final phase (only Confirm decides then).
    pub fn abort_job(&self, dom: &DomainRef) -> Result<()> {
        let job = self
            .registry
            .get(&dom.uuid)
            .ok_or_else(|| Error::invalid(format!("no job is active on domain {}", dom.name)))?;
        match job.phase() {
            Phase::Source(SourcePhase::Begin3 { .. }) => {
                let flags = MigrateFlags::empty();
                self.source_step(
                    &job,
                    flags,
                    None,
                    SourceEvent::Confirmed { cancelled: true },
                )?;
                self.end(&job, JobOutcome::Cancelled);
                Ok(())
            }
            Phase::Source(SourcePhase::Perform3) | Phase::Destination(_) => {
                job.abort();
                Ok(())
            }
            other => Err(Error::invalid(format!(
                "migration of domain {} cannot be aborted in phase {}",
                dom.name,
                other.name()
            ))),
        }
    }

    /// Start-up: applies [`crate::job::recover`] to every journalled job.
    /// Source jobs kept paused stay registered (the guest stays locked) until
    /// [`Manager::resolve`].
    ///
    /// # Errors
    /// [`Error::System`] if the journal cannot be listed; a failing recovery
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

    /// Settles a source job waiting in Perform3Done — one recovered after a
    /// restart, or one whose client went away before Confirm: `peer_runs_guest`
    /// = true → the destination has the guest, stop it here; false → resume it here.
    ///
    /// # Errors
    /// `OperationInvalid` when the guest has no source job in Perform3Done; the
    /// backend's errors.
    pub async fn resolve(&self, dom: &DomainRef, peer_runs_guest: bool) -> Result<()> {
        let job = self.registry.expect(&dom.uuid, &dom.name, Role::Source)?;
        if job.phase() != Phase::Source(SourcePhase::Perform3Done) {
            return Err(Error::invalid(format!(
                "migration of domain {} is in phase {}, not waiting for the peer's outcome",
                dom.name,
                job.phase().name()
            )));
        }
        // A recovered job, or a live one whose client vanished after Perform:
        // the journal has its flags and peer either way.
        let held = lock(&self.held).get(&dom.uuid).cloned();
        let entry = match held {
            Some(entry) => entry,
            None => self.journal.get(&job.job_id())?.ok_or_else(|| {
                Error::internal(format!("no journal entry for job {}", job.job_id()))
            })?,
        };
        let cancelled = !peer_runs_guest;
        let flags = MigrateFlags(entry.flags);
        self.source_step(
            &job,
            flags,
            entry.peer_host,
            SourceEvent::Confirmed { cancelled },
        )?;
        lock(&self.held).remove(&dom.uuid);
        let action = if cancelled {
            RecoveryAction::ResumeSource
        } else {
            RecoveryAction::CompleteSourceCleanup
        };
        let result = self.backend.recover(&entry, action).await;
        self.end(
            &job,
            if cancelled {
                JobOutcome::Cancelled
            } else {
                JobOutcome::Completed
            },
        );
        result
    }
}
