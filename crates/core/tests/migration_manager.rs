//! The migration Manager against a scripted backend: journal-before-acting,
//! cookie and request checks leaving nothing behind, phase errors, change
//! protection, restart recovery, completion timeout, job events, the
//! pre-migration state restored after a cancelled or failed migration.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use migrated_core::cookie::MIGRATE_COOKIE_MAX;
use migrated_core::domain::{DomainEvent, DomainEventKind, DomainRef, HostIdentity};
use migrated_core::error::ErrorCode;
use migrated_core::flags::MigrateFlags;
use migrated_core::job::{JobHandle, Journal, JournalEntry, RecoveryAction, TimeoutAction};
use migrated_core::migration::{
    BeginOut, DataOut, Finish3Out, Incoming, Manager, ManagerConfig, MigrateRequest,
    MigrationBackend, PerformOut, PrepareOut,
};
use migrated_core::support::{MigrationDefaults, SupportTable};
use migrated_core::typed_params::{migrate_param, TypedParam, TypedParams, TypedValue};
use migrated_core::xml::DomainDef;
use migrated_core::{Error, Result};
use tempfile::TempDir;
use tokio::sync::broadcast;
use uuid::Uuid;

static SUPPORT: SupportTable = SupportTable {
    driver: "Fake",
    error_domain: migrated_core::error::ErrorDomain::Domain,
    procedures: &[],
    migration_flags: MigrateFlags::LIVE.bits()
        | MigrateFlags::PEER2PEER.bits()
        | MigrateFlags::TUNNELLED.bits()
        | MigrateFlags::PERSIST_DEST.bits()
        | MigrateFlags::UNDEFINE_SOURCE.bits()
        | MigrateFlags::PAUSED.bits()
        | MigrateFlags::CHANGE_PROTECTION.bits()
        | MigrateFlags::OFFLINE.bits(),
    migration_params: &[
        migrate_param::URI,
        migrate_param::DEST_NAME,
        migrate_param::DEST_XML,
        migrate_param::PERSIST_XML,
        migrate_param::BANDWIDTH,
    ],
    defaults: MigrationDefaults {
        flags: MigrateFlags::LIVE.bits(),
    },
    qemu_procedures: &[],
    device_stats: false,
};

const XML: &str = "<domain type='test'><name>g</name>\
    <uuid>11111111-2222-3333-4444-555555555555</uuid>\
    <memory unit='MiB'>64</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>";

/// How the scripted perform behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PerformMode {
    Succeed,
    /// Wait until aborted (→ OperationAborted) or asked to pause (→ success).
    WaitForOperator,
}

#[derive(Default)]
struct Log {
    /// (step, journal phases on disk when the backend was called)
    calls: Vec<(&'static str, Vec<String>)>,
    perform_flags: Vec<MigrateFlags>,
    recovered: Vec<RecoveryAction>,
}

struct Fake {
    state_dir: PathBuf,
    perform: PerformMode,
    /// What Begin reports: the guest is paused (not running).
    paused: AtomicBool,
    log: Mutex<Log>,
    events: broadcast::Sender<DomainEvent>,
}

impl Fake {
    fn new(state: &TempDir, perform: PerformMode) -> Arc<Self> {
        Arc::new(Self {
            state_dir: state.path().to_owned(),
            perform,
            paused: AtomicBool::new(false),
            log: Mutex::new(Log::default()),
            events: broadcast::channel(64).0,
        })
    }

    fn record(&self, step: &'static str) {
        let mut phases: Vec<String> = on_disk(&self.state_dir)
            .into_iter()
            .map(|e| e.phase.name().to_owned())
            .collect();
        phases.sort();
        self.log.lock().expect("log").calls.push((step, phases));
    }

    fn calls(&self) -> Vec<(&'static str, Vec<String>)> {
        self.log.lock().expect("log").calls.clone()
    }
}

#[async_trait]
impl MigrationBackend for Fake {
    fn support(&self) -> &'static SupportTable {
        &SUPPORT
    }

    fn events(&self) -> Option<broadcast::Sender<DomainEvent>> {
        Some(self.events.clone())
    }

