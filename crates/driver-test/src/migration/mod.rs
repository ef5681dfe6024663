//! The test driver's migration data plane: [`TestBackend`] implements
//! [`MigrationBackend`] over a [`TestDriver`], streaming guest memory in the
//! format of the `stream` module over loopback TCP (direct) or the daemon tunnel.
//!
//! The guest's lifecycle during migration (states, reasons, events) is the
//! driver's `incoming_*` / `outgoing_*` transitions; this module decides when.

mod digest;
mod fault;
mod receive;
mod send;
mod stream;
mod throttle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use migrated_core::cookie::GraphicsRelocation;
use migrated_core::domain::{DomainEvent, DomainRef, DomainState};
use migrated_core::driver::Driver;
use migrated_core::flags::{self, MigrateFlags};
use migrated_core::job::{JobHandle, JournalEntry, RecoveryAction};
use migrated_core::migration::{
    check_no_managed_save, check_no_snapshots, BeginOut, DataOut, DataUri, Incoming,
    MigrateRequest, MigrationBackend, PerformOut, PrepareOut,
};
use migrated_core::support::SupportTable;
use migrated_core::xml::{DomainDef, FormatOptions};
use migrated_core::{Error, Result};
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub use fault::{FaultPoint, FAULT_ELEMENT};
pub use send::MAX_ITERATIONS;

use stream::{failed, DeviceState, FrameWriter};

/// How long Perform waits for the destination's listener to accept.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An incoming transfer between Prepare and Finish.
struct IncomingTransfer {
    task: JoinHandle<Result<DeviceState>>,
}

/// The test driver's [`MigrationBackend`].
pub struct TestBackend {
    driver: TestDriver,
    incoming: Mutex<HashMap<Uuid, IncomingTransfer>>,
    fired: fault::Fired,
}

impl std::fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBackend")
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

use crate::TestDriver;

impl TestBackend {
    /// A backend migrating `driver`'s guests.
    pub fn new(driver: TestDriver) -> Self {
        Self {
            driver,
            incoming: Mutex::new(HashMap::new()),
            fired: fault::Fired::default(),
        }
    }

    /// The driver.
    pub fn driver(&self) -> &TestDriver {
        &self.driver
    }

    fn incoming(&self) -> MutexGuard<'_, HashMap<Uuid, IncomingTransfer>> {
        self.incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `point` is configured for `def` and fires now.
    fn fault(&self, def: &DomainDef, want: &str) -> Option<FaultPoint> {
        let point = fault::configured(def)?;
        let matches = matches!(
            (point, want),
            (FaultPoint::Prepare, "prepare")
                | (FaultPoint::Perform { .. }, "perform")
                | (FaultPoint::Finish, "finish")
        );
        (matches && self.fired.arm(def.uuid, point)).then_some(point)
    }

    async fn live_def(&self, dom: &DomainRef) -> Result<DomainDef> {
        let xml = self
            .driver
            .get_xml_desc(dom, flags::xml::SECURE | flags::xml::MIGRATABLE)
            .await?;
        Ok(DomainDef::parse(&xml)?)
    }

    async fn send<W: AsyncWrite + Unpin>(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: W,
        job: &JobHandle,
        fail_after: Option<u64>,
    ) -> Result<()> {
        let memory = self
            .driver
            .memory(&dom.uuid)
            .ok_or_else(|| Error::invalid(format!("domain {} is not running", dom.name)))?;
        let writer =
            FrameWriter::start(out, memory.page_count(), req.has(MigrateFlags::COMPRESSED)).await?;
        let sender = send::Sender {
            driver: &self.driver,
            dom,
            req,
            job,
            digests: digest::BackgroundDigests::new(Arc::clone(&memory)),
            memory,
            writer,
            fail_after,
            bucket: throttle::TokenBucket::new(),
            normal: 0,
            constant: 0,
            paused_at: None,
        };
        // A transfer blocked on a peer that stopped reading must still abort.
        let mut abort = job.abort_signal();
        let downtime = tokio::select! {
            r = sender.run() => r?,
            () = abort.aborted() => {
                return Err(Error::OperationAborted {
                    operation: "migration out",
                })
            }
        };
        tracing::info!(dom = %dom.name, downtime_ms = downtime.as_millis() as u64, "guest memory sent");
        Ok(())
    }

