//! `block_set_io_throttle` and the throttling `query-block` reports: how
//! `virsh blkdeviotune` changes and reads a running disk's limits. The
//! limits are [`IOTUNE_LIMITS`] under QEMU's names ([`QMP_LIMITS`]).

use migrated_core::xml::{BlockIoTune, IOTUNE_LIMITS};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::commands::{Command, Empty};

/// QEMU's name of each of [`IOTUNE_LIMITS`], in the same order.
pub const QMP_LIMITS: [&str; IOTUNE_LIMITS.len()] = [
    "bps",
    "bps_rd",
    "bps_wr",
    "iops",
    "iops_rd",
    "iops_wr",
    "bps_max",
    "bps_rd_max",
    "bps_wr_max",
    "iops_max",
    "iops_rd_max",
    "iops_wr_max",
    "iops_size",
    "bps_max_length",
    "bps_rd_max_length",
    "bps_wr_max_length",
    "iops_max_length",
    "iops_rd_max_length",
    "iops_wr_max_length",
];

/// How many of [`QMP_LIMITS`] QEMU requires in every call (the averages).
const REQUIRED: usize = 6;

/// `block_set_io_throttle`: replaces the whole throttling of the device
/// `id` (the guest device holding the disk's block backend, as
/// `query-block` names it in `qdev`: for virtio disks the QOM path of the
/// proxy's `virtio-backend`).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSetIoThrottle {
    /// The command's arguments.
    args: Map<String, Value>,
}

impl BlockSetIoThrottle {
    /// The call that gives disk `id` the limits of `t`: the averages
    /// always, the rest only when set (QEMU refuses a burst length of 0).
    pub fn new(id: &str, t: &BlockIoTune) -> Self {
        let mut args = Map::new();
        args.insert("id".into(), json!(id));
        for (i, (name, value)) in QMP_LIMITS.iter().zip(t.limits).enumerate() {
            if i < REQUIRED || value != 0 {
                args.insert((*name).into(), json!(value));
            }
        }
        if let Some(group) = &t.group_name {
            args.insert("group".into(), json!(group));
        }
        Self { args }
    }
}

impl serde::Serialize for BlockSetIoThrottle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.args.serialize(s)
    }
}

impl Command for BlockSetIoThrottle {
    const NAME: &'static str = "block_set_io_throttle";
    type Reply = Empty;
}

/// `query-block`, read for the throttling of each disk.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct QueryBlockThrottle;

impl Command for QueryBlockThrottle {
    const NAME: &'static str = "query-block";
    type Reply = Vec<ThrottledBlock>;
}

/// One disk of [`QueryBlockThrottle`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ThrottledBlock {
    /// The guest device: its qdev id or QOM path.
    qdev: Option<String>,
    /// The medium, absent for an empty drive.
    pub inserted: Option<Map<String, Value>>,
}

impl ThrottledBlock {
    /// The guest device holding the block backend ([`BlockSetIoThrottle`]'s id).
    pub fn qdev(&self) -> Option<&str> {
        self.qdev.as_deref()
    }

    /// The top node's name (`drive-<target>` for this driver's disks).
    pub fn node_name(&self) -> Option<&str> {
        self.inserted.as_ref()?.get("node-name")?.as_str()
    }

    /// The throttling QEMU applies, as `<iotune>` holds it.
    pub fn iotune(&self) -> BlockIoTune {
        let mut t = BlockIoTune::default();
        let Some(inserted) = &self.inserted else {
            return t;
        };
        for (slot, name) in t.limits.iter_mut().zip(QMP_LIMITS) {
            *slot = inserted.get(name).and_then(Value::as_u64).unwrap_or(0);
        }
        t.group_name = inserted
            .get("group")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
            .map(str::to_owned);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_sends_averages_always_and_the_rest_when_set() {
        let mut t = BlockIoTune::default();
        t.set("total_bytes_sec", 1000);
        t.set("total_bytes_sec_max", 2000);
        t.group_name = Some("g1".into());
        let v = serde_json::to_value(BlockSetIoThrottle::new("vda", &t)).expect("json");
        assert_eq!(v["id"], "vda");
        assert_eq!(v["bps"], 1000);
        assert_eq!(v["iops_rd"], 0);
        assert_eq!(v["bps_max"], 2000);
        assert_eq!(v["group"], "g1");
        assert!(v.get("bps_max_length").is_none() && v.get("iops_max").is_none());
    }

    #[test]
    fn query_block_throttling_reads_back_into_iotune() {
        let reply = json!([{"device": "", "qdev": "/machine/peripheral/vda/virtio-backend", "inserted": {
            "node-name": "drive-vda", "bps": 1000, "bps_rd": 0, "bps_wr": 0,
            "iops": 5, "iops_rd": 0, "iops_wr": 0, "bps_max": 2000,
            "bps_max_length": 1, "group": "g1"}}, {"device": "cd"}]);
        let blocks: Vec<ThrottledBlock> = serde_json::from_value(reply).expect("parse");
        assert_eq!(blocks[0].node_name(), Some("drive-vda"));
        assert_eq!(
            blocks[0].qdev(),
            Some("/machine/peripheral/vda/virtio-backend")
        );
        let t = blocks[0].iotune();
        assert_eq!(t.get("total_bytes_sec"), 1000);
        assert_eq!(t.get("total_iops_sec"), 5);
        assert_eq!(t.get("total_bytes_sec_max_length"), 1);
        assert_eq!(t.group_name.as_deref(), Some("g1"));
        assert!(blocks[1].iotune().is_empty() && blocks[1].node_name().is_none());
    }
}