    async fn begin(&self, dom: &DomainRef, _req: &MigrateRequest) -> Result<BeginOut> {
        if dom.uuid != DomainDef::parse(XML)?.uuid {
            return Err(Error::NoDomain {
                key: migrated_core::error::DomainKey::Uuid(dom.uuid),
            });
        }
        let def = DomainDef::parse(XML)?;
        Ok(BeginOut {
            persistent: Some(def.clone()),
            def,
            active: dom.is_active(),
            paused: self.paused.load(Ordering::SeqCst),
            graphics: None,
            lockstate: None,
            nbd: None,
        })
    }

    async fn perform(
        &self,
        _dom: &DomainRef,
        req: &MigrateRequest,
        _out: DataOut,
        job: &JobHandle,
    ) -> Result<PerformOut> {
        self.record("perform");
        self.log.lock().expect("log").perform_flags.push(req.flags);
        if self.perform == PerformMode::WaitForOperator {
            loop {
                if job.is_aborted() {
                    return Err(Error::OperationAborted {
                        operation: "migration out",
                    });
                }
                if job.pause_requested() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        job.report_iteration(1);
        job.report_iteration(2);
        job.update_stats(|s| s.data_processed = 1234);
        Ok(PerformOut::default())
    }

    async fn confirm(
        &self,
        _dom: &DomainRef,
        _req: &MigrateRequest,
        cancelled: bool,
    ) -> Result<()> {
        self.record(if cancelled {
            "confirm-cancelled"
        } else {
            "confirm"
        });
        Ok(())
    }

    async fn restore_running(&self, _dom: &DomainRef) -> Result<()> {
        self.record("restore");
        Ok(())
    }

    async fn prepare(
        &self,
        def: DomainDef,
        _req: &MigrateRequest,
        incoming: Incoming,
        job: &JobHandle,
    ) -> Result<PrepareOut> {
        self.record("prepare");
        // A receiving side counts passes too, but announces none.
        job.report_iteration(1);
        job.set_domain(DomainRef {
            name: def.name,
            uuid: def.uuid,
            id: 7,
        });
        Ok(PrepareOut {
            uri_out: match incoming {
                Incoming::Direct { .. } => Some("tcp:0.0.0.0:49999".into()),
                _ => None,
            },
            ..PrepareOut::default()
        })
    }

    async fn finish(
        &self,
        dom: &DomainRef,
        _req: &MigrateRequest,
        _persistent: Option<DomainDef>,
        cancelled: bool,
        _job: &JobHandle,
    ) -> Result<DomainRef> {
        self.record(if cancelled {
            "finish-cancelled"
        } else {
            "finish"
        });
        Ok(dom.clone())
    }

    async fn recover(&self, _entry: &JournalEntry, action: RecoveryAction) -> Result<()> {
        self.log.lock().expect("log").recovered.push(action);
        Ok(())
    }
}

struct Side {
    mgr: Manager,
    fake: Arc<Fake>,
    dir: TempDir,
}

fn side(n: u128, perform: PerformMode) -> Side {
    side_with_host(n, n, perform)
}

fn side_with_host(n: u128, host_uuid: u128, perform: PerformMode) -> Side {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = Fake::new(&dir, perform);
    let cfg = ManagerConfig::new(
        dir.path(),
        HostIdentity {
            hostname: format!("host{n}"),
            uuid: Uuid::from_u128(host_uuid),
        },
    );
    let mgr = Manager::new(cfg, fake.clone()).expect("manager");
    Side { mgr, fake, dir }
}

fn dom() -> DomainRef {
    let def = DomainDef::parse(XML).expect("xml");
    DomainRef {
        name: def.name,
        uuid: def.uuid,
        id: 1,
    }
}

fn req(flags: MigrateFlags) -> MigrateRequest {
    MigrateRequest {
        flags,
        ..MigrateRequest::default()
    }
}

/// The live journal entries as a restarted daemon would read them from disk.
fn on_disk(state_dir: &std::path::Path) -> Vec<JournalEntry> {
    Journal::open(state_dir)
        .and_then(|j| j.load())
        .expect("journal on disk")
}

/// Jobs the journal on disk still holds.
fn journal_files(s: &Side) -> usize {
    on_disk(s.dir.path()).len()
}

fn protected() -> MigrateRequest {
    req(MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION)
}

/// Begin + Prepare; returns (prepare's cookie, destination request, uri_out).
async fn begin_prepare(
    a: &Side,
    b: &Side,
    r: &MigrateRequest,
) -> (Vec<u8>, MigrateRequest, Option<String>) {
    let begin = a.mgr.begin3(&dom(), r.clone()).await.expect("begin");
    let mut dreq = r.clone();
    dreq.flags = r.destination_flags();
    dreq.dest_xml = Some(begin.xml);
    let prep = b
        .mgr
        .prepare3(dreq.clone(), &begin.cookie, None)
        .await
        .expect("prepare");
    (prep.cookie, dreq, prep.uri_out)
}

/// Begin + Prepare + Perform; returns (perform's cookie, destination request).
async fn until_perform_done(a: &Side, b: &Side, r: &MigrateRequest) -> (Vec<u8>, MigrateRequest) {
    let (cookie, dreq, uri) = begin_prepare(a, b, r).await;
    let mut preq = r.clone();
    preq.uri = uri;
    let cookie = a
        .mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect("perform");
    (cookie, dreq)
}

/// Finish3 on `b` and Confirm3 on `a` after a successful Perform; returns
/// Finish3's answer.
async fn finish_and_confirm(
    a: &Side,
    b: &Side,
    r: &MigrateRequest,
    cookie: &[u8],
    dreq: MigrateRequest,
) -> Finish3Out {
    let fin = b
        .mgr
        .finish3("g", dreq, cookie, false)
        .await
        .expect("finish");
    a.mgr
        .confirm3(&dom(), r.clone(), &fin.cookie, false)
        .await
        .expect("confirm");
    fin
}

#[tokio::test]
async fn every_phase_is_journalled_before_the_backend_acts() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = protected();
    let (cookie, dreq, uri) = begin_prepare(&a, &b, &r).await;
    assert_eq!(
        uri.as_deref(),
        Some("tcp:host2:49999"),
        "a wildcard listener is announced by host name"
    );
    let mut preq = r.clone();
    preq.uri = uri;
    let cookie = a
        .mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect("perform");
    let fin = finish_and_confirm(&a, &b, &r, &cookie, dreq).await;
    assert_eq!(fin.dom.id, 7);

    assert_eq!(
        a.fake.calls(),
        vec![
            ("perform", vec!["perform3".to_owned()]),
            ("confirm", vec!["confirm3".to_owned()]),
        ]
    );
    assert_eq!(
        b.fake.calls(),
        vec![
            ("prepare", vec!["prepare3".to_owned()]),
            ("finish", vec!["finish3".to_owned()]),
        ]
    );
    assert_eq!(journal_files(&a), 0, "finished jobs leave no journal entry");
    assert_eq!(journal_files(&b), 0);
    assert_eq!(
        a.mgr.registry().stats(&dom().uuid, true).data_processed,
        1234
    );
    assert_eq!(
        b.mgr.registry().stats(&dom().uuid, true).data_processed,
        1234,
        "statistics travel in the cookie"
    );
}

/// The events sent so far, as (event id, iteration or memory_iteration, domain id).
fn drain(rx: &mut broadcast::Receiver<DomainEvent>) -> Vec<(i32, u64, i32)> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| {
            let n = match &e.kind {
                DomainEventKind::MigrationIteration { iteration } => {
                    u64::try_from(*iteration).expect("positive")
                }
                DomainEventKind::JobCompleted { stats } => stats
                    .get_ullong("memory_iteration")
                    .expect("u64")
                    .expect("present"),
                _ => 0,
            };
            (e.kind.id(), n, e.dom.id)
        })
        .collect()
}