    fn spawn_receiver<R>(
        &self,
        uuid: Uuid,
        input: R,
        memory: Arc<crate::GuestMemory>,
        job: &JobHandle,
    ) where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let job = job.clone();
        let task = tokio::spawn(async move {
            let result = receive::receive(input, memory, job.clone()).await;
            if let Err(err) = &result {
                job.report_transfer_failure(err.to_string());
            }
            result
        });
        self.incoming().insert(uuid, IncomingTransfer { task });
    }

    async fn bind(
        listen_address: &str,
        ports: std::ops::RangeInclusive<u16>,
    ) -> Result<(TcpListener, u16)> {
        let mut last = None;
        for port in ports.clone() {
            match TcpListener::bind((listen_address, port)).await {
                Ok(l) => return Ok((l, port)),
                Err(e) => last = Some(e),
            }
        }
        Err(failed(format!(
            "no free port to listen on {listen_address} in {}-{}{}",
            ports.start(),
            ports.end(),
            last.map(|e| format!(": {e}")).unwrap_or_default()
        )))
    }

    /// Kills an incoming guest whatever state it is in; errors are only logged
    /// (it may already be gone).
    async fn kill_incoming(&self, dom: &DomainRef) {
        if let Some(t) = self.incoming().remove(&dom.uuid) {
            t.task.abort();
        }
        if let Err(err) = self.driver.incoming_abort(dom).await {
            tracing::debug!(dom = %dom.name, error = %err, "incoming guest already gone");
        }
    }
}

