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

mod client;
mod dn;
mod errors;
mod pem;
mod sanity;
mod server;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use self::client::{ClientTlsConfig, TlsConnector};
pub use self::dn::subject_dn;
pub use self::errors::describe_rustls;
pub use self::pem::{load_certs, load_key};
pub use self::sanity::check_certificate;
pub use self::server::{ServerTlsConfig, TlsAcceptor};

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
