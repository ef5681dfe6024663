//! `virsh domifaddr`: the guest's interfaces and their IP addresses, and
//! where they are learnt from (`VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_*`).

use crate::error::{Error, Result};

/// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE`: the host's DHCP leases.
pub const SRC_LEASE: u32 = 0;
/// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT`: the guest agent.
pub const SRC_AGENT: u32 = 1;
/// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP`: the host's ARP table.
pub const SRC_ARP: u32 = 2;

/// `VIR_IP_ADDR_TYPE_IPV4`.
pub const IPV4: i32 = 0;
/// `VIR_IP_ADDR_TYPE_IPV6`.
pub const IPV6: i32 = 1;

/// One address of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddress {
    /// [`IPV4`] or [`IPV6`].
    pub kind: i32,
    /// The address, without prefix (`192.168.122.3`).
    pub addr: String,
    /// The prefix length (24).
    pub prefix: u32,
}

/// One interface as `virDomainInterfaceAddresses` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddresses {
    /// The interface's name (host device name, or the guest's for the agent).
    pub name: String,
    /// Its MAC address, if known.
    pub hwaddr: Option<String>,
    /// Its addresses.
    pub addrs: Vec<IpAddress>,
}

/// libvirt's drivers' check of `source`: one past ARP is unknown.
///
/// # Errors
/// [`Error::ArgumentRefused`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) "Unknown IP
/// address data source 3".
pub fn check_source(source: u32) -> Result<()> {
    if source > SRC_ARP {
        return Err(Error::ArgumentRefused {
            reason: format!("Unknown IP address data source {source}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn sources_past_arp_are_unknown() {
        for s in [SRC_LEASE, SRC_AGENT, SRC_ARP] {
            check_source(s).expect("known");
        }
        let e = check_source(3).expect_err("unknown");
        assert_eq!(e.code(), ErrorCode::ArgumentUnsupported);
        assert!(
            e.to_string().contains("Unknown IP address data source 3"),
            "{e}"
        );
    }
}
