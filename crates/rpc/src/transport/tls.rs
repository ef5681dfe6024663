//! TLS with X.509 client certificates, the way libvirt does it
//! (`virnettlscontext.c`, libvirt-wire §9).
//!
//! * Server: requires a client certificate chaining to the CA by default,
//!   optionally restricts its subject DN with glob patterns, and — after a
//!   successful handshake and policy check — sends the single byte `0x01`
//!   inside TLS before any RPC.
//! * Client: trusts one CA file, presents a client certificate when one is
//!   configured, checks the server name (an IP literal is checked against
//!   IP SANs), and expects that `0x01` byte.
//!
//! rustls errors are turned into sentences that name the certificate
//! problem (unknown CA, expired, not yet valid, name mismatch, ...).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

/// The byte a libvirt server sends inside TLS to say "you are accepted".
pub const TLS_ACCEPTED: u8 = 1;

/// Root's CA certificate (`/etc/pki/CA/cacert.pem`).
pub const SYSTEM_CA: &str = "/etc/pki/CA/cacert.pem";
/// Root's client certificate.
pub const SYSTEM_CLIENT_CERT: &str = "/etc/pki/libvirt/clientcert.pem";
/// Root's client key.
pub const SYSTEM_CLIENT_KEY: &str = "/etc/pki/libvirt/private/clientkey.pem";
/// The server certificate libvirtd uses by default.
pub const SYSTEM_SERVER_CERT: &str = "/etc/pki/libvirt/servercert.pem";
/// The server key libvirtd uses by default.
pub const SYSTEM_SERVER_KEY: &str = "/etc/pki/libvirt/private/serverkey.pem";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------- loading

fn pem_err(what: &'static str, path: &Path, reason: impl Into<String>) -> Error {
    Error::Pem {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads every certificate in a PEM file.
///
/// # Errors
/// [`Error::Pem`] when the file is unreadable or holds no certificate.
pub fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let file = File::open(path).map_err(|e| pem_err(what, path, e.to_string()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_err(what, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(what, path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
///
/// # Errors
/// [`Error::Pem`].
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    let file = File::open(path).map_err(|e| pem_err(what, path, e.to_string()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| pem_err(what, path, e.to_string()))?
        .ok_or_else(|| pem_err(what, path, "no PEM private key found"))
}

fn root_store(ca_file: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA certificate", ca_file)? {
        roots
            .add(cert)
            .map_err(|e| pem_err("CA certificate", ca_file, describe_rustls(&e)))?;
    }
    Ok(roots)
}

// ---------------------------------------------------------------- errors

/// Puts a rustls error into words naming the certificate problem.
pub fn describe_rustls(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(c) => describe_certificate_error(c),
        rustls::Error::NoCertificatesPresented => {
            "peer sent no certificate (missing client certificate)".into()
        }
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "server requires a client certificate and none was sent (missing client certificate)".into()
            }
            AlertDescription::UnknownCA => {
                "peer does not trust the CA that issued our certificate (unknown CA)".into()
            }
            AlertDescription::BadCertificate => "peer rejected our certificate (bad certificate)".into(),
            AlertDescription::CertificateExpired => "peer says our certificate has expired".into(),
            AlertDescription::CertificateUnknown => {
                "peer rejected our certificate (certificate unknown, e.g. bad key usage)".into()
            }
            AlertDescription::UnsupportedCertificate => {
                "peer rejected our certificate (unsupported certificate or bad key usage)".into()
            }
            AlertDescription::HandshakeFailure => {
                "handshake failure (no common protocol version or cipher suite)".into()
            }
            other => format!("peer sent TLS alert {other:?}"),
        },
        other => other.to_string(),
    }
}

fn describe_certificate_error(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => "certificate is signed by an unknown CA".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not yet valid".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate does not match the server name (name mismatch)".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate key usage does not allow this use (bad key usage)".into()
        }
        CertificateError::BadSignature => "certificate signature is invalid".into(),
        CertificateError::Revoked => "certificate has been revoked".into(),
        CertificateError::BadEncoding => "certificate is not valid DER".into(),
        other => format!("certificate rejected: {other:?}"),
    }
}

fn handshake_error(err: std::io::Error) -> Error {
    let reason = match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => describe_rustls(tls),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            "connection closed by peer during the handshake".into()
        }
        None => err.to_string(),
    };
    Error::TlsHandshake { reason }
}

