//! The support table and the trait agree: every operation the table
//! declares is implemented (never `VIR_ERR_NO_SUPPORT`), every other one
//! answers `VIR_ERR_NO_SUPPORT`. Needs no QEMU: calls that would need a
//! guest fail with "no domain", which is not "no support".

use migrated_core::domain::{DomainRef, HostIdentity};
use migrated_core::driver::Operation;
use migrated_core::error::ErrorCode;
use migrated_core::support::probe::probe;
use migrated_driver_qemu::{QemuConfig, QemuDriver, SUPPORT};
use uuid::Uuid;

#[tokio::test]
async fn declared_operations_are_implemented_and_the_rest_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = HostIdentity {
        hostname: "h".into(),
        uuid: Uuid::new_v4(),
    };
    let driver = QemuDriver::open(
        QemuConfig::new(dir.path().join("s"), dir.path().join("r")),
        host,
    )
    .await
    .expect("open");
    // A domain this driver does not have: calls it implements fail with
    // "no domain", which is not "no support".
    let dom = DomainRef {
        name: "nobody".into(),
        uuid: Uuid::new_v4(),
        id: -1,
    };
    let xml = "<domain type='qemu'><name>x</name><memory>1024</memory></domain>";
    for &op in Operation::ALL {
        let code = probe(&driver, &dom, xml, op).await;
        if SUPPORT.implements_operation(op) {
            assert_ne!(
                code,
                Some(ErrorCode::NoSupport),
                "{op} is declared but not implemented"
            );
        } else {
            assert_eq!(
                code,
                Some(ErrorCode::NoSupport),
                "{op} is implemented but not declared"
            );
        }
    }
}