#[tokio::test]
async fn the_source_announces_iterations_and_completion_as_libvirt() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let (mut a_events, mut b_events) = (a.fake.events.subscribe(), b.fake.events.subscribe());
    let r = protected();
    let (cookie, dreq) = until_perform_done(&a, &b, &r).await;
    assert_eq!(drain(&mut a_events), vec![(20, 1, 1), (20, 2, 1)]);
    finish_and_confirm(&a, &b, &r, &cookie, dreq).await;
    // JOB_COMPLETED (21) with the final statistics, for the stopped guest.
    assert_eq!(drain(&mut a_events), vec![(21, 2, -1)]);
    assert!(
        drain(&mut b_events).is_empty(),
        "the destination sends none"
    );

    // A cancelled migration completes nothing.
    until_perform_done(&a, &b, &r).await;
    a.mgr
        .confirm3(&dom(), r, &[], true)
        .await
        .expect("cancelled confirm");
    assert_eq!(drain(&mut a_events), vec![(20, 1, 1), (20, 2, 1)]);

    // v2 (Perform then an implicit Confirm) has no JOB_COMPLETED in libvirt.
    let mut v2 = req(MigrateFlags::LIVE);
    v2.uri = Some("tcp:127.0.0.1:49999".into());
    a.mgr.perform2(&dom(), v2, &[]).await.expect("perform2");
    assert_eq!(drain(&mut a_events), vec![(20, 1, 1), (20, 2, 1)]);
}

