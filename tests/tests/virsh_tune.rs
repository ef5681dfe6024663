//! Stock `virsh` tuning and guest queries against `migrated`'s test driver,
//! answered as libvirt 9.0's test driver answers them: `schedinfo`,
//! `memtune`, `cpu-stats`, `domhostname`, `domtime` (and `domcontrol`,
//! which follows the clock), `blkiotune`, `blkdeviotune`, `numatune`,
//! `domiftune`, `perf` and `domifaddr`, with their flags, bad input and
//! read-only connections, and the values kept across a daemon restart and
//! a live migration.
//!
//! A topic file of its own: `virsh_basic.rs` is at its size limit.

mod migrate_support;

use std::process::Output;

use migrate_support::{define, Hosts};
use migrated_tests::clients::{assert_ok, stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, Daemon};

/// The shaped interface of [`devices_xml`] (the other is on a bridge).
const MAC: &str = "52:54:00:00:00:02";

fn fails_with(output: &Output, words: &str, what: &str) {
    assert!(
        !output.status.success() && stderr_of(output).contains(words),
        "{what}: expected \"{words}\", got: {}{}",
        stdout_of(output),
        stderr_of(output)
    );
}

fn define_and_start(uri: &str, dir: &std::path::Path, name: &str) {
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    );
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, xml).expect("write domain xml");
    assert_ok(
        &virsh(uri, &["define", &path.display().to_string()]),
        "define",
    );
    assert_ok(&virsh(uri, &["start", name]), "start");
}

/// `name : value` lines of virsh's parameter listings.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

fn schedinfo(uri: &str, name: &str) {
    let out = assert_ok(&virsh(uri, &["schedinfo", name]), "schedinfo");
    assert_eq!(field(&out, "Scheduler"), "fair", "{out}");
    assert_eq!(field(&out, "weight"), "50", "{out}");
    // Accepted and, as in libvirt's test driver, not kept.
    let set = assert_ok(
        &virsh(uri, &["schedinfo", name, "--set", "weight=10"]),
        "schedinfo --set",
    );
    assert_eq!(field(&set, "weight"), "50", "{set}");
    assert_ok(&virsh(uri, &["schedinfo", name, "--current"]), "--current");
    fails_with(
        &virsh(uri, &["schedinfo", name, "--live"]),
        "unsupported flags (0x1) in function testDomainGetSchedulerParametersFlags",
        "schedinfo --live",
    );
    fails_with(
        &virsh(uri, &["schedinfo", name, "--set", "weight=heavy"]),
        "weight",
        "schedinfo bad value",
    );
    fails_with(
        &virsh(uri, &["schedinfo", name, "--set", "cap=10"]),
        "cap",
        "schedinfo unknown parameter",
    );
    fails_with(
        &virsh(uri, &["-r", "schedinfo", name, "--set", "weight=10"]),
        "read only access prevents virDomainSetSchedulerParameters",
        "read-only schedinfo --set",
    );
    assert_ok(
        &virsh(uri, &["-r", "schedinfo", name]),
        "read-only schedinfo",
    );
}

fn memtune(uri: &str, name: &str) {
    let out = assert_ok(&virsh(uri, &["memtune", name]), "memtune");
    for limit in ["hard_limit", "soft_limit", "swap_hard_limit"] {
        assert_eq!(field(&out, limit), "unlimited", "{out}");
    }
    assert_ok(
        &virsh(uri, &["memtune", name, "--soft-limit", "2048"]),
        "memtune --soft-limit",
    );
    assert_ok(
        &virsh(uri, &["memtune", name, "--config", "--hard-limit", "1G"]),
        "memtune --config --hard-limit",
    );
    let live = assert_ok(&virsh(uri, &["memtune", name, "--live"]), "memtune --live");
    assert_eq!(field(&live, "soft_limit"), "2048", "{live}");
    assert_eq!(field(&live, "hard_limit"), "unlimited", "{live}");
    let config = assert_ok(&virsh(uri, &["memtune", name, "--config"]), "--config");
    assert_eq!(field(&config, "hard_limit"), "1048576", "{config}");
    let xml = assert_ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    assert!(
        xml.contains("<memtune>\n    <hard_limit unit='KiB'>1048576</hard_limit>"),
        "{xml}"
    );
    fails_with(
        &virsh(
            uri,
            &[
                "memtune",
                name,
                "--hard-limit",
                "8192",
                "--swap-hard-limit",
                "4096",
            ],
        ),
        "memory hard_limit tunable value must be lower than or equal to swap_hard_limit",
        "memtune hard over swap",
    );
    fails_with(
        &virsh(uri, &["memtune", name, "--soft-limit", "lots"]),
        "soft-limit",
        "memtune bad value",
    );
    fails_with(
        &virsh(uri, &["memtune", name, "--live", "--config"]),
        "mutually exclusive",
        "memtune --live --config",
    );
    fails_with(
        &virsh(uri, &["-r", "memtune", name, "--soft-limit", "1"]),
        "read only access prevents virDomainSetMemoryParameters",
        "read-only memtune",
    );
    assert_ok(
        &virsh(uri, &["-r", "memtune", name]),
        "read-only memtune query",
    );
}

