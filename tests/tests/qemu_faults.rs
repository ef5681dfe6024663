//! Faults during a live migration of a real QEMU guest between two daemons:
//! the destination's QEMU killed or destroyed during Perform, the destination daemon
//! killed during Perform, the source daemon restarted during Perform and
//! after perform-done, both daemons restarted with guests running; and
//! `destroy` of a hung QEMU while another call waits on it. After
//! each, exactly one QEMU process runs the guest, no migration job is left
//! owning it, and a second migration works.
//!
//! Perform is made long with `--bandwidth 5` (64 MiB dirtied per pass never
//! converges at 5 MiB/s), so the fault always lands inside it.

mod migrate_support;
mod qemu_support;

use std::process::Child;
use std::time::Duration;

use migrate_support::{ctl_spawn, finish};
use migrated_tests::wait_until;
use qemu_support::{
    counter_above, domstate, job_free, moved_and_counting, pause_at, pid_gone, qemu_pids, release,
    status_pid, QemuHosts,
};

/// Starts a throttled live migration A → B with migratectl and waits until
/// the destination's QEMU exists and data flows; returns the client and the
/// destination QEMU's pid.
fn slow_migration(hosts: &QemuHosts, name: &str, uuid: &str, flags: &[&str]) -> (Child, i32) {
    let b = hosts.b_uri();
    let mut args = vec!["migrate", "--live", "--bandwidth", "5"];
    args.extend_from_slice(flags);
    args.extend([name, b.as_str()]);
    let child = ctl_spawn(&hosts.a_uri(), &args);
    let dst_pid = wait_until(Duration::from_secs(30), "the incoming QEMU", || {
        status_pid(&hosts.b, name).filter(|_| qemu_pids(uuid).len() == 2)
    });
    wait_until(Duration::from_secs(30), "the source to send data", || {
        let out = migrate_support::ctl(&hosts.a_uri(), &["domjobinfo", name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.starts_with("Data processed:"))
            .filter(|l| !l.contains(" 0.000 B"))
            .map(|_| ())
    });
    // Both ends' jobs show in `virsh domcontrol` as libvirt's async job:
    // "background job (<seconds>s)".
    for uri in [hosts.a_uri(), b.clone()] {
        let control = hosts.virsh_ok(&uri, &["domcontrol", name]);
        assert!(control.starts_with("background job ("), "{uri}: {control}");
    }
    (child, dst_pid)
}

/// The guest runs on A only (its original QEMU), A and B hold no job for
/// it, it still counts, and a second (unthrottled) migration moves it.
#[track_caller]
fn settled_on_source(hosts: &QemuHosts, name: &str, uuid: &str, src_pid: i32) {
    let a = hosts.a_uri();
    wait_until(Duration::from_secs(30), "the guest to run on A", || {
        (domstate(&a, name).as_deref() == Some("running")).then_some(())
    });
    wait_until(Duration::from_secs(30), "one QEMU for the guest", || {
        (qemu_pids(uuid) == vec![src_pid]).then_some(())
    });
    wait_until(Duration::from_secs(30), "B to forget the guest", || {
        domstate(&hosts.b_uri(), name).is_none().then_some(())
    });
    assert!(
        job_free(&a, name),
        "a job still owns {name} on A\n{}",
        hosts.logs()
    );
    let c = counter_above(&a, name, 0, hosts);
    let c = counter_above(&a, name, c, hosts);
    hosts.ctl_ok(&a, &["migrate", "--live", name, &hosts.b_uri()]);
    moved_and_counting(hosts, name, uuid, src_pid, c);
}

/// Loses the destination's copy during a throttled Perform with `lose`
/// (given the hosts, the guest's name and the incoming QEMU's pid); the
/// migration must fail and the guest run on in its original QEMU.
fn destination_copy_lost(name: &str, lose: impl FnOnce(&QemuHosts, &str, i32)) {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let (uuid, _) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let (child, dst_pid) = slow_migration(&hosts, name, &uuid, &[]);
    lose(&hosts, name, dst_pid);
    let (ok, err) = finish(child);
    assert!(!ok, "migration succeeded without its destination");
    assert!(!err.is_empty());
    assert!(pid_gone(dst_pid));
    settled_on_source(&hosts, name, &uuid, src_pid);
}

#[test]
fn qemu_destination_qemu_killed_during_perform() {
    destination_copy_lost("q-kill-dst-qemu", |_, _, dst_pid| {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is the
        // destination QEMU of this test's guest.
        unsafe { libc::kill(dst_pid, libc::SIGKILL) };
    });
}

/// `destroy` on the destination during a throttled Perform cancels the
/// incoming migration, as in libvirt: the incoming QEMU goes at once (not
/// after the destination's Prepare timeout), the source's stream breaks and
/// the guest runs on in its original QEMU.
#[test]
fn qemu_destroy_on_the_destination_during_perform() {
    destination_copy_lost("q-destroy-dst", |hosts, name, _| {
        hosts.ctl_ok(&hosts.b_uri(), &["destroy", name]);
    });
}

/// The destination daemon is killed (SIGKILL) during a throttled Perform.
///
/// Peer-to-peer (direct or tunnelled): the source daemon sees its
/// connection to the destination close, aborts the job (QEMU's
/// `migrate_cancel`) and resumes the guest, so the client's call ends
/// while B is still down. Client-managed (regular): nobody on A knows B;
/// the incoming QEMU outlives its daemon and keeps receiving, so Perform
/// ends once the restarted B kills it (journal recovery) and the source's
/// QEMU sees its stream break. Either way the guest then runs on A only,
/// with its original QEMU, and migrates to the restarted B.
fn destination_daemon_killed(name: &str, flags: &[&str]) {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    let (uuid, _) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let (child, dst_pid) = slow_migration(&hosts, name, &uuid, flags);
    hosts.b.kill();
    let p2p = flags.contains(&"--p2p");
    if !p2p {
        hosts.b.restart();
    }
    let (ok, err) = finish(child);
    assert!(!ok, "migration succeeded without its destination daemon");
    if p2p {
        assert!(
            err.contains("destination"),
            "the error does not say the destination was lost: {err}\n{}",
            hosts.logs()
        );
        // Cancelled while B was still down: the guest already runs on A.
        assert_eq!(domstate(&hosts.a_uri(), name).as_deref(), Some("running"));
        assert!(
            job_free(&hosts.a_uri(), name),
            "a job still owns {name} on A\n{}",
            hosts.logs()
        );
        hosts.b.restart();
    }
    wait_until(Duration::from_secs(30), "the incoming QEMU to go", || {
        pid_gone(dst_pid).then_some(())
    });
    settled_on_source(&hosts, name, &uuid, src_pid);
}

#[test]
fn qemu_destination_daemon_killed_during_perform_regular() {
    destination_daemon_killed("q-kill-dd-regular", &[]);
}

#[test]
fn qemu_destination_daemon_killed_during_perform_p2p() {
    destination_daemon_killed("q-kill-dd-p2p", &["--p2p"]);
}

#[test]
fn qemu_destination_daemon_killed_during_perform_p2p_tunnelled() {
    destination_daemon_killed("q-kill-dd-tunnel", &["--p2p", "--tunnelled"]);
}

#[test]
fn qemu_source_daemon_restarted_during_perform() {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    let name = "q-restart-src";
    let (uuid, _) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let (child, _) = slow_migration(&hosts, name, &uuid, &[]);
    // A crash and a start: a graceful stop would first wait for the
    // in-flight Perform call to drain.
    hosts.a.kill();
    hosts.a.restart();
    let (ok, _) = finish(child);
    assert!(!ok, "migration succeeded across a source restart");
    assert!(!pid_gone(src_pid), "the guest's QEMU died with its daemon");
    settled_on_source(&hosts, name, &uuid, src_pid);
}

#[test]
fn qemu_source_daemon_killed_after_perform_done() {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-perform-done";
    let (uuid, _) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let marker = pause_at(&hosts.a, "perform-done");
    let child = ctl_spawn(&a, &["migrate", "--live", name, &b]);
    wait_until(
        Duration::from_secs(60),
        "the source to hold at perform-done",
        || marker.exists().then_some(()),
    );
    hosts.a.kill();
    release(&hosts.a, &marker);
    let (ok, _) = finish(child);
    assert!(!ok, "the client saw its source die");
    // The client cancelled the destination (Perform failed → Finish cancelled).
    wait_until(
        Duration::from_secs(30),
        "B to drop the incoming guest",
        || domstate(&b, name).is_none().then_some(()),
    );
    hosts.a.restart();
    // All data was sent: the source keeps the guest paused and the job held
    // until the operator says where it runs.
    assert_eq!(domstate(&a, name).as_deref(), Some("paused"));
    assert_eq!(qemu_pids(&uuid), vec![src_pid]);
    let status = hosts.ctl_ok(&a, &["migration-status", name]);
    assert!(status.contains("kept paused"), "{status}");
    hosts.ctl_ok(&a, &["domjobabort", name]);
    settled_on_source(&hosts, name, &uuid, src_pid);
}

#[test]
fn qemu_both_daemons_restarted_with_guests_running() {
    let Some(mut hosts) = QemuHosts::start() else {
        return;
    };
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "q-restart-both";
    let (uuid, before) = hosts.running_guest(name);
    let src_pid = status_pid(&hosts.a, name).expect("source status file");
    let other = "q-restart-b";
    let other_uuid = hosts.define(&b, other, 64, 8);
    hosts.virsh_ok(&b, &["start", other]);
    hosts.virsh_ok(&b, &["suspend", other]);
    let other_pid = status_pid(&hosts.b, other).expect("status file on B");

    hosts.a.restart();
    hosts.b.kill();
    hosts.b.restart();

    // Untouched: same processes, same states, the workload went on.
    assert_eq!(qemu_pids(&uuid), vec![src_pid]);
    assert_eq!(qemu_pids(&other_uuid), vec![other_pid]);
    assert_eq!(domstate(&a, name).as_deref(), Some("running"));
    assert_eq!(domstate(&b, other).as_deref(), Some("paused"));
    let info = hosts.virsh_ok(&a, &["dominfo", name]);
    assert!(info.contains(&uuid), "{info}");
    counter_above(&a, name, before, &hosts);
    // Still manageable.
    hosts.virsh_ok(&b, &["resume", other]);
    counter_above(&b, other, 0, &hosts);
    hosts.virsh_ok(&b, &["destroy", other]);
    assert!(pid_gone(other_pid));
    assert!(qemu_pids(&other_uuid).is_empty());
    settled_on_source(&hosts, name, &uuid, src_pid);
}

/// `virsh destroy` of a hung QEMU (frozen with SIGSTOP) while another call
/// holds the domain waiting for QMP: as libvirt's qemuProcessBeginStopJob,
/// the kill goes out first, the waiting call fails at once (not after the
/// 30 s QMP timeout), the guest is shut off (destroyed), and the domain is
/// free for the next start.
#[test]
fn qemu_destroy_of_a_hung_guest_does_not_wait_behind_its_job() {
    let Some(hosts) = QemuHosts::start() else {
        return;
    };
    let a = hosts.a_uri();
    let name = "q-hung";
    let uuid = hosts.define(&a, name, 64, 8);
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    let pids = qemu_pids(&uuid);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    assert!(migrated_tests::fault::signals::stop(pid.unsigned_abs()));

    let suspend = std::process::Command::new("virsh")
        .args(["-c", &a, "suspend", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn virsh suspend");
    // The suspend holds the domain while QEMU does not answer.
    let control = wait_until(Duration::from_secs(20), "the suspend in flight", || {
        let control = hosts.virsh_ok(&a, &["domcontrol", name]);
        control.starts_with("occupied").then_some(control)
    });
    assert!(control.starts_with("occupied ("), "{control}");

    hosts.virsh_ok(&a, &["destroy", name]);
    let out = suspend.wait_with_output().expect("virsh suspend");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "suspend of a killed guest succeeded");
    assert!(
        !err.contains("Timed out"),
        "the suspend waited out QMP: {err}"
    );
    let state = hosts.virsh_ok(&a, &["domstate", name, "--reason"]);
    assert!(state.contains("shut off (destroyed)"), "{state}");
    assert!(pid_gone(pid), "QEMU {pid} outlived destroy");
    assert!(job_free(&a, name), "a job is left on the domain");

    // Nothing is left locked: the guest starts and runs again.
    hosts.virsh_ok(&a, &["start", name]);
    counter_above(&a, name, 0, &hosts);
    hosts.virsh_ok(&a, &["destroy", name]);
}
