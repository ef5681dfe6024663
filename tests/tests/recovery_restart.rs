//! Restart recovery (issue 6 item 3): what a daemon killed in the middle of
//! a migration does when it comes back, and what `migratectl
//! migration-status` tells the operator on either host.
//!
//! - p2p source killed after perform-done, destination never finished:
//!   the restarted source asks the destination, which lacks the guest, and
//!   gives the guest back here;
//! - p2p source killed after perform-done while the destination runs the
//!   guest (its answer lost): the restarted source stops its copy (and
//!   undefines it, as `--undefinesource` asked) without the operator;
//! - p2p source restarted while the destination is down: the job is held,
//!   the status says so with phase, role, job id and peer host, and it
//!   settles by itself once the destination is back;
//! - client-managed source killed after perform-done: nobody knows the
//!   destination, so the job waits for the operator; the status reports it
//!   and the two commands of operations.md §6 settle it either way.

mod fault_support;
mod migrate_support;

use std::time::Duration;

use fault_support::{define_started, job_of};
use migrate_support::{ctl, ctl_ok, ctl_spawn, state};
use migrated_tests::fault::pause;
use migrated_tests::{wait_until, Daemon};

const FLAGS: [&str; 3] = ["--live", "--persistent", "--undefinesource"];

fn daemons() -> (Daemon, Daemon) {
    (
        Daemon::builder().hostname("host-a").tcp().spawn(),
        Daemon::builder().hostname("host-b").tcp().spawn(),
    )
}

/// Starts a migration held at `step` on `holder`; returns the client.
fn migrate_held(
    src: &Daemon,
    dst: &Daemon,
    holder: &Daemon,
    name: &str,
    step: &str,
    p2p: bool,
) -> std::process::Child {
    pause::request(holder.state_dir(), step);
    let mut args = vec!["migrate"];
    args.extend(FLAGS);
    if p2p {
        args.push("--p2p");
    }
    let dest = dst.uri();
    args.extend([name, dest.as_str()]);
    let child = ctl_spawn(&src.uri(), &args);
    assert!(
        pause::wait_held(holder.state_dir(), step, Duration::from_secs(30)),
        "never held at {step}:\n{}",
        holder.logs()
    );
    child
}

fn reap(mut child: std::process::Child) {
    wait_until(Duration::from_secs(60), "the client to exit", || {
        child.try_wait().ok().flatten()
    });
}

/// Waits until `name` has no job on `uri`.
fn wait_no_job(uri: &str, name: &str) {
    wait_until(Duration::from_secs(20), "the job to be settled", || {
        job_of(uri, name)
            .map_or(true, |(role, _)| role == "none")
            .then_some(())
    });
}

fn status(uri: &str, name: &str) -> String {
    ctl_ok(uri, &["migration-status", name])
}

#[test]
fn p2p_source_restarted_after_perform_done_asks_the_destination_and_keeps_the_guest() {
    let (mut a, b) = daemons();
    let dir = tempfile::tempdir().expect("tempdir");
    define_started(&a.uri(), dir.path(), "rp1");
    let child = migrate_held(&a, &b, &a, "rp1", "perform-done", true);
    a.kill();
    pause::release(a.state_dir());
    reap(child);
    // The destination dropped the incoming guest with the source's connection.
    wait_until(
        Duration::from_secs(20),
        "the destination to drop the guest",
        || state(&b.uri(), "rp1").is_none().then_some(()),
    );
    a.restart();
    wait_no_job(&a.uri(), "rp1");
    assert!(
        a.logs().contains("settled by asking the peer"),
        "{}",
        a.logs()
    );
    // The test guest died with its daemon; its config is the one copy, here.
    assert_eq!(state(&a.uri(), "rp1").as_deref(), Some("shut off"));
    ctl_ok(&a.uri(), &["start", "rp1"]);
    ctl_ok(
        &a.uri(),
        &[&["migrate"][..], &FLAGS, &["rp1", &b.uri()]].concat(),
    );
    assert_eq!(state(&b.uri(), "rp1").as_deref(), Some("running"));
}

