//! The daemon's [`Dispatcher`]: per-connection sessions and the gate every
//! remote-program call passes before it reaches [`crate::dispatch`].
//!
//! Order of checks for one CALL (libvirtd's `virnetserverprogram.c` and
//! `remote_daemon_dispatch.c`, in our shape):
//! 1. [`Dispatcher::lookup`] (on the connection's reader task): an unknown
//!    procedure number, or an event number sent as a CALL, is refused with
//!    "unknown procedure: N" (`VIR_ERR_RPC`); priority calls skip the
//!    per-client call limit.
//! 2. [`Session::gate`] (when the call runs): a procedure not marked
//!    `@readonly` on a read-only connection → `VIR_ERR_OPERATION_DENIED`;
//!    anything but authentication, features, open and close before
//!    CONNECT_OPEN → "hypervisor connection not open".
//! 3. `Call::decode`: bad arguments → `VIR_ERR_RPC`, the connection stays.
//! 4. one `match` over [`Call`] in [`crate::dispatch::run`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use migrated_core::driver::{DomainRef, Driver};
use migrated_proto::{Call, Procedure};
use migrated_rpc::{CallContext, ConnHandle, ConnInfo, Dispatcher, Header, Lookup, WireError};
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Config;
use crate::dispatch;
use crate::dispatch::events::Registrations;
use crate::drivers::DriverRegistry;
use crate::metrics::Metrics;
use crate::wire;

/// What every session may read: host identity and the drivers.
#[derive(Debug)]
pub struct Handler {
    hostname: String,
    host_uuid: Uuid,
    drivers: DriverRegistry,
    keepalive: bool,
    metrics: Option<Arc<Metrics>>,
    /// Runs started with `VIR_DOMAIN_START_AUTODESTROY` by a connection
    /// still open (uuid → the run's id), for libvirt's migration refusal.
    autodestroy: Mutex<HashMap<Uuid, i32>>,
}

impl Handler {
    /// A handler serving the given drivers as the host named in `config`.
    pub fn new(config: &Config, drivers: DriverRegistry) -> Self {
        Handler {
            hostname: config.hostname.clone(),
            host_uuid: config.host_uuid,
            drivers,
            // Interval 0 (or count 0) turns server-side pings off entirely.
            keepalive: config.keepalive_interval > 0 && config.keepalive_count > 0,
            metrics: None,
            autodestroy: Mutex::default(),
        }
    }

    /// Counts every call in `metrics` (the Prometheus endpoint's).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The host name reported by CONNECT_GET_HOSTNAME.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// This host's UUID.
    pub fn host_uuid(&self) -> Uuid {
        self.host_uuid
    }

    /// Marks `dom` (as started now by `session`) to be destroyed when that
    /// connection closes (`VIR_DOMAIN_START_AUTODESTROY`).
    pub fn mark_autodestroy(&self, session: &Session, dom: DomainRef) {
        lock(&self.autodestroy).insert(dom.uuid, dom.id);
        session.state().autodestroy.push(dom);
    }

    /// The run (domain id) of `uuid` that an open connection started with
    /// AUTODESTROY, if any.
    pub fn autodestroy_run(&self, uuid: &Uuid) -> Option<i32> {
        lock(&self.autodestroy).get(uuid).copied()
    }

    /// Whether the daemon pings clients that asked for keepalive.
    pub fn keepalive(&self) -> bool {
        self.keepalive
    }

    /// The enabled drivers.
    pub fn drivers(&self) -> &DriverRegistry {
        &self.drivers
    }
}

/// A poisoned lock only means a handler panicked mid-update of plain data,
/// which is still meaningful: keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The driver a connection opened.
#[derive(Clone)]
pub struct OpenDriver {
    /// The driver.
    pub driver: Arc<dyn Driver>,
    /// Its canonical URI.
    pub uri: &'static str,
}

/// Mutable per-connection state.
#[derive(Default)]
struct SessionState {
    open: Option<OpenDriver>,
    /// Read-only because of the socket or the RO flag of CONNECT_OPEN.
    readonly: bool,
    close_callback: bool,
    /// Guests this connection started with `VIR_DOMAIN_START_AUTODESTROY`,
    /// as they ran then (their id tells a later boot apart).
    autodestroy: Vec<DomainRef>,
}

/// One client connection ("client private data" in libvirtd).
pub struct Session {
    info: ConnInfo,
    handle: ConnHandle,
    state: Mutex<SessionState>,
    events: Arc<Mutex<Registrations>>,
    /// QEMU-program monitor-event registrations (`qemu-monitor-event`).
    monitor_events: Arc<Mutex<crate::dispatch::qemu::MonitorRegistrations>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("conn_id", &self.info.id)
            .field("peer", &self.info.peer)
            .finish()
    }
}

