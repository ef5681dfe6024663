//! Stock `virsh migrate` between two migrated daemons on loopback: managed,
//! `--p2p`, `--p2p --tunnelled`, offline, persistent/undefinesource,
//! suspend, dname, bandwidth (each followed by a migration back, the
//! bandwidth-limited one watched by `virsh event`, then `--timeout
//! --timeout-suspend` with a RESUME waiting for the job), and `--xml`.

mod migrate_support;

use std::time::Duration;

use migrate_support::{
    checksum, ctl_ok, define, exactly_one_copy, job_events, persistent, state, Hosts,
};
use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, VirshEvents};

#[track_caller]
fn virsh_ok(uri: &str, args: &[&str], hosts: &Hosts) -> String {
    let out = virsh(uri, args);
    assert!(
        out.status.success(),
        "virsh {args:?} failed: {}{}\n{}",
        stdout_of(&out),
        stderr_of(&out),
        hosts.logs()
    );
    stdout_of(&out)
}

/// A running persistent guest to B and back, both legs driven by virsh.
fn round_trip(flags: &[&str]) {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "virsh-rt";
    define(&a, dir.path(), name, "", true);
    let mut args = vec!["migrate"];
    args.extend_from_slice(flags);
    args.extend([name, b.as_str()]);
    virsh_ok(&a, &args, &hosts);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert!(!persistent(&b, name));
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
    exactly_one_copy(&hosts, name);
    let mut back = vec!["migrate"];
    back.extend_from_slice(flags);
    back.extend([name, a.as_str()]);
    virsh_ok(&b, &back, &hosts);
    assert_eq!(state(&a, name).as_deref(), Some("running"));
    assert_eq!(state(&b, name), None);
    if flags.contains(&"--p2p") {
        p2p_to_a_closed_port(&hosts, name, flags);
    }
}

/// A peer-to-peer source that cannot reach the destination says so as
/// libvirt 9.0 does (the connection's own error, as a client connecting
/// there itself gets it), and the guest keeps running where it was.
fn p2p_to_a_closed_port(hosts: &Hosts, name: &str, flags: &[&str]) {
    let a = hosts.a_uri();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let nowhere = format!("test+tcp://127.0.0.1:{port}/default");
    let mut args = vec!["migrate"];
    args.extend_from_slice(flags);
    args.extend([name, nowhere.as_str()]);
    let out = virsh(&a, &args);
    assert!(!out.status.success(), "{}", stdout_of(&out));
    let expected =
        format!("error: unable to connect to server at '127.0.0.1:{port}': Connection refused");
    assert!(
        stderr_of(&out).contains(&expected),
        "{expected:?} missing from {}",
        stderr_of(&out)
    );
    assert_eq!(state(&a, name).as_deref(), Some("running"));
}

#[test]
fn virsh_live_regular() {
    round_trip(&["--live"]);
}

#[test]
fn virsh_live_p2p() {
    round_trip(&["--live", "--p2p"]);
}

#[test]
fn virsh_live_p2p_tunnelled() {
    round_trip(&["--live", "--p2p", "--tunnelled"]);
}

#[test]
fn virsh_verbose_polls_progress_while_perform_runs() {
    round_trip(&["--live", "--p2p", "--verbose", "--bandwidth", "50"]);
}

#[test]
fn virsh_offline_persistent() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "virsh-off";
    define(&a, dir.path(), name, "", false);
    // A managed save image would stay behind while the definition moves:
    // refused before anything happens on either host.
    virsh_ok(&a, &["start", name], &hosts);
    virsh_ok(&a, &["managedsave", name], &hosts);
    let refused = virsh(&a, &["migrate", "--offline", "--persistent", name, &b]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("has a managed save image"),
        "{}",
        stderr_of(&refused)
    );
    assert_eq!(state(&b, name), None);
    virsh_ok(&a, &["managedsave-remove", name], &hosts);
    virsh_ok(
        &a,
        &["migrate", "--offline", "--persistent", name, &b],
        &hosts,
    );
    assert_eq!(state(&b, name).as_deref(), Some("shut off"));
    assert!(persistent(&b, name));
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
    // A's managed save image of the guest would be resumable beside the
    // guest arriving live from B: A refuses to receive it; B runs on.
    virsh_ok(&a, &["start", name], &hosts);
    virsh_ok(&a, &["managedsave", name], &hosts);
    virsh_ok(&b, &["start", name], &hosts);
    let refused = virsh(&b, &["migrate", "--live", name, &a]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("has a managed save image on the destination host"),
        "{}",
        stderr_of(&refused)
    );
    assert_eq!(state(&b, name).as_deref(), Some("running"));
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
    virsh_ok(&a, &["managedsave-remove", name], &hosts);
    virsh_ok(&b, &["destroy", name], &hosts);
    virsh_ok(
        &b,
        &[
            "migrate",
            "--offline",
            "--persistent",
            "--undefinesource",
            name,
            &a,
        ],
        &hosts,
    );
    assert_eq!(state(&b, name), None);
}

