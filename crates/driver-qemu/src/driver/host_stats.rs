//! Disk and network figures that come from the host rather than QEMU: the
//! sizes of an image file, and a tap device's counters in `/proc/net/dev`.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use migrated_core::domain::{BlockInfo, InterfaceStats};
use migrated_core::{Error, Result};

/// The first bytes of a qcow2 image.
const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// Sizes of the image file at `path` (of a disk whose QEMU is not running):
/// a raw image is as large as the guest sees it, a qcow2 image says its
/// virtual size in its header (bytes 24-31, big-endian); the allocation is
/// the file's blocks in use.
///
/// # Errors
/// `VIR_ERR_SYSTEM_ERROR` when the file cannot be read, `VIR_ERR_INTERNAL_ERROR`
/// for a qcow2 file without a valid header.
pub(super) fn image_file_info(path: &Path, format: &str) -> Result<BlockInfo> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::system(format!("stat {}", path.display()), e))?;
    let physical = meta.len();
    let capacity = if format == "qcow2" {
        let header = read_prefix(path, 32)?;
        qcow2_virtual_size(&header)
            .ok_or_else(|| Error::internal(format!("{} is not a qcow2 image", path.display())))?
    } else {
        physical
    };
    Ok(BlockInfo {
        capacity,
        allocation: meta.blocks().saturating_mul(512),
        physical,
    })
}

fn read_prefix(path: &Path, len: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut header = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(len).read_to_end(&mut header))
        .map_err(|e| Error::system(format!("read {}", path.display()), e))?;
    Ok(header)
}

/// The virtual size a qcow2 header declares.
fn qcow2_virtual_size(header: &[u8]) -> Option<u64> {
    if header.get(..4)? != QCOW2_MAGIC {
        return None;
    }
    let size: [u8; 8] = header.get(24..32)?.try_into().ok()?;
    Some(u64::from_be_bytes(size))
}

/// The counters of host interface `ifname` in `/proc/net/dev`.
///
/// # Errors
/// `VIR_ERR_INTERNAL_ERROR` "Interface name not provided" without a host
/// device (QEMU's user networking), "/proc/net/dev: Interface not found"
/// when it is not there, as libvirt's `virNetDevTapInterfaceStats`.
pub(super) fn tap_stats(ifname: Option<&str>) -> Result<InterfaceStats> {
    let ifname = ifname.ok_or_else(|| Error::internal("Interface name not provided"))?;
    let text = std::fs::read_to_string("/proc/net/dev")
        .map_err(|e| Error::system("open /proc/net/dev", e))?;
    // A tap device's receive side is the guest's transmit side.
    parse_net_dev(&text, ifname, true)
        .ok_or_else(|| Error::internal("/proc/net/dev: Interface not found"))
}

/// `ifname`'s line of `/proc/net/dev` (`name: rx_bytes rx_packets rx_errs
/// rx_drop fifo frame compressed multicast tx_bytes tx_packets tx_errs
/// tx_drop ...`), receive and transmit exchanged when `swapped`.
fn parse_net_dev(text: &str, ifname: &str, swapped: bool) -> Option<InterfaceStats> {
    let fields = text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        (name.trim() == ifname).then_some(rest)
    })?;
    let v: Vec<i64> = fields
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    let (rx, tx) = (v.get(0..4)?, v.get(8..12)?);
    let (guest_rx, guest_tx) = if swapped { (tx, rx) } else { (rx, tx) };
    Some(InterfaceStats {
        rx_bytes: guest_rx[0],
        rx_packets: guest_rx[1],
        rx_errs: guest_rx[2],
        rx_drop: guest_rx[3],
        tx_bytes: guest_tx[0],
        tx_packets: guest_tx[1],
        tx_errs: guest_tx[2],
        tx_drop: guest_tx[3],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
 tap0:     500       5    1    2    0     0          0         0     9000      90    3    4    0     0       0          0
";

    #[test]
    fn a_tap_devices_counters_are_the_guests_swapped() {
        let s = parse_net_dev(NET_DEV, "tap0", true).expect("tap0");
        assert_eq!(
            s,
            InterfaceStats {
                rx_bytes: 9000,
                rx_packets: 90,
                rx_errs: 3,
                rx_drop: 4,
                tx_bytes: 500,
                tx_packets: 5,
                tx_errs: 1,
                tx_drop: 2,
            }
        );
        let host = parse_net_dev(NET_DEV, "tap0", false).expect("tap0");
        assert_eq!((host.rx_bytes, host.tx_bytes), (500, 9000));
        assert_eq!(parse_net_dev(NET_DEV, "tap1", true), None);
        assert_eq!(parse_net_dev(NET_DEV, "ta", true), None);
    }

    #[test]
    fn user_networking_has_no_host_device() {
        let err = tap_stats(None).expect_err("no device");
        assert_eq!(
            err.to_string(),
            "internal error: Interface name not provided"
        );
    }

    #[test]
    fn image_sizes_of_raw_and_qcow2_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let raw = dir.path().join("a.raw");
        std::fs::write(&raw, vec![1_u8; 8192]).expect("write");
        let info = image_file_info(&raw, "raw").expect("raw");
        assert_eq!((info.capacity, info.physical), (8192, 8192));
        let qcow2 = dir.path().join("a.qcow2");
        let mut header = QCOW2_MAGIC.to_vec();
        header.extend([0, 0, 0, 3]);
        header.resize(24, 0);
        header.extend((1_u64 << 30).to_be_bytes());
        std::fs::write(&qcow2, &header).expect("write");
        let info = image_file_info(&qcow2, "qcow2").expect("qcow2");
        assert_eq!((info.capacity, info.physical), (1 << 30, 32));
        assert!(image_file_info(&raw, "qcow2").is_err(), "not qcow2");
    }
}
