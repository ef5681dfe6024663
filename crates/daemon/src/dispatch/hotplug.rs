//! Device hot-plug (`virsh attach-device` / `detach-device` /
//! `update-device`, and `attach-disk`, `attach-interface`, `detach-disk`,
//! `detach-interface`, which virsh composes from device XML):
//! DOMAIN_ATTACH_DEVICE(_FLAGS), DOMAIN_DETACH_DEVICE(_FLAGS) and
//! DOMAIN_UPDATE_DEVICE_FLAGS. The flagless forms are the live change, as
//! libvirt's `virDomainAttachDevice` / `virDomainDetachDevice`.

use migrated_core::flags::affect;
use migrated_core::hotplug::Change;
use migrated_proto::NonnullDomain;
use migrated_rpc::WireError;

use super::from_wire_dom;
use crate::handler::Session;
use crate::wire::to_wire_error;

type Result<T> = std::result::Result<T, WireError>;

/// The flags of the flagless forms (`virDomainAttachDevice`).
pub const FLAGLESS: u32 = affect::LIVE;

/// Runs `change` of `xml` on `dom` with `flags`.
///
/// # Errors
/// The driver's: NO_SUPPORT, OPERATION_INVALID (an inactive guest with
/// --live, a transient one with --config, a target in use), DEVICE_MISSING,
/// OPERATION_UNSUPPORTED (a device kind or change the driver cannot make),
/// XML_ERROR.
pub async fn run(
    session: &Session,
    change: Change,
    dom: &NonnullDomain,
    xml: &str,
    flags: u32,
) -> Result<()> {
    let driver = session.driver()?.driver;
    let dom = from_wire_dom(dom);
    match change {
        Change::Attach => driver.attach_device(&dom, xml, flags).await,
        Change::Detach => driver.detach_device(&dom, xml, flags).await,
        Change::Update => driver.update_device(&dom, xml, flags).await,
    }
    .map_err(|e| to_wire_error(&e))
}