// ---------------------------------------------------------------- DN

/// Renders a certificate's subject DN the way libvirt/GnuTLS prints it for
/// `tls_allowed_dn_list`: RDNs in certificate order, `C=GB,O=Example,CN=client`.
///
/// # Errors
/// [`Error::CertificateCheck`] when the certificate does not parse.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Result<String> {
    let (_, parsed) =
        X509Certificate::from_der(cert.as_ref()).map_err(|e| Error::CertificateCheck {
            path: PathBuf::from("<peer>"),
            reason: format!("unparsable certificate: {e}"),
        })?;
    Ok(render_name(parsed.subject()))
}

fn render_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let key = match oid.as_str() {
                    "2.5.4.3" => "CN".to_string(),
                    "2.5.4.6" => "C".into(),
                    "2.5.4.7" => "L".into(),
                    "2.5.4.8" => "ST".into(),
                    "2.5.4.9" => "STREET".into(),
                    "2.5.4.10" => "O".into(),
                    "2.5.4.11" => "OU".into(),
                    "2.5.4.5" => "serialNumber".into(),
                    "0.9.2342.19200300.100.1.25" => "DC".into(),
                    "0.9.2342.19200300.100.1.1" => "UID".into(),
                    "1.2.840.113549.1.9.1" => "EMAIL".into(),
                    _ => oid,
                };
                let value = atv.as_str().map(escape_dn_value).unwrap_or_else(|_| {
                    let hex: String = atv.as_slice().iter().map(|b| format!("{b:02x}")).collect();
                    format!("#{hex}")
                });
                format!("{key}={value}")
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.join(",")
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------- server

/// Server-side TLS settings (libvirtd.conf `cert_file`, `key_file`,
/// `ca_file`, `tls_no_verify_certificate`, `tls_allowed_dn_list`).
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    /// CA that issued client certificates.
    pub ca_file: PathBuf,
    /// Server certificate (chain) PEM.
    pub cert_file: PathBuf,
    /// Server private key PEM.
    pub key_file: PathBuf,
    /// Require and verify a client certificate (default `true`).
    pub verify_client: bool,
    /// Glob patterns for the client subject DN; `None` = any valid
    /// certificate, `Some(vec![])` = nobody.
    pub allowed_dns: Option<Vec<String>>,
}

impl Default for ServerTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: SYSTEM_CA.into(),
            cert_file: SYSTEM_SERVER_CERT.into(),
            key_file: SYSTEM_SERVER_KEY.into(),
            verify_client: true,
            allowed_dns: None,
        }
    }
}

/// Performs libvirt-style server handshakes; cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    allowed: Option<Arc<GlobSet>>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("dn_filter", &self.allowed.is_some())
            .finish()
    }
}

impl TlsAcceptor {
    /// Loads the files and builds the rustls server configuration.
    ///
    /// # Errors
    /// [`Error::Pem`] for unreadable files, [`Error::CertificateCheck`] for a
    /// bad DN pattern, [`Error::TlsConfig`] when rustls refuses the
    /// certificate/key pair.
    pub fn new(config: &ServerTlsConfig) -> Result<Self> {
        let provider = provider();
        let certs = load_certs("server certificate", &config.cert_file)?;
        let key = load_key("server key", &config.key_file)?;
        let roots = Arc::new(root_store(&config.ca_file)?);
        let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let builder = if config.verify_client {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let verifier = builder.build().map_err(|e| Error::CertificateCheck {
            path: config.ca_file.clone(),
            reason: format!("cannot build client verifier: {e}"),
        })?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::TlsConfig)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(Error::TlsConfig)?;
        // No TLS 1.3 session tickets: libvirt's GnuTLS client reads the 0x01
        // confirmation with one non-blocking read; a ticket record arriving
        // first makes that read return EAGAIN ("Unable to read TLS
        // confirmation: Resource temporarily unavailable").
        tls.send_tls13_tickets = 0;
        let allowed = match &config.allowed_dns {
            None => None,
            Some(patterns) => {
                let mut set = GlobSetBuilder::new();
                for p in patterns {
                    let glob = Glob::new(p).map_err(|e| Error::CertificateCheck {
                        path: PathBuf::from("tls_allowed_dn_list"),
                        reason: format!("bad pattern {p:?}: {e}"),
                    })?;
                    set.add(glob);
                }
                Some(Arc::new(set.build().map_err(|e| {
                    Error::CertificateCheck {
                        path: PathBuf::from("tls_allowed_dn_list"),
                        reason: e.to_string(),
                    }
                })?))
            }
        };
        Ok(Self {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
            allowed,
        })
    }