fn cpu_stats(uri: &str, name: &str) {
    let all = assert_ok(&virsh(uri, &["cpu-stats", name]), "cpu-stats");
    assert!(
        all.contains("CPU0:") && all.contains("CPU1:") && !all.contains("CPU2:"),
        "{all}"
    );
    assert!(all.contains("48.772617035 seconds"), "{all}");
    assert!(
        all.contains("user_time") && all.contains("vcpu_time"),
        "{all}"
    );
    let total = assert_ok(&virsh(uri, &["cpu-stats", name, "--total"]), "--total");
    assert!(
        !total.contains("CPU0:") && total.contains("system_time"),
        "{total}"
    );
    let one = assert_ok(
        &virsh(uri, &["cpu-stats", name, "--start", "1", "--count", "1"]),
        "cpu-stats --start 1",
    );
    assert!(one.contains("CPU1:") && !one.contains("CPU0:"), "{one}");
    assert!(one.contains("24.386308518 seconds"), "{one}");
    assert_ok(
        &virsh(uri, &["-r", "cpu-stats", name]),
        "read-only cpu-stats",
    );
}

fn guest_queries(uri: &str, name: &str) {
    let host = assert_ok(&virsh(uri, &["domhostname", name]), "domhostname");
    assert_eq!(host.trim(), format!("{name}host"));
    fails_with(
        &virsh(uri, &["domhostname", name, "--source", "agent"]),
        "unsupported flags",
        "domhostname --source agent",
    );
    let time = assert_ok(&virsh(uri, &["domtime", name]), "domtime");
    assert_eq!(time.trim(), "Time: 627319920");
    assert_ok(&virsh(uri, &["domtime", name, "--time", "12345"]), "--time");
    let pretty = assert_ok(&virsh(uri, &["domtime", name, "--pretty"]), "--pretty");
    assert_eq!(pretty.trim(), "Time: 1970-01-01 03:25:45");
    // libvirt's test driver: a clock in 10000..30000 s is a busy monitor.
    let control = assert_ok(&virsh(uri, &["domcontrol", name]), "domcontrol");
    assert!(control.starts_with("occupied"), "{control}");
    assert_ok(
        &virsh(uri, &["domtime", name, "--time", "627319920"]),
        "reset",
    );
    fails_with(
        &virsh(uri, &["domtime", name, "--time", "soon"]),
        "time",
        "domtime bad value",
    );
    for cmd in [&["domtime", name] as &[&str], &["domhostname", name]] {
        fails_with(
            &virsh(uri, &[&["-r"][..], cmd].concat()),
            "read only access prevents",
            "read-only guest query",
        );
    }
    assert_ok(&virsh(uri, &["suspend", name]), "suspend");
    fails_with(
        &virsh(uri, &["domtime", name]),
        "domain is not running",
        "paused",
    );
    assert_ok(&virsh(uri, &["resume", name]), "resume");
}

fn shut_off(uri: &str, name: &str) {
    assert_ok(&virsh(uri, &["destroy", name]), "destroy");
    for cmd in [
        &["cpu-stats", name] as &[&str],
        &["domhostname", name],
        &["domtime", name],
        &["memtune", name, "--live"],
        &["memtune", name, "--live", "--soft-limit", "1"],
    ] {
        fails_with(
            &virsh(uri, cmd),
            "domain is not running",
            &format!("{cmd:?}"),
        );
    }
    // The config's limits remain, and a shut-off change goes to the config.
    assert_ok(
        &virsh(uri, &["memtune", name, "--swap-hard-limit", "4G"]),
        "memtune shut off",
    );
    let config = assert_ok(&virsh(uri, &["memtune", name]), "memtune shut off");
    assert_eq!(field(&config, "hard_limit"), "1048576", "{config}");
    assert_eq!(field(&config, "swap_hard_limit"), "4194304", "{config}");
}