#[async_trait]
impl MigrationBackend for TestBackend {
    fn support(&self) -> &'static SupportTable {
        &crate::SUPPORT
    }

    fn events(&self) -> Option<broadcast::Sender<DomainEvent>> {
        Some(self.driver.event_sender())
    }

    async fn begin(&self, dom: &DomainRef, req: &MigrateRequest) -> Result<BeginOut> {
        let state = self.driver.get_state(dom, 0).await?;
        let active = state.state.is_active();
        check_no_snapshots(&self.driver, dom).await?;
        if !active {
            check_no_managed_save(&self.driver, dom).await?;
        }
        let def = if active {
            self.live_def(dom).await?
        } else {
            let xml = self
                .driver
                .get_xml_desc(dom, flags::xml::SECURE | flags::xml::INACTIVE)
                .await?;
            DomainDef::parse(&xml)?
        };
        let persistent = if self.driver.is_persistent(dom).await? {
            let xml = self
                .driver
                .get_xml_desc(dom, flags::xml::SECURE | flags::xml::INACTIVE)
                .await?;
            Some(DomainDef::parse(&xml)?)
        } else {
            None
        };
        let graphics = def.devices.graphics.first().map(|g| GraphicsRelocation {
            kind: g.kind.as_str().to_owned(),
            port: g.port.unwrap_or(-1),
            tls_port: g.tls_port.unwrap_or(-1),
            listen: req.graphics_uri.clone().or_else(|| g.listen.clone()),
            tls_subject: None,
        });
        Ok(BeginOut {
            def,
            persistent,
            active,
            paused: state.state == DomainState::Paused,
            graphics,
            lockstate: None,
            // libvirt's test driver has no storage migration either.
            nbd: None,
        })
    }

    async fn perform(
        &self,
        dom: &DomainRef,
        req: &MigrateRequest,
        out: DataOut,
        job: &JobHandle,
    ) -> Result<PerformOut> {
        let def = self.live_def(dom).await?;
        let fail_after = match self.fault(&def, "perform") {
            Some(FaultPoint::Perform { after_bytes }) => Some(after_bytes),
            _ => None,
        };
        let result = match out {
            DataOut::Direct { uri, .. } => {
                let addr = DataUri::parse(&uri)?.socket_addr()?;
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
                    Ok(Ok(stream)) => {
                        // Pages are written in big buffered chunks; Nagle would only add latency
                        // to the last one, which is downtime.
                        let _ = stream.set_nodelay(true);
                        self.send(dom, req, stream, job, fail_after).await
                    }
                    Ok(Err(e)) => Err(failed(format!("connecting to {addr}: {e}"))),
                    Err(_) => Err(failed(format!("connecting to {addr} timed out"))),
                }
            }
            DataOut::Tunnel(w) => self.send(dom, req, w, job, fail_after).await,
        };
        if let Err(err) = &result {
            tracing::warn!(dom = %dom.name, error = %err, "perform failed; resuming the guest");
            if let Err(e) = self.driver.outgoing_resume(dom).await {
                tracing::error!(dom = %dom.name, error = %e, "could not resume the guest after a failed perform");
            }
        }
        result?;
        let mut capabilities = Vec::new();
        if req.has(MigrateFlags::COMPRESSED) {
            capabilities.push(("compression".to_owned(), "lz4".to_owned()));
        }
        if req.has(MigrateFlags::AUTO_CONVERGE) {
            capabilities.push(("auto-converge".to_owned(), "yes".to_owned()));
        }
        Ok(PerformOut { capabilities })
    }

    async fn confirm(&self, dom: &DomainRef, req: &MigrateRequest, cancelled: bool) -> Result<()> {
        let undefine = req.has(MigrateFlags::UNDEFINE_SOURCE);
        match (cancelled, req.is_offline()) {
            (true, true) => Ok(()),
            (true, false) => self.driver.outgoing_resume(dom).await,
            (false, true) if undefine => self.driver.undefine(dom, 0).await,
            (false, true) => Ok(()),
            (false, false) => self.driver.outgoing_complete(dom, undefine).await,
        }
    }

    async fn restore_running(&self, dom: &DomainRef) -> Result<()> {
        self.driver.outgoing_restore(dom).await
    }

    async fn prepare(
        &self,
        def: DomainDef,
        _req: &MigrateRequest,
        incoming: Incoming,
        job: &JobHandle,
    ) -> Result<PrepareOut> {
        if self.fault(&def, "prepare").is_some() {
            return Err(failed("injected fault: prepare failed"));
        }
        let uuid = def.uuid;
        match incoming {
            Incoming::Offline => {
                if let Ok(existing) = self.driver.lookup_by_uuid(&uuid).await {
                    if existing.is_active() {
                        return Err(Error::invalid(format!(
                            "domain '{}' is already active",
                            existing.name
                        )));
                    }
                }
                Ok(PrepareOut::default())
            }
            Incoming::Direct {
                listen_address,
                port_range,
                ..
            } => {
                let (listener, port) = Self::bind(&listen_address, port_range).await?;
                let (dom, memory) = self.driver.incoming_prepare(def).await?;
                job.set_domain(dom.clone());
                let mut abort = job.abort_signal();
                let accept = async move {
                    tokio::select! {
                        r = listener.accept() => r
                            .map(|(s, _)| s)
                            .map_err(|e| failed(format!("accepting migration connection: {e}"))),
                        () = abort.aborted() => Err(Error::OperationAborted { operation: "migration in" }),
                    }
                };
                let job2 = job.clone();
                let task = tokio::spawn(async move {
                    let result = async {
                        let stream = accept.await?;
                        receive::receive(stream, memory, job2.clone()).await
                    }
                    .await;
                    if let Err(err) = &result {
                        job2.report_transfer_failure(err.to_string());
                    }
                    result
                });
                self.incoming().insert(uuid, IncomingTransfer { task });
                Ok(PrepareOut {
                    uri_out: Some(DataUri::format_libvirt(&listen_address, port)),
                    ..PrepareOut::default()
                })
            }
            Incoming::Tunnel(reader) => {
                let (dom, memory) = self.driver.incoming_prepare(def).await?;
                job.set_domain(dom);
                self.spawn_receiver(uuid, reader, memory, job);
                Ok(PrepareOut::default())
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
        let transfer = self.incoming().remove(&dom.uuid);
        let result = async {
            let transfer = transfer.ok_or_else(|| {
                Error::invalid(format!("no incoming transfer for domain {}", dom.name))
            })?;
            let state = transfer
                .task
                .await
                .map_err(|e| Error::internal(format!("incoming migration task failed: {e}")))??;
            let def = self.live_def(dom).await?;
            if self.fault(&def, "finish").is_some() {
                return Err(failed("injected fault: finish failed"));
            }
            // The state of each vCPU online (`<vcpu current>`).
            if state.vcpus != def.current_vcpus() {
                return Err(failed(format!(
                    "source sent state for {} vCPUs, the guest has {}",
                    state.vcpus,
                    def.current_vcpus()
                )));
            }
            self.driver
                .incoming_finish(dom, persistent, req.has(MigrateFlags::PAUSED))
                .await
        }
        .await;
        match result {
            Ok(running) => Ok(running),
            Err(err) => {
                tracing::warn!(dom = %dom.name, job_id = %job.job_id(), error = %err, "finish failed; killing the incoming guest");
                self.kill_incoming(dom).await;
                Err(err)
            }
        }
    }

    async fn recover(&self, entry: &JournalEntry, action: RecoveryAction) -> Result<()> {
        let dom = DomainRef {
            name: entry.name.clone(),
            uuid: entry.uuid,
            id: DomainRef::INACTIVE_ID,
        };
        match action {
            RecoveryAction::ResumeSource => {
                // Test guests do not survive a restart: if the guest still runs
                // (recovery without a restart), un-pause it; otherwise its config
                // is back shut off, which is the only copy.
                if self.driver.memory(&dom.uuid).is_some() {
                    self.driver.outgoing_resume(&dom).await?;
                }
                Ok(())
            }
            RecoveryAction::KeepPausedUntilPeerOutcome => {
                tracing::warn!(dom = %dom.name, "test guests do not survive a restart; its config is kept until the peer's outcome is known");
                Ok(())
            }
            RecoveryAction::CompleteSourceCleanup => {
                if self.driver.memory(&dom.uuid).is_some() {
                    self.driver
                        .outgoing_complete(
                            &dom,
                            MigrateFlags(entry.flags).contains(MigrateFlags::UNDEFINE_SOURCE),
                        )
                        .await
                } else if MigrateFlags(entry.flags).contains(MigrateFlags::UNDEFINE_SOURCE) {
                    match self.driver.undefine(&dom, 0).await {
                        Ok(()) | Err(Error::NoDomain { .. }) => Ok(()),
                        Err(e) => Err(e),
                    }
                } else {
                    Ok(())
                }
            }
            RecoveryAction::KillIncoming => {
                self.kill_incoming(&dom).await;
                Ok(())
            }
            RecoveryAction::KeepRunning => Ok(()),
        }
    }
}
