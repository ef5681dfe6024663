//! Server side: client-certificate verification, DN policy, the 0x01 byte.

use std::path::PathBuf;
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::dn::subject_dn;
use super::errors::handshake_error;
use super::pem::{load_certs, load_key, root_store};
use super::{provider, SYSTEM_CA, SYSTEM_SERVER_CERT, SYSTEM_SERVER_KEY, TLS_ACCEPTED};
use crate::error::{Error, Result};

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