#[test]
fn schedinfo_memtune_cpu_stats_domhostname_domtime_as_libvirts_test_driver() {
    if require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    let name = "tuned";
    define_and_start(&uri, dir.path(), name);
    schedinfo(&uri, name);
    memtune(&uri, name);
    cpu_stats(&uri, name);
    guest_queries(&uri, name);
    shut_off(&uri, name);
}

#[test]
fn memory_limits_travel_with_a_live_migration() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "tuned-mig";
    define(&a, dir.path(), name, "", true);
    assert_ok(
        &virsh(&a, &["memtune", name, "--live", "--soft-limit", "3072"]),
        "memtune --live",
    );
    assert_ok(
        &virsh(&a, &["memtune", name, "--config", "--hard-limit", "65536"]),
        "memtune --config",
    );
    assert_ok(
        &virsh(&a, &["migrate", "--live", "--persistent", name, &b]),
        "migrate",
    );
    // The running guest keeps its live limits, the definition it leaves
    // with is the source's persistent one (`--persistent`).
    let live = assert_ok(&virsh(&b, &["memtune", name]), "memtune on B");
    assert_eq!(
        field(&live, "soft_limit"),
        "3072",
        "{live}\n{}",
        hosts.logs()
    );
    let config = assert_ok(&virsh(&b, &["memtune", name, "--config"]), "config on B");
    assert_eq!(field(&config, "hard_limit"), "65536", "{config}");
    let xml = assert_ok(&virsh(&b, &["dumpxml", name]), "dumpxml on B");
    assert!(
        xml.contains("<soft_limit unit='KiB'>3072</soft_limit>"),
        "{xml}"
    );
}

/// A guest with a disk and two interfaces (the second on a network).
fn devices_xml(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>16</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>\
         <disk type='file' device='disk'><source file='/tmp/{name}.img'/>\
         <target dev='vda' bus='virtio'/></disk>\
         <interface type='bridge'><mac address='52:54:00:00:00:01'/>\
         <source bridge='br0'/></interface>\
         <interface type='network'><mac address='{MAC}'/>\
         <source network='default'/></interface></devices></domain>"
    )
}

fn define_devices(uri: &str, dir: &std::path::Path, name: &str) {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, devices_xml(name)).expect("write domain xml");
    assert_ok(
        &virsh(uri, &["define", &path.display().to_string()]),
        "define",
    );
}

fn blkdeviotune(uri: &str, name: &str) {
    let out = assert_ok(&virsh(uri, &["blkdeviotune", name, "vda"]), "query");
    assert_eq!(field(&out, "total_bytes_sec"), "0", "{out}");
    assert_eq!(field(&out, "write_iops_sec_max_length"), "0", "{out}");
    let set = [
        "blkdeviotune",
        name,
        "vda",
        "--total-bytes-sec",
        "1000",
        "--total-bytes-sec-max",
        "2000",
        "--group-name",
        "g1",
        "--size-iops-sec",
        "7",
    ];
    assert_ok(&virsh(uri, &set), "blkdeviotune set");
    let out = assert_ok(&virsh(uri, &["blkdeviotune", name, "vda"]), "query");
    assert_eq!(field(&out, "total_bytes_sec"), "1000", "{out}");
    assert_eq!(field(&out, "group_name"), "g1", "{out}");
    let xml = assert_ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    assert!(
        xml.contains(
            "<target dev='vda' bus='virtio'/>\n      <iotune>\n        \
             <total_bytes_sec>1000</total_bytes_sec>"
        ),
        "{xml}"
    );
    for (args, words) in [
        (
            &["--read-bytes-sec", "5"][..],
            "total and read/write of bytes_sec cannot be set at the same time",
        ),
        (
            &["--read-iops-sec", "5"],
            "read_iops_sec cannot be set higher than read_iops_sec_max",
        ),
        (
            &["--write-iops-sec", "1000000000000001"],
            "block I/O throttle limit value must be no more than 1000000000000000",
        ),
        (&["--total-iops-sec", "many"], "total-iops-sec"),
        (&["--live", "--config"], "mutually exclusive"),
        (&["--live"], "domain is not running"),
    ] {
        let cmd = [&["blkdeviotune", name, "vda"][..], args].concat();
        fails_with(&virsh(uri, &cmd), words, &format!("{args:?}"));
    }
    fails_with(
        &virsh(uri, &["blkdeviotune", name, "vdz"]),
        "disk 'vdz' was not found in the domain config",
        "unknown disk",
    );
    fails_with(
        &virsh(
            uri,
            &["-r", "blkdeviotune", name, "vda", "--size-iops-sec", "1"],
        ),
        "read only access prevents virDomainSetBlockIoTune",
        "read-only blkdeviotune",
    );
    assert_ok(
        &virsh(uri, &["-r", "blkdeviotune", name, "vda"]),
        "ro query",
    );
}

