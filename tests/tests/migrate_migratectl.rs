//! `migratectl migrate` between two real daemons on loopback: every mode and
//! the flags' documented effect on both hosts, memory identity, and a second
//! migration back.

mod migrate_support;

use migrate_support::{
    checksum, ctl_fails, ctl_ok, define, exactly_one_copy, persistent, state, wait_state, Hosts,
};

/// Migrates a running persistent guest A→B with `flags`, checks libvirt's
/// documented result (B runs it transiently, A keeps its config shut off),
/// then migrates it back with the same flags.
fn round_trip(flags: &[&str]) {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "ctl-rt";
    define(&hosts.a_uri(), dir.path(), name, "", true);

    let b = hosts.b_uri();
    let mut args = vec!["migrate"];
    args.extend_from_slice(flags);
    args.extend([name, b.as_str()]);
    ctl_ok(&hosts.a_uri(), &args);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert!(
        !persistent(&b, name),
        "no --persistent: transient on the destination"
    );
    assert_eq!(state(&hosts.a_uri(), name).as_deref(), Some("shut off"));
    assert!(persistent(&hosts.a_uri(), name), "source config kept");
    exactly_one_copy(&hosts, name);

    let a = hosts.a_uri();
    let mut back = vec!["migrate"];
    back.extend_from_slice(flags);
    back.extend([name, a.as_str()]);
    ctl_ok(&b, &back);
    assert_eq!(
        state(&a, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert_eq!(
        state(&b, name),
        None,
        "transient copy gone from the destination"
    );
}

#[test]
fn live_regular_migration_and_back() {
    round_trip(&["--live"]);
}

#[test]
fn live_p2p_migration_and_back() {
    round_trip(&["--live", "--p2p"]);
}

#[test]
fn live_p2p_tunnelled_migration_and_back() {
    round_trip(&["--live", "--p2p", "--tunnelled"]);
}

#[test]
fn plain_migrate_uses_the_drivers_defaults() {
    round_trip(&[]);
}

#[test]
fn offline_persistent_moves_the_config_of_a_shut_off_guest() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-off";
    define(&a, dir.path(), name, "", false);
    ctl_ok(&a, &["migrate", "--offline", "--persistent", name, &b]);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("shut off"),
        "{}",
        hosts.logs()
    );
    assert!(persistent(&b, name));
    assert_eq!(
        state(&a, name).as_deref(),
        Some("shut off"),
        "source config kept"
    );
    // back, this time dropping it from the destination
    ctl_ok(
        &b,
        &[
            "migrate",
            "--offline",
            "--persistent",
            "--undefinesource",
            name,
            &a,
        ],
    );
    assert_eq!(state(&b, name), None, "{}", hosts.logs());
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
}

#[test]
fn offline_without_persistent_is_refused_and_changes_nothing() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "ctl-off2", "", false);
    let err = ctl_fails(&a, &["migrate", "--offline", "ctl-off2", &b]);
    assert!(
        err.contains("offline migration must be specified with the persistent flag set"),
        "{err}"
    );
    assert_eq!(state(&b, "ctl-off2"), None);
    assert_eq!(state(&a, "ctl-off2").as_deref(), Some("shut off"));
}

#[test]
fn persistent_undefinesource_moves_the_definition_and_back() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-pu";
    define(&a, dir.path(), name, "", true);
    let flags = ["migrate", "--live", "--persistent", "--undefinesource"];
    let mut args = flags.to_vec();
    args.extend([name, b.as_str()]);
    ctl_ok(&a, &args);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert!(persistent(&b, name));
    assert_eq!(state(&a, name), None, "source undefined");
    let mut back = flags.to_vec();
    back.extend([name, a.as_str()]);
    ctl_ok(&b, &back);
    assert_eq!(state(&a, name).as_deref(), Some("running"));
    assert!(persistent(&a, name));
    assert_eq!(state(&b, name), None);
}

#[test]
fn suspend_leaves_the_guest_paused_and_resumable_on_the_destination() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-susp";
    define(&a, dir.path(), name, "", true);
    ctl_ok(&a, &["migrate", "--live", "--suspend", name, &b]);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("paused"),
        "{}",
        hosts.logs()
    );
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
    ctl_ok(&b, &["resume", name]);
    wait_state(&b, name, Some("running"));
    ctl_ok(&b, &["migrate", "--live", name, &a]);
    assert_eq!(state(&a, name).as_deref(), Some("running"));
}

#[test]
fn dname_renames_the_guest_on_the_destination() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "ctl-orig", "", true);
    ctl_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--dname",
            "ctl-renamed",
            "ctl-orig",
            &b,
        ],
    );
    assert_eq!(
        state(&b, "ctl-renamed").as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert_eq!(state(&b, "ctl-orig"), None);
    ctl_ok(
        &b,
        &[
            "migrate",
            "--live",
            "--dname",
            "ctl-orig",
            "ctl-renamed",
            &a,
        ],
    );
    assert_eq!(state(&a, "ctl-orig").as_deref(), Some("running"));
}

