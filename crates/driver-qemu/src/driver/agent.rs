//! Calls libvirt's QEMU driver makes through the guest agent: `virsh
//! domtime` (`guest-get-time`, `guest-set-time`), `virsh domhostname`
//! (`guest-get-host-name`) and `virsh shutdown --mode agent`. This driver
//! never connects to an agent, so each answers what libvirt answers for a
//! guest whose agent is absent or silent (`qemuDomainAgentAvailable`).

use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::{Error, Result};

use super::QemuDriver;

/// The `<channel>` target name of the QEMU guest agent.
pub(super) const GUEST_AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

impl QemuDriver {
    /// The error of an agent call on `dom`: "domain is not running" unless
    /// it runs (not paused), else [`Error::GuestAgent`], saying whether the
    /// XML has the agent's channel (`VIR_ERR_ARGUMENT_UNSUPPORTED` "not
    /// configured", or `VIR_ERR_AGENT_UNRESPONSIVE`).
    ///
    /// # Errors
    /// `VIR_ERR_NO_DOMAIN` for an unknown domain.
    pub(super) fn agent_unavailable(&self, dom: &DomainRef) -> Result<Error> {
        self.read(|r| {
            let d = r.get(dom)?;
            let running = d
                .live
                .as_ref()
                .filter(|l| l.state.state == DomainState::Running);
            let Some(live) = running else {
                return Ok(Error::invalid("domain is not running"));
            };
            let configured = live.def.devices.channels.iter().any(|c| {
                c.target.as_ref().and_then(|t| t.name.as_deref()) == Some(GUEST_AGENT_CHANNEL)
            });
            Ok(Error::GuestAgent { configured })
        })
    }
}
