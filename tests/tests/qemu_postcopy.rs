//! Post-copy migration of a real QEMU guest (256 MiB, the workload kernel
//! dirtying 64 MiB per pass) between two `migrated` daemons, driven by stock
//! `virsh`. Throttled to 16 MiB/s the guest cannot converge in pre-copy (its
//! working set does not fit QEMU's 300 ms downtime), so each migration only
//! completes because it switches to post-copy: by `virsh migrate-postcopy`
//! from a second client, then by `--postcopy-after-precopy` (virsh calls
//! MIGRATE_START_POST_COPY on the first MIGRATION_ITERATION event). While
//! pages still flow the source is paused "post-copy" and the destination
//! runs "post-copy"; afterwards exactly one QEMU runs the guest and its
//! workload counts on. A source daemon killed during post-copy and
//! restarted keeps its QEMU paused and stops it once the last page is sent.
//! A stream broken between the QEMUs (`ss -K` on its loopback port) leaves
//! the source paused and the destination running "post-copy failed", and
//! `--postcopy-resume` recovers it: peer-to-peer, again after a second
//! break, and after a source daemon restart in the middle of a recovery;
//! the guest then ends on the destination, one QEMU left. A Finish that
//! fails after the switch (its daemon killed) still ends the migration as
//! libvirt does: the source stops once the last page is sent. A destination
//! QEMU killed during post-copy leaves the source paused "post-copy
//! failed", never running again (and not recoverable).

mod migrate_support;
mod qemu_support;

use std::process::Output;
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{virsh, wait_until, VirshEvents};
use qemu_support::{
    counter_above, job_free, moved_and_counting, pause_at, pid_gone, qemu_pids, release,
    status_pid, QemuHosts,
};

/// Pre-copy and post-copy bandwidth, MiB/s: the pre-copy cannot converge,
/// and the post-copy phase lasts long enough (seconds) to watch.
const BANDWIDTH: &str = "16";

/// How long a throttled migration may take from start to end.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// `virsh domstate --reason` of `name` on `uri`, if it is there.
fn state_reason(uri: &str, name: &str) -> Option<String> {
    let out = virsh(uri, &["domstate", "--reason", name]);
    out.status
        .success()
        .then(|| stdout_of(&out).trim().to_owned())
}

/// Waits until `name` on `uri` is in `state` (as `domstate --reason` prints it).
#[track_caller]
fn wait_state(hosts: &QemuHosts, uri: &str, name: &str, state: &str) {
    let deadline = std::time::Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let now = state_reason(uri, name);
        if now.as_deref() == Some(state) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} on {uri} never became {state:?}: last {now:?}\n{}",
            hosts.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `virsh migrate --live --postcopy` with both bandwidths throttled, plus
/// `extra`, run from `from` in the background.
fn migrate_in_background(
    from: &str,
    to: &str,
    name: &str,
    extra: &[&str],
) -> std::thread::JoinHandle<Output> {
    let mut args: Vec<String> = [
        "migrate",
        "--live",
        "--postcopy",
        "--bandwidth",
        BANDWIDTH,
        "--postcopy-bandwidth",
        BANDWIDTH,
    ]
    .iter()
    .chain(extra)
    .map(|&a| a.to_owned())
    .collect();
    args.extend([name.to_owned(), to.to_owned()]);
    let from = from.to_owned();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        virsh(&from, &args)
    })
}

#[track_caller]
fn joined_ok(hosts: &QemuHosts, migrate: std::thread::JoinHandle<Output>, what: &str) {
    let out = migrate.join().expect("virsh migrate thread");
    assert!(
        out.status.success(),
        "{what}: {}{}\n{}",
        stdout_of(&out),
        stderr_of(&out),
        hosts.logs()
    );
}