#[test]
fn memory_arrives_identical() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-sum";
    define(&a, dir.path(), name, "", true);
    // a paused guest dirties nothing, so both sides can be compared
    ctl_ok(&a, &["suspend", name]);
    let before = checksum(&a, name);
    ctl_ok(&a, &["migrate", "--live", "--p2p", "--tunnelled", name, &b]);
    assert_eq!(
        state(&b, name).as_deref(),
        Some("paused"),
        "paused guests stay paused"
    );
    assert_eq!(checksum(&b, name), before, "{}", hosts.logs());
    ctl_ok(&b, &["migrate", "--live", name, &a]);
    assert_eq!(checksum(&a, name), before);
}

fn migratable_xml(uri: &str, name: &str) -> String {
    ctl_ok(uri, &["dumpxml", "--migratable", name])
}

#[test]
fn xml_with_a_host_side_change_is_accepted() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-xml";
    define(&a, dir.path(), name, "", true);
    let xml = migratable_xml(&a, name).replacen(
        &format!("<name>{name}</name>"),
        &format!("<name>{name}</name>\n  <description>moved by the test</description>"),
        1,
    );
    let file = dir.path().join("dest.xml");
    std::fs::write(&file, xml).expect("write xml");
    ctl_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--xml",
            file.to_str().expect("utf-8"),
            name,
            &b,
        ],
    );
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert!(migratable_xml(&b, name).contains("moved by the test"));
}

#[test]
fn xml_with_a_memory_change_is_refused_and_nothing_changes() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-abi";
    define(&a, dir.path(), name, "", true);
    let xml = migratable_xml(&a, name).replace("16384", "32768");
    let file = dir.path().join("bad.xml");
    std::fs::write(&file, xml).expect("write xml");
    let err = ctl_fails(
        &a,
        &[
            "migrate",
            "--live",
            "--xml",
            file.to_str().expect("utf-8"),
            name,
            &b,
        ],
    );
    assert!(
        err.contains("memory"),
        "the refusal names the change: {err}"
    );
    assert_eq!(state(&a, name).as_deref(), Some("running"));
    assert_eq!(state(&b, name), None);
    exactly_one_copy(&hosts, name);
    // and a correct attempt still works
    ctl_ok(&a, &["migrate", "--live", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}

#[test]
fn bandwidth_limits_the_transfer_rate() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-bw";
    define(&a, dir.path(), name, "", true);
    let out = ctl_ok(
        &a,
        &[
            "--json",
            "migrate",
            "--live",
            "--bandwidth",
            "20",
            "--verbose",
            name,
            &b,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json summary");
    let data = v["data_processed"].as_u64().expect("data sent");
    let total_ms = v["total_ms"].as_u64().expect("total");
    let floor_ms = data * 1000 / (20 * 1024 * 1024);
    assert!(
        total_ms + 50 >= floor_ms,
        "{data} bytes at 20 MiB/s need ≥ {floor_ms} ms, took {total_ms} ms"
    );
    assert_eq!(state(&b, name).as_deref(), Some("running"));
    ctl_ok(&b, &["migrate", "--live", name, &a]);
}

#[test]
fn verbose_prints_the_timeline() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    define(&a, dir.path(), "ctl-verbose", "", true);
    let out = ctl_ok(&a, &["migrate", "--live", "--verbose", "ctl-verbose", &b]);
    for step in [
        "begin:",
        "prepare:",
        "perform:",
        "finish:",
        "confirm:",
        "Data sent:",
        "Downtime:",
    ] {
        assert!(out.contains(step), "missing {step} in:\n{out}");
    }
    let info = ctl_ok(&b, &["domjobinfo", "--completed", "ctl-verbose"]);
    assert!(info.contains("Completed"), "{info}");
}

#[test]
fn tuning_commands_round_trip() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let a = hosts.a_uri();
    define(&a, dir.path(), "ctl-tune", "", true);
    ctl_ok(&a, &["migrate-setspeed", "ctl-tune", "42"]);
    assert_eq!(ctl_ok(&a, &["migrate-getspeed", "ctl-tune"]).trim(), "42");
    ctl_ok(&a, &["migrate-setmaxdowntime", "ctl-tune", "250"]);
    assert_eq!(
        ctl_ok(&a, &["migrate-getmaxdowntime", "ctl-tune"]).trim(),
        "250"
    );
    let err = ctl_fails(&a, &["migrate-setmaxdowntime", "ctl-tune", "0"]);
    assert!(err.contains("downtime"), "{err}");
    let err = ctl_fails(&a, &["domjobabort", "ctl-tune"]);
    assert!(err.contains("no job"), "{err}");
    assert!(ctl_ok(&a, &["domjobinfo", "ctl-tune"]).contains("None"));
}