#[test]
fn virsh_persistent_undefinesource() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "virsh-pu";
    define(&a, dir.path(), name, "", true);
    // Title and metadata live in the domain XML, live and config: they move.
    virsh_ok(
        &a,
        &["desc", name, "--live", "--config", "--title", "on the move"],
        &hosts,
    );
    let set = [
        "metadata",
        name,
        "urn:h6:tag",
        "--key",
        "t",
        "--set",
        "<tag v='1'/>",
    ];
    virsh_ok(&a, &[&set[..], &["--live", "--config"]].concat(), &hosts);
    // So do the vCPU counts: one online live, four at most in the config.
    virsh_ok(&a, &["setvcpus", name, "1", "--live"], &hosts);
    virsh_ok(
        &a,
        &["setvcpus", name, "4", "--maximum", "--config"],
        &hosts,
    );
    let flags = ["migrate", "--live", "--persistent", "--undefinesource"];
    let mut args = flags.to_vec();
    args.extend([name, b.as_str()]);
    virsh_ok(&a, &args, &hosts);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
    assert!(persistent(&b, name));
    for scope in ["--live", "--config"] {
        let title = virsh_ok(&b, &["desc", name, "--title", scope], &hosts);
        assert_eq!(title.trim(), "on the move", "{scope}");
        let tag = virsh_ok(&b, &["metadata", name, "urn:h6:tag", scope], &hosts);
        assert_eq!(tag.trim(), "<tag v=\"1\"/>", "{scope}");
    }
    let count = virsh_ok(&b, &["vcpucount", name], &hosts);
    for needle in [
        "maximum      config         4",
        "current      config         2",
        "maximum      live           2",
        "current      live           1",
    ] {
        assert!(count.contains(needle), "{needle:?} missing from {count}");
    }
    assert_eq!(state(&a, name), None);
    let mut back = flags.to_vec();
    back.extend([name, a.as_str()]);
    virsh_ok(&b, &back, &hosts);
    assert!(persistent(&a, name));
    assert_eq!(state(&b, name), None);
}

#[test]
fn virsh_suspend_dname_and_identical_memory() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "virsh-s", "", true);
    ctl_ok(&a, &["suspend", "virsh-s"]);
    let sum = checksum(&a, "virsh-s");
    virsh_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--suspend",
            "--dname",
            "virsh-s2",
            "virsh-s",
            &b,
        ],
        &hosts,
    );
    assert_eq!(state(&b, "virsh-s2").as_deref(), Some("paused"));
    assert_eq!(checksum(&b, "virsh-s2"), sum, "memory identical");
    assert_eq!(state(&a, "virsh-s").as_deref(), Some("shut off"));
    virsh_ok(&b, &["resume", "virsh-s2"], &hosts);
    virsh_ok(
        &b,
        &["migrate", "--live", "--dname", "virsh-s", "virsh-s2", &a],
        &hosts,
    );
    assert_eq!(state(&a, "virsh-s").as_deref(), Some("running"));
}

#[test]
fn virsh_bandwidth_and_job_tuning() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "virsh-bw";
    define(&a, dir.path(), name, "", true);
    // Nobody limited it yet: libvirt's QEMU driver reports its maximum.
    assert_eq!(
        virsh_ok(&a, &["migrate-getspeed", name], &hosts).trim(),
        "8796093022207"
    );
    let too_fast = virsh(&a, &["migrate-setspeed", name, "8796093022208"]);
    assert!(!too_fast.status.success());
    assert!(
        stderr_of(&too_fast)
            .contains("error: numerical overflow: bandwidth must be less than 8796093022208"),
        "{}",
        stderr_of(&too_fast)
    );
    virsh_ok(&a, &["migrate-setspeed", name, "30"], &hosts);
    assert_eq!(
        virsh_ok(&a, &["migrate-getspeed", name], &hosts).trim(),
        "30"
    );
    virsh_ok(&a, &["migrate-setmaxdowntime", name, "200"], &hosts);
    assert_eq!(
        virsh_ok(&a, &["migrate-getmaxdowntime", name], &hosts).trim(),
        "200"
    );
    // `virsh event` on the source sees each pass and the completed job.
    let events = VirshEvents::spawn(&a, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&a, name);
    virsh_ok(
        &a,
        &["migrate", "--live", "--bandwidth", "20", name, &b],
        &hosts,
    );
    events.wait_for("event 'job-completed'", Duration::from_secs(20));
    let text = events.wait_for("\tsuccess: ", Duration::from_secs(20));
    drop(events);
    let (_, stats) = job_events(&text, name);
    for key in ["time_elapsed", "data_total", "data_processed", "downtime"] {
        let value: u64 = stats
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
        assert!(value > 0 || key == "downtime", "{key} = 0 in:\n{text}");
    }
    assert_eq!(
        stats.get("success").map(String::as_str),
        Some("1"),
        "{text}"
    );
    assert_eq!(state(&b, name).as_deref(), Some("running"));
    let info = virsh_ok(&b, &["domjobinfo", "--completed", name], &hosts);
    assert!(info.contains("Completed"), "{info}");
    // As QEMU's `duplicate`: pages that never held data count as constant
    // pages, though nothing is sent for them.
    let info = virsh_ok(&a, &["domjobinfo", "--completed", name], &hosts);
    let constant: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("Constant pages:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no constant pages in:\n{info}"));
    assert!(constant > 0, "{info}");
    // Nothing compressed, nothing throttled: as libvirt, no lines for them.
    for absent in ["Compressed data", "Auto converge throttle"] {
        assert!(!info.contains(absent), "{absent:?} in:\n{info}");
    }
    virsh_ok(&b, &["migrate", "--live", name, &a], &hosts);
    timeout_suspend(&hosts, name);
}