fn blkiotune_numatune_perf(uri: &str, name: &str) {
    let set = [
        "blkiotune",
        name,
        "--weight",
        "500",
        "--device-weights",
        "/dev/sda,300",
        "--device-read-bytes-sec",
        "/dev/sda,1000,/dev/sdb,2000",
    ];
    assert_ok(&virsh(uri, &set), "blkiotune set");
    let out = assert_ok(&virsh(uri, &["blkiotune", name]), "blkiotune");
    assert_eq!(field(&out, "weight"), "500", "{out}");
    assert_eq!(field(&out, "device_weight"), "/dev/sda,300", "{out}");
    assert_eq!(
        field(&out, "device_read_bytes_sec"),
        "/dev/sda,1000,/dev/sdb,2000",
        "{out}"
    );
    fails_with(
        &virsh(uri, &["blkiotune", name, "--device-weights", "/dev/sda"]),
        "unable to parse blkio device 'device_weight' '/dev/sda'",
        "blkiotune odd list",
    );
    fails_with(
        &virsh(
            uri,
            &["blkiotune", name, "--device-weights", "/dev/sda,abc"],
        ),
        "invalid value 'abc' for parameter 'device_weight' of device '/dev/sda'",
        "blkiotune bad value",
    );
    assert_ok(
        &virsh(
            uri,
            &["numatune", name, "--mode", "interleave", "--nodeset", "0-1"],
        ),
        "numatune set",
    );
    let out = assert_ok(&virsh(uri, &["numatune", name]), "numatune");
    assert_eq!(field(&out, "numa_mode"), "interleave", "{out}");
    assert_eq!(field(&out, "numa_nodeset"), "0-1", "{out}");
    fails_with(
        &virsh(uri, &["numatune", name, "--mode", "7"]),
        "unsupported numatune mode: '7'",
        "numatune mode",
    );
    fails_with(
        &virsh(uri, &["numatune", name, "--nodeset", "abc"]),
        "Failed to parse bitmap 'abc'",
        "numatune nodeset",
    );
    assert_ok(
        &virsh(uri, &["perf", name, "--enable", "cmt", "--disable", "mbmt"]),
        "perf set",
    );
    let out = assert_ok(&virsh(uri, &["perf", name]), "perf");
    assert_eq!(field(&out, "cmt"), "enabled", "{out}");
    assert_eq!(field(&out, "emulation_faults"), "disabled", "{out}");
    fails_with(
        &virsh(uri, &["perf", name, "--enable", "bogus"]),
        "parameter 'bogus' not supported",
        "perf unknown event",
    );
    let xml = assert_ok(&virsh(uri, &["dumpxml", "--inactive", name]), "dumpxml");
    for part in [
        "<blkiotune>\n    <weight>500</weight>",
        "<numatune>\n    <memory mode='interleave' nodeset='0-1'/>",
        "<perf>\n    <event name='cmt' enabled='yes'/>\n    <event name='mbmt' enabled='no'/>",
    ] {
        assert!(xml.contains(part), "{part}: {xml}");
    }
    for cmd in [
        &["blkiotune", name, "--weight", "1"] as &[&str],
        &["numatune", name, "--nodeset", "0"],
        &["perf", name, "--enable", "cmt"],
    ] {
        fails_with(
            &virsh(uri, &[&["-r"][..], cmd].concat()),
            "read only access prevents",
            &format!("read-only {cmd:?}"),
        );
        fails_with(
            &virsh(uri, &[cmd, &["--live"][..]].concat()),
            "domain is not running",
            &format!("{cmd:?} --live"),
        );
    }
}

