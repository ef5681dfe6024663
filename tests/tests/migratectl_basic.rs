//! `migratectl` against a real `migrated`: the domain life cycle over TCP and
//! the Unix socket, JSON output, error reporting and read-only connections.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{migratectl_binary, run_with_timeout, Daemon};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `migratectl -c URI ARGS...` with no default URI from the environment.
fn migratectl(uri: &str, args: &[&str]) -> Output {
    run_with_timeout(
        Command::new(migratectl_binary())
            .arg("-c")
            .arg(uri)
            .args(args)
            .env_remove("MIGRATED_DEFAULT_URI"),
        CLIENT_TIMEOUT,
    )
}

/// Runs migratectl and insists on success; returns stdout.
#[track_caller]
fn ok(uri: &str, args: &[&str]) -> String {
    let out = migratectl(uri, args);
    assert!(
        out.status.success(),
        "migratectl {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        stdout_of(&out),
        stderr_of(&out)
    );
    stdout_of(&out)
}

/// Runs migratectl and insists on libvirt-style failure; returns stderr.
#[track_caller]
fn fails(uri: &str, args: &[&str]) -> String {
    let out = migratectl(uri, args);
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "migratectl {args:?} should exit 1:\nstdout: {}\nstderr: {stderr}",
        stdout_of(&out)
    );
    assert!(
        stderr.starts_with("error: "),
        "stderr not libvirt-style: {stderr}"
    );
    stderr
}

fn guest_xml(name: &str) -> String {
    format!(
        "<domain type='test'>\n  <name>{name}</name>\n  <memory unit='MiB'>4</memory>\n  \
         <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n</domain>\n"
    )
}

fn write_guest(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(&path, guest_xml(name)).expect("write guest XML");
    path
}

/// The `list` row of `name`, split into columns.
fn list_row(list: &str, name: &str) -> Option<Vec<String>> {
    list.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.get(1) == Some(&name))
        .map(|cols| {
            // the State column may contain a space ("shut off")
            let state = cols[2..].join(" ");
            vec![cols[0].to_owned(), cols[1].to_owned(), state]
        })
}

fn domstate(uri: &str, name: &str) -> String {
    ok(uri, &["domstate", name]).trim().to_owned()
}

fn run_life_cycle(uri: &str, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = write_guest(dir.path(), name);
    let xml_arg = xml.to_str().expect("utf-8 temp path");

    let out = ok(uri, &["define", xml_arg]);
    assert!(
        out.contains(&format!("Domain '{name}' defined from {xml_arg}")),
        "{out}"
    );

    let list = ok(uri, &["list"]);
    assert!(
        list_row(&list, name).is_none(),
        "inactive guest in plain list:\n{list}"
    );
    let list = ok(uri, &["list", "--all"]);
    assert!(list.starts_with(" Id   Name"), "{list}");
    assert_eq!(
        list_row(&list, name),
        Some(vec!["-".into(), name.into(), "shut off".into()]),
        "{list}"
    );

    let out = ok(uri, &["start", name]);
    assert!(out.contains(&format!("Domain '{name}' started")), "{out}");
    let list = ok(uri, &["list"]);
    let row = list_row(&list, name).unwrap_or_else(|| panic!("running guest missing:\n{list}"));
    assert_eq!(row[2], "running");
    let id: u32 = row[0]
        .parse()
        .unwrap_or_else(|_| panic!("numeric id expected: {row:?}"));

    let info = ok(uri, &["dominfo", name]);
    assert!(info.contains(&format!("Id:             {id}\n")), "{info}");
    assert!(
        info.contains(&format!("Name:           {name}\n")),
        "{info}"
    );
    assert!(info.contains("State:          running\n"), "{info}");
    assert!(info.contains("Persistent:     yes\n"), "{info}");
    // lookup by id gives the same domain as by name
    let by_id = ok(uri, &["dominfo", &id.to_string()]);
    assert!(
        by_id.contains(&format!("Name:           {name}\n")),
        "{by_id}"
    );

    assert_eq!(domstate(uri, name), "running");
    assert_eq!(
        ok(uri, &["domstate", "--reason", name]).trim(),
        "running (booted)"
    );

    let xml = ok(uri, &["dumpxml", name]);
    assert!(xml.contains(&format!("<name>{name}</name>")), "{xml}");
    assert!(xml.contains("<domain"), "{xml}");

    ok(uri, &["suspend", name]);
    assert_eq!(domstate(uri, name), "paused");
    ok(uri, &["resume", name]);
    assert_eq!(domstate(uri, name), "running");

    let out = ok(uri, &["destroy", name]);
    assert!(out.contains(&format!("Domain '{name}' destroyed")), "{out}");
    assert_eq!(domstate(uri, name), "shut off");

    let out = ok(uri, &["undefine", name]);
    assert!(
        out.contains(&format!("Domain '{name}' has been undefined")),
        "{out}"
    );
    let list = ok(uri, &["list", "--all"]);
    assert!(
        list_row(&list, name).is_none(),
        "undefined guest still listed:\n{list}"
    );
}

