//! Stock `virsh` (libvirt's own client library, GnuTLS) against our server
//! with a minimal hand-written dispatcher: TLS with client certificates and
//! the 0x01 byte, plain TCP and UNIX framing, serials, and ERROR replies as
//! libvirt renders them. Skipped loudly without virsh (required in CI).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use migrated_rpc::transport::tls::{ServerTlsConfig, TlsAcceptor};
use migrated_rpc::{
    CallContext, ConnHandle, ConnInfo, Dispatcher, Header, Listener, Lookup, Server, ServerConfig,
    WireError,
};

/// Answers just enough of the remote program for `virsh hostname` and
/// `virsh capabilities` (which fails).
struct MiniLibvirt;

fn xdr_string(s: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(s.len() as u32);
    b.extend_from_slice(s.as_bytes());
    b.put_bytes(0, (4 - s.len() % 4) % 4);
    b.freeze()
}

impl Dispatcher for MiniLibvirt {
    type Session = ();

    fn open_session(&self, _info: &ConnInfo, _handle: ConnHandle) {}

    fn lookup(&self, _session: &(), _header: &Header) -> Lookup {
        Lookup::Call { priority: false }
    }

    async fn call(
        &self,
        _s: Arc<()>,
        ctx: CallContext,
        payload: Bytes,
    ) -> Result<Bytes, WireError> {
        let word = |at: usize| {
            payload
                .get(at..at + 4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(-1)
        };
        match ctx.header.proc_ {
            // AUTH_LIST: [none]
            66 => Ok(Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0])),
            // CONNECT_SUPPORTS_FEATURE: only keepalive (10)
            60 => Ok(Bytes::copy_from_slice(
                &i32::from(word(0) == 10).to_be_bytes(),
            )),
            // CONNECT_OPEN, REGISTER/UNREGISTER_CLOSE_CALLBACK
            1 | 360 | 361 => Ok(Bytes::new()),
            // CONNECT_CLOSE: reply, then close like libvirtd
            2 => {
                ctx.handle.close();
                Ok(Bytes::new())
            }
            // CONNECT_GET_HOSTNAME
            59 => Ok(xdr_string("toyhost.example")),
            // CONNECT_GET_CAPABILITIES: fails with a recognisable error
            7 => Err(WireError::new(9, 10, "toy capabilities are unavailable")),
            other => Err(WireError::new(
                3,
                0,
                format!("this toy does not support procedure {other}"),
            )),
        }
    }
}

fn have_virsh() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let ok = std::process::Command::new("virsh")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "virsh is required in CI");
            eprintln!("SKIPPED: virsh not found");
        }
        ok
    })
}

fn pki() -> &'static Path {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("rpc-virsh-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/pki.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg(&dir)
            .output()
            .expect("run pki.sh (needs openssl)");
        assert!(
            out.status.success(),
            "pki.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

async fn serve(listener: Listener) -> Server<MiniLibvirt> {
    let server = Server::new(ServerConfig::default(), Arc::new(MiniLibvirt));
    let s = server.clone();
    tokio::spawn(async move { s.serve(listener).await });
    server
}

/// Runs virsh with a private HOME; returns (success, stdout, stderr).
async fn virsh(uri: &str, args: &[&str]) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let child = tokio::process::Command::new("virsh")
        .arg("-c")
        .arg(uri)
        .args(args)
        .env("HOME", home.path())
        .env_remove("LIBVIRT_DEFAULT_URI")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("virsh hung")
        .expect("virsh runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_over_tls_with_client_certificates() {
    if !have_virsh() {
        return;
    }
    let pki = pki();
    let acceptor = TlsAcceptor::new(&ServerTlsConfig {
        ca_file: pki.join("CA/cacert.pem"),
        cert_file: pki.join("libvirt/servercert.pem"),
        key_file: pki.join("libvirt/private/serverkey.pem"),
        verify_client: true,
        allowed_dns: Some(vec!["C=GB,O=Example,CN=client".into()]),
    })
    .expect("acceptor");
    let listener = Listener::bind_tls("127.0.0.1:0", acceptor)
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve(listener).await;
    let uri = format!(
        "qemu+tls://127.0.0.1:{port}/system?pkipath={}",
        pki.join("client").display()
    );
    let (ok, stdout, stderr) = virsh(&uri, &["hostname"]).await;
    assert!(ok, "virsh failed: {stderr}");
    assert_eq!(stdout.trim(), "toyhost.example");
    assert!(tokio::time::timeout(Duration::from_secs(10), async {
        while server.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_prints_our_error_replies() {
    if !have_virsh() {
        return;
    }
    let listener = Listener::bind_tcp("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _server = serve(listener).await;
    let uri = format!("qemu+tcp://127.0.0.1:{port}/system");
    let (ok, _stdout, stderr) = virsh(&uri, &["capabilities"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("toy capabilities are unavailable"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_over_a_unix_socket() {
    if !have_virsh() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sock");
    let listener = Listener::bind_unix(&path, 0o600, false).expect("bind");
    let _server = serve(listener).await;
    let uri = format!("qemu+unix:///system?socket={}", path.display());
    let (ok, stdout, stderr) = virsh(&uri, &["hostname"]).await;
    assert!(ok, "virsh failed: {stderr}");
    assert_eq!(stdout.trim(), "toyhost.example");
}

#[tokio::test(flavor = "multi_thread")]
async fn virsh_without_an_allowed_dn_is_refused() {
    if !have_virsh() {
        return;
    }
    let pki = pki();
    let acceptor = TlsAcceptor::new(&ServerTlsConfig {
        ca_file: pki.join("CA/cacert.pem"),
        cert_file: pki.join("libvirt/servercert.pem"),
        key_file: pki.join("libvirt/private/serverkey.pem"),
        verify_client: true,
        allowed_dns: Some(vec!["C=GB,O=Example,CN=admin".into()]),
    })
    .expect("acceptor");
    let listener = Listener::bind_tls("127.0.0.1:0", acceptor)
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _server = serve(listener).await;
    let uri = format!(
        "qemu+tls://127.0.0.1:{port}/system?pkipath={}",
        pki.join("client").display()
    );
    let (ok, _stdout, stderr) = virsh(&uri, &["hostname"]).await;
    assert!(!ok);
    assert!(
        stderr.contains("server verification (of our certificate or IP address) failed"),
        "{stderr}"
    );
}
