//! TLS and access policy against the real daemon, `migratectl` and `virsh`:
//! the server certificate's start-up sanity check, client certificates that
//! must be refused (expired, not yet valid, wrong CA, wrong key purpose, none),
//! the allowed-DN list (unset = any valid certificate, empty = nobody, globs),
//! a server name that does not match the URI host (refused unless
//! `?no_verify=1`), and secrets (a VNC password) kept out of plain dumpxml,
//! read-only connections and the daemons' logs.

mod migrate_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use migrated_tests::clients::{stderr_of, stdout_of};
use migrated_tests::{
    free_port, migrated_binary, random_uuid, require_binary, run_with_timeout, virsh, Daemon,
};

use migrate_support::{ctl, ctl_ok, Hosts};

/// A PKI from `deploy/pki.sh` with every variant this file needs.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn generate() -> Option<Self> {
        require_binary("openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("migrated-tls-policy-")
            .tempdir()
            .expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pki.sh");
        let out = run_with_timeout(
            Command::new("bash")
                .arg(&script)
                .args([
                    "--expired-client",
                    "--future-client",
                    "--bad-usage",
                    "--second-ca",
                ])
                .arg(dir.path()),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "deploy/pki.sh failed: {}",
            stderr_of(&out)
        );
        Some(Pki { dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A `?pkipath=` directory with our CA and the client files of `variant`.
    fn client_dir(&self, variant: &str) -> PathBuf {
        let dir = self.path(&format!("pkipath-{variant}"));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).expect("pkipath dir");
            std::fs::copy(self.path("CA/cacert.pem"), dir.join("cacert.pem")).expect("copy CA");
            for file in ["clientcert.pem", "clientkey.pem"] {
                std::fs::copy(self.path(&format!("{variant}/{file}")), dir.join(file))
                    .expect("copy client file");
            }
        }
        dir
    }

    /// A server certificate from our CA for `elsewhere.invalid` / 10.0.0.9,
    /// i.e. not for 127.0.0.1. Returns (cert, key).
    fn mismatched_server(&self) -> (PathBuf, PathBuf) {
        let dir = self.path("mismatch");
        std::fs::create_dir_all(&dir).expect("mismatch dir");
        let (key, csr, cert, ext) = (
            dir.join("serverkey.pem"),
            dir.join("server.csr"),
            dir.join("servercert.pem"),
            dir.join("ext.cnf"),
        );
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:elsewhere.invalid,IP:10.0.0.9\n",
        )
        .expect("write ext");
        let run = |args: &[&str]| {
            let out = run_with_timeout(Command::new("openssl").args(args), Duration::from_secs(60));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                stderr_of(&out)
            );
        };
        let s = |p: &Path| p.display().to_string();
        run(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &s(&key),
            "-subj",
            "/C=GB/O=Example/CN=elsewhere.invalid",
            "-out",
            &s(&csr),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&self.path("CA/cacert.pem")),
            "-CAkey",
            &s(&self.path("CA/cakey.pem")),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &s(&cert),
            "-extfile",
            &s(&ext),
        ]);
        (cert, key)
    }
}

/// A daemon with plain TCP plus TLS from explicit files and an optional
/// config file. Returns it with its TLS port.
fn tls_daemon(pki: &Pki, cert: &Path, key: &Path, config: &str) -> (Daemon, u16) {
    let port = free_port();
    let daemon = Daemon::builder()
        .tcp()
        .config_toml(config)
        .args([
            "--listen".to_owned(),
            format!("tls://127.0.0.1:{port}"),
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
            "--tls-ca".to_owned(),
            pki.path("CA/cacert.pem").display().to_string(),
        ])
        .spawn();
    (daemon, port)
}

fn good_daemon(pki: &Pki, config: &str) -> (Daemon, u16) {
    tls_daemon(
        pki,
        &pki.path("libvirt/servercert.pem"),
        &pki.path("libvirt/private/serverkey.pem"),
        config,
    )
}

fn tls_uri(port: u16, pkipath: &Path) -> String {
    format!(
        "test+tls://127.0.0.1:{port}/default?pkipath={}",
        pkipath.display()
    )
}