#[test]
fn p2p_source_restarted_while_the_destination_runs_the_guest_stops_its_copy() {
    let (mut a, b) = daemons();
    let dir = tempfile::tempdir().expect("tempdir");
    define_started(&a.uri(), dir.path(), "rp2");
    let child = migrate_held(&a, &b, &a, "rp2", "perform-done", true);
    // The same guest (same UUID) is what the destination will run: the case
    // where its answer was lost after it started the guest.
    let xml = dir.path().join("rp2-same.xml");
    std::fs::write(&xml, ctl_ok(&a.uri(), &["dumpxml", "rp2"])).expect("write xml");
    a.kill();
    pause::release(a.state_dir());
    reap(child);
    wait_until(
        Duration::from_secs(20),
        "the destination to drop the incoming copy",
        || state(&b.uri(), "rp2").is_none().then_some(()),
    );
    let xml = xml.to_str().expect("utf-8 path");
    ctl_ok(&b.uri(), &["define", xml]);
    ctl_ok(&b.uri(), &["start", "rp2"]);
    a.restart();
    wait_no_job(&a.uri(), "rp2");
    assert_eq!(
        state(&a.uri(), "rp2"),
        None,
        "UNDEFINE_SOURCE completed after asking the destination:\n{}",
        a.logs()
    );
    assert_eq!(state(&b.uri(), "rp2").as_deref(), Some("running"));
    ctl_ok(
        &b.uri(),
        &[&["migrate"][..], &FLAGS, &["rp2", &a.uri()]].concat(),
    );
    assert_eq!(state(&a.uri(), "rp2").as_deref(), Some("running"));
}

#[test]
fn p2p_held_job_reports_its_status_and_settles_once_the_destination_is_back() {
    let (mut a, mut b) = daemons();
    let dir = tempfile::tempdir().expect("tempdir");
    define_started(&a.uri(), dir.path(), "rp3");
    let child = migrate_held(&a, &b, &a, "rp3", "perform-done", true);
    b.kill();
    a.kill();
    pause::release(a.state_dir());
    reap(child);
    a.restart();
    // Unreachable destination: held, and the status tells everything.
    let s = status(&a.uri(), "rp3");
    for want in [
        "Role:",
        "source",
        "Phase:          3",
        "perform3_done",
        "kept paused",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    let job_line = s
        .lines()
        .find(|l| l.starts_with("Job id:"))
        .unwrap_or_default();
    assert!(!job_line.ends_with('-'), "job id reported: {s}");
    assert!(s.contains(b.host_uuid()), "peer host reported: {s}");
    b.restart();
    // The source retries every 5 s.
    wait_until(Duration::from_secs(30), "the held job to settle", || {
        job_of(&a.uri(), "rp3")
            .is_some_and(|(role, _)| role == "none")
            .then_some(())
    });
    assert_eq!(state(&b.uri(), "rp3"), None);
    assert_eq!(state(&a.uri(), "rp3").as_deref(), Some("shut off"));
}

#[test]
fn regular_source_held_after_perform_done_waits_for_the_operator() {
    let (mut a, b) = daemons();
    let dir = tempfile::tempdir().expect("tempdir");
    // Case 1: the destination does not have the guest → domjobabort here.
    define_started(&a.uri(), dir.path(), "rr1");
    let child = migrate_held(&a, &b, &a, "rr1", "perform-done", false);
    a.kill();
    pause::release(a.state_dir());
    reap(child);
    a.restart();
    let s = status(&a.uri(), "rr1");
    assert!(s.contains("kept paused"), "{s}");
    assert!(s.contains(b.host_uuid()), "peer host reported: {s}");
    assert_eq!(state(&b.uri(), "rr1"), None, "the destination dropped it");
    let refused = ctl(&a.uri(), &["start", "rr1"]);
    assert!(
        !refused.status.success(),
        "change protection holds the guest"
    );
    ctl_ok(&a.uri(), &["domjobabort", "rr1"]);
    wait_no_job(&a.uri(), "rr1");
    ctl_ok(&a.uri(), &["start", "rr1"]);

    // Case 2: the destination runs the guest → destroy here.
    let child = migrate_held(&a, &b, &b, "rr1", "finish", false);
    a.kill();
    pause::release(b.state_dir());
    reap(child);
    a.restart();
    assert!(status(&a.uri(), "rr1").contains("kept paused"));
    assert_eq!(state(&b.uri(), "rr1").as_deref(), Some("running"));
    ctl_ok(&a.uri(), &["destroy", "rr1"]);
    wait_no_job(&a.uri(), "rr1");
    assert_eq!(
        state(&a.uri(), "rr1"),
        None,
        "the settled job completed UNDEFINE_SOURCE"
    );
    assert_eq!(state(&b.uri(), "rr1").as_deref(), Some("running"));
}
