//! blkiotune, blkdeviotune, numatune, domiftune, perf and domifaddr on the
//! test driver, checked against libvirt 9.0's test driver.

use migrated_core::tune::{bandwidth, blkio, numa};
use migrated_core::typed_params::{TypedParams, TypedValue};

use super::*;

const MAC: &str = "52:54:00:00:00:02";

fn devices_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
         <os><type>hvm</type></os><devices>\
         <disk type='file' device='disk'><source file='/tmp/{name}.img'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <interface type='bridge'><mac address='52:54:00:00:00:01'/>\
         <source bridge='br0'/></interface>\
         <interface type='network'><mac address='{MAC}'/>\
         <source network='default'/></interface></devices></domain>"
    )
}

async fn defined(drv: &TestDriver, name: &str) -> DomainRef {
    drv.define_xml(&devices_xml(name), 0).await.expect("define")
}

fn ull(list: &[(&str, u64)]) -> TypedParams {
    list.iter().fold(TypedParams::new(), |p, (k, v)| {
        p.with(*k, TypedValue::ULLong(*v))
    })
}

#[tokio::test]
async fn block_io_tune_checks_limits_and_keeps_each_definition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = defined(&drv, "iotune").await;
    let all = drv.block_io_tune(&dom, Some("vda"), 0).await.expect("get");
    assert_eq!(all.len(), 20);
    // libvirt's test driver: a limit needs a maximum at least as high.
    let e = drv
        .set_block_io_tune(&dom, "vda", &ull(&[("read_iops_sec", 5)]), 0)
        .await
        .expect_err("no max");
    assert!(
        e.to_string()
            .contains("read_iops_sec cannot be set higher than read_iops_sec_max"),
        "{e}"
    );
    let limits = ull(&[("total_bytes_sec", 1000), ("total_bytes_sec_max", 2000)]);
    drv.set_block_io_tune(&dom, "vda", &limits, 0)
        .await
        .expect("config");
    let e = drv
        .set_block_io_tune(&dom, "vda", &ull(&[("read_bytes_sec", 1)]), 0)
        .await
        .expect_err("total and read");
    assert_eq!(e.code(), ErrorCode::InvalidArg);
    let e = drv
        .set_block_io_tune(&dom, "vdz", &limits, 0)
        .await
        .expect_err("no disk");
    assert!(
        e.to_string()
            .contains("missing persistent configuration for disk 'vdz'"),
        "{e}"
    );
    let e = drv
        .block_io_tune(&dom, Some("vdz"), 0)
        .await
        .expect_err("no disk");
    assert!(e.to_string().contains("disk 'vdz' was not found"), "{e}");
    drv.create(&dom, 0).await.expect("start");
    let live = ull(&[("total_iops_sec", 5), ("total_iops_sec_max", 6)]);
    drv.set_block_io_tune(&dom, "/tmp/iotune.img", &live, flags::affect::LIVE)
        .await
        .expect("live by path");
    let now = drv.block_io_tune(&dom, Some("vda"), 0).await.expect("live");
    assert_eq!(now.get_ullong("total_iops_sec").expect("u"), Some(5));
    assert_eq!(now.get_ullong("total_bytes_sec").expect("u"), Some(1000));
    let config = drv
        .block_io_tune(&dom, Some("vda"), flags::affect::CONFIG)
        .await
        .expect("config");
    assert_eq!(config.get_ullong("total_iops_sec").expect("u"), Some(0));
    let stored = drv
        .get_xml_desc(&dom, flags::xml::INACTIVE)
        .await
        .expect("xml");
    assert!(
        stored.contains("<total_bytes_sec>1000</total_bytes_sec>"),
        "{stored}"
    );
    assert!(!stored.contains("total_iops_sec"), "{stored}");
}

