//! The sequencer over scripted endpoints: every row of the failure table,
//! the flags each side receives, protocol negotiation and error precedence.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::flags::MigrateFlags;
use migrated_core::migration::MigrateRequest;
use migrated_rpc::WireError;
use uuid::Uuid;

use super::*;
use crate::endpoint::{BeginOut, FinishOut, PrepareOut};
use crate::migrate_tunnel::TunnelSink;

/// What both fake endpoints write to, in call order.
type Log = Arc<Mutex<Vec<String>>>;

#[derive(Default, Clone)]
struct Script {
    features: HashSet<i32>,
    fail: HashSet<&'static str>,
    paused: bool,
    uri_out: Option<String>,
    /// (code, domain) of the injected failures.
    error: Option<(i32, i32)>,
}

struct Fake {
    name: &'static str,
    log: Log,
    script: Script,
}

impl Fake {
    fn record(&self, what: String) {
        self.log
            .lock()
            .expect("log")
            .push(format!("{}:{what}", self.name));
    }

    fn outcome(&self, step: &'static str) -> Result<()> {
        if !self.script.fail.contains(step) {
            return Ok(());
        }
        let (code, domain) = self.script.error.unwrap_or((1, 20));
        Err(Error::from_wire(
            step,
            WireError::new(code, domain, format!("{step} failed on {}", self.name)),
        ))
    }
}

#[async_trait]
impl Endpoint for Fake {
    fn describe(&self) -> String {
        self.name.into()
    }

    async fn supports_feature(&self, feature: i32) -> Result<bool> {
        Ok(self.script.features.contains(&feature))
    }

    async fn begin3(&self, p: Protocol, _: &DomainRef, req: &MigrateRequest) -> Result<BeginOut> {
        self.record(format!("begin {p:?} flags={:#x}", req.flags.bits()));
        self.outcome("begin")?;
        Ok(BeginOut {
            cookie: b"A".to_vec(),
            xml: "<domain/>".into(),
        })
    }

    async fn get_state(&self, _: Protocol, _: &DomainRef) -> Result<DomainState> {
        self.record("state".into());
        Ok(if self.script.paused {
            DomainState::Paused
        } else {
            DomainState::Running
        })
    }

    async fn perform3(
        &self,
        _: Protocol,
        _: &DomainRef,
        req: &MigrateRequest,
        cookie: &[u8],
        _: DataTarget,
    ) -> Result<Vec<u8>> {
        self.record(format!(
            "perform flags={:#x} uri={} cookie={}",
            req.flags.bits(),
            req.uri.as_deref().unwrap_or("-"),
            String::from_utf8_lossy(cookie)
        ));
        self.outcome("perform")?;
        Ok(b"C".to_vec())
    }