#[tokio::test]
async fn same_host_is_refused_with_the_host_uuid() {
    let a = side(1, PerformMode::Succeed);
    let b = side_with_host(2, 1, PerformMode::Succeed);
    let begin = a.mgr.begin3(&dom(), protected()).await.expect("begin");
    let mut dreq = protected();
    dreq.dest_xml = Some(begin.xml);
    let err = b
        .mgr
        .prepare3(dreq, &begin.cookie, None)
        .await
        .expect_err("same host");
    assert_eq!(err.code(), ErrorCode::InternalError);
    assert_eq!(
        err.to_string(),
        format!(
            "internal error: Attempt to migrate guest to the same host {}",
            Uuid::from_u128(1)
        )
    );
    assert!(!b.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(journal_files(&b), 0);
    assert!(b.fake.calls().is_empty());
}

#[tokio::test]
async fn oversized_and_garbage_cookies_leave_nothing_behind() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let begin = a.mgr.begin3(&dom(), protected()).await.expect("begin");
    let mut dreq = protected();
    dreq.dest_xml = Some(begin.xml);
    let mut big = vec![b' '; MIGRATE_COOKIE_MAX + 1];
    big[MIGRATE_COOKIE_MAX] = 0;
    let err = b
        .mgr
        .prepare3(dreq.clone(), &big, None)
        .await
        .expect_err("16385 bytes");
    assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    assert!(err.to_string().contains("16385") && err.to_string().contains("16384"));
    let err = b
        .mgr
        .prepare3(dreq, b"\x01\x02garbage\0", None)
        .await
        .expect_err("garbage");
    assert_eq!(err.code(), ErrorCode::InternalError);
    assert!(err.to_string().contains("migration cookie"), "{err}");
    assert!(!b.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(journal_files(&b), 0);
    assert!(b.fake.calls().is_empty(), "the backend was never asked");

    let err = a
        .mgr
        .perform3(&dom(), protected(), &big, None)
        .await
        .expect_err("source refuses it too");
    assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    // No Confirm follows a failed Perform (§8.6), so the job ends with it.
    assert_eq!(journal_files(&a), 0);
    // Nothing was sent; the guest only gets its pre-migration state back
    // (it ran at Begin), which leaves a running guest as it is.
    assert_eq!(steps(&a), ["restore"]);
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
}

#[tokio::test]
async fn finish_without_prepare_and_confirm_twice_are_operation_invalid() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let err = b
        .mgr
        .finish3("g", req(MigrateFlags::LIVE), &[], false)
        .await
        .expect_err("no prepare");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    assert!(
        err.to_string().contains("no incoming migration job"),
        "{err}"
    );

    let r = protected();
    let (cookie, dreq) = until_perform_done(&a, &b, &r).await;
    let fin = finish_and_confirm(&a, &b, &r, &cookie, dreq).await;
    let err = a
        .mgr
        .confirm3(&dom(), r, &fin.cookie, false)
        .await
        .expect_err("second confirm");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
}