#[tokio::test]
async fn blkio_numa_bandwidth_and_perf_are_stored_in_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dom = {
        let drv = driver(dir.path());
        let dom = defined(&drv, "tuned").await;
        let weights = TypedParams::new()
            .with(blkio::WEIGHT, TypedValue::UInt(500))
            .with(
                blkio::DEVICE_WEIGHT,
                TypedValue::String("/dev/sda,300".into()),
            );
        drv.set_blkio_parameters(&dom, &weights, 0)
            .await
            .expect("blkio");
        let nodes = TypedParams::new()
            .with(numa::MODE, TypedValue::Int(2))
            .with(numa::NODESET, TypedValue::String("0-1".into()));
        drv.set_numa_parameters(&dom, &nodes, 0)
            .await
            .expect("numa");
        let shaping = TypedParams::new()
            .with(bandwidth::IN_AVERAGE, TypedValue::UInt(100))
            .with(bandwidth::OUT_AVERAGE, TypedValue::UInt(10));
        drv.set_interface_parameters(&dom, MAC, &shaping, 0)
            .await
            .expect("bandwidth");
        let events = TypedParams::new().with("cmt", TypedValue::Boolean(true));
        drv.set_perf_events(&dom, &events, 0).await.expect("perf");
        dom
    };
    // A new driver on the same directory reads the stored definitions.
    let drv = driver(dir.path());
    let blkio_now = drv.blkio_parameters(&dom, 0).await.expect("blkio");
    assert_eq!(blkio_now.get_uint(blkio::WEIGHT).expect("u"), Some(500));
    assert_eq!(
        blkio_now.get_string(blkio::DEVICE_WEIGHT).expect("s"),
        Some("/dev/sda,300")
    );
    let numa_now = drv.numa_parameters(&dom, 0).await.expect("numa");
    assert_eq!(numa_now.get_int(numa::MODE).expect("i"), Some(2));
    let bw = drv.interface_parameters(&dom, MAC, 0).await.expect("bw");
    assert_eq!(bw.get_uint(bandwidth::IN_AVERAGE).expect("u"), Some(100));
    let e = drv
        .interface_parameters(&dom, "vnet9", 0)
        .await
        .expect_err("unknown interface");
    assert!(
        e.to_string().contains("'vnet9' is not a known interface"),
        "{e}"
    );
    let perf = drv.perf_events(&dom, 0).await.expect("perf");
    assert_eq!(perf.len(), 22);
    assert_eq!(perf.get_bool("cmt").expect("b"), Some(true));
    // Shut off: LIVE is refused, as libvirt's virDomainObjGetOneDef does.
    let e = drv
        .perf_events(&dom, flags::affect::LIVE)
        .await
        .expect_err("live on shut off");
    assert_eq!(e.code(), ErrorCode::OperationInvalid);
    drv.create(&dom, 0).await.expect("start");
    let keep = TypedParams::new().with(numa::MODE, TypedValue::Int(0));
    let e = drv
        .set_numa_parameters(&dom, &keep, 0)
        .await
        .expect_err("mode of a running guest");
    assert!(e.to_string().contains("can't change numatune mode"), "{e}");
}

#[tokio::test]
async fn interface_addresses_are_libvirts_made_up_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drv = driver(dir.path());
    let dom = defined(&drv, "addrs").await;
    let e = drv
        .interface_addresses(&dom, 0, 0)
        .await
        .expect_err("shut off");
    assert_eq!(e.code(), ErrorCode::OperationInvalid);
    let dom = drv.create(&dom, 0).await.expect("start");
    let ifaces = drv.interface_addresses(&dom, 2, 0).await.expect("arp");
    assert_eq!(ifaces.len(), 2);
    assert_eq!(ifaces[0].name, "testnet0");
    assert_eq!(ifaces[0].addrs[0].addr, "192.168.0.1");
    assert_eq!(ifaces[1].hwaddr.as_deref(), Some(MAC));
    assert_eq!(ifaces[1].addrs[0].addr, "192.168.122.4");
    assert_eq!(ifaces[1].addrs[0].prefix, 24);
    let e = drv
        .interface_addresses(&dom, 3, 0)
        .await
        .expect_err("source");
    assert!(
        e.to_string().contains("Unknown IP address data source 3"),
        "{e}"
    );
    let e = drv
        .interface_addresses(&dom, 0, 1)
        .await
        .expect_err("flags");
    assert_eq!(e.code(), ErrorCode::InvalidArg);
}
