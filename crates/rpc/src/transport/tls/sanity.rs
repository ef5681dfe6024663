//! Start-up sanity check of a certificate, key and CA.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::dn::render_name;
use super::pem::{load_certs, load_key};
use super::provider;
use crate::error::{Error, Result};

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