#[test]
fn qemu_virsh_postcopy_switch_complete_and_fail() {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "pc1";
    let (uuid, before) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");

    // Misuse first, as libvirt words it: no outgoing migration.
    let out = virsh(&a, &["migrate-postcopy", name]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out)
            .contains("post-copy can only be started while outgoing migration is in progress"),
        "{}",
        stderr_of(&out)
    );
    for (extra, words) in [
        (
            &["--suspend"][..],
            "post-copy migration is not supported with non-live or paused migration",
        ),
        (
            &["--p2p", "--tunnelled"][..],
            "post-copy is not supported with tunnelled migration",
        ),
    ] {
        let mut args = vec!["migrate", "--live", "--postcopy"];
        args.extend_from_slice(extra);
        args.extend([name, &b]);
        let out = virsh(&a, &args);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr_of(&out).contains(words), "{}", stderr_of(&out));
    }
    // A migration started without --postcopy cannot switch.
    let migrate = std::thread::spawn({
        let (a, b) = (a.clone(), b.clone());
        move || {
            virsh(
                &a,
                &["migrate", "--live", "--bandwidth", BANDWIDTH, name, &b],
            )
        }
    });
    let refusal = wait_until(MIGRATION_TIMEOUT, "migrate-postcopy refused", || {
        let out = virsh(&a, &["migrate-postcopy", name]);
        let text = stderr_of(&out);
        text.contains("requires migration to be started with VIR_MIGRATE_POSTCOPY flag")
            .then_some(text)
    });
    assert!(refusal.contains("switching to post-copy"), "{refusal}");
    hosts.virsh_ok(&a, &["domjobabort", name]);
    let out = migrate.join().expect("virsh migrate thread");
    assert!(!out.status.success(), "the aborted migration succeeded");
    wait_until(Duration::from_secs(30), "the aborted job to end", || {
        job_free(&a, name).then_some(())
    });
    assert_eq!(
        state_reason(&a, name).as_deref(),
        Some("running (booted)"),
        "the guest runs on after the abort"
    );

    // The post-copy speed is the guest's, read back as set.
    hosts.virsh_ok(&a, &["migrate-setspeed", "--postcopy", name, "32"]);
    let speed = hosts.virsh_ok(&a, &["migrate-getspeed", "--postcopy", name]);
    assert_eq!(speed.trim(), "32");
    hosts.virsh_ok(&a, &["migrate-setspeed", "--postcopy", name, "0"]);

    // 1. --postcopy, switched by `virsh migrate-postcopy` from a second client.
    let events = VirshEvents::spawn(&a, &["--loop", "--all", "--domain", name]);
    events.sync_on_redefine(&a, name);
    let migrate = migrate_in_background(&a, &b, name, &[]);
    wait_until(Duration::from_secs(30), "the migration job on A", || {
        (!job_free(&a, name)).then_some(())
    });
    // Pre-copy goes on until asked: a pass over the memory starts.
    events.wait_for("migration-iteration", MIGRATION_TIMEOUT);
    // A post-copy speed set mid-migration reaches QEMU at once, as in libvirt.
    hosts.virsh_ok(&a, &["migrate-setspeed", "--postcopy", name, BANDWIDTH]);
    wait_until(Duration::from_secs(30), "the new post-copy speed", || {
        let log = hosts.a.logs();
        log.lines()
            .any(|l| {
                l.contains("post-copy bandwidth changed")
                    && l.contains("max_postcopy_bandwidth=16777216")
            })
            .then_some(())
    });
    hosts.virsh_ok(&a, &["migrate-postcopy", name]);
    wait_state(&hosts, &a, name, "paused (post-copy)");
    wait_state(&hosts, &b, name, "running (post-copy)");
    joined_ok(
        &hosts,
        migrate,
        "virsh migrate --postcopy + migrate-postcopy",
    );
    events.wait_for("Suspended Post-copy", Duration::from_secs(10));
    drop(events);
    moved_and_counting(&hosts, name, &uuid, src_pid, before);
    assert_eq!(
        state_reason(&b, name).as_deref(),
        Some("running (migrated)")
    );
    // The source's statistics went on through the post-copy phase: the
    // destination asked for the pages its running guest touched first.
    let stats = hosts.virsh_ok(&a, &["domjobinfo", "--completed", name]);
    assert!(stats.contains("Postcopy requests:"), "{stats}");

    // 2. Back with --postcopy-after-precopy: virsh switches by itself.
    let before = counter_above(&b, name, 0, &hosts);
    let b_pid = status_pid(&hosts.b, name).expect("destination status file");
    let migrate = migrate_in_background(&b, &a, name, &["--postcopy-after-precopy"]);
    joined_ok(&hosts, migrate, "virsh migrate --postcopy-after-precopy");
    wait_until(Duration::from_secs(20), "B's QEMU to exit", || {
        pid_gone(b_pid).then_some(())
    });
    let a_pid = status_pid(&hosts.a, name).expect("status file back on A");
    assert_eq!(
        qemu_pids(&uuid),
        vec![a_pid],
        "exactly A's QEMU runs {name}"
    );
    counter_above(&a, name, before, &hosts);

    // 3. The source daemon is killed during post-copy (its client waits in
    // Confirm) and restarted: it finds its QEMU in post-copy, keeps it
    // paused, and stops it only once QEMU has sent the last page.
    let before = counter_above(&a, name, 0, &hosts);
    let migrate = migrate_in_background(&a, &b, name, &[]);
    switch_when_running(&hosts, &a, name);
    wait_state(&hosts, &a, name, "paused (post-copy)");
    wait_state(&hosts, &b, name, "running (post-copy)");
    // virsh has moved on to Confirm, which waits for the last page.
    wait_until(MIGRATION_TIMEOUT, "A's job in Confirm", || {
        hosts
            .ctl_ok(&a, &["migration-status", name])
            .contains("phase confirm3")
            .then_some(())
    });
    hosts.a.kill();
    let _ = migrate.join();
    hosts.a.restart();
    let state = state_reason(&a, name);
    assert!(
        matches!(
            state.as_deref(),
            Some("paused (post-copy)" | "shut off (migrated)")
        ),
        "source after the restart: {state:?}\n{}",
        hosts.logs()
    );
    wait_until(
        MIGRATION_TIMEOUT,
        "A's QEMU to stop after the last page",
        || (pid_gone(a_pid) && status_pid(&hosts.a, name).is_none()).then_some(()),
    );
    moved_and_counting(&hosts, name, &uuid, a_pid, before);

    // 4. The stream between the QEMUs breaks during post-copy (twice):
    // each time both wait for a recovery, and `--postcopy-resume` (p2p,
    // then client-managed) reconnects them.
    recover_broken_postcopy(&mut hosts, name, &uuid);

    // 5. Finish fails after the switch while pages still flow: the
    // destination daemon is killed while it holds Finish's answer, so virsh
    // sends Confirm with cancelled=1. As in libvirt the migration still
    // succeeds: A's QEMU sends the rest and stops, its configuration stays;
    // B's QEMU, watched again once its daemon is back, runs the guest.
    let before = counter_above(&a, name, 0, &hosts);
    let a_pid = status_pid(&hosts.a, name).expect("the guest runs on A");
    let marker = pause_at(&hosts.b, "finish");
    let migrate = migrate_in_background(&a, &b, name, &[]);
    switch_when_running(&hosts, &a, name);
    wait_until(MIGRATION_TIMEOUT, "B's Finish held", || {
        marker.exists().then_some(())
    });
    hosts.b.kill();
    let out = migrate.join().expect("virsh migrate thread");
    assert!(!out.status.success(), "Finish failed, yet virsh succeeded");
    release(&hosts.b, &marker);
    hosts.b.restart();
    wait_until(
        MIGRATION_TIMEOUT,
        "A's QEMU to stop after the last page",
        || pid_gone(a_pid).then_some(()),
    );
    assert!(
        hosts
            .a
            .logs()
            .contains("finish failed, but the post-copy migration goes on"),
        "{}",
        hosts.logs()
    );
    assert_eq!(
        state_reason(&a, name).as_deref(),
        Some("shut off (migrated)"),
        "A keeps the guest's configuration"
    );
    moved_and_counting(&hosts, name, &uuid, a_pid, before);
    let on_b = state_reason(&b, name).unwrap_or_default();
    assert!(on_b.starts_with("running"), "B after its restart: {on_b}");

    // 6. The destination QEMU dies during post-copy: the source, whose
    // memory is stale, stays paused "post-copy failed" and cannot resume.
    let b_pid = status_pid(&hosts.b, name).expect("the guest runs on B");
    let migrate = migrate_in_background(&b, &a, name, &[]);
    switch_when_running(&hosts, &b, name);
    wait_state(&hosts, &b, name, "paused (post-copy)");
    let a_pid = wait_until(Duration::from_secs(30), "the QEMU on A", || {
        status_pid(&hosts.a, name)
    });
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is the
    // destination QEMU this test's migration started.
    unsafe { libc::kill(a_pid, libc::SIGKILL) };
    let _ = migrate.join();
    wait_state(&hosts, &b, name, "paused (post-copy failed)");
    assert_eq!(qemu_pids(&uuid), vec![b_pid], "the source QEMU is kept");
    let out = virsh(&b, &["resume", name]);
    assert!(!out.status.success(), "a post-copy source resumed");
    assert_eq!(
        state_reason(&b, name).as_deref(),
        Some("paused (post-copy failed)")
    );
    // Nothing left to recover from: the destination is gone.
    let out = postcopy_resume(&b, &a, name);
    assert!(
        !out.status.success(),
        "recovered towards a dead destination"
    );
    hosts.virsh_ok(&b, &["destroy", name]);
}

