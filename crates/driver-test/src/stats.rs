//! The fictional disk and network figures of a running test guest, as
//! libvirt's test driver makes them: derived from the wall clock, so they
//! grow between calls and mean nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use migrated_core::domain::{BlockInfo, BlockStats, InterfaceStats};

/// Microseconds and seconds since the epoch.
fn now() -> (i64, i64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let micros = i64::try_from(since.as_micros()).unwrap_or(i64::MAX);
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    (micros, secs)
}

/// `DOMAIN_BLOCK_STATS` of any disk (libvirt's `testDomainBlockStats`).
pub(crate) fn block() -> BlockStats {
    let (base, secs) = now();
    BlockStats {
        rd_req: Some(base / 10),
        rd_bytes: Some(base / 20),
        wr_req: Some(base / 30),
        wr_bytes: Some(base / 40),
        errs: Some(secs / 2),
        ..BlockStats::default()
    }
}

/// `DOMAIN_GET_BLOCK_INFO` of any disk, running or not (libvirt's
/// `testDomainGetBlockInfo`: a fixed terabyte, a little of it unused).
pub(crate) const BLOCK_INFO: BlockInfo = BlockInfo {
    capacity: 1_099_506_450_432,
    allocation: 1 << 40,
    physical: 1 << 40,
};

/// `DOMAIN_INTERFACE_STATS` of any interface (libvirt's
/// `testDomainInterfaceStats`).
pub(crate) fn interface() -> InterfaceStats {
    let (base, secs) = now();
    InterfaceStats {
        rx_bytes: base / 10,
        rx_packets: base / 100,
        rx_errs: secs,
        rx_drop: secs / 2,
        tx_bytes: base / 20,
        tx_packets: base / 110,
        tx_errs: secs / 3,
        tx_drop: secs / 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_positive_and_in_libvirts_proportions() {
        let b = block();
        let (rd, wr) = (b.rd_req.unwrap_or(0), b.wr_req.unwrap_or(0));
        assert!(rd > wr && wr > 0, "{b:?}");
        assert_eq!(b.flush_req, None);
        let i = interface();
        assert!(i.rx_bytes > i.tx_bytes && i.tx_packets > 0, "{i:?}");
    }
}
