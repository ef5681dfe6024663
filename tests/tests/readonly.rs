//! Read-only connections (the read-only socket, or `virsh -r` = the RO flag
//! of CONNECT_OPEN) may look but not touch: listing and dumpxml work,
//! define/start/destroy are refused with VIR_ERR_OPERATION_DENIED.

use std::process::Output;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{require_binary, virsh, Daemon};

const GUEST: &str = "ro-guest";

fn ok(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}",
        stderr_of(output)
    );
    stdout_of(output)
}

/// A daemon with one defined guest `ro-guest` and one running `ro-running`.
fn prepared() -> (Daemon, tempfile::TempDir) {
    let daemon = Daemon::builder().tcp().unix().spawn();
    let dir = tempfile::tempdir().expect("temp dir");
    for name in [GUEST, "ro-running"] {
        let path = dir.path().join(format!("{name}.xml"));
        std::fs::write(
            &path,
            format!(
                "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
                 <vcpu>1</vcpu><os><type>hvm</type></os></domain>"
            ),
        )
        .expect("write xml");
        ok(
            &virsh(&daemon.uri(), &["define", &path.display().to_string()]),
            "define",
        );
    }
    ok(&virsh(&daemon.uri(), &["start", "ro-running"]), "start");
    (daemon, dir)
}

fn assert_read_only(uri: &str, extra: &[&str], dir: &std::path::Path) {
    let with = |args: &[&str]| -> Output {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend_from_slice(args);
        virsh(uri, &all)
    };
    let list = ok(&with(&["list", "--all"]), "list --all");
    assert!(
        list.contains(GUEST) && list.contains("ro-running"),
        "{list}"
    );
    let xml = ok(&with(&["dumpxml", GUEST]), "dumpxml");
    assert!(xml.contains(&format!("<name>{GUEST}</name>")), "{xml}");
    ok(&with(&["dominfo", "ro-running"]), "dominfo");

    let other = dir.join("other.xml");
    std::fs::write(
        &other,
        "<domain type='test'><name>ro-new</name><memory unit='MiB'>4</memory><os><type>hvm</type></os></domain>",
    )
    .expect("write xml");
    let other = other.display().to_string();
    for args in [
        vec!["define", other.as_str()],
        vec!["start", GUEST],
        vec!["destroy", "ro-running"],
        vec!["undefine", GUEST],
        vec!["suspend", "ro-running"],
    ] {
        let out = with(&args);
        assert!(!out.status.success(), "{args:?} succeeded read-only");
        let err = stderr_of(&out);
        assert!(err.contains("operation forbidden"), "{args:?}: {err}");
    }
}

#[test]
fn read_only_socket_allows_listing_and_dumpxml_but_refuses_changes() {
    if require_binary("virsh").is_none() {
        return;
    }
    let (daemon, dir) = prepared();
    assert_read_only(&daemon.unix_ro_uri(), &[], dir.path());
    // Nothing changed behind the refusals.
    let list = ok(&virsh(&daemon.uri(), &["list", "--all"]), "list");
    assert!(!list.contains("ro-new"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.contains("ro-running") && l.contains("running")),
        "{list}"
    );
}

#[test]
fn virsh_r_flag_over_tcp_allows_listing_and_dumpxml_but_refuses_changes() {
    if require_binary("virsh").is_none() {
        return;
    }
    let (daemon, dir) = prepared();
    // `-r` is a global option (it follows `-c URI`): CONNECT_OPEN with VIR_CONNECT_RO.
    assert_read_only(&daemon.uri(), &["-r"], dir.path());
    let list = ok(&virsh(&daemon.uri(), &["list", "--all"]), "list");
    assert!(!list.contains("ro-new"), "{list}");
}