fn domiftune_domifaddr(uri: &str, name: &str) {
    assert_ok(
        &virsh(
            uri,
            &[
                "domiftune",
                name,
                MAC,
                "--inbound",
                "100,200,300,50",
                "--outbound",
                "10,20,30",
            ],
        ),
        "domiftune set",
    );
    let out = assert_ok(&virsh(uri, &["domiftune", name, MAC]), "domiftune");
    assert_eq!(field(&out, "inbound.floor"), "50", "{out}");
    assert_eq!(field(&out, "outbound.burst"), "30", "{out}");
    fails_with(
        &virsh(uri, &["domiftune", name, "vnet9"]),
        "'vnet9' is not a known interface",
        "unknown interface",
    );
    fails_with(
        &virsh(uri, &["-r", "domiftune", name, MAC, "--inbound", "1"]),
        "read only access prevents virDomainSetInterfaceParameters",
        "read-only domiftune",
    );
    fails_with(
        &virsh(uri, &["domifaddr", name]),
        "domain is not running",
        "domifaddr shut off",
    );
    assert_ok(&virsh(uri, &["start", name]), "start");
    for source in ["lease", "arp", "agent"] {
        let out = assert_ok(
            &virsh(uri, &["domifaddr", name, "--source", source]),
            "domifaddr",
        );
        assert!(
            out.contains("testnet0   52:54:00:00:00:01    ipv4         192.168.0.1/24"),
            "{out}"
        );
        assert!(
            out.contains(&format!("{MAC}    ipv4         192.168.122.")),
            "{out}"
        );
    }
    assert_ok(&virsh(uri, &["-r", "domifaddr", name]), "read-only lease");
    fails_with(
        &virsh(uri, &["-r", "domifaddr", name, "--source", "agent"]),
        "read only access prevents virDomainInterfaceAddresses",
        "read-only agent",
    );
    // Live changes leave the config alone.
    assert_ok(
        &virsh(uri, &["domiftune", name, MAC, "--live", "--inbound", "5"]),
        "domiftune --live",
    );
    let config = assert_ok(
        &virsh(uri, &["domiftune", name, MAC, "--config"]),
        "domiftune --config",
    );
    assert_eq!(field(&config, "inbound.average"), "100", "{config}");
    let live = assert_ok(&virsh(uri, &["domiftune", name, MAC]), "domiftune live");
    assert_eq!(field(&live, "inbound.average"), "5", "{live}");
    fails_with(
        &virsh(uri, &["numatune", name, "--mode", "strict"]),
        "can't change numatune mode for running domain",
        "numatune mode live",
    );
}

#[test]
fn device_io_numa_and_perf_tuning_as_libvirts_test_driver_and_kept_across_a_restart() {
    if require_binary("virsh").is_none() {
        return;
    }
    let mut daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    let name = "devtuned";
    define_devices(&uri, dir.path(), name);
    blkdeviotune(&uri, name);
    blkiotune_numatune_perf(&uri, name);
    domiftune_domifaddr(&uri, name);
    assert_ok(&virsh(&uri, &["destroy", name]), "destroy");
    daemon.restart();
    let uri = daemon.uri();
    let io = assert_ok(
        &virsh(&uri, &["blkdeviotune", name, "vda"]),
        "after restart",
    );
    assert_eq!(field(&io, "total_bytes_sec_max"), "2000", "{io}");
    let blkio = assert_ok(&virsh(&uri, &["blkiotune", name]), "after restart");
    assert_eq!(field(&blkio, "weight"), "500", "{blkio}");
    let numa = assert_ok(&virsh(&uri, &["numatune", name]), "after restart");
    assert_eq!(field(&numa, "numa_nodeset"), "0-1", "{numa}");
    let bw = assert_ok(&virsh(&uri, &["domiftune", name, MAC]), "after restart");
    assert_eq!(field(&bw, "inbound.average"), "100", "{bw}");
    let perf = assert_ok(&virsh(&uri, &["perf", name]), "after restart");
    assert_eq!(field(&perf, "cmt"), "enabled", "{perf}");
}