    /// Runs the handshake, applies the DN policy, and sends `0x01`.
    /// Returns the stream and the client's subject DN (if it sent a certificate).
    ///
    /// # Errors
    /// [`Error::TlsHandshake`] naming the certificate problem,
    /// [`Error::DnNotAllowed`], [`Error::Io`].
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, Option<String>)> {
        let mut tls = self.inner.accept(tcp).await.map_err(handshake_error)?;
        let subject = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            Some(cert) => Some(subject_dn(cert)?),
            None => None,
        };
        if let Some(allowed) = &self.allowed {
            let dn = subject.clone().unwrap_or_default();
            if !allowed.is_match(&dn) {
                // libvirt closes without the 0x01 byte; the client reports it.
                let _ = tls.shutdown().await;
                return Err(Error::DnNotAllowed { dn });
            }
        }
        tls.write_all(&[TLS_ACCEPTED]).await?;
        tls.flush().await?;
        Ok((tls, subject))
    }
}

// ---------------------------------------------------------------- client

/// Client-side TLS settings.
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    /// CA that issued the server certificate.
    pub ca_file: PathBuf,
    /// Client certificate; `None` (or a missing file) = present none.
    pub cert_file: Option<PathBuf>,
    /// Client key, paired with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Log but ignore server certificate failures (URI `no_verify=1`).
    pub no_verify: bool,
}

impl ClientTlsConfig {
    /// libvirt's default locations: root uses `/etc/pki/...`; other users
    /// `$HOME/.pki/libvirt/{cacert,clientcert,clientkey}.pem`, where the CA
    /// falls back to the system file on its own and cert+key as a pair.
    pub fn default_locations() -> Self {
        let system = Self {
            ca_file: SYSTEM_CA.into(),
            cert_file: Some(SYSTEM_CLIENT_CERT.into()),
            key_file: Some(SYSTEM_CLIENT_KEY.into()),
            no_verify: false,
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        match home {
            Some(home) if !root => {
                let dir = home.join(".pki/libvirt");
                let ca = dir.join("cacert.pem");
                let cert = dir.join("clientcert.pem");
                let key = dir.join("clientkey.pem");
                let pair = cert.exists() && key.exists();
                Self {
                    ca_file: if ca.exists() { ca } else { system.ca_file },
                    cert_file: if pair { Some(cert) } else { system.cert_file },
                    key_file: if pair { Some(key) } else { system.key_file },
                    no_verify: false,
                }
            }
            _ => system,
        }
    }

    /// URI `pkipath=DIR`: `DIR/{cacert,clientcert,clientkey}.pem`, no fallback.
    pub fn from_pkipath(dir: &Path) -> Self {
        Self {
            ca_file: dir.join("cacert.pem"),
            cert_file: Some(dir.join("clientcert.pem")),
            key_file: Some(dir.join("clientkey.pem")),
            no_verify: false,
        }
    }
}

/// Performs libvirt-style client handshakes; cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConnector")
    }
}

