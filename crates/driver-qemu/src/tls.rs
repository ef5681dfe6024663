//! QEMU-native TLS on the migration stream (`VIR_MIGRATE_TLS`), set up as
//! libvirt's QEMU driver does it (`qemuMigrationParamsEnableTLS`,
//! `qemuMigrationParamsDisableTLS`, `qemuMigrationParamsResetTLS`):
//!
//! - each side's QEMU gets a `tls-creds-x509` object loaded from the host's
//!   migration TLS directory (`migrate_tls_x509_cert_dir`, libvirt's file
//!   names), `endpoint=server` on the destination and `endpoint=client` on
//!   the source, `verify-peer` as configured;
//! - the migration parameter `tls-creds` names that object, and on the source
//!   `tls-hostname` names the host whose certificate QEMU checks (the
//!   destination host of the data URI, or the caller's `tls.destination`);
//! - a migration without TLS resets both parameters to `""`, so credentials
//!   left by an earlier migration are never used by accident;
//! - after the migration the parameters are reset and the object removed.
//!
//! [`MigrationTls::check`] runs before anything starts (Begin on the source,
//! Prepare on the destination), so a missing directory or file is refused
//! while the guest is untouched and no QEMU has been started.

use std::path::PathBuf;

use migrated_core::{Error, Result};
use tracing::debug;

use crate::qmp::commands::{MigrateSetParameters, ObjectAddTlsCredsX509, ObjectDel};
use crate::qmp::Qmp;

/// libvirt's `default_tls_x509_cert_dir`, which `migrate_tls_x509_cert_dir`
/// falls back on.
pub const DEFAULT_DIR: &str = "/etc/pki/qemu";

/// Id of the credentials object: libvirt's alias for its migration TLS
/// object, so operators reading `query-migrate-parameters` see the name they know.
pub const OBJECT_ID: &str = "objlibvirt_migrate_tls0";

/// The CA certificate both endpoints verify their peer against.
pub const CA_CERT: &str = "ca-cert.pem";
/// The destination's certificate.
pub const SERVER_CERT: &str = "server-cert.pem";
/// The destination's private key.
pub const SERVER_KEY: &str = "server-key.pem";
/// The source's certificate.
pub const CLIENT_CERT: &str = "client-cert.pem";
/// The source's private key.
pub const CLIENT_KEY: &str = "client-key.pem";

/// Which end of the migration stream a QEMU is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The destination, which listens (`migrate-incoming`).
    Server,
    /// The source, which connects (`migrate`).
    Client,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Server => "server",
            Endpoint::Client => "client",
        }
    }
}

/// Where the host's migration TLS credentials live and how strict they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationTls {
    /// Directory with [`CA_CERT`], [`SERVER_CERT`], [`SERVER_KEY`],
    /// [`CLIENT_CERT`] and [`CLIENT_KEY`] (PEM).
    pub dir: PathBuf,
    /// Whether each side insists on a certificate from the CA
    /// (`migrate_tls_x509_verify`, on by default).
    pub verify_peer: bool,
}

impl Default for MigrationTls {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_DIR),
            verify_peer: true,
        }
    }
}

