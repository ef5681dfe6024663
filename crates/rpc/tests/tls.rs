//! TLS with certificates made by deploy/pki.sh: the happy path and each
//! refusal, with a named reason, and a good client served afterwards.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::*;
use migrated_rpc::server::REMOTE_PROGRAM;
use migrated_rpc::transport::tls::{
    self, ClientTlsConfig, ServerTlsConfig, TlsAcceptor, TlsConnector,
};
use migrated_rpc::{ClientConfig, Error, Listener, RpcClient, Server, ServerConfig, Transport};

const T: Duration = Duration::from_secs(10);

/// Generates the PKI once per test binary; `None` (loudly) without openssl.
fn pki() -> Option<&'static Path> {
    static PKI: OnceLock<Option<PathBuf>> = OnceLock::new();
    PKI.get_or_init(|| {
        let have_openssl = std::process::Command::new("openssl")
            .arg("version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !have_openssl {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is required in CI"
            );
            eprintln!("SKIPPED: openssl not found");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rpc-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/pki.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .args([
                "--expired-client",
                "--future-client",
                "--bad-usage",
                "--second-ca",
            ])
            .arg(&dir)
            .output()
            .expect("run pki.sh");
        assert!(
            out.status.success(),
            "pki.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(dir)
    })
    .as_deref()
}

macro_rules! pki_or_skip {
    () => {
        match pki() {
            Some(p) => p,
            None => return,
        }
    };
}

fn server_tls(pki: &Path, allowed: Option<Vec<String>>) -> ServerTlsConfig {
    ServerTlsConfig {
        ca_file: pki.join("CA/cacert.pem"),
        cert_file: pki.join("libvirt/servercert.pem"),
        key_file: pki.join("libvirt/private/serverkey.pem"),
        verify_client: true,
        allowed_dns: allowed,
    }
}

async fn spawn_tls(
    pki: &Path,
    allowed: Option<Vec<String>>,
    config: ServerConfig,
) -> (Server<Toy>, SocketAddr) {
    let acceptor = TlsAcceptor::new(&server_tls(pki, allowed)).expect("server TLS config");
    let listener = Listener::bind_tls("127.0.0.1:0", acceptor)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(config, Arc::new(Toy::default()));
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });
    (server, addr)
}

async fn connect(addr: SocketAddr, cfg: &ClientTlsConfig, host: &str) -> Result<RpcClient, Error> {
    let connector = TlsConnector::new(cfg)?;
    let tcp = migrated_rpc::transport::tcp::connect(&addr.to_string()).await?;
    let tls = tokio::time::timeout(T, connector.connect(host, tcp))
        .await
        .expect("handshake hung")?;
    Ok(RpcClient::new(tls, ClientConfig::default()))
}

fn good(pki: &Path) -> ClientTlsConfig {
    ClientTlsConfig::from_pkipath(&pki.join("client"))
}

async fn good_client_is_served(pki: &Path, addr: SocketAddr) {
    let c = connect(addr, &good(pki), "127.0.0.1")
        .await
        .expect("good client connects");
    c.call(REMOTE_PROGRAM, 1, ECHO, b"hi".to_vec())
        .await
        .expect("good client served");
}

fn handshake_reason(result: Result<RpcClient, Error>) -> String {
    match result {
        Err(Error::TlsHandshake { reason }) => reason,
        Err(other) => panic!("expected a TLS handshake error, got {other}"),
        Ok(_) => panic!("connection should have been refused"),
    }
}

