//! The support table must tell the truth: every procedure it declares is
//! answered by a real implementation, every procedure it leaves out answers
//! `VIR_ERR_NO_SUPPORT`.

use migrated_core::domain::HostIdentity;
use migrated_core::driver::Driver;
use migrated_core::error::ErrorCode;
use migrated_core::support::probe::probe;
use migrated_core::support::PROCEDURE_OPERATIONS;
use migrated_driver_test::{TestDriver, SUPPORT};
use uuid::Uuid;

const XML: &str = "<domain type='test'><name>probe</name>\
                   <memory unit='MiB'>1</memory><os><type>hvm</type></os></domain>";

#[tokio::test]
async fn support_table_matches_real_behaviour() {
    let mut mismatches = Vec::new();
    for &(procedure, op) in PROCEDURE_OPERATIONS {
        // A fresh driver per probe, with one defined guest to act on, so that
        // one probe's side effects cannot change another's answer.
        let dir = tempfile::tempdir().expect("tempdir");
        let drv = TestDriver::new(
            dir.path(),
            HostIdentity {
                hostname: "probe".into(),
                uuid: Uuid::new_v4(),
            },
        )
        .expect("driver opens");
        let other = "<domain type='test'><name>target</name>\
                     <memory unit='MiB'>1</memory><os><type>hvm</type></os></domain>";
        let dom = drv.define_xml(other, 0).await.expect("define probe target");

        let declared = SUPPORT.implements(procedure);
        let unsupported = probe(&drv, &dom, XML, op).await == Some(ErrorCode::NoSupport);
        if declared == unsupported {
            mismatches.push(format!(
                "{procedure:?} ({op}): declared={declared}, answers NO_SUPPORT={unsupported}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "support table is wrong:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn support_table_declares_each_procedure_once_with_a_version() {
    let mut seen = Vec::new();
    for (procedure, since) in SUPPORT.procedures {
        assert!(!seen.contains(procedure), "{procedure:?} declared twice");
        seen.push(*procedure);
        let parts: Vec<_> = since.split('.').collect();
        assert!(
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "{procedure:?} has a malformed since-version {since:?}"
        );
    }
}

#[test]
fn migration_defaults_are_supported_flags() {
    let defaults = SUPPORT.defaults.flags;
    assert_eq!(defaults & !SUPPORT.migration_flags, 0);
}