/// Procedures a client may call before CONNECT_OPEN (libvirtd: those that
/// do not need `priv->conn`).
fn allowed_before_open(proc_: Procedure) -> bool {
    matches!(
        proc_,
        Procedure::AuthList
            | Procedure::AuthSaslInit
            | Procedure::AuthSaslStart
            | Procedure::AuthSaslStep
            | Procedure::AuthPolkit
            | Procedure::ConnectSupportsFeature
            | Procedure::ConnectOpen
            | Procedure::ConnectClose
    )
}

impl Session {
    fn new(info: &ConnInfo, handle: ConnHandle) -> Self {
        Session {
            state: Mutex::new(SessionState {
                readonly: info.readonly,
                ..SessionState::default()
            }),
            info: info.clone(),
            handle,
            events: Arc::new(Mutex::new(Registrations::default())),
            monitor_events: Arc::default(),
        }
    }

    /// The connection's identity (transport, peer, read-only socket).
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The connection handle (events, keepalive, close).
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }

    /// The event registrations of this connection.
    pub fn events(&self) -> &Arc<Mutex<Registrations>> {
        &self.events
    }

    /// The QEMU-program monitor-event registrations of this connection.
    pub fn monitor_events(&self) -> &Arc<Mutex<crate::dispatch::qemu::MonitorRegistrations>> {
        &self.monitor_events
    }

    fn state(&self) -> MutexGuard<'_, SessionState> {
        lock(&self.state)
    }

    /// The opened driver.
    ///
    /// # Errors
    /// "hypervisor connection not open" before CONNECT_OPEN.
    pub fn driver(&self) -> Result<OpenDriver, WireError> {
        self.state().open.clone().ok_or_else(wire::not_open)
    }

    /// Binds the connection to a driver (CONNECT_OPEN).
    ///
    /// # Errors
    /// "connection already open" on a second CONNECT_OPEN.
    pub fn open(&self, driver: OpenDriver, readonly: bool) -> Result<(), WireError> {
        let mut state = self.state();
        if state.open.is_some() {
            return Err(wire::already_open());
        }
        state.open = Some(driver);
        state.readonly |= readonly;
        Ok(())
    }

    /// Whether the connection is read-only.
    pub fn is_readonly(&self) -> bool {
        self.state().readonly
    }

    /// Records CONNECT_REGISTER/UNREGISTER_CLOSE_CALLBACK.
    pub fn set_close_callback(&self, registered: bool) {
        self.state().close_callback = registered;
    }

    /// Checks read-only and open state for `proc_` (step 2 of the module doc).
    ///
    /// # Errors
    /// `VIR_ERR_OPERATION_DENIED` or "hypervisor connection not open".
    pub fn gate(&self, proc_: Procedure) -> Result<(), WireError> {
        let state = self.state();
        if state.readonly && !proc_.info().readonly {
            return Err(wire::read_only(&api_name(proc_)));
        }
        if state.open.is_none() && !allowed_before_open(proc_) {
            return Err(wire::not_open());
        }
        Ok(())
    }
}

/// `REMOTE_PROC_DOMAIN_DEFINE_XML` → `virDomainDefineXML`: the libvirt API
/// name users know, derived from the procedure's name.
pub fn api_name(proc_: Procedure) -> String {
    api_name_of(proc_.name())
}

/// [`api_name`] for a procedure given by its wire name, served or not.
pub fn api_name_of(procedure: &str) -> String {
    let bare = procedure.trim_start_matches("REMOTE_PROC_");
    let mut out = String::from("vir");
    for word in bare.split('_').filter(|w| !w.is_empty()) {
        // libvirt spells these as acronyms (virDomainLookupByUUID,
        // virNodeGetCPUStats, virDomainGetIOThreadInfo, virNWFilter…).
        let spelled = match word {
            "XML" | "UUID" | "ID" | "URI" | "CPU" | "OS" | "PM" | "MAC" | "SEV" | "DHCP" | "FS"
            | "SCSI" | "WWN" | "TLS" | "IO" => Some(word.to_owned()),
            "NWFILTER" => Some("NWFilter".to_owned()),
            "IOTHREAD" => Some("IOThread".to_owned()),
            "IOTHREADS" => Some("IOThreads".to_owned()),
            _ => None,
        };
        match spelled {
            Some(w) => out.push_str(&w),
            None => {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    out.push(first.to_ascii_uppercase());
                    out.extend(chars.map(|c| c.to_ascii_lowercase()));
                }
            }
        }
    }
    out
}

