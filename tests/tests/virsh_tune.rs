//! Stock `virsh` tuning and guest queries against `migrated`'s test driver,
//! answered as libvirt 9.0's test driver answers them: `schedinfo`,
//! `memtune`, `cpu-stats`, `domhostname`, `domtime` (and `domcontrol`,
//! which follows the clock), with their flags, bad input and read-only
//! connections.
//!
//! A topic file of its own: `virsh_basic.rs` is at its size limit.

mod migrate_support;

use std::process::Output;

use migrate_support::{define, Hosts};
use migrated_tests::clients::{assert_ok, stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, Daemon};

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