/// `virsh migrate --live --postcopy --postcopy-resume` of `name` from
/// `from` to `to` (client-managed), its outcome for the caller to check.
fn postcopy_resume(from: &str, to: &str, name: &str) -> std::process::Output {
    virsh(
        from,
        &[
            "migrate",
            "--live",
            "--postcopy",
            "--postcopy-resume",
            name,
            to,
        ],
    )
}

/// `virsh migrate --live --postcopy --postcopy-resume` of `name` from
/// `from` to `to`, plus `extra`, expected to fail with `words`.
#[track_caller]
fn resume_refused(from: &str, to: &str, name: &str, extra: &[&str], words: &str) {
    let mut args = vec!["migrate", "--live"];
    args.extend_from_slice(extra);
    args.extend(["--postcopy-resume", name, to]);
    let out = virsh(from, &args);
    assert!(!out.status.success(), "{args:?} accepted");
    assert!(
        stderr_of(&out).contains(words),
        "{args:?}: {}",
        stderr_of(&out)
    );
}

/// Breaks the migration stream that the incoming QEMU `dst_pid` receives
/// on 127.0.0.1: both ends of its established TCP connection are destroyed
/// (`ss -K`, matching only that connection's port on loopback).
fn break_migration_stream(hosts: &QemuHosts, dst_pid: i32) {
    let owner = format!("pid={dst_pid},");
    let port = wait_until(Duration::from_secs(10), "the migration connection", || {
        let out = std::process::Command::new("ss")
            .args(["-tnpH", "state", "established"])
            .output()
            .expect("run ss");
        stdout_of(&out).lines().find_map(|l| {
            let local = l.split_whitespace().nth(2)?;
            let port = local.strip_prefix("127.0.0.1:")?;
            l.contains(&owner).then(|| port.to_owned())
        })
    });
    let out = std::process::Command::new("ss")
        .args(["-K", "-tnH", "state", "established", "dst", "127.0.0.1"])
        .args(["(", "sport", "=", &format!(":{port}"), "or"])
        .args(["dport", "=", &format!(":{port}"), ")"])
        .output()
        .expect("run ss -K");
    assert!(
        out.status.success(),
        "ss -K: {}\n{}",
        stderr_of(&out),
        hosts.logs()
    );
}

