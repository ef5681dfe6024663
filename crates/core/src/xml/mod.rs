//! The domain XML model: parse and format libvirt-style `<domain>` documents.
//!
//! This sits in the "calls" layer and knows nothing of the wire. Parsing goes
//! in two steps: `tree` builds a bounded element tree (size, depth, no DTD or
//! entities), then the typed model reads it strictly — every element and
//! attribute it does not know is an error naming its path, so configuration
//! is never dropped silently. Formatting writes libvirt's layout; for any
//! accepted input `parse(format(parse(x))) == parse(x)`.
//!
//! Host-only details (`<metadata>`, foreign-namespace extension elements such
//! as `<qemu:commandline>`) are kept verbatim.

mod blkiotune;
mod devices;
mod domain;
mod error;
mod kinds;
mod memtune;
mod metadata;
mod numatune;
mod perf;
mod platform;
mod read;
mod snapshot;
mod tree;
mod units;
mod vcpus;
mod write;
pub(crate) use write::escape;

pub use blkiotune::{BlkioDevice, BlkioTune};
pub use devices::{
    Address, Audio, BackingStore, Bandwidth, BandwidthRate, BlockIoTune, CharDevice, CharSource,
    CharTarget, Controller, DeviceDef, DeviceInfo, Devices, Disk, DiskDriver, DiskSource,
    DiskTarget, Graphics, GraphicsListen, Input, Interface, InterfaceSource, Memballoon, Redirdev,
    Rng, Sound, Tpm, Video, VideoModel, Watchdog, GROUP_AT, GROUP_NAME, IOTUNE_LIMITS,
};
pub use domain::{check_name, DomainDef, MaxMemory, Vcpu};
pub use error::{Position, XmlError};
pub use kinds::{
    CharType, DiskDevice, DiskType, DomainType, GraphicsType, InterfaceType, UnknownKind,
};
pub use memtune::MemTune;
pub use metadata::{metadata_change, metadata_read, MetadataTarget};
pub use numatune::{NumaMemory, NumaTune, NUMA_MODES};
pub use perf::{Perf, PERF_EVENTS};
pub use platform::{
    BootMenu, Clock, Cpu, CpuFeature, CpuModel, Feature, FirmwareFeature, Loader, Nvram, Os, Pm,
    SecLabel, Timer,
};
pub use snapshot::{
    SnapshotDef, SnapshotDisk, SnapshotLocation, SnapshotMemory, SnapshotParse, SnapshotState,
};
pub use vcpus::VcpuSlot;

/// The largest domain XML accepted (4 MiB), as libvirt's RPC string bound.
pub const MAX_XML_BYTES: usize = 4 * 1024 * 1024;

/// The deepest element nesting accepted; real domain XML stays under ten.
pub const MAX_XML_DEPTH: usize = 64;

/// The most attributes one element may carry; libvirt's widest element has
/// about a dozen.
pub const MAX_XML_ATTRIBUTES: usize = 256;

/// How [`DomainDef::format`] renders a definition; mirrors the
/// `VIR_DOMAIN_XML_*` flags of `virDomainGetXMLDesc`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FormatOptions {
    /// Include secrets (graphics passwords): `VIR_DOMAIN_XML_SECURE`.
    pub secure: bool,
    /// Omit state that exists only while the guest runs (`id`, generated
    /// aliases, pty paths, chain indexes, dynamic labels): `VIR_DOMAIN_XML_INACTIVE`.
    pub inactive: bool,
    /// Produce XML for a migration destination: omits the runtime `id` but keeps
    /// device aliases, which QEMU's migration stream identifies devices by:
    /// `VIR_DOMAIN_XML_MIGRATABLE`.
    pub migratable: bool,
}

/// Parses `xml`, checks that its root is `<root>` and reads each child
/// element with `read` (given the element and the whole input its spans
/// index): the wrapper documents drivers store lists in.
pub(crate) fn tree_children<T>(
    xml: &str,
    root: &str,
    mut read: impl FnMut(&tree::Element, &str) -> Result<T, XmlError>,
) -> Result<Vec<T>, XmlError> {
    let top = tree::parse(xml)?;
    if top.name != root {
        return Err(XmlError::UnsupportedElement {
            path: top.name.clone(),
        });
    }
    top.children.iter().map(|c| read(c, xml)).collect()
}