/// Runs the real checks but only logs their failure (`no_verify=1`);
/// handshake signatures are still verified.
#[derive(Debug)]
struct LogOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for LogOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Err(err) =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            tracing::warn!(reason = %describe_rustls(&err), "ignoring server certificate failure (no_verify)");
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl TlsConnector {
    /// Loads the files and builds the rustls client configuration. A
    /// missing client certificate or key file is tolerated (libvirt does the
    /// same; the server will then refuse us).
    ///
    /// # Errors
    /// [`Error::Pem`], [`Error::TlsConfig`].
    pub fn new(config: &ClientTlsConfig) -> Result<Self> {
        let provider = provider();
        let roots = Arc::new(root_store(&config.ca_file)?);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| Error::CertificateCheck {
                path: config.ca_file.clone(),
                reason: format!("cannot build server verifier: {e}"),
            })?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::TlsConfig)?;
        let builder = if config.no_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LogOnlyVerifier(verifier)))
        } else {
            builder.with_webpki_verifier(verifier)
        };
        let pair = match (&config.cert_file, &config.key_file) {
            (Some(c), Some(k)) if c.exists() && k.exists() => Some((
                load_certs("client certificate", c)?,
                load_key("client key", k)?,
            )),
            _ => None,
        };
        let tls = match pair {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(Error::TlsConfig)?,
            None => {
                tracing::debug!("no client certificate configured");
                builder.with_no_client_auth()
            }
        };
        Ok(Self {
            inner: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        })
    }

    /// Handshakes with the server named `host` (the URI host: DNS name or IP
    /// literal, IPv6 with or without brackets) and waits for libvirt's `0x01`.
    ///
    /// # Errors
    /// [`Error::ServerName`], [`Error::TlsHandshake`] naming the problem,
    /// [`Error::ServerVerificationFailed`] when the server closes or sends
    /// anything but `0x01` (it refused our certificate or DN).
    pub async fn connect<S>(
        &self,
        host: &str,
        stream: S,
    ) -> Result<tokio_rustls::client::TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name =
            ServerName::try_from(bare.to_string()).map_err(|_| Error::ServerName(host.into()))?;
        let mut tls = self
            .inner
            .connect(name, stream)
            .await
            .map_err(handshake_error)?;
        let mut byte = [0u8; 1];
        match tls.read_exact(&mut byte).await {
            Ok(_) if byte[0] == TLS_ACCEPTED => Ok(tls),
            Ok(_) => Err(Error::ServerVerificationFailed),
            Err(err) => match err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                // With TLS 1.3 the server judges our certificate after the
                // client's handshake completed: its alert arrives here.
                Some(tls_err) => Err(Error::TlsHandshake {
                    reason: describe_rustls(tls_err),
                }),
                None => Err(Error::ServerVerificationFailed),
            },
        }
    }
}

// ---------------------------------------------------------------- sanity

/// Start-up sanity check of a certificate/key pair against its CA, like
/// libvirt's `virNetTLSContextSanityCheckCert`: the certificate parses, is
/// currently valid, is not a CA, was issued by `ca_file`'s subject, and
/// `key_file` holds its private key.
///
/// # Errors
/// [`Error::CertificateCheck`] naming the problem, [`Error::Pem`].
pub fn check_certificate(cert_file: &Path, key_file: &Path, ca_file: &Path) -> Result<()> {
    let fail = |reason: String| Error::CertificateCheck {
        path: cert_file.to_path_buf(),
        reason,
    };
    let certs = load_certs("certificate", cert_file)?;
    let ca_certs = load_certs("CA certificate", ca_file)?;
    let key = load_key("private key", key_file)?;
    let (_, leaf) = X509Certificate::from_der(certs[0].as_ref())
        .map_err(|e| fail(format!("unparsable certificate: {e}")))?;
    let (_, ca) =
        X509Certificate::from_der(ca_certs[0].as_ref()).map_err(|e| Error::CertificateCheck {
            path: ca_file.to_path_buf(),
            reason: format!("unparsable CA certificate: {e}"),
        })?;
    let validity = leaf.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(fail(format!(
            "is not yet valid (not before {})",
            validity.not_before
        )));
    }
    if now > validity.not_after {
        return Err(fail(format!(
            "has expired (not after {})",
            validity.not_after
        )));
    }
    if let Ok(Some(bc)) = leaf.basic_constraints() {
        if bc.value.ca {
            return Err(fail(
                "is a CA certificate, not a server/client certificate".into(),
            ));
        }
    }
    if leaf.issuer() != ca.subject() {
        return Err(fail(format!(
            "was issued by {:?}, not by the CA {:?}",
            render_name(leaf.issuer()),
            render_name(ca.subject())
        )));
    }
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(format!("unusable private key {}: {e}", key_file.display())))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        fail(format!(
            "does not match private key {}: {e}",
            key_file.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_are_escaped_like_rfc4514() {
        assert_eq!(escape_dn_value("Example, Inc"), "Example\\, Inc");
        assert_eq!(escape_dn_value("#x "), "\\#x\\ ");
        assert_eq!(escape_dn_value("plain"), "plain");
    }

    #[test]
    fn rustls_errors_name_the_problem() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown CA",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidYet),
                "not yet valid",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "name mismatch",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose),
                "bad key usage",
            ),
            (
                rustls::Error::NoCertificatesPresented,
                "missing client certificate",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "missing client certificate",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                "unknown CA",
            ),
        ];
        for (err, needle) in cases {
            let text = describe_rustls(&err);
            assert!(text.contains(needle), "{text:?} should mention {needle:?}");
        }
    }
}
