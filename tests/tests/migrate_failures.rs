//! Failure injection between two real daemons: a failing Prepare, Perform or
//! Finish (the test driver's `<migrated:fault>` knob), the destination killed
//! during Perform, the daemon-to-daemon connection cut during a tunnelled
//! stream. After each: exactly one copy running or resumable, its config
//! present, no job left locked, and a second attempt succeeds.

mod migrate_support;

use migrate_support::{
    ctl_fails, ctl_ok, ctl_spawn, define, exactly_one_copy, finish, persistent, state,
    wait_job_running, wait_state, Hosts, Proxy,
};

/// A fault at `at`; Perform fails after 64 KiB, well inside the first pass
/// (a started guest has written more than that by the time it migrates; the
/// transfer of its few hundred data pages may be well under 1 MiB in all).
fn fault(at: &str) -> String {
    format!(
        "<migrated:fault xmlns:migrated='https://migrated.dev/xmlns/test/1' at='{at}' \
         after_bytes='65536'/>"
    )
}

/// One injected failure with `flags`, then the checks of the module doc.
fn injected(at: &str, flags: &[&str]) {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = format!("fail-{at}");
    define(&a, dir.path(), &name, &fault(at), true);
    let mut args = vec!["migrate"];
    args.extend_from_slice(flags);
    args.extend([name.as_str(), b.as_str()]);
    let err = ctl_fails(&a, &args);
    assert!(err.contains("migration failed"), "{err}");
    wait_state(&a, &name, Some("running"));
    assert_eq!(state(&b, &name), None, "nothing left on the destination");
    assert_eq!(exactly_one_copy(&hosts, &name), (true, false));
    assert!(persistent(&a, &name), "config present");
    // the fault fires once: the retry goes through
    ctl_ok(&a, &args);
    assert_eq!(
        state(&b, &name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert_eq!(exactly_one_copy(&hosts, &name), (false, true));
}

#[test]
fn failing_prepare_leaves_the_guest_on_the_source() {
    injected("prepare", &["--live"]);
}

#[test]
fn failing_prepare_in_p2p_leaves_the_guest_on_the_source() {
    injected("prepare", &["--live", "--p2p"]);
}

#[test]
fn failing_perform_midway_resumes_the_source() {
    injected("perform", &["--live"]);
}

#[test]
fn failing_perform_in_a_tunnel_resumes_the_source() {
    injected("perform", &["--live", "--p2p", "--tunnelled"]);
}

#[test]
fn failing_finish_resumes_the_source() {
    injected("finish", &["--live"]);
}

#[test]
fn failing_finish_in_p2p_resumes_the_source() {
    injected("finish", &["--live", "--p2p"]);
}

#[test]
fn destination_killed_during_perform() {
    let mut hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "fail-kill-dst";
    define(&a, dir.path(), name, "", true);
    // slow enough to be caught mid-transfer
    let child = ctl_spawn(&a, &["migrate", "--live", "--bandwidth", "2", name, &b]);
    wait_job_running(&a, name);
    hosts.b.kill();
    let (ok, err) = finish(child);
    assert!(!ok, "the migration cannot succeed without its destination");
    assert!(err.contains("migration failed"), "{err}");
    wait_state(&a, name, Some("running"));
    hosts.b.restart();
    assert_eq!(state(&b, name), None, "{}", hosts.logs());
    exactly_one_copy(&hosts, name);
    ctl_ok(&a, &["migrate", "--live", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}

#[test]
fn connection_cut_during_a_tunnelled_stream() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "fail-cut";
    define(&a, dir.path(), name, "", true);
    let proxy = Proxy::start(hosts.b.tcp_addr());
    let via = format!("test+tcp://127.0.0.1:{}/default", proxy.port);
    let child = ctl_spawn(
        &a,
        &[
            "migrate",
            "--live",
            "--p2p",
            "--tunnelled",
            "--bandwidth",
            "2",
            name,
            &via,
        ],
    );
    wait_job_running(&a, name);
    proxy.cut();
    let (ok, err) = finish(child);
    assert!(!ok, "a cut tunnel cannot complete");
    assert!(err.contains("migration failed"), "{err}");
    wait_state(&a, name, Some("running"));
    // the destination dropped the half-received guest when its peer vanished
    wait_state(&b, name, None);
    exactly_one_copy(&hosts, name);
    ctl_ok(&a, &["migrate", "--live", "--p2p", "--tunnelled", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}