/// Whether a libvirt procedure is an event message (`…_EVENT_LIFECYCLE`),
/// which a server sends and never serves, rather than a call such as
/// `CONNECT_DOMAIN_EVENT_REGISTER_ANY`.
fn is_event(procedure: &str) -> bool {
    procedure.contains("_EVENT_") && !procedure.contains("REGISTER")
}

/// The procedure's name for metrics; numbers [`Dispatcher::lookup`] let
/// through always have one.
fn procedure_name(prog: u32, number: i32) -> &'static str {
    if prog == migrated_proto::MIGRATED_PROGRAM {
        migrated_proto::MigratedProcedure::from_i32(number).map_or("unknown", |p| p.name())
    } else if prog == migrated_proto::QEMU_PROGRAM {
        migrated_proto::QemuProcedure::from_i32(number).map_or("unknown", |p| p.name())
    } else {
        Procedure::from_i32(number).map_or("unknown", |p| p.name())
    }
}

impl Dispatcher for Handler {
    type Session = Session;

    fn open_session(&self, info: &ConnInfo, handle: ConnHandle) -> Session {
        tracing::debug!(conn_id = info.id, peer = %info.peer, transport = %info.transport, readonly = info.readonly, "client connected");
        Session::new(info, handle)
    }

    fn programs(&self) -> &[(u32, u32)] {
        &[
            (
                migrated_proto::REMOTE_PROGRAM,
                migrated_proto::REMOTE_PROTOCOL_VERSION,
            ),
            (
                migrated_proto::MIGRATED_PROGRAM,
                migrated_proto::MIGRATED_PROTOCOL_VERSION,
            ),
            (
                migrated_proto::QEMU_PROGRAM,
                migrated_proto::QEMU_PROTOCOL_VERSION,
            ),
        ]
    }

    fn lookup(&self, _session: &Session, header: &Header) -> Lookup {
        if header.prog == migrated_proto::MIGRATED_PROGRAM {
            return match migrated_proto::MigratedProcedure::from_i32(header.proc_) {
                Some(p) => Lookup::Call {
                    priority: p.info().priority,
                },
                None => Lookup::Reject(wire::unknown_procedure(header.proc_)),
            };
        }
        if header.prog == migrated_proto::QEMU_PROGRAM {
            // The event message is no call, as in the remote program.
            return match migrated_proto::QemuProcedure::from_i32(header.proc_) {
                Some(p) if !p.info().event => Lookup::Call {
                    priority: p.info().priority,
                },
                _ => Lookup::Reject(wire::unknown_procedure(header.proc_)),
            };
        }
        match Procedure::from_i32(header.proc_) {
            Some(proc_) if !proc_.info().event => Lookup::Call {
                priority: proc_.info().priority,
            },
            Some(_) => Lookup::Reject(wire::unknown_procedure(header.proc_)),
            // A libvirt procedure this daemon does not serve: what libvirtd
            // says when its driver lacks the function.
            // An event procedure sent as a CALL stays unknown, as above.
            None => match migrated_proto::libvirt_procedure_name(header.proc_) {
                Some(name) if !is_event(name) => {
                    Lookup::Reject(wire::not_supported(&api_name_of(name)))
                }
                _ => Lookup::Reject(wire::unknown_procedure(header.proc_)),
            },
        }
    }