#[test]
fn timeout_abort_and_domjobabort_keep_the_guest_on_the_source() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-abort";
    define(&a, dir.path(), name, "", true);
    // --timeout with abort: the client aborts the slow job itself
    let err = ctl_fails(
        &a,
        &[
            "migrate",
            "--live",
            "--bandwidth",
            "1",
            "--timeout",
            "1",
            "--timeout-action",
            "abort",
            name,
            &b,
        ],
    );
    assert!(err.contains("abort"), "{err}");
    wait_state(&a, name, Some("running"));
    wait_state(&b, name, None);
    exactly_one_copy(&hosts, name);
    // domjobabort from a second client; the destination refuses it for the
    // incoming job as libvirt does (stock virsh there sees libvirt's words)
    let child = migrate_support::spawn_slow_migration(&a, &b, name);
    // B answers job queries for the incoming job with libvirt's refusal.
    migrated_tests::wait_until(
        std::time::Duration::from_secs(30),
        "the incoming job on B",
        || {
            let out = migrated_tests::virsh(&b, &["domjobinfo", name]);
            migrated_tests::clients::stderr_of(&out)
                .contains("available only on the source host")
                .then_some(())
        },
    );
    let out = migrated_tests::virsh(&b, &["domjobabort", name]);
    assert!(!out.status.success());
    let refusal = migrated_tests::clients::stderr_of(&out);
    assert!(
        refusal.contains(
            "error: Requested operation is not valid: cannot abort incoming migration; use virDomainDestroy instead"
        ),
        "{refusal}"
    );
    ctl_ok(&a, &["domjobabort", name]);
    let (ok, err) = migrate_support::finish(child);
    assert!(!ok && err.contains("abort"), "{err}");
    wait_state(&a, name, Some("running"));
    wait_state(&b, name, None);
    exactly_one_copy(&hosts, name);
    ctl_ok(&a, &["migrate", "--live", name, &b]);
    assert_eq!(state(&b, name).as_deref(), Some("running"));
}

#[test]
fn timeout_pause_lets_a_slow_migration_converge() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-pause";
    define(&a, dir.path(), name, "", true);
    ctl_ok(
        &a,
        &[
            "migrate",
            "--live",
            "--bandwidth",
            "4",
            "--timeout",
            "1",
            "--timeout-action",
            "pause",
            name,
            &b,
        ],
    );
    // it was running when the migration started, so it runs on the destination
    assert_eq!(
        state(&b, name).as_deref(),
        Some("running"),
        "{}",
        hosts.logs()
    );
    assert_eq!(state(&a, name).as_deref(), Some("shut off"));
}

/// `suspend` from a second client while the guest is being sent pauses it
/// at once (as libvirt's QEMU driver, state paused while the job goes on),
/// and the migration then completes with the guest running on the
/// destination.
#[test]
fn suspend_during_a_migration_pauses_the_guest_at_once() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-suspend-mid";
    define(&a, dir.path(), name, "", true);
    let child = migrate_support::spawn_slow_migration(&a, &b, name);
    // Mid-pass statistics as QEMU gives them: the total is the guest's
    // memory (16 MiB) and the pass under way is numbered.
    let info = ctl_ok(&a, &["domjobinfo", name]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Data total:") && l.ends_with("16.000 MiB")),
        "{info}"
    );
    assert!(
        info.lines()
            .any(|l| l.starts_with("Iteration:") && !l.ends_with(" 0")),
        "{info}"
    );
    ctl_ok(&a, &["suspend", name]);
    assert_eq!(
        state(&a, name).as_deref(),
        Some("paused"),
        "{}",
        hosts.logs()
    );
    assert_ne!(
        migrate_support::job_role(&a, name),
        "none",
        "the migration goes on after the pause"
    );
    let (ok, err) = migrate_support::finish(child);
    assert!(ok, "{err}\n{}", hosts.logs());
    assert_eq!(state(&b, name).as_deref(), Some("running"));
    exactly_one_copy(&hosts, name);
}

/// `destroy` of a guest whose migration is under way works as in libvirt:
/// on the source it stops the migration and then the guest (its config
/// stays), on the destination it cancels the incoming migration and the
/// source keeps running. Either way no job is left.
#[test]
fn destroy_during_a_migration_aborts_it_on_either_side() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "ctl-destroy-mid";
    define(&a, dir.path(), name, "", true);

    // On the destination: the incoming copy goes, the source runs on.
    let child = migrate_support::spawn_slow_migration(&a, &b, name);
    ctl_ok(&b, &["destroy", name]);
    let (ok, err) = migrate_support::finish(child);
    assert!(!ok, "the migration cannot succeed: {err}");
    wait_state(&a, name, Some("running"));
    wait_state(&b, name, None);
    exactly_one_copy(&hosts, name);

    // On the source: the migration stops, then the guest.
    let child = migrate_support::spawn_slow_migration(&a, &b, name);
    ctl_ok(&a, &["destroy", name]);
    let (ok, err) = migrate_support::finish(child);
    assert!(!ok, "the migration cannot succeed: {err}");
    assert_eq!(
        state(&a, name).as_deref(),
        Some("shut off"),
        "{}",
        hosts.logs()
    );
    assert!(persistent(&a, name), "the config stays");
    wait_state(&b, name, None);
    assert_eq!(migrate_support::job_role(&a, name), "none");
}