#[tokio::test]
async fn tls_happy_path_reports_transport_and_client_subject() {
    let pki = pki_or_skip!();
    let (server, addr) = spawn_tls(pki, None, config()).await;
    let c = connect(addr, &good(pki), "127.0.0.1")
        .await
        .expect("connect");
    let subject = c
        .call(REMOTE_PROGRAM, 1, WHOAMI, vec![])
        .await
        .expect("whoami");
    assert_eq!(&subject[..], b"C=GB,O=Example,CN=client");
    let info = server.dispatcher().infos.lock().expect("lock")[0].clone();
    assert_eq!(info.transport, Transport::Tls);
    // a large payload crosses TLS records intact
    let big = pattern(0, 3 << 20).to_vec();
    assert_eq!(
        &c.call(REMOTE_PROGRAM, 1, ECHO, big.clone())
            .await
            .expect("echo")[..],
        &big[..]
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig {
        cert_file: None,
        key_file: None,
        ..good(pki)
    };
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("client certificate"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig {
        cert_file: Some(pki.join("other/clientcert.pem")),
        key_file: Some(pki.join("other/clientkey.pem")),
        ..good(pki)
    };
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("unknown CA"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig::from_pkipath(&pki.join("expired"));
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("expired"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn not_yet_valid_client_certificate_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig::from_pkipath(&pki.join("future"));
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("not yet valid"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn client_certificate_without_client_usage_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig {
        cert_file: Some(pki.join("badusage/clientcert.pem")),
        key_file: Some(pki.join("badusage/clientkey.pem")),
        ..good(pki)
    };
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("bad key usage"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn server_certificate_without_server_usage_is_refused_by_the_client() {
    let pki = pki_or_skip!();
    let tls = ServerTlsConfig {
        cert_file: pki.join("badusage/servercert.pem"),
        key_file: pki.join("badusage/serverkey.pem"),
        ..server_tls(pki, None)
    };
    let acceptor = TlsAcceptor::new(&tls).expect("server TLS config");
    let listener = Listener::bind_tls("127.0.0.1:0", acceptor)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::new(config(), Arc::new(Toy::default()));
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });
    let reason = handshake_reason(connect(addr, &good(pki), "127.0.0.1").await);
    assert!(reason.contains("bad key usage"), "{reason}");
}

#[tokio::test]
async fn subject_outside_the_allowed_dn_list_is_refused() {
    let pki = pki_or_skip!();
    let (_server, addr) =
        spawn_tls(pki, Some(vec!["C=GB,O=Example,CN=admin*".into()]), config()).await;
    let refused = connect(addr, &good(pki), "127.0.0.1").await;
    assert!(
        matches!(refused, Err(Error::ServerVerificationFailed)),
        "{refused:?}"
    );
    let text = Error::ServerVerificationFailed.to_string();
    assert_eq!(
        text,
        "server verification (of our certificate or IP address) failed"
    );

    let (_server, addr) = spawn_tls(pki, Some(vec![]), config()).await;
    assert!(matches!(
        connect(addr, &good(pki), "127.0.0.1").await,
        Err(Error::ServerVerificationFailed)
    ));

    let (_server, addr) =
        spawn_tls(pki, Some(vec!["C=GB,O=Example,CN=cli*".into()]), config()).await;
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn server_from_an_unknown_ca_is_refused_by_the_client() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig {
        ca_file: pki.join("other/cacert.pem"),
        ..good(pki)
    };
    let reason = handshake_reason(connect(addr, &cfg, "127.0.0.1").await);
    assert!(reason.contains("unknown CA"), "{reason}");
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn server_name_is_checked_against_dns_and_ip_sans() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let reason = handshake_reason(connect(addr, &good(pki), "127.0.0.2").await);
    assert!(reason.contains("name mismatch"), "{reason}");
    let reason = handshake_reason(connect(addr, &good(pki), "otherhost").await);
    assert!(reason.contains("name mismatch"), "{reason}");
    // SAN DNS:localhost, while the socket goes to 127.0.0.1
    let c = connect(addr, &good(pki), "localhost")
        .await
        .expect("dns SAN accepted");
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("served");
}

#[tokio::test]
async fn no_verify_accepts_a_mismatching_server() {
    let pki = pki_or_skip!();
    let (_server, addr) = spawn_tls(pki, None, config()).await;
    let cfg = ClientTlsConfig {
        no_verify: true,
        ..good(pki)
    };
    let c = connect(addr, &cfg, "127.0.0.2")
        .await
        .expect("accepted despite mismatch");
    c.call(REMOTE_PROGRAM, 1, ECHO, vec![])
        .await
        .expect("served");
}

#[tokio::test]
async fn handshakes_beyond_max_anonymous_are_closed() {
    let pki = pki_or_skip!();
    let cfg = ServerConfig {
        max_anonymous_clients: 1,
        ..config()
    };
    let (server, addr) = spawn_tls(pki, None, cfg).await;
    // holds the only handshake slot by never speaking
    let staller = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(wait_until(T, || server.connection_count() == 1).await);
    assert!(connect(addr, &good(pki), "127.0.0.1").await.is_err());
    drop(staller);
    assert!(wait_until(T, || server.connection_count() == 0).await);
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn stalled_handshake_times_out_and_frees_its_slot() {
    let pki = pki_or_skip!();
    let cfg = ServerConfig {
        max_anonymous_clients: 1,
        handshake_timeout: Duration::from_millis(200),
        ..config()
    };
    let (server, addr) = spawn_tls(pki, None, cfg).await;
    let mut staller = Raw {
        stream: tokio::net::TcpStream::connect(addr).await.expect("connect"),
    };
    assert!(
        staller.closed_within(T).await,
        "stalled handshake was never closed"
    );
    assert!(wait_until(T, || server.connection_count() == 0).await);
    good_client_is_served(pki, addr).await;
}

#[tokio::test]
async fn acceptor_names_the_reason_on_the_server_side() {
    let pki = pki_or_skip!();
    let acceptor =
        TlsAcceptor::new(&server_tls(pki, Some(vec!["CN=nobody".into()]))).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cases: Vec<(ClientTlsConfig, &str)> = vec![
        (
            ClientTlsConfig {
                cert_file: None,
                key_file: None,
                ..good(pki)
            },
            "missing client certificate",
        ),
        (
            ClientTlsConfig {
                cert_file: Some(pki.join("other/clientcert.pem")),
                key_file: Some(pki.join("other/clientkey.pem")),
                ..good(pki)
            },
            "unknown CA",
        ),
        (
            ClientTlsConfig::from_pkipath(&pki.join("expired")),
            "expired",
        ),
        (
            ClientTlsConfig::from_pkipath(&pki.join("future")),
            "not yet valid",
        ),
        (
            ClientTlsConfig {
                cert_file: Some(pki.join("badusage/clientcert.pem")),
                key_file: Some(pki.join("badusage/clientkey.pem")),
                ..good(pki)
            },
            "bad key usage",
        ),
        (good(pki), "not in the allowed DN list"),
    ];
    for (cfg, needle) in cases {
        let client =
            tokio::spawn(async move { connect(addr, &cfg, "127.0.0.1").await.map(|_| ()) });
        let (tcp, _) = listener.accept().await.expect("accept");
        let Err(err) = acceptor.accept(tcp).await else {
            panic!("client should be refused")
        };
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
        assert!(within(T, client).await.expect("join").is_err());
    }
}

#[test]
fn certificate_sanity_check_names_the_problem() {
    let pki = pki_or_skip!();
    let ca = pki.join("CA/cacert.pem");
    tls::check_certificate(
        &pki.join("libvirt/servercert.pem"),
        &pki.join("libvirt/private/serverkey.pem"),
        &ca,
    )
    .expect("server certificate is sane");
    let cases = [
        (
            pki.join("expired/clientcert.pem"),
            pki.join("expired/clientkey.pem"),
            "expired",
        ),
        (
            pki.join("future/clientcert.pem"),
            pki.join("future/clientkey.pem"),
            "not yet valid",
        ),
        (
            pki.join("libvirt/servercert.pem"),
            pki.join("libvirt/private/clientkey.pem"),
            "does not match",
        ),
        (
            pki.join("CA/cacert.pem"),
            pki.join("CA/cakey.pem"),
            "is a CA",
        ),
        (
            pki.join("other/clientcert.pem"),
            pki.join("other/clientkey.pem"),
            "issued by",
        ),
    ];
    for (cert, key, needle) in cases {
        let Err(err) = tls::check_certificate(&cert, &key, &ca) else {
            panic!("{} should fail", cert.display())
        };
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

#[test]
fn subject_dn_is_rendered_in_certificate_order() {
    let pki = pki_or_skip!();
    let certs =
        tls::load_certs("client certificate", &pki.join("libvirt/clientcert.pem")).expect("load");
    assert_eq!(
        tls::subject_dn(&certs[0]).expect("dn"),
        "C=GB,O=Example,CN=client"
    );
}