#[tokio::test]
async fn perform_twice_is_a_phase_error() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = protected();
    let (cookie, _dreq, uri) = begin_prepare(&a, &b, &r).await;
    let mut preq = r.clone();
    preq.uri = uri;
    a.mgr
        .perform3(&dom(), preq.clone(), &cookie, None)
        .await
        .expect("perform");
    let err = a
        .mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect_err("again");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    assert!(err.to_string().contains("perform3_done"), "{err}");
}

#[tokio::test]
async fn concurrent_begins_with_change_protection_let_exactly_one_through() {
    let a = side(1, PerformMode::Succeed);
    let d = dom();
    let (x, y) = tokio::join!(a.mgr.begin3(&d, protected()), a.mgr.begin3(&d, protected()));
    let errs: Vec<Error> = [x, y].into_iter().filter_map(|r| r.err()).collect();
    assert_eq!(errs.len(), 1, "one wins");
    assert_eq!(errs[0].code(), ErrorCode::OperationInvalid);
    assert!(
        errs[0]
            .to_string()
            .contains("another migration job is already active for domain g"),
        "{}",
        errs[0]
    );
    let err = a
        .mgr
        .registry()
        .guard(&dom())
        .expect_err("change protection");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    a.mgr
        .abort_job(&dom())
        .expect("abort ends a job still in begin3");
    a.mgr.registry().guard(&dom()).expect("unlocked");
}

#[tokio::test]
async fn begin_without_change_protection_leaves_no_job() {
    let a = side(1, PerformMode::Succeed);
    a.mgr
        .begin3(&dom(), req(MigrateFlags::LIVE))
        .await
        .expect("begin");
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(journal_files(&a), 0);
}

#[tokio::test]
async fn guest_visible_destination_xml_is_refused_and_host_side_changes_pass() {
    let a = side(1, PerformMode::Succeed);
    let mut r = protected();
    r.dest_xml = Some(XML.replace(
        "<memory unit='MiB'>64</memory>",
        "<memory unit='MiB'>128</memory>",
    ));
    let err = a.mgr.begin3(&dom(), r).await.expect_err("memory change");
    assert_eq!(err.code(), ErrorCode::ConfigUnsupported);
    assert!(err.to_string().contains("memory"), "{err}");
    assert!(!a.mgr.registry().is_locked(&dom().uuid), "nothing changed");
    assert_eq!(journal_files(&a), 0);

    let mut r = protected();
    r.dest_xml = Some(XML.replace(
        "<name>g</name>",
        "<name>g</name><description>moved</description>",
    ));
    let out = a.mgr.begin3(&dom(), r).await.expect("host-side change");
    assert!(out.xml.contains("moved"), "{}", out.xml);
}

#[tokio::test]
async fn bad_requests_are_refused_before_anything_happens() {
    let a = side(1, PerformMode::Succeed);
    let err = a
        .mgr
        .begin3(&dom(), req(MigrateFlags(1 << 22)))
        .await
        .expect_err("unknown bit");
    assert_eq!(err.code(), ErrorCode::InvalidArg);
    let err = a
        .mgr
        .begin3(&dom(), req(MigrateFlags::OFFLINE))
        .await
        .expect_err("offline without persist");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    let err = a
        .mgr
        .begin3(&dom(), req(MigrateFlags::LIVE | MigrateFlags::COMPRESSED))
        .await
        .expect_err("unsupported by the fake");
    assert!(err.to_string().contains("COMPRESSED") && err.to_string().contains("Fake"));
    let params: Vec<_> = (0..65)
        .map(|i| TypedParam::new(format!("k{i}"), TypedValue::Int(i)))
        .collect();
    let list = TypedParams::from_received(params, usize::MAX).expect("unbounded here");
    assert_eq!(
        MigrateRequest::from_params(&list, 0)
            .expect_err("65 params")
            .code(),
        ErrorCode::Rpc
    );
    assert!(a.fake.calls().is_empty());
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
}

#[tokio::test]
async fn a_plain_migrate_gets_the_driver_default_live() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = req(MigrateFlags::CHANGE_PROTECTION);
    let (cookie, _, uri) = begin_prepare(&a, &b, &r).await;
    let mut preq = r;
    preq.uri = uri;
    a.mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect("perform");
    let flags = a.fake.log.lock().expect("log").perform_flags.clone();
    assert_eq!(flags.len(), 1);
    assert!(flags[0].contains(MigrateFlags::LIVE), "{:?}", flags[0]);
}

