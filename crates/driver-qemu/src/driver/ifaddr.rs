//! `virsh domifaddr` on QEMU guests, as libvirt's QEMU driver
//! (`qemuDomainInterfaceAddresses`): from the guest agent (which this
//! driver never connects to: libvirt's agent errors), from the host's ARP
//! table (each interface with a host device whose MAC address it lists),
//! or from DHCP leases, which only libvirt networks hand out: this driver
//! runs no interface on one, so there are none.

use migrated_core::domain::DomainRef;
use migrated_core::flags::check_flags;
use migrated_core::tune::ifaddr::{self, InterfaceAddresses, IpAddress};
use migrated_core::{Error, Result};

use super::QemuDriver;

/// The host's IPv4 neighbour table.
const ARP_TABLE: &str = "/proc/net/arp";

/// `(address, MAC)` of each complete entry of `/proc/net/arp` text.
fn arp_entries(table: &str) -> Vec<(String, String)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (ip, flags, mac) = (cols.first()?, cols.get(2)?, cols.get(3)?);
            // ATF_COM (0x2): the entry is resolved.
            let complete =
                u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 0x2 != 0);
            complete.then(|| ((*ip).to_owned(), mac.to_ascii_lowercase()))
        })
        .collect()
}

/// The interfaces (`(host device, MAC)`) found in `entries`, one per entry
/// as libvirt's `qemuARPGetInterfaces` lists them.
fn arp_interfaces(
    nics: &[(String, String)],
    entries: &[(String, String)],
) -> Vec<InterfaceAddresses> {
    nics.iter()
        .flat_map(|(name, mac)| {
            entries
                .iter()
                .filter(move |(_, m)| m.eq_ignore_ascii_case(mac))
                .map(move |(ip, _)| InterfaceAddresses {
                    name: name.clone(),
                    hwaddr: Some(mac.clone()),
                    addrs: vec![IpAddress {
                        kind: ifaddr::IPV4,
                        addr: ip.clone(),
                        prefix: 0,
                    }],
                })
        })
        .collect()
}

impl QemuDriver {
    /// `DOMAIN_INTERFACE_ADDRESSES`.
    pub(super) async fn interface_addresses_impl(
        &self,
        dom: &DomainRef,
        source: u32,
        flags: u32,
    ) -> Result<Vec<InterfaceAddresses>> {
        check_flags("qemuDomainInterfaceAddresses", u64::from(flags), 0)?;
        let nics = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            Ok(live
                .def
                .devices
                .interfaces
                .iter()
                .filter_map(|n| Some((n.target_dev.clone()?, n.mac.clone()?)))
                .collect::<Vec<_>>())
        })?;
        ifaddr::check_source(source)?;
        match source {
            ifaddr::SRC_AGENT => Err(self.agent_unavailable(dom)?),
            ifaddr::SRC_ARP => {
                let table = std::fs::read_to_string(ARP_TABLE)
                    .map_err(|e| Error::system(format!("read {ARP_TABLE}"), e))?;
                Ok(arp_interfaces(&nics, &arp_entries(&table)))
            }
            // Leases come from libvirt networks; no interface here is on one.
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
192.168.122.50   0x1         0x2         52:54:00:AA:bb:01     *        br0
192.168.122.51   0x1         0x0         52:54:00:aa:bb:02     *        br0
10.0.0.7         0x1         0x2         52:54:00:aa:bb:01     *        br1
";

    #[test]
    fn complete_arp_entries_are_matched_by_mac() {
        let entries = arp_entries(TABLE);
        assert_eq!(entries.len(), 2, "{entries:?}");
        let nics = vec![
            ("tap0".to_owned(), "52:54:00:aa:bb:01".to_owned()),
            ("tap1".to_owned(), "52:54:00:aa:bb:02".to_owned()),
        ];
        let found = arp_interfaces(&nics, &entries);
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|i| i.name == "tap0"));
        assert_eq!(found[0].addrs[0].addr, "192.168.122.50");
        assert_eq!(found[1].addrs[0].addr, "10.0.0.7");
        assert!(arp_interfaces(&nics, &[]).is_empty());
    }
}