#[test]
fn device_tuning_travels_with_a_live_migration() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "devtuned-mig";
    define_devices(&a, dir.path(), name);
    assert_ok(&virsh(&a, &["start", name]), "start");
    let live = [
        "blkdeviotune",
        name,
        "vda",
        "--live",
        "--total-iops-sec",
        "5",
        "--total-iops-sec-max",
        "6",
    ];
    assert_ok(&virsh(&a, &live), "blkdeviotune --live");
    assert_ok(
        &virsh(&a, &["domiftune", name, MAC, "--live", "--outbound", "64"]),
        "domiftune --live",
    );
    assert_ok(
        &virsh(&a, &["blkiotune", name, "--config", "--weight", "700"]),
        "blkiotune --config",
    );
    assert_ok(
        &virsh(&a, &["perf", name, "--enable", "cpu_cycles"]),
        "perf",
    );
    assert_ok(
        &virsh(&a, &["migrate", "--live", "--persistent", name, &b]),
        "migrate",
    );
    let io = assert_ok(&virsh(&b, &["blkdeviotune", name, "vda"]), "on B");
    assert_eq!(field(&io, "total_iops_sec"), "5", "{io}\n{}", hosts.logs());
    let bw = assert_ok(&virsh(&b, &["domiftune", name, MAC]), "on B");
    assert_eq!(field(&bw, "outbound.average"), "64", "{bw}");
    let perf = assert_ok(&virsh(&b, &["perf", name]), "on B");
    assert_eq!(field(&perf, "cpu_cycles"), "enabled", "{perf}");
    let config = assert_ok(&virsh(&b, &["blkiotune", name, "--config"]), "on B");
    assert_eq!(field(&config, "weight"), "700", "{config}");
}

/// `virsh dommemstat --period`: the balloon's `<stats period>` of one
/// definition, in the words of libvirt 9.0's test driver (compared with
/// `virsh -c test:///default`), kept across a daemon restart.
#[test]
fn memory_stats_period_as_libvirts_test_driver() {
    if require_binary("virsh").is_none() {
        return;
    }
    let mut daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    let uri = daemon.uri();
    let name = "ballooned";
    let xml = format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>\
         <memballoon model='virtio'/></devices></domain>"
    );
    let path = dir.path().join("ballooned.xml");
    std::fs::write(&path, xml).expect("write domain xml");
    assert_ok(
        &virsh(&uri, &["define", &path.display().to_string()]),
        "define",
    );
    assert_ok(&virsh(&uri, &["start", name]), "start");
    let balloon = |uri: &str, extra: &[&str]| {
        let mut args = vec!["dumpxml", name, "--xpath", "//memballoon"];
        args.extend_from_slice(extra);
        assert_ok(&virsh(uri, &args), "dumpxml")
    };
    assert_ok(
        &virsh(&uri, &["dommemstat", name, "--period", "5"]),
        "period",
    );
    assert!(
        balloon(&uri, &[]).contains("<stats period=\"5\"/>"),
        "{}",
        balloon(&uri, &[])
    );
    assert!(!balloon(&uri, &["--inactive"]).contains("<stats"));
    assert_ok(
        &virsh(&uri, &["dommemstat", name, "--period", "7", "--config"]),
        "period --config",
    );
    assert!(balloon(&uri, &["--inactive"]).contains("<stats period=\"7\"/>"));
    fails_with(
        &virsh(
            &uri,
            &["dommemstat", name, "--period", "3", "--live", "--config"],
        ),
        "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
        "live and config",
    );
    assert_ok(&virsh(&uri, &["destroy", name]), "destroy");
    fails_with(
        &virsh(&uri, &["dommemstat", name, "--period", "3", "--live"]),
        "Requested operation is not valid: domain is not running",
        "live on a shut-off guest",
    );
    daemon.restart();
    let uri = daemon.uri();
    assert!(
        balloon(&uri, &[]).contains("<stats period=\"7\"/>"),
        "kept across a restart"
    );
    assert_ok(
        &virsh(&uri, &["dommemstat", name, "--period", "0"]),
        "period 0",
    );
    assert!(!balloon(&uri, &[]).contains("<stats"), "0 removes it");
    // A guest without a balloon, and a read-only connection.
    define_and_start(&uri, dir.path(), "unballooned");
    fails_with(
        &virsh(&uri, &["dommemstat", "unballooned", "--period", "5"]),
        "internal error: No memory balloon device configured, can not set the collection period",
        "no balloon",
    );
    fails_with(
        &virsh(&uri, &["-r", "dommemstat", name, "--period", "5"]),
        "read only access prevents virDomainSetMemoryStatsPeriod",
        "read-only",
    );
}