/// Runs the daemon binary with the given server files; it must exit non-zero.
fn refused_start(pki: &Pki, cert: &Path, key: &Path) -> String {
    let root = tempfile::tempdir().expect("temp dir");
    std::fs::write(root.path().join("migrated.toml"), "").expect("config");
    let out = run_with_timeout(
        Command::new(migrated_binary())
            .arg("--config")
            .arg(root.path().join("migrated.toml"))
            .arg("--state-dir")
            .arg(root.path().join("state"))
            .arg("--runtime-dir")
            .arg(root.path().join("run"))
            .args(["--host-uuid", &random_uuid(), "--drivers", "test"])
            .args(["--listen", &format!("tls://127.0.0.1:{}", free_port())])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--tls-ca")
            .arg(pki.path("CA/cacert.pem")),
        Duration::from_secs(30),
    );
    assert!(
        !out.status.success(),
        "the daemon started with cert {} / key {}",
        cert.display(),
        key.display()
    );
    stderr_of(&out)
}

#[test]
fn bad_server_certificates_stop_the_daemon_with_the_problem_named() {
    let Some(pki) = Pki::generate() else { return };
    let cases = [
        (
            "expired",
            pki.path("expired/clientcert.pem"),
            pki.path("expired/clientkey.pem"),
            "has expired",
        ),
        (
            "not yet valid",
            pki.path("future/clientcert.pem"),
            pki.path("future/clientkey.pem"),
            "is not yet valid",
        ),
        (
            "CA flag on the leaf",
            pki.path("CA/cacert.pem"),
            pki.path("CA/cakey.pem"),
            "is a CA certificate",
        ),
        (
            "key not matching",
            pki.path("libvirt/servercert.pem"),
            pki.path("libvirt/private/clientkey.pem"),
            "does not match private key",
        ),
    ];
    for (what, cert, key, reason) in cases {
        let err = refused_start(&pki, &cert, &key);
        assert!(err.contains(reason), "{what}: no {reason:?} in:\n{err}");
        assert!(
            err.contains(&cert.display().to_string()),
            "{what}: the message does not name the file:\n{err}"
        );
    }
}

/// Fails with the given client directory; returns the client's error text.
fn client_refused(uri: &str) -> String {
    let out = ctl(uri, &["hostname"]);
    assert!(
        !out.status.success(),
        "migratectl got in with {uri}: {}",
        stdout_of(&out)
    );
    stderr_of(&out)
}

#[test]
fn client_certificates_are_required_and_verified() {
    let Some(pki) = Pki::generate() else { return };
    let (daemon, port) = good_daemon(&pki, "");
    // The good client gets in (the unset DN list accepts any valid certificate).
    ctl_ok(&tls_uri(port, &pki.path("client")), &["hostname"]);
    let certless = pki.path("pkipath-none");
    std::fs::create_dir_all(&certless).expect("dir");
    std::fs::copy(pki.path("CA/cacert.pem"), certless.join("cacert.pem")).expect("copy");
    // Our client checks its own certificate first (as libvirt's does), so
    // for some cases the reason is in the client's error, for the others in
    // the daemon's handshake log: either must name it.
    let cases: [(&str, PathBuf, &[&str]); 5] = [
        ("expired", pki.client_dir("expired"), &["expired"]),
        (
            "not yet valid",
            pki.client_dir("future"),
            &["not yet valid"],
        ),
        (
            "wrong CA",
            pki.client_dir("other"),
            &["unknown", "issuer", "issued by"],
        ),
        (
            "wrong key purpose",
            pki.client_dir("badusage"),
            &["purpose", "usage"],
        ),
        ("no certificate", certless, &["certificate"]),
    ];
    for (what, dir, reasons) in cases {
        let err = client_refused(&tls_uri(port, &dir));
        let text = format!("{err}\n{}", daemon.logs()).to_lowercase();
        assert!(
            reasons.iter().any(|r| text.contains(r)),
            "{what}: neither the client nor the daemon names the reason {reasons:?}; client said: {err}"
        );
    }
    // Nobody above disturbed the good client or plain TCP.
    ctl_ok(&tls_uri(port, &pki.path("client")), &["hostname"]);
    ctl_ok(&daemon.uri(), &["hostname"]);
}

#[test]
fn an_empty_allowed_dn_list_lets_nobody_in_and_globs_match() {
    let Some(pki) = Pki::generate() else { return };
    let good = pki.path("client");
    let (nobody, port) = good_daemon(&pki, "tls_allowed_dn = []\n");
    let err = client_refused(&tls_uri(port, &good));
    assert!(
        nobody.logs().contains("C=GB,O=Example,CN=client"),
        "the daemon log does not name the refused DN; client said: {err}"
    );
    drop(nobody);
    let (glob, port) = good_daemon(&pki, "tls_allowed_dn = [\"C=GB,O=Example,CN=cli*\"]\n");
    ctl_ok(&tls_uri(port, &good), &["hostname"]);
    drop(glob);
    let (other, port) = good_daemon(
        &pki,
        "tls_allowed_dn = [\"C=GB,O=Example,CN=admin*\", \"C=US,*\"]\n",
    );
    client_refused(&tls_uri(port, &good));
    ctl_ok(&other.uri(), &["hostname"]);
}