    fn call(
        &self,
        session: Arc<Session>,
        ctx: CallContext,
        payload: Bytes,
    ) -> impl std::future::Future<Output = Result<Bytes, WireError>> + Send {
        let span = tracing::debug_span!(
            "remote",
            conn_id = ctx.info.id,
            serial = ctx.header.serial,
            proc = ctx.header.proc_
        );
        let started = std::time::Instant::now();
        let procedure = procedure_name(ctx.header.prog, ctx.header.proc_);
        let metrics = self.metrics.clone();
        // Errors the driver raises carry its domain (libvirt's VIR_FROM_THIS).
        let driver_domain = session
            .driver()
            .ok()
            .map(|open| open.driver.support().error_domain);
        let result = async move {
            if ctx.header.prog == migrated_proto::MIGRATED_PROGRAM {
                let proc_ = migrated_proto::MigratedProcedure::from_i32(ctx.header.proc_)
                    .ok_or_else(|| wire::unknown_procedure(ctx.header.proc_))?;
                session.driver()?;
                return dispatch::migration_jobs::run_migrated(self, &session, proc_, &payload)
                    .await;
            }
            if ctx.header.prog == migrated_proto::QEMU_PROGRAM {
                let proc_ = migrated_proto::QemuProcedure::from_i32(ctx.header.proc_)
                    .ok_or_else(|| wire::unknown_procedure(ctx.header.proc_))?;
                let result = dispatch::qemu::run(&session, proc_, &payload).await;
                if let Err(err) = &result {
                    tracing::debug!(procedure = proc_.name(), code = err.code, message = ?err.message, "call failed");
                }
                return result;
            }
            let proc_ = Procedure::from_i32(ctx.header.proc_)
                .ok_or_else(|| wire::unknown_procedure(ctx.header.proc_))?;
            session.gate(proc_)?;
            let call = Call::decode(proc_, &payload).map_err(|err| {
                tracing::warn!(procedure = proc_.name(), error = %err, "undecodable arguments");
                wire::bad_arguments(proc_.name(), &err)
            })?;
            let result = dispatch::run(self, &session, &ctx, call).await;
            if let Err(err) = &result {
                tracing::debug!(procedure = proc_.name(), code = err.code, message = ?err.message, "call failed");
            }
            result
        };
        async move {
            let result = wire::with_driver_domain(driver_domain, result).await;
            if let Some(metrics) = metrics {
                let error = result.as_ref().err().map(|e| e.code);
                metrics.record_call(procedure, started.elapsed(), error);
            }
            result
        }
        .instrument(span)
    }

    fn close_session(&self, session: &Session) {
        tracing::debug!(conn_id = session.info.id, "client disconnected");
        let doms = std::mem::take(&mut session.state().autodestroy);
        if doms.is_empty() {
            return;
        }
        {
            let mut marked = lock(&self.autodestroy);
            for dom in &doms {
                if marked.get(&dom.uuid) == Some(&dom.id) {
                    marked.remove(&dom.uuid);
                }
            }
        }
        let (Ok(open), Ok(runtime)) = (session.driver(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(autodestroy(open.driver, doms));
    }
}

/// libvirt's auto-destroy (`qemuProcessAutoDestroy`): the guests a closed
/// connection started with `VIR_DOMAIN_START_AUTODESTROY` are destroyed,
/// unless they stopped meanwhile (a later boot has another id).
async fn autodestroy(driver: Arc<dyn Driver>, doms: Vec<DomainRef>) {
    for dom in doms {
        let Ok(now) = driver.lookup_by_uuid(&dom.uuid).await else {
            continue;
        };
        if now.id != dom.id {
            continue;
        }
        match driver.destroy(&now, 0).await {
            Ok(()) => {
                tracing::info!(name = %now.name, "auto-destroyed with the connection that started it")
            }
            Err(e) => tracing::warn!(name = %now.name, error = %e, "cannot auto-destroy"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_are_camel_cased_procedure_names() {
        assert_eq!(api_name(Procedure::DomainDefineXml), "virDomainDefineXML");
        assert_eq!(api_name(Procedure::ConnectOpen), "virConnectOpen");
        assert_eq!(
            api_name(Procedure::DomainLookupByUuid),
            "virDomainLookupByUUID"
        );
        assert_eq!(
            api_name_of("REMOTE_PROC_DOMAIN_GET_IOTHREAD_INFO"),
            "virDomainGetIOThreadInfo"
        );
        assert_eq!(
            api_name_of("REMOTE_PROC_NODE_GET_CPU_STATS"),
            "virNodeGetCPUStats"
        );
        assert_eq!(api_name_of("REMOTE_PROC_DOMAIN_RESET"), "virDomainReset");
    }

    #[test]
    fn event_messages_are_told_from_event_calls() {
        assert!(is_event("REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE"));
        assert!(is_event("REMOTE_PROC_CONNECT_EVENT_CONNECTION_CLOSED"));
        assert!(!is_event(
            "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY"
        ));
        assert!(!is_event("REMOTE_PROC_DOMAIN_GET_PERF_EVENTS"));
        assert!(!is_event("REMOTE_PROC_DOMAIN_RESET"));
    }

    #[test]
    fn only_handshake_procedures_run_before_open() {
        for proc_ in [
            Procedure::AuthList,
            Procedure::ConnectSupportsFeature,
            Procedure::ConnectOpen,
            Procedure::ConnectClose,
        ] {
            assert!(allowed_before_open(proc_), "{proc_:?}");
        }
        for proc_ in [
            Procedure::ConnectGetHostname,
            Procedure::DomainDefineXml,
            Procedure::ConnectListAllDomains,
        ] {
            assert!(!allowed_before_open(proc_), "{proc_:?}");
        }
    }
}