/// `virsh migrate --timeout 1 --timeout-suspend` of a migration too slow to
/// end in a second (1 MiB/s): virsh suspends the guest mid-migration (a
/// SUSPEND on the connection whose PERFORM is in flight), the source pauses
/// it ("migrating"), the migration completes, and the guest runs on the
/// destination as libvirt leaves it (`running (migrated)`: it was running
/// when the migration began). A RESUME from a second client meanwhile waits
/// for the job, as behind libvirt's state change lock, and then finds the
/// guest gone from the source. Meanwhile `domjobinfo` on the destination is
/// refused as libvirt refuses it there.
fn timeout_suspend(hosts: &Hosts, name: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let events = VirshEvents::spawn(&a, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&a, name);
    let args = [
        "migrate",
        "--live",
        "--bandwidth",
        "1",
        "--timeout",
        "1",
        "--timeout-suspend",
        name,
        &b,
    ];
    let (out, resume) = migrate_support::migrate_with_resume(&a, &args, name, || {
        events.wait_for("Suspended Migrated", Duration::from_secs(30));
        // Still under way at 1 MiB/s: the running job's statistics are the
        // source's; the destination refuses the query as libvirt does.
        let arriving = virsh(&b, &["domjobinfo", name]);
        assert!(!arriving.status.success(), "domjobinfo on the destination");
        assert!(
            stderr_of(&arriving).contains(
                "Operation not supported: migration statistics are available only on the source host"
            ),
            "{}",
            stderr_of(&arriving)
        );
    });
    assert!(
        out.status.success(),
        "virsh migrate: {}\n{}",
        stderr_of(&out),
        hosts.logs()
    );
    assert!(!resume.status.success(), "resume after the migration");
    // The guest left: libvirt's test driver refuses a resume of anything
    // not paused in these words.
    assert!(
        stderr_of(&resume).contains("internal error: domain 'virsh-bw' not paused"),
        "{}",
        stderr_of(&resume)
    );
    events.wait_for("event 'job-completed'", Duration::from_secs(20));
    drop(events);
    assert_eq!(
        virsh_ok(&b, &["domstate", "--reason", name], hosts).trim(),
        "running (migrated)"
    );
    assert_eq!(
        virsh_ok(&a, &["domstate", "--reason", name], hosts).trim(),
        "shut off (migrated)"
    );
    exactly_one_copy(hosts, name);
}

/// `virsh migrate --xml`: a host-side change (a description) is accepted and
/// arrives; a guest-visible one (memory size) is refused, naming the
/// memory, and nothing changes on either host.
#[test]
fn virsh_xml_host_side_change_accepted_memory_change_refused() {
    if require_binary("virsh").is_none() {
        return;
    }
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "virsh-xml";
    define(&a, dir.path(), name, "", true);
    let migratable = virsh_ok(&a, &["dumpxml", "--migratable", name], &hosts);

    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, migratable.replace("16384", "32768")).expect("write xml");
    let out = virsh(
        &a,
        &[
            "migrate",
            "--live",
            "--xml",
            bad.to_str().expect("utf-8"),
            name,
            &b,
        ],
    );
    let err = stderr_of(&out);
    assert!(!out.status.success(), "a memory change was accepted");
    assert!(
        err.contains("memory"),
        "the refusal names the change: {err}"
    );
    assert_eq!(state(&a, name).as_deref(), Some("running"));
    assert_eq!(state(&b, name), None);
    exactly_one_copy(&hosts, name);

    let good = dir.path().join("good.xml");
    let described = migratable.replacen(
        &format!("<name>{name}</name>"),
        &format!("<name>{name}</name>\n  <description>moved by virsh</description>"),
        1,
    );
    std::fs::write(&good, described).expect("write xml");
    virsh_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--xml",
            good.to_str().expect("utf-8"),
            name,
            &b,
        ],
        &hosts,
    );
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert!(virsh_ok(&b, &["dumpxml", name], &hosts).contains("moved by virsh"));
    exactly_one_copy(&hosts, name);
}
