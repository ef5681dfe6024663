//! Reading PEM certificates and keys.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::errors::describe_rustls;
use crate::error::{Error, Result};

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

pub(super) fn root_store(ca_file: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA certificate", ca_file)? {
        roots
            .add(cert)
            .map_err(|e| pem_err("CA certificate", ca_file, describe_rustls(&e)))?;
    }
    Ok(roots)
}