/// Scenario 4 of [`qemu_virsh_postcopy_switch_complete_and_fail`]: `name`
/// runs on B and ends on A.
fn recover_broken_postcopy(hosts: &mut QemuHosts, name: &str, uuid: &str) {
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let before = counter_above(&b, name, 0, hosts);
    let b_pid = status_pid(&hosts.b, name).expect("the guest runs on B");
    // Refused as libvirt refuses it (virsh itself refuses a recovery
    // without --postcopy): no post-copy to recover.
    resume_refused(
        &b,
        &a,
        name,
        &["--postcopy"],
        &format!("migration of domain {name} is not in post-copy phase"),
    );
    // Pages trickle in the background (the guest's own requests still
    // jump the queue), so the stream is up long enough to break.
    hosts.virsh_ok(&b, &["migrate-setspeed", "--postcopy", name, "1"]);
    let migrate = migrate_in_background(&b, &a, name, &[]);
    switch_when_running(hosts, &b, name);
    wait_state(hosts, &b, name, "paused (post-copy)");
    wait_state(hosts, &a, name, "running (post-copy)");
    resume_refused(
        &b,
        &a,
        name,
        &["--postcopy"],
        &format!("post-copy migration of domain {name} has not failed"),
    );
    let a_pid = status_pid(&hosts.a, name).expect("the QEMU on A");

    // Broken once: recovered peer-to-peer, at the same trickle.
    break_migration_stream(hosts, a_pid);
    wait_state(hosts, &b, name, "paused (post-copy failed)");
    wait_state(hosts, &a, name, "running (post-copy failed)");
    // As with libvirt, the failure surfaces in Confirm, whose error the
    // client only logs: virsh's own outcome says nothing here.
    let _ = migrate.join();
    assert_eq!(qemu_pids(uuid).len(), 2, "both QEMUs are kept");
    let resume = migrate_in_background(&b, &a, name, &["--p2p", "--postcopy-resume"]);
    wait_state(hosts, &b, name, "paused (post-copy)");
    wait_state(hosts, &a, name, "running (post-copy)");

    // Broken again: recoverable again, now recovered by the client.
    break_migration_stream(hosts, a_pid);
    wait_state(hosts, &b, name, "paused (post-copy failed)");
    wait_state(hosts, &a, name, "running (post-copy failed)");
    let _ = resume.join();

    // A recovery interrupted by a restart of the source daemon (held where
    // Perform starts, before QEMU reconnects) leaves it recoverable.
    let marker = pause_at(&hosts.b, "perform-start");
    let held = migrate_in_background(&b, &a, name, &["--postcopy-resume"]);
    wait_until(MIGRATION_TIMEOUT, "the recovery held in Perform", || {
        marker.exists().then_some(())
    });
    hosts.b.kill();
    let _ = held.join();
    release(&hosts.b, &marker);
    hosts.b.restart();
    wait_state(hosts, &b, name, "paused (post-copy failed)");
    wait_state(hosts, &a, name, "running (post-copy failed)");
    assert_eq!(qemu_pids(uuid).len(), 2, "both QEMUs are kept");

    hosts.virsh_ok(&b, &["migrate-setspeed", "--postcopy", name, "0"]);
    let out = postcopy_resume(&b, &a, name);
    assert!(
        out.status.success(),
        "virsh migrate --postcopy-resume: {}\n{}",
        stderr_of(&out),
        hosts.logs()
    );
    wait_until(Duration::from_secs(20), "B's QEMU to exit", || {
        pid_gone(b_pid).then_some(())
    });
    assert_eq!(qemu_pids(uuid), vec![a_pid], "exactly A's QEMU runs {name}");
    assert_eq!(status_pid(&hosts.b, name), None, "source status file left");
    wait_state(hosts, &a, name, "running (migrated)");
    counter_above(&a, name, before, hosts);
}

/// Once the migration of `name` from `uri` runs, switches it to post-copy.
fn switch_when_running(hosts: &QemuHosts, uri: &str, name: &str) {
    wait_until(Duration::from_secs(30), "the migration job", || {
        (!job_free(uri, name)).then_some(())
    });
    let deadline = std::time::Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let out = virsh(uri, &["migrate-postcopy", name]);
        if out.status.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "migrate-postcopy never accepted: {}\n{}",
            stderr_of(&out),
            hosts.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