    async fn confirm3(
        &self,
        _: Protocol,
        _: &DomainRef,
        _: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<()> {
        self.record(format!(
            "confirm cancelled={} cookie={}",
            u8::from(cancelled),
            String::from_utf8_lossy(cookie)
        ));
        self.outcome("confirm")
    }

    async fn prepare3(
        &self,
        _: Protocol,
        req: &MigrateRequest,
        cookie: &[u8],
    ) -> Result<PrepareOut> {
        self.record(format!(
            "prepare flags={:#x} xml={} cookie={}",
            req.flags.bits(),
            req.dest_xml.as_deref().unwrap_or("-"),
            String::from_utf8_lossy(cookie)
        ));
        self.outcome("prepare")?;
        Ok(PrepareOut {
            cookie: b"B".to_vec(),
            uri_out: self.script.uri_out.clone(),
        })
    }

    async fn prepare_tunnel3(
        &self,
        _: Protocol,
        _: &MigrateRequest,
        _: &[u8],
    ) -> Result<(Vec<u8>, TunnelSink)> {
        self.record("prepare_tunnel".into());
        Err(migrated_core::Error::internal("no tunnel in this fake").into())
    }

    async fn finish3(
        &self,
        _: Protocol,
        dname: &str,
        req: &MigrateRequest,
        cookie: &[u8],
        cancelled: bool,
    ) -> Result<FinishOut> {
        self.record(format!(
            "finish {dname} cancelled={} flags={:#x} cookie={}",
            u8::from(cancelled),
            req.flags.bits(),
            String::from_utf8_lossy(cookie)
        ));
        self.outcome("finish")?;
        if cancelled {
            return Err(migrated_core::Error::MigrateFinishOk.into());
        }
        Ok(FinishOut {
            dom: DomainRef {
                name: dname.into(),
                uuid: Uuid::nil(),
                id: 7,
            },
            cookie: b"D".to_vec(),
        })
    }
}

const ALL: [i32; 4] = [
    feature::MIGRATION_PARAMS,
    feature::MIGRATION_V3,
    feature::MIGRATE_CHANGE_PROTECTION,
    feature::MIGRATION_OFFLINE,
];

fn pair(src: Script, dst: Script) -> (Fake, Fake, Log) {
    let log = Log::default();
    (
        Fake {
            name: "S",
            log: log.clone(),
            script: src,
        },
        Fake {
            name: "D",
            log: log.clone(),
            script: dst,
        },
        log,
    )
}

fn script(fail: &[&'static str]) -> Script {
    Script {
        features: ALL.into_iter().collect(),
        fail: fail.iter().copied().collect(),
        uri_out: Some("tcp:127.0.0.1:49152".into()),
        ..Script::default()
    }
}

fn dom() -> DomainRef {
    DomainRef {
        name: "g".into(),
        uuid: Uuid::nil(),
        id: 1,
    }
}

fn live() -> MigrateRequest {
    MigrateRequest {
        flags: MigrateFlags::LIVE,
        ..MigrateRequest::default()
    }
}

async fn run(src: Script, dst: Script, req: MigrateRequest) -> (Result<DomainRef>, Vec<String>) {
    let (s, d, log) = pair(src, dst);
    let r = migrate(&s, &d, &dom(), req).await;
    let calls = log.lock().expect("log").clone();
    (r, calls)
}

#[tokio::test]
async fn success_sends_the_five_steps_with_cookies_relayed() {
    let (r, calls) = run(script(&[]), script(&[]), live()).await;
    assert_eq!(r.expect("migrated").name, "g");
    assert_eq!(
        calls,
        [
            "S:begin V3Params flags=0x101",
            "S:state",
            "D:prepare flags=0x1 xml=<domain/> cookie=A",
            "S:perform flags=0x101 uri=tcp:127.0.0.1:49152 cookie=B",
            "D:finish g cancelled=0 flags=0x1 cookie=C",
            "S:confirm cancelled=0 cookie=D",
        ]
    );
}

#[tokio::test]
async fn prepare_failure_with_protection_confirms_cancelled_only() {
    let (r, calls) = run(script(&[]), script(&["prepare"]), live()).await;
    assert!(r
        .expect_err("fails")
        .to_string()
        .contains("prepare failed on D"));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("S:confirm cancelled=1 cookie=A")
    );
    assert!(!calls
        .iter()
        .any(|c| c.starts_with("D:finish") || c.starts_with("S:perform")));
}

#[tokio::test]
async fn prepare_failure_without_protection_sends_nothing_more() {
    let mut src = script(&[]);
    src.features.remove(&feature::MIGRATE_CHANGE_PROTECTION);
    let (r, calls) = run(src, script(&["prepare"]), live()).await;
    assert!(r.is_err());
    assert_eq!(
        calls.last().map(String::as_str),
        Some("D:prepare flags=0x1 xml=<domain/> cookie=A")
    );
    assert!(
        calls[0].ends_with("flags=0x1"),
        "no protection flag: {calls:?}"
    );
}

#[tokio::test]
async fn no_uri_anywhere_cancels_finish_and_confirm() {
    let mut dst = script(&[]);
    dst.uri_out = None;
    let (r, calls) = run(script(&[]), dst, live()).await;
    let err = r.expect_err("no uri");
    assert_eq!(err.libvirt_code(), Some((1, 20)), "{err}");
    assert!(err.to_string().contains("did not set uri"));
    assert!(calls.contains(&"D:finish g cancelled=1 flags=0x1 cookie=B".to_owned()));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("S:confirm cancelled=1 cookie=")
    );
    assert!(!calls.iter().any(|c| c.starts_with("S:perform")));
}

