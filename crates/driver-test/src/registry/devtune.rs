//! I/O, NUMA, device and perf tuning of test guests and their interface
//! addresses, as libvirt 9.0's test driver answers them
//! (`testDomainSetBlkioParameters`, `testDomainSetBlockIoTune`,
//! `testDomainSetNumaParameters`, `testDomainSetInterfaceParameters`,
//! `testDomainSetPerfEvents` and their getters, `testDomainInterfaceAddresses`).
//! Each change goes to one definition: the live one of a running guest, or
//! the stored config.

use migrated_core::domain::DomainRef;
use migrated_core::flags::{affect, check_flags};
use migrated_core::tune::ifaddr::{self, InterfaceAddresses, IpAddress};
use migrated_core::tune::{bandwidth, blkio, iotune, numa, perf, TYPED_PARAM_STRING_OKAY};
use migrated_core::typed_params::TypedParams;
use migrated_core::xml::{BlockIoTune, DomainDef, InterfaceType};
use migrated_core::{Error, Result};

use super::Registry;

/// The flags of the getters.
const GET_FLAGS: u32 = affect::LIVE | affect::CONFIG | TYPED_PARAM_STRING_OKAY;
/// The flags of the setters.
const SET_FLAGS: u32 = affect::LIVE | affect::CONFIG;

/// The DHCP range start of libvirt's test driver's "default" network
/// (192.168.122.2): where addresses of `type='network'` interfaces come from.
const NETWORK_START: [u8; 4] = [192, 168, 122, 2];
/// Addresses each running guest's interfaces take from the range.
const NETWORK_STRIDE: u32 = 20;

impl Registry {
    /// The definition `flags` choose (libvirt's `virDomainObjGetOneDef`).
    pub(super) fn one_def(
        &self,
        dom: &DomainRef,
        operation: &'static str,
        flags: u32,
    ) -> Result<&DomainDef> {
        let guest = self.guest(&dom.uuid)?;
        let live = affect::resolve_one(
            operation,
            flags & SET_FLAGS,
            guest.is_active(),
            guest.persistent,
        )?;
        Ok(match (&guest.live, live) {
            (Some(l), true) => &l.def,
            _ => &guest.config,
        })
    }

    /// Changes the definition `flags` choose with `change`, which sees
    /// whether it is the live one; a config change is stored first.
    pub(super) fn change_one_def(
        &mut self,
        dom: &DomainRef,
        operation: &'static str,
        flags: u32,
        change: impl FnOnce(&mut DomainDef, bool) -> Result<()>,
    ) -> Result<()> {
        let guest = self.guest(&dom.uuid)?;
        let live = affect::resolve_one(operation, flags, guest.is_active(), guest.persistent)?;
        if live {
            if let Some(l) = self.guest_mut(&dom.uuid)?.live.as_mut() {
                let mut def = l.def.clone();
                change(&mut def, true)?;
                l.def = def;
            }
            return Ok(());
        }
        let mut def = guest.config.clone();
        change(&mut def, false)?;
        self.store.save(&def)?;
        self.guest_mut(&dom.uuid)?.config = def;
        Ok(())
    }

