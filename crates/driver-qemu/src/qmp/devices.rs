//! Typed QMP commands of device hot-plug (QEMU 7.2 `qapi/block-core.json`,
//! `qapi/qdev.json`, `qapi/net.json`, `qapi/pci.json`): the back-end
//! (`blockdev-add`, `netdev_add`) and the guest device (`device_add`) of a
//! disk or NIC, their removal, and where QEMU placed a device on the PCI bus.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::commands::{Command, Empty};

/// `blockdev-add`: the block node of a disk, as its `-blockdev` JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BlockdevAdd(pub Value);

impl Command for BlockdevAdd {
    const NAME: &'static str = "blockdev-add";
    type Reply = Empty;
}

/// One action of a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "kebab-case")]
pub enum TransactionAction {
    /// `blockdev-snapshot`: `overlay` (a node without backing) goes on top
    /// of `node`, which becomes its read-only backing.
    BlockdevSnapshot {
        /// The current top node of the disk.
        node: String,
        /// The new overlay's node.
        overlay: String,
    },
}

/// `transaction`: its actions all happen or none does (what libvirt's
/// snapshots call atomic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    /// The actions, in order.
    pub actions: Vec<TransactionAction>,
}

impl Command for Transaction {
    const NAME: &'static str = "transaction";
    type Reply = Empty;
}

/// `blockdev-del`: removes a block node nothing uses any more.
#[derive(Debug, Clone, Serialize)]
pub struct BlockdevDel {
    /// The node (`drive-vdb`).
    #[serde(rename = "node-name")]
    pub node_name: String,
}

impl Command for BlockdevDel {
    const NAME: &'static str = "blockdev-del";
    type Reply = Empty;
}

/// `netdev_add`: the host side of a NIC (`{"type": "user", "id": …}`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct NetdevAdd(pub Value);

impl Command for NetdevAdd {
    const NAME: &'static str = "netdev_add";
    type Reply = Empty;
}

/// `netdev_del`.
#[derive(Debug, Clone, Serialize)]
pub struct NetdevDel {
    /// The netdev id.
    pub id: String,
}

impl Command for NetdevDel {
    const NAME: &'static str = "netdev_del";
    type Reply = Empty;
}

/// `device_add`: a guest device, as its `-device` JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct DeviceAdd(pub Value);

impl Command for DeviceAdd {
    const NAME: &'static str = "device_add";
    type Reply = Empty;
}

/// `device_del`: asks the guest to release a device; QEMU sends
/// `DEVICE_DELETED` once it is gone (a PCI device needs the guest's
/// cooperation, which may never come).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceDel {
    /// The device id.
    pub id: String,
}

impl Command for DeviceDel {
    const NAME: &'static str = "device_del";
    type Reply = Empty;
}

/// `set_link`: a NIC's link up or down.
#[derive(Debug, Clone, Serialize)]
pub struct SetLink {
    /// The device id.
    pub name: String,
    /// Up.
    pub up: bool,
}

impl Command for SetLink {
    const NAME: &'static str = "set_link";
    type Reply = Empty;
}

/// `query-pci`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QueryPci;

impl Command for QueryPci {
    const NAME: &'static str = "query-pci";
    type Reply = Vec<PciBus>;
}

/// One bus of [`QueryPci`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PciBus {
    /// Bus number.
    pub bus: u8,
    /// Its devices.
    #[serde(default)]
    pub devices: Vec<PciDevice>,
}

/// One device of a [`PciBus`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PciDevice {
    /// Bus number.
    pub bus: u8,
    /// Slot.
    pub slot: u8,
    /// Function.
    pub function: u8,
    /// The device id (empty for devices without one).
    #[serde(default)]
    pub qdev_id: String,
}

/// The `(bus, slot, function)` of the device with id `id` in a
/// [`QueryPci`] reply.
pub fn pci_slot_of(buses: &[PciBus], id: &str) -> Option<(u8, u8, u8)> {
    buses
        .iter()
        .flat_map(|b| &b.devices)
        .find(|d| d.qdev_id == id)
        .map(|d| (d.bus, d.slot, d.function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pci_finds_a_device_by_id() {
        let reply: Vec<PciBus> = serde_json::from_value(serde_json::json!([{
            "bus": 0,
            "devices": [
                {"bus": 0, "slot": 0, "function": 0, "qdev_id": "", "class_info": {"class": 1536}},
                {"bus": 0, "slot": 7, "function": 0, "qdev_id": "vdb"}
            ]
        }]))
        .expect("reply");
        assert_eq!(pci_slot_of(&reply, "vdb"), Some((0, 7, 0)));
        assert_eq!(pci_slot_of(&reply, "vdc"), None);
        let add = serde_json::to_value(BlockdevDel {
            node_name: "drive-vdb".into(),
        })
        .expect("json");
        assert_eq!(add, serde_json::json!({"node-name": "drive-vdb"}));
    }

    #[test]
    fn transactions_as_qemu_reads_them() {
        let t = Transaction {
            actions: vec![TransactionAction::BlockdevSnapshot {
                node: "drive-vda".into(),
                overlay: "snap-vda-1".into(),
            }],
        };
        assert_eq!(
            serde_json::to_value(&t).expect("json"),
            serde_json::json!({"actions": [{"type": "blockdev-snapshot",
                "data": {"node": "drive-vda", "overlay": "snap-vda-1"}}]})
        );
    }
}