#[test]
fn life_cycle_over_tcp() {
    let daemon = Daemon::builder().tcp().spawn();
    run_life_cycle(&daemon.uri(), "ctl-tcp");
}

#[test]
fn life_cycle_over_unix_socket() {
    let daemon = Daemon::builder().unix().spawn();
    run_life_cycle(&daemon.unix_uri(), "ctl-unix");
}

#[test]
fn json_output_is_machine_readable() {
    let daemon = Daemon::builder().tcp().spawn();
    let uri = daemon.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = write_guest(dir.path(), "ctl-json");
    ok(&uri, &["define", xml.to_str().expect("utf-8 path")]);

    let list: serde_json::Value =
        serde_json::from_str(&ok(&uri, &["--json", "list", "--all"])).expect("list --json is JSON");
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "ctl-json"))
        .unwrap_or_else(|| panic!("guest missing from {list}"));
    assert_eq!(entry["state"], "shut off");
    assert!(entry["id"].is_null());
    assert_eq!(entry["uuid"].as_str().map(str::len), Some(36));

    let info: serde_json::Value =
        serde_json::from_str(&ok(&uri, &["dominfo", "ctl-json", "--json"]))
            .expect("dominfo --json is JSON");
    assert_eq!(info["name"], "ctl-json");
    assert_eq!(info["state"], "shut off");
    assert_eq!(info["max_memory_kib"], 4096);
    assert_eq!(info["persistent"], true);

    let host: serde_json::Value =
        serde_json::from_str(&ok(&uri, &["--json", "hostname"])).expect("hostname --json is JSON");
    assert!(
        host["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{host}"
    );
    let version: serde_json::Value =
        serde_json::from_str(&ok(&uri, &["--json", "version"])).expect("version --json is JSON");
    assert!(version["daemon"].is_string(), "{version}");
}

#[test]
fn host_commands_print_something_sensible() {
    let daemon = Daemon::builder().tcp().spawn();
    let uri = daemon.uri();
    assert!(!ok(&uri, &["hostname"]).trim().is_empty());
    // like virsh: the URI as given, not the server's canonical name
    assert_eq!(ok(&uri, &["uri"]).trim(), uri);
    assert!(ok(&uri, &["capabilities"]).contains("<capabilities"));
    let version = ok(&uri, &["version"]);
    assert!(version.contains("Running hypervisor: "), "{version}");
    assert!(!version.contains("Running against daemon: "), "{version}");
    let version = ok(&uri, &["version", "--daemon"]);
    assert!(version.contains("Running against daemon: "), "{version}");
    let node = ok(&uri, &["nodeinfo"]);
    assert!(node.contains("CPU(s):"), "{node}");
    assert!(node.contains("Memory size:"), "{node}");
}