#[tokio::test]
async fn restart_after_perform_done_keeps_the_guest_held_until_resolved() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = protected();
    let (cookie, _dreq, uri) = begin_prepare(&a, &b, &r).await;
    let mut preq = r.clone();
    preq.uri = uri;
    a.mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect("perform");
    // The source daemon dies before Confirm; the destination before Finish.
    let a_dir = a.dir;
    let b_dir = b.dir;
    drop(a.mgr);
    drop(b.mgr);

    let fake = Fake::new(&a_dir, PerformMode::Succeed);
    let host = HostIdentity {
        hostname: "host1".into(),
        uuid: Uuid::from_u128(1),
    };
    let mgr = Manager::new(ManagerConfig::new(a_dir.path(), host), fake.clone()).expect("restart");
    let recovered = mgr.recover().await.expect("recover");
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        recovered[0].action,
        RecoveryAction::KeepPausedUntilPeerOutcome
    );
    assert!(
        mgr.registry().is_locked(&dom().uuid),
        "held guests stay locked"
    );
    assert_eq!(mgr.held().len(), 1);
    mgr.resolve(&dom(), false)
        .await
        .expect("operator: the peer does not run it");
    assert!(!mgr.registry().is_locked(&dom().uuid));
    assert!(mgr.held().is_empty());
    assert_eq!(
        fake.log.lock().expect("log").recovered,
        vec![
            RecoveryAction::KeepPausedUntilPeerOutcome,
            RecoveryAction::ResumeSource
        ]
    );
    assert!(
        mgr.recover().await.expect("again").is_empty(),
        "journal is clean"
    );

    let fake = Fake::new(&b_dir, PerformMode::Succeed);
    let host = HostIdentity {
        hostname: "host2".into(),
        uuid: Uuid::from_u128(2),
    };
    let mgr = Manager::new(ManagerConfig::new(b_dir.path(), host), fake.clone()).expect("restart");
    let recovered = mgr.recover().await.expect("recover");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].action, RecoveryAction::KillIncoming);
    assert!(!mgr.registry().is_locked(&dom().uuid));
    assert!(mgr.recover().await.expect("again").is_empty());
}

#[tokio::test]
async fn completion_timeout_aborts_or_pauses_to_finish() {
    for (action, ok) in [(TimeoutAction::Abort, false), (TimeoutAction::Pause, true)] {
        let (a, b) = (
            side(1, PerformMode::WaitForOperator),
            side(2, PerformMode::Succeed),
        );
        a.mgr
            .registry()
            .set_completion_timeout(&dom().uuid, Some((Duration::from_millis(50), action)));
        let r = protected();
        let (cookie, _, uri) = begin_prepare(&a, &b, &r).await;
        let mut preq = r;
        preq.uri = uri;
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            a.mgr.perform3(&dom(), preq, &cookie, None),
        )
        .await
        .expect("the timeout acted");
        match (result, ok) {
            (Ok(_), true) => {}
            (Err(err), false) => {
                assert_eq!(err.code(), ErrorCode::OperationAborted);
                assert!(
                    !a.mgr.registry().is_locked(&dom().uuid),
                    "failed perform ends the job"
                );
            }
            (other, _) => panic!("{action:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_source_abandoned_after_perform_can_be_resolved_by_an_operator() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r =
        req(MigrateFlags::LIVE | MigrateFlags::CHANGE_PROTECTION | MigrateFlags::UNDEFINE_SOURCE);
    let (cookie, _, uri) = begin_prepare(&a, &b, &r).await;
    let err = a
        .mgr
        .resolve(&dom(), true)
        .await
        .expect_err("not yet performed");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    let mut preq = r;
    preq.uri = uri;
    a.mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect("perform");
    let err = a.mgr.abort_job(&dom()).expect_err("too late to abort");
    assert_eq!(err.code(), ErrorCode::OperationInvalid);
    // The client vanished; the operator learns the destination runs the guest.
    a.mgr.resolve(&dom(), true).await.expect("resolved");
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(
        a.fake.log.lock().expect("log").recovered,
        vec![RecoveryAction::CompleteSourceCleanup]
    );
    assert_eq!(journal_files(&a), 0);
}

#[tokio::test]
async fn a_garbage_cookie_in_finish_cleans_up_the_incoming_guest() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = protected();
    let (_, dreq, _) = begin_prepare(&a, &b, &r).await;
    assert!(b.mgr.registry().is_locked(&dom().uuid));
    let err = b
        .mgr
        .finish3("g", dreq, b"junk\0", false)
        .await
        .expect_err("garbage");
    assert!(err.to_string().contains("migration cookie"), "{err}");
    assert!(
        !b.mgr.registry().is_locked(&dom().uuid),
        "no incoming job left"
    );
    assert_eq!(journal_files(&b), 0);
    let calls: Vec<_> = b.fake.calls().into_iter().map(|(step, _)| step).collect();
    assert_eq!(calls, vec!["prepare", "finish-cancelled"]);
}

#[tokio::test]
async fn a_bad_confirm_cookie_is_reported_but_the_guest_is_settled() {
    let (a, b) = (side(1, PerformMode::Succeed), side(2, PerformMode::Succeed));
    let r = protected();
    until_perform_done(&a, &b, &r).await;
    let mut big = vec![b'x'; MIGRATE_COOKIE_MAX + 1];
    big[MIGRATE_COOKIE_MAX] = 0;
    let err = a
        .mgr
        .confirm3(&dom(), r, &big, true)
        .await
        .expect_err("oversized cookie");
    assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(steps(&a)[1..], ["confirm-cancelled", "restore"]);
}

/// The steps `s`'s backend saw, in order.
fn steps(s: &Side) -> Vec<&'static str> {
    s.fake.calls().into_iter().map(|(step, _)| step).collect()
}