#[test]
fn a_server_name_that_does_not_match_the_uri_host_is_refused_unless_no_verify() {
    let Some(pki) = Pki::generate() else { return };
    let (cert, key) = pki.mismatched_server();
    let (_daemon, port) = tls_daemon(&pki, &cert, &key, "");
    let uri = tls_uri(port, &pki.path("client"));
    let err = client_refused(&uri);
    let lower = err.to_lowercase();
    assert!(
        lower.contains("name") || lower.contains("127.0.0.1"),
        "migratectl does not give the reason: {err}"
    );
    ctl_ok(&format!("{uri}&no_verify=1"), &["hostname"]);
    if require_binary("virsh").is_none() {
        return;
    }
    let out = virsh(&uri, &["hostname"]);
    assert!(!out.status.success(), "virsh accepted the mismatched name");
    let err = stderr_of(&out);
    assert!(
        err.contains("127.0.0.1") || err.to_lowercase().contains("hostname"),
        "virsh does not give the reason: {err}"
    );
    let out = virsh(&format!("{uri}&no_verify=1"), &["hostname"]);
    assert!(
        out.status.success(),
        "virsh with no_verify=1: {}",
        stderr_of(&out)
    );
}

const PASSWORD: &str = "Vnc-s3cret-9f2c";

fn guest_with_password(name: &str) -> String {
    format!(
        "<domain type='test'><name>{name}</name><memory unit='MiB'>16</memory>\
         <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>\
         <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='{PASSWORD}'/>\
         </devices></domain>\n"
    )
}

fn output_ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr_of(out));
    stdout_of(out)
}

#[test]
fn a_vnc_password_stays_out_of_plain_xml_read_only_connections_and_logs() {
    let hosts = Hosts::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (hosts.a_uri(), hosts.b_uri());
    let name = "secret-guest";
    let path = dir.path().join("g.xml");
    std::fs::write(&path, guest_with_password(name)).expect("write xml");
    ctl_ok(&a, &["define", path.to_str().expect("utf-8")]);
    ctl_ok(&a, &["start", name]);
    let plain = ctl_ok(&a, &["dumpxml", name]);
    assert!(plain.contains("<graphics"), "{plain}");
    assert!(
        !plain.contains(PASSWORD),
        "plain dumpxml shows it:\n{plain}"
    );
    if require_binary("virsh").is_some() {
        let plain = output_ok(&virsh(&a, &["dumpxml", name]), "virsh dumpxml");
        assert!(!plain.contains(PASSWORD), "{plain}");
        let secure = output_ok(
            &virsh(&a, &["dumpxml", "--security-info", name]),
            "virsh dumpxml --security-info",
        );
        assert!(secure.contains(PASSWORD), "read-write SECURE hides it");
        let ro = virsh(&a, &["-r", "dumpxml", "--security-info", name]);
        assert!(!ro.status.success(), "read-only SECURE dumpxml succeeded");
        assert!(
            stderr_of(&ro).contains("operation forbidden"),
            "{}",
            stderr_of(&ro)
        );
        assert!(!stdout_of(&ro).contains(PASSWORD));
    }
    ctl_ok(&a, &["migrate", "--live", "--persistent", name, &b]);
    assert_eq!(migrate_support::state(&b, name).as_deref(), Some("running"));
    // The definition moved with its secret (the destination needs it), but
    // neither daemon ever wrote it to its log.
    let moved = ctl_ok(&b, &["dumpxml", name]);
    assert!(!moved.contains(PASSWORD), "{moved}");
    if require_binary("virsh").is_some() {
        let secure = output_ok(
            &virsh(&b, &["dumpxml", "--security-info", name]),
            "destination dumpxml --security-info",
        );
        assert!(
            secure.contains(PASSWORD),
            "the secret was lost in migration"
        );
    }
    for (host, log) in [("source", hosts.a.logs()), ("destination", hosts.b.logs())] {
        assert!(
            !log.contains(PASSWORD),
            "the {host} daemon logged the VNC password"
        );
    }
}