#[test]
fn errors_print_server_message_and_exit_1() {
    let daemon = Daemon::builder().tcp().spawn();
    let uri = daemon.uri();
    let stderr = fails(&uri, &["dominfo", "no-such-guest"]);
    assert!(
        stderr.contains("failed to get domain 'no-such-guest'"),
        "{stderr}"
    );
    // the server's own message follows on its own error line
    assert!(
        stderr.lines().count() >= 2 && stderr.lines().all(|l| l.starts_with("error: ")),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("domain not found"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, "<domain type='test'><name>x</name>").expect("write bad XML");
    fails(&uri, &["define", bad.to_str().expect("utf-8 path")]);
    let stderr = fails(
        &uri,
        &[
            "define",
            dir.path().join("missing.xml").to_str().expect("utf-8 path"),
        ],
    );
    assert!(stderr.contains("failed to read file"), "{stderr}");
}

#[test]
fn unreachable_daemon_is_an_error_not_a_hang() {
    // a port nobody listens on: bind one, then release it
    let port = migrated_tests::daemon::free_port();
    let stderr = fails(
        &format!("test+tcp://127.0.0.1:{port}/default"),
        &["hostname"],
    );
    assert!(stderr.contains("failed to connect"), "{stderr}");
}

#[test]
fn read_only_connection_can_look_but_not_define() {
    let daemon = Daemon::builder().tcp().unix().spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = write_guest(dir.path(), "ctl-ro");
    let xml_arg = xml.to_str().expect("utf-8 path");
    ok(&daemon.uri(), &["define", xml_arg]);

    for (uri, readonly_flag) in [(daemon.uri(), true), (daemon.unix_ro_uri(), false)] {
        let mut args = Vec::new();
        if readonly_flag {
            args.push("-r");
        }
        let list = ok(&uri, &[args.as_slice(), &["list", "--all"]].concat());
        assert!(list_row(&list, "ctl-ro").is_some(), "{list}");
        let xml = ok(&uri, &[args.as_slice(), &["dumpxml", "ctl-ro"]].concat());
        assert!(xml.contains("<name>ctl-ro</name>"), "{xml}");

        let other = write_guest(dir.path(), "ctl-ro-2");
        let stderr = fails(
            &uri,
            &[
                args.as_slice(),
                &["define", other.to_str().expect("utf-8 path")],
            ]
            .concat(),
        );
        assert!(stderr.contains("operation forbidden"), "{uri}: {stderr}");
        let stderr = fails(&uri, &[args.as_slice(), &["start", "ctl-ro"]].concat());
        assert!(stderr.contains("operation forbidden"), "{uri}: {stderr}");
    }
    assert_eq!(domstate(&daemon.uri(), "ctl-ro"), "shut off");
}

#[test]
fn tls_with_pkipath_works_and_a_foreign_client_certificate_is_refused() {
    let Some(pki) = migrated_tests::Pki::generate() else {
        return;
    };
    let daemon = Daemon::builder().tls(&pki).spawn();
    let uri = daemon.tls_uri(&pki);
    assert_eq!(ok(&uri, &["uri"]).trim(), uri);
    assert!(!ok(&uri, &["hostname"]).trim().is_empty());

    let port = daemon.tls_port().expect("daemon listens on TLS");
    let foreign = format!(
        "test+tls://127.0.0.1:{port}/default?pkipath={}",
        pki.foreign_client_dir().display()
    );
    // our own start-up sanity check (like libvirt's) catches it first ...
    let stderr = fails(&foreign, &["hostname"]);
    assert!(stderr.contains("failed to connect"), "{stderr}");
    assert!(stderr.contains("not by the CA"), "{stderr}");
    // ... and without it the server refuses the handshake
    let stderr = fails(&format!("{foreign}&no_sanity=1"), &["hostname"]);
    assert!(stderr.contains("failed to connect"), "{stderr}");
    eprintln!("foreign certificate refused with:\n{stderr}");
}

#[test]
fn default_uri_comes_from_the_environment() {
    let daemon = Daemon::builder().tcp().spawn();
    let out = run_with_timeout(
        Command::new(migratectl_binary())
            .arg("uri")
            .env("MIGRATED_DEFAULT_URI", daemon.uri()),
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stdout_of(&out).trim(), daemon.uri());
    // -c wins over the environment
    let out = run_with_timeout(
        Command::new(migratectl_binary())
            .args(["-c", &daemon.uri(), "hostname"])
            .env("MIGRATED_DEFAULT_URI", "test+tcp://127.0.0.1:1/default"),
        CLIENT_TIMEOUT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
}

#[test]
fn human_output_matches_virsh_byte_for_byte() {
    if migrated_tests::require_binary("virsh").is_none() {
        return;
    }
    let daemon = Daemon::builder().tcp().spawn();
    let uri = daemon.uri();
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["ctl-a", "ctl-longer-name"] {
        ok(
            &uri,
            &[
                "define",
                write_guest(dir.path(), name).to_str().expect("utf-8 path"),
            ],
        );
    }
    ok(&uri, &["start", "ctl-a"]);
    for command in [
        &["list", "--all"][..],
        &["list"],
        &["list", "--inactive"],
        &["list", "--all", "--name"],
        &["list", "--all", "--uuid"],
        &["dominfo", "ctl-a"],
        &["dominfo", "ctl-longer-name"],
        &["domstate", "--reason", "ctl-a"],
        &["domstats", "--state", "--balloon", "--vcpu"],
        &["domstats", "--state", "ctl-longer-name", "ctl-a"],
        &["dumpxml", "ctl-a"],
        &["dumpxml", "--inactive", "ctl-longer-name"],
        &["hostname"],
        &["uri"],
        &["nodeinfo"],
        &["capabilities"],
    ] {
        let theirs = migrated_tests::virsh(&uri, command);
        assert!(
            theirs.status.success(),
            "virsh {command:?}: {}",
            stderr_of(&theirs)
        );
        assert_eq!(
            without_cpu_time(&ok(&uri, command)),
            without_cpu_time(&stdout_of(&theirs)),
            "output of {command:?} differs from virsh"
        );
    }
    // The test driver, as libvirt's, fills no block group: refused under
    // --enforce with libvirt's error.
    let err = fails(&uri, &["domstats", "--block", "--enforce", "ctl-a"]);
    assert!(
        err.contains("argument unsupported") && err.contains("0x20"),
        "{err}"
    );
}

/// A running guest's CPU time moves between two commands; everything else must not.
/// `text` with the CPU times (dominfo's, domstats' `vcpu.N.time`), which
/// move between two calls, blanked.
fn without_cpu_time(text: &str) -> String {
    text.lines()
        .map(|l| {
            let stat = l.trim_start();
            if l.starts_with("CPU time:") {
                "CPU time: (varies)".to_owned()
            } else if stat.starts_with("vcpu.") && stat.contains(".time=") {
                let (key, _) = l.split_once('=').unwrap_or((l, ""));
                format!("{key}=(varies)")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_verify_accepts_a_server_certificate_our_ca_did_not_sign() {
    let Some(pki) = migrated_tests::Pki::generate() else {
        return;
    };
    let daemon = Daemon::builder().tls(&pki).spawn();
    let port = daemon.tls_port().expect("daemon listens on TLS");
    // our good client certificate, but trusting only the unrelated CA of
    // pki.sh's `other/` directory, so the server's certificate cannot verify
    let root = pki.foreign_client_dir();
    let root = root.parent().expect("PKI root");
    let dir = tempfile::tempdir().expect("tempdir");
    for (from, to) in [
        (root.join("other/cacert.pem"), "cacert.pem"),
        (pki.client_dir().join("clientcert.pem"), "clientcert.pem"),
        (pki.client_dir().join("clientkey.pem"), "clientkey.pem"),
    ] {
        std::fs::copy(&from, dir.path().join(to)).expect("copy PKI file");
    }
    // no_sanity: our certificate does not chain to that CA either
    let uri = format!(
        "test+tls://127.0.0.1:{port}/default?pkipath={}&no_sanity=1",
        dir.path().display()
    );
    let stderr = fails(&uri, &["hostname"]);
    assert!(stderr.contains("failed to connect"), "{stderr}");
    assert!(!ok(&format!("{uri}&no_verify=1"), &["hostname"])
        .trim()
        .is_empty());
}

#[test]
fn persistent_configs_survive_a_daemon_restart() {
    let mut daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = daemon.uri();
    for name in ["mc-keep-a", "mc-keep-b"] {
        let file = write_guest(dir.path(), name);
        ok(&uri, &["define", &file.display().to_string()]);
    }
    ok(&uri, &["start", "mc-keep-b"]);
    let xml_before = ok(&uri, &["dumpxml", "--inactive", "mc-keep-a"]);

    // A graceful stop, then a crash: configs survive both, guests come back shut off.
    let status = daemon.stop();
    assert!(status.success(), "SIGTERM exit status {status:?}");
    daemon.restart();
    ok(&uri, &["start", "mc-keep-a"]);
    daemon.kill();
    daemon.restart();

    let list = ok(&uri, &["list", "--all"]);
    for name in ["mc-keep-a", "mc-keep-b"] {
        let row = list_row(&list, name).unwrap_or_else(|| panic!("{name} lost: {list}"));
        assert_eq!(row[2], "shut off", "{name} after restart: {list}");
    }
    assert_eq!(
        ok(&uri, &["dumpxml", "--inactive", "mc-keep-a"]),
        xml_before,
        "stored config changed across restarts"
    );
    ok(&uri, &["start", "mc-keep-a"]);
    assert_eq!(domstate(&uri, "mc-keep-a"), "running");
}

#[test]
fn sixteen_concurrent_clients_leave_a_consistent_state() {
    let daemon = Daemon::builder().tcp().spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = daemon.uri();
    std::thread::scope(|scope| {
        for i in 0..16 {
            let (uri, dir) = (uri.as_str(), dir.path());
            scope.spawn(move || {
                let name = format!("mc-par-{i:02}");
                let file = write_guest(dir, &name).display().to_string();
                ok(uri, &["define", &file]);
                ok(uri, &["start", &name]);
                ok(uri, &["suspend", &name]);
                ok(uri, &["resume", &name]);
                ok(uri, &["destroy", &name]);
                ok(uri, &["start", &name]);
            });
        }
    });
    let list = ok(&uri, &["list", "--all"]);
    let mut ids = Vec::new();
    for i in 0..16 {
        let name = format!("mc-par-{i:02}");
        let row = list_row(&list, &name).unwrap_or_else(|| panic!("{name} missing: {list}"));
        assert_eq!(row[2], "running", "{name}: {list}");
        ids.push(
            row[0]
                .parse::<u32>()
                .unwrap_or_else(|e| panic!("id of {name}: {e}")),
        );
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16, "ids not distinct: {list}");
    let stored = daemon.stored_configs().len();
    assert_eq!(
        stored,
        16,
        "stored configs under {}",
        daemon.state_dir().display()
    );
}
