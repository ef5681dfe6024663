//! The guest ABI libvirt pins when a domain is defined (its QEMU driver's
//! post-parse and `qemuDomainAssignAddresses`): the emulator path, the
//! machine type canonicalised (`pc` → `pc-i440fx-7.2`), the implicit
//! devices made explicit and a PCI address for every PCI device. A
//! definition completed once keeps its virtual hardware: the next boot, a
//! restore and a migration destination build exactly the same device set.

use std::path::Path;

use migrated_core::xml::DomainDef;
use migrated_core::Result;

use super::domcaps;
use crate::command::find_emulator;
use crate::spec::pci;

/// Completes `def` (a definition being defined or created) as libvirt
/// does; what the XML already fixes is kept.
///
/// # Errors
/// A missing emulator, a machine type the emulator does not know
/// (`VIR_ERR_CONFIG_UNSUPPORTED`), an invalid or doubly used PCI address
/// (`VIR_ERR_XML_ERROR`, libvirt's words); `def` is then unchanged.
pub(super) async fn complete(def: &mut DomainDef, op: &'static str) -> Result<()> {
    let emulator = find_emulator(def.devices.emulator.as_deref().map(Path::new))
        .map_err(|e| e.into_core(op))?;
    let machine = domcaps::canonical_machine(&emulator, def.os.machine.as_deref())
        .await
        .map_err(|e| e.into_core(op))?;
    let mut done = def.clone();
    if done.devices.emulator.is_none() {
        done.devices.emulator = Some(emulator.to_string_lossy().into_owned());
    }
    if let Some(machine) = machine {
        done.os.machine = Some(machine);
    }
    pci::add_implicit_devices(&mut done);
    pci::assign(&mut done).map_err(|e| e.into_core(op))?;
    *def = done;
    Ok(())
}
