//! The source daemon dies after Perform finished (guest paused, all data
//! sent) and before Confirm: on restart it must not resume the guest blindly
//! while the destination may run it. It keeps the job held, says so in
//! `migration-status`, and the operator settles it with `domjobabort`.
//!
//! One test per file: the pause point is set through the environment the
//! source daemon inherits from this process.

mod migrate_support;

use migrate_support::{
    ctl_ok, ctl_spawn, define, exactly_one_copy, finish, job_role, persistent, state, Hosts,
};
use migrated_tests::{wait_until, Daemon};

#[test]
fn source_killed_after_perform_done_keeps_the_guest_held_until_settled() {
    std::env::set_var("MIGRATED_PAUSE_AT", "perform-done");
    let a = Daemon::builder().hostname("host-a").tcp().spawn();
    std::env::remove_var("MIGRATED_PAUSE_AT");
    let b = Daemon::builder().hostname("host-b").tcp().spawn();
    let mut hosts = Hosts { a, b };
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "restart-g";
    define(&a, dir.path(), name, "", true);

    let child = ctl_spawn(&a, &["migrate", "--live", name, &b]);
    wait_until(
        std::time::Duration::from_secs(30),
        "the source to hold at perform-done",
        || {
            let out = ctl_ok(&a, &["migration-status", name]);
            out.contains("perform3_done").then_some(())
        },
    );
    hosts.a.kill();
    let (ok, _) = finish(child);
    assert!(!ok, "the client saw its source die");
    // the client cancelled the destination (Perform failed → Finish cancelled)
    assert_eq!(state(&b, name), None, "{}", hosts.logs());

    hosts.a.restart();
    let status = ctl_ok(&a, &["migration-status", name]);
    assert!(status.contains("source"), "{status}");
    assert!(
        status.contains("kept paused and resumable"),
        "restart must hold the job: {status}"
    );
    assert!(persistent(&a, name), "config present");
    let err = migrate_support::ctl_fails(&a, &["migrate", "--live", name, &b]);
    assert!(
        err.contains("migration job"),
        "the held job still owns the guest: {err}"
    );

    // operator: the destination does not run it → give it back here
    ctl_ok(&a, &["domjobabort", name]);
    assert_eq!(job_role(&a, name), "none");
    if state(&a, name).as_deref() == Some("shut off") {
        // test-driver guests do not survive their daemon; QEMU ones would
        ctl_ok(&a, &["start", name]);
    }
    exactly_one_copy(&hosts, name);
    ctl_ok(&a, &["migrate", "--live", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}