    /// `DOMAIN_GET_BLKIO_PARAMETERS`.
    pub fn blkio_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        check_flags(
            "testDomainGetBlkioParameters",
            u64::from(flags),
            u64::from(GET_FLAGS),
        )?;
        let def = self.one_def(dom, "virDomainGetBlkioParameters", flags)?;
        Ok(blkio::to_params(&def.blkiotune))
    }

    /// `DOMAIN_SET_BLKIO_PARAMETERS`.
    pub fn set_blkio_parameters(
        &mut self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "testDomainSetBlkioParameters",
            u64::from(flags),
            u64::from(SET_FLAGS),
        )?;
        params.validate(&blkio::SPECS)?;
        self.change_one_def(dom, "virDomainSetBlkioParameters", flags, |def, _| {
            def.blkiotune = blkio::apply(&def.blkiotune, params)?;
            Ok(())
        })
    }

    /// `DOMAIN_GET_BLOCK_IO_TUNE`: without a disk (a count) the 20
    /// parameters unset, as libvirt answers before looking anything up.
    pub fn block_io_tune(
        &self,
        dom: &DomainRef,
        disk: Option<&str>,
        flags: u32,
    ) -> Result<TypedParams> {
        check_flags(
            "testDomainGetBlockIoTune",
            u64::from(flags),
            u64::from(GET_FLAGS),
        )?;
        let Some(disk) = disk else {
            return Ok(iotune::to_params(&BlockIoTune::default()));
        };
        let def = self.one_def(dom, "virDomainGetBlockIoTune", flags)?;
        let d = def.devices.disk(disk).ok_or_else(|| Error::InvalidValue {
            reason: format!("disk '{disk}' was not found in the domain config"),
        })?;
        Ok(iotune::to_params(&d.iotune))
    }

    /// `DOMAIN_SET_BLOCK_IO_TUNE`: libvirt's test driver's checks, the
    /// maxima last (a limit above an unset maximum is refused).
    pub fn set_block_io_tune(
        &mut self,
        dom: &DomainRef,
        disk: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "testDomainSetBlockIoTune",
            u64::from(flags),
            u64::from(SET_FLAGS),
        )?;
        params.validate(&iotune::SPECS)?;
        self.change_one_def(dom, "virDomainSetBlockIoTune", flags, |def, _| {
            let index = def
                .devices
                .disk_index(disk)
                .ok_or_else(|| Error::InvalidValue {
                    reason: format!("missing persistent configuration for disk '{disk}'"),
                })?;
            let t = iotune::apply(&def.devices.disks[index].iotune, params)?;
            iotune::check_max_as_test_driver(&t)?;
            def.devices.disks[index].iotune = t;
            Ok(())
        })
    }

    /// `DOMAIN_GET_NUMA_PARAMETERS`.
    pub fn numa_parameters(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        check_flags(
            "testDomainGetNumaParameters",
            u64::from(flags),
            u64::from(GET_FLAGS),
        )?;
        let def = self.one_def(dom, "virDomainGetNumaParameters", flags)?;
        Ok(numa::to_params(&def.numatune))
    }

    /// `DOMAIN_SET_NUMA_PARAMETERS`: the mode of a running guest stays.
    pub fn set_numa_parameters(
        &mut self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "testDomainSetNumaParameters",
            u64::from(flags),
            u64::from(SET_FLAGS),
        )?;
        params.validate(&numa::SPECS)?;
        self.change_one_def(dom, "virDomainSetNumaParameters", flags, |def, live| {
            def.numatune = numa::apply(&def.numatune, params, live)?;
            Ok(())
        })
    }

    /// `DOMAIN_GET_INTERFACE_PARAMETERS`.
    pub fn interface_parameters(
        &self,
        dom: &DomainRef,
        device: &str,
        flags: u32,
    ) -> Result<TypedParams> {
        check_flags(
            "testDomainGetInterfaceParameters",
            u64::from(flags),
            u64::from(GET_FLAGS),
        )?;
        let def = self.one_def(dom, "virDomainGetInterfaceParameters", flags)?;
        let net = def.devices.interface_for(device)?;
        Ok(bandwidth::to_params(&net.bandwidth))
    }

    /// `DOMAIN_SET_INTERFACE_PARAMETERS`.
    pub fn set_interface_parameters(
        &mut self,
        dom: &DomainRef,
        device: &str,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        const OP: &str = "virDomainSetInterfaceParameters";
        check_flags(
            "testDomainSetInterfaceParameters",
            u64::from(flags),
            u64::from(SET_FLAGS),
        )?;
        params.validate(&bandwidth::SPECS)?;
        self.change_one_def(dom, OP, flags, |def, _| {
            def.devices.interface_for(device)?;
            if let Some(i) = def.devices.interface_index(device) {
                let net = &mut def.devices.interfaces[i];
                net.bandwidth = bandwidth::apply(&net.bandwidth, params)?;
            }
            Ok(())
        })
    }

    /// `DOMAIN_GET_PERF_EVENTS`.
    pub fn perf_events(&self, dom: &DomainRef, flags: u32) -> Result<TypedParams> {
        check_flags(
            "testDomainGetPerfEvents",
            u64::from(flags),
            u64::from(GET_FLAGS),
        )?;
        let def = self.one_def(dom, "virDomainGetPerfEvents", flags)?;
        Ok(perf::to_params(&def.perf))
    }

    /// `DOMAIN_SET_PERF_EVENTS`.
    pub fn set_perf_events(
        &mut self,
        dom: &DomainRef,
        params: &TypedParams,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            "testDomainSetPerfEvents",
            u64::from(flags),
            u64::from(SET_FLAGS),
        )?;
        params.validate(&perf::SPECS)?;
        self.change_one_def(dom, "virDomainSetPerfEvents", flags, |def, _| {
            def.perf = perf::apply(&def.perf, params)?;
            Ok(())
        })
    }

    /// `DOMAIN_INTERFACE_ADDRESSES`: libvirt's test driver's made-up
    /// addresses, whatever the source: an interface on a network takes
    /// one from the "default" network's range (20 per guest id), any other
    /// `192.168.0.N`; all /24.
    pub fn interface_addresses(
        &self,
        dom: &DomainRef,
        source: u32,
        flags: u32,
    ) -> Result<Vec<InterfaceAddresses>> {
        check_flags("testDomainInterfaceAddresses", u64::from(flags), 0)?;
        ifaddr::check_source(source)?;
        let live = self.live(dom)?;
        let id = u32::try_from(live.id).unwrap_or(1).max(1);
        Ok(live
            .def
            .devices
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, net)| {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                let addr = if net.kind == InterfaceType::Network {
                    let start = u32::from_be_bytes(NETWORK_START);
                    let offset = (id - 1)
                        .saturating_mul(NETWORK_STRIDE)
                        .saturating_add(i)
                        .saturating_add(1);
                    std::net::Ipv4Addr::from(start.saturating_add(offset)).to_string()
                } else {
                    format!("192.168.0.{}", i.saturating_add(1))
                };
                InterfaceAddresses {
                    name: net
                        .target_dev
                        .clone()
                        .unwrap_or_else(|| format!("testnet{i}")),
                    hwaddr: net.mac.clone(),
                    addrs: vec![IpAddress {
                        kind: ifaddr::IPV4,
                        addr,
                        prefix: 24,
                    }],
                }
            })
            .collect())
    }
}