#[tokio::test]
async fn perform_failure_cancels_finish_and_skips_confirm() {
    let (r, calls) = run(script(&["perform"]), script(&[]), live()).await;
    assert!(r
        .expect_err("fails")
        .to_string()
        .contains("perform failed on S"));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("D:finish g cancelled=1 flags=0x1 cookie=B")
    );
    assert!(!calls.iter().any(|c| c.starts_with("S:confirm")));
}

#[tokio::test]
async fn finish_failure_confirms_cancelled_and_reports_finish() {
    let (r, calls) = run(script(&[]), script(&["finish"]), live()).await;
    assert!(r
        .expect_err("fails")
        .to_string()
        .contains("finish failed on D"));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("S:confirm cancelled=1 cookie=")
    );
}

#[tokio::test]
async fn begin_failure_sends_nothing_else() {
    let (r, calls) = run(script(&["begin"]), script(&[]), live()).await;
    assert!(r.is_err());
    assert_eq!(calls, ["S:begin V3Params flags=0x101"]);
}

#[tokio::test]
async fn confirm_failure_is_only_logged() {
    let (r, _) = run(script(&["confirm"]), script(&[]), live()).await;
    assert_eq!(r.expect("finish decided").id, 7);
}

#[tokio::test]
async fn offline_skips_perform_and_finishes_uncancelled() {
    let req = MigrateRequest {
        flags: MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST,
        ..MigrateRequest::default()
    };
    let (r, calls) = run(script(&[]), script(&[]), req).await;
    assert!(r.is_ok());
    assert!(!calls.iter().any(|c| c.starts_with("S:perform")));
    assert!(calls
        .iter()
        .any(|c| c.starts_with("D:finish g cancelled=0")));
    assert_eq!(
        calls.last().map(String::as_str),
        Some("S:confirm cancelled=0 cookie=D")
    );
}

#[tokio::test]
async fn offline_needs_the_feature_on_both_sides() {
    let mut dst = script(&[]);
    dst.features.remove(&feature::MIGRATION_OFFLINE);
    let req = MigrateRequest {
        flags: MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST,
        ..MigrateRequest::default()
    };
    let (r, calls) = run(script(&[]), dst, req).await;
    let err = r.expect_err("refused");
    assert_eq!(err.libvirt_code().map(|c| c.0), Some(74), "{err}");
    assert!(calls.is_empty());
}

#[tokio::test]
async fn a_paused_guest_stays_paused_and_destination_flags_are_stripped() {
    let mut src = script(&[]);
    src.paused = true;
    let req = MigrateRequest {
        flags: MigrateFlags::LIVE | MigrateFlags::AUTO_CONVERGE | MigrateFlags::ABORT_ON_ERROR,
        ..MigrateRequest::default()
    };
    let (r, calls) = run(src, script(&[]), req).await;
    assert!(r.is_ok());
    // source: LIVE|PAUSED|CHANGE_PROTECTION|ABORT_ON_ERROR|AUTO_CONVERGE
    assert!(calls.contains(&"S:perform flags=0x3121 uri=tcp:127.0.0.1:49152 cookie=B".to_owned()));
    // destination: LIVE|PAUSED only
    assert!(calls.contains(&"D:prepare flags=0x21 xml=<domain/> cookie=A".to_owned()));
}