#[tokio::test]
async fn a_cancelled_or_failed_migration_restores_a_guest_that_ran_at_begin() {
    let (a, b) = (
        side(1, PerformMode::WaitForOperator),
        side(2, PerformMode::Succeed),
    );
    let r = protected();
    // Confirm cancelled after Begin: the guest ran then, so it runs again
    // (the backend resumes whatever paused it since).
    a.mgr.begin3(&dom(), r.clone()).await.expect("begin");
    a.mgr
        .confirm3(&dom(), r.clone(), &[], true)
        .await
        .expect("cancel");
    assert_eq!(steps(&a), ["confirm-cancelled", "restore"]);
    // Paused when the job began: it stays as it is.
    a.fake.paused.store(true, Ordering::SeqCst);
    a.mgr.begin3(&dom(), r.clone()).await.expect("begin");
    a.mgr
        .confirm3(&dom(), r.clone(), &[], true)
        .await
        .expect("cancel");
    assert_eq!(steps(&a)[2..], ["confirm-cancelled"]);
    a.fake.paused.store(false, Ordering::SeqCst);
    // The client gone after Begin: libvirt only forgets the job.
    a.mgr.begin3(&dom(), r.clone()).await.expect("begin");
    let job = a.mgr.registry().get(&dom().uuid).expect("job").job_id();
    a.mgr.caller_gone(&dom(), job);
    assert!(!a.mgr.registry().is_locked(&dom().uuid));
    assert_eq!(steps(&a).len(), 3, "{:?}", steps(&a));
    // A failed Perform (aborted by its completion timeout): restored.
    a.mgr.registry().set_completion_timeout(
        &dom().uuid,
        Some((Duration::from_millis(50), TimeoutAction::Abort)),
    );
    let (cookie, _, uri) = begin_prepare(&a, &b, &r).await;
    let mut preq = r.clone();
    preq.uri = uri;
    let err = a
        .mgr
        .perform3(&dom(), preq, &cookie, None)
        .await
        .expect_err("aborted");
    assert_eq!(err.code(), ErrorCode::OperationAborted);
    assert_eq!(steps(&a)[3..], ["perform", "restore"]);
    // Offline: the guest was never touched.
    let offline = req(MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST);
    a.mgr
        .confirm3(&dom(), offline, &[], true)
        .await
        .expect("offline cancel");
    assert_eq!(steps(&a)[5..], ["confirm-cancelled"]);
}