impl MigrationTls {
    /// The files `endpoint`'s QEMU will load. A client needs its own
    /// certificate only when servers verify peers (the setting is per host,
    /// and both hosts are expected to share it).
    fn files(&self, endpoint: Endpoint) -> &'static [&'static str] {
        match (endpoint, self.verify_peer) {
            (Endpoint::Server, _) => &[CA_CERT, SERVER_CERT, SERVER_KEY],
            (Endpoint::Client, true) => &[CA_CERT, CLIENT_CERT, CLIENT_KEY],
            (Endpoint::Client, false) => &[CA_CERT],
        }
    }

    /// Checks that the directory exists and that every file `endpoint`
    /// needs is readable, before anything is started.
    ///
    /// # Errors
    /// [`Error::OperationInvalid`] naming the missing directory, or the
    /// unreadable file with the OS's reason (QEMU's wording).
    pub fn check(&self, endpoint: Endpoint) -> Result<()> {
        if !self.dir.is_dir() {
            return Err(Error::invalid(format!(
                "migrate_tls_x509_cert_dir directory '{}' does not exist",
                self.dir.display()
            )));
        }
        for name in self.files(endpoint) {
            let path = self.dir.join(name);
            if let Err(e) = std::fs::File::open(&path) {
                return Err(Error::invalid(format!(
                    "Unable to access credentials {}: {e}",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    fn object(&self, endpoint: Endpoint) -> ObjectAddTlsCredsX509 {
        ObjectAddTlsCredsX509 {
            qom_type: "tls-creds-x509",
            id: OBJECT_ID.to_owned(),
            dir: self.dir.to_string_lossy().into_owned(),
            endpoint: endpoint.as_str(),
            verify_peer: self.verify_peer,
        }
    }

    /// Adds the credentials object to `qmp`'s QEMU (removing one a failed
    /// earlier migration may have left) and sets `tls-creds` to it in
    /// `params`, and `tls-hostname` to `hostname` on the source.
    ///
    /// # Errors
    /// QEMU's refusal of `object-add` (e.g. a certificate that does not load).
    pub(crate) async fn enable(
        &self,
        qmp: &Qmp,
        endpoint: Endpoint,
        hostname: Option<&str>,
        params: &mut MigrateSetParameters,
    ) -> Result<()> {
        remove_object(qmp).await;
        qmp.execute(&self.object(endpoint))
            .await
            .map_err(|e| e.into_core("migration"))?;
        params.tls_creds = Some(OBJECT_ID.to_owned());
        params.tls_hostname = Some(hostname.unwrap_or_default().to_owned());
        Ok(())
    }
}

/// Turns TLS off in `params` (libvirt's `qemuMigrationParamsDisableTLS`):
/// both parameters become `""`.
pub(crate) fn disable(params: &mut MigrateSetParameters) {
    params.tls_creds = Some(String::new());
    params.tls_hostname = Some(String::new());
}

/// After a TLS migration: resets the parameters and removes the object.
/// Failures are only logged; the QEMU may be gone already.
pub(crate) async fn reset(qmp: &Qmp) {
    let mut params = MigrateSetParameters::default();
    disable(&mut params);
    if let Err(e) = qmp.execute(&params).await {
        debug!(error = %e, "could not reset the migration TLS parameters");
    }
    remove_object(qmp).await;
}

async fn remove_object(qmp: &Qmp) {
    let del = ObjectDel {
        id: OBJECT_ID.to_owned(),
    };
    if let Err(e) = qmp.execute(&del).await {
        // Usually "no such object": nothing was left.
        debug!(error = %e, "no migration TLS object to remove");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for f in files {
            std::fs::write(dir.path().join(f), "pem").expect("write file");
        }
        dir
    }

    #[test]
    fn a_missing_directory_is_named() {
        let tls = MigrationTls {
            dir: "/nonexistent/migrated-tls".into(),
            verify_peer: true,
        };
        let err = tls.check(Endpoint::Client).expect_err("no directory");
        assert_eq!(
            err.to_string(),
            "Requested operation is not valid: migrate_tls_x509_cert_dir directory \
             '/nonexistent/migrated-tls' does not exist"
        );
    }

    #[test]
    fn each_endpoint_needs_its_own_files() {
        let dir = dir_with(&[CA_CERT, SERVER_CERT, SERVER_KEY]);
        let tls = MigrationTls {
            dir: dir.path().to_path_buf(),
            verify_peer: true,
        };
        tls.check(Endpoint::Server).expect("server files present");
        let err = tls.check(Endpoint::Client).expect_err("no client cert");
        assert!(
            err.to_string().contains(&format!(
                "Unable to access credentials {}",
                dir.path().join(CLIENT_CERT).display()
            )),
            "{err}"
        );
        // Without peer verification a client needs only the CA.
        let lax = MigrationTls {
            verify_peer: false,
            ..tls
        };
        lax.check(Endpoint::Client).expect("CA is enough");
    }
}