#[tokio::test]
async fn dname_names_the_guest_in_finish() {
    let req = MigrateRequest {
        flags: MigrateFlags::LIVE,
        dname: Some("renamed".into()),
        ..MigrateRequest::default()
    };
    let (r, calls) = run(script(&[]), script(&[]), req).await;
    assert_eq!(r.expect("ok").name, "renamed");
    assert!(calls
        .iter()
        .any(|c| c.starts_with("D:finish renamed cancelled=0")));
}

#[tokio::test]
async fn protocol_falls_back_by_features() {
    let mut dst = script(&[]);
    dst.features.remove(&feature::MIGRATION_PARAMS);
    let (r, calls) = run(script(&[]), dst.clone(), live()).await;
    assert!(r.is_ok());
    assert_eq!(calls[0], "S:begin V3 flags=0x101");

    dst.features.remove(&feature::MIGRATION_V3);
    dst.features.insert(feature::MIGRATION_V2);
    let mut src = script(&[]);
    src.features.insert(feature::MIGRATION_V2);
    let (r, calls) = run(src, dst.clone(), live()).await;
    assert!(r.is_ok());
    assert_eq!(
        calls[0], "S:begin V2 flags=0x1",
        "v2 has no change protection"
    );

    dst.features.clear();
    let (r, calls) = run(script(&[]), dst, live()).await;
    assert_eq!(
        r.expect_err("nothing shared").libvirt_code().map(|c| c.0),
        Some(3)
    );
    assert!(calls.is_empty());
}

#[tokio::test]
async fn legacy_protocols_refuse_parameters_they_cannot_carry() {
    let mut dst = script(&[]);
    dst.features.remove(&feature::MIGRATION_PARAMS);
    let req = MigrateRequest {
        flags: MigrateFlags::LIVE,
        listen_address: Some("127.0.0.1".into()),
        ..MigrateRequest::default()
    };
    let (r, calls) = run(script(&[]), dst, req).await;
    let err = r.expect_err("refused");
    assert_eq!(err.libvirt_code().map(|c| c.0), Some(74));
    assert!(err.to_string().contains("listen_address"), "{err}");
    assert!(calls.is_empty());
}

#[tokio::test]
async fn finish_error_replaces_a_failed_perform_only_from_the_hypervisor() {
    // Perform: OPERATION_FAILED from QEMU; Finish: INTERNAL_ERROR from QEMU → Finish wins.
    let mut src = script(&["perform"]);
    src.error = Some((9, 10));
    let mut dst = script(&["finish"]);
    dst.error = Some((1, 10));
    let (r, _) = run(src.clone(), dst, live()).await;
    assert!(r.expect_err("fails").to_string().contains("finish failed"));

    // Finish answering MIGRATE_FINISH_OK (the normal reply to cancelled=1) never wins.
    let (r, _) = run(src, script(&[]), live()).await;
    assert!(r.expect_err("fails").to_string().contains("perform failed"));
}

#[test]
fn failure_rule_matches_the_documented_table() {
    use FailurePoint as F;
    let row = |p, prot| {
        let c = cleanup_after(p, prot);
        (c.finish, c.confirm)
    };
    for prot in [false, true] {
        assert_eq!(row(F::Begin, prot), (None, None));
        assert_eq!(row(F::NoUri, prot), (Some(true), Some(true)));
        assert_eq!(row(F::Perform, prot), (Some(true), None));
        assert_eq!(row(F::Finish, prot), (Some(false), Some(true)));
        assert_eq!(row(F::None, prot), (Some(false), Some(false)));
    }
    assert_eq!(row(F::Prepare, true), (None, Some(true)));
    assert_eq!(row(F::Prepare, false), (None, None));
}

#[tokio::test]
async fn the_timeline_lists_the_steps_sent() {
    let (s, d, _) = pair(script(&[]), script(&[]));
    let mut timeline = Timeline::new();
    migrate_timed(&s, &d, &dom(), live(), &mut timeline)
        .await
        .expect("ok");
    let steps: Vec<_> = timeline.iter().map(|t| t.step).collect();
    assert_eq!(steps, ["begin", "prepare", "perform", "finish", "confirm"]);
}
