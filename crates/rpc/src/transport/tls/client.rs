//! Client side: libvirt's file locations, server verification, the 0x01 byte.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::errors::{describe_rustls, handshake_error};
use super::pem::{load_certs, load_key, root_store};
use super::{provider, SYSTEM_CA, SYSTEM_CLIENT_CERT, SYSTEM_CLIENT_KEY, TLS_ACCEPTED};
use crate::error::{Error, Result};

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
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::locations_for(root, home.as_deref())
    }

    fn locations_for(root: bool, home: Option<&Path>) -> Self {
        let system = Self {
            ca_file: SYSTEM_CA.into(),
            cert_file: Some(SYSTEM_CLIENT_CERT.into()),
            key_file: Some(SYSTEM_CLIENT_KEY.into()),
            no_verify: false,
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_the_system_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = ClientTlsConfig::locations_for(true, Some(dir.path()));
        assert_eq!(cfg.ca_file, PathBuf::from(SYSTEM_CA));
        assert_eq!(cfg.cert_file, Some(PathBuf::from(SYSTEM_CLIENT_CERT)));
        assert_eq!(cfg.key_file, Some(PathBuf::from(SYSTEM_CLIENT_KEY)));
    }

    #[test]
    fn user_files_fall_back_ca_alone_and_cert_with_key_as_a_pair() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join(".pki/libvirt");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // only the CA and a certificate without its key
        std::fs::write(dir.join("cacert.pem"), b"x").expect("write");
        std::fs::write(dir.join("clientcert.pem"), b"x").expect("write");
        let cfg = ClientTlsConfig::locations_for(false, Some(home.path()));
        assert_eq!(cfg.ca_file, dir.join("cacert.pem"));
        assert_eq!(cfg.cert_file, Some(PathBuf::from(SYSTEM_CLIENT_CERT)));
        assert_eq!(cfg.key_file, Some(PathBuf::from(SYSTEM_CLIENT_KEY)));
        // with the key the user's pair wins
        std::fs::write(dir.join("clientkey.pem"), b"x").expect("write");
        let cfg = ClientTlsConfig::locations_for(false, Some(home.path()));
        assert_eq!(cfg.cert_file, Some(dir.join("clientcert.pem")));
        assert_eq!(cfg.key_file, Some(dir.join("clientkey.pem")));
        // without a CA of their own users fall back to the system CA
        std::fs::remove_file(dir.join("cacert.pem")).expect("rm");
        let cfg = ClientTlsConfig::locations_for(false, Some(home.path()));
        assert_eq!(cfg.ca_file, PathBuf::from(SYSTEM_CA));
    }
}
