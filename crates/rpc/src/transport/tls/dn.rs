//! Subject DN rendering for `tls_allowed_dn_list` (GnuTLS style).

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};

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

pub(super) fn render_name(name: &x509_parser::x509::X509Name<'_>) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_are_escaped_like_rfc4514() {
        assert_eq!(escape_dn_value("Example, Inc"), "Example\\, Inc");
        assert_eq!(escape_dn_value("#x "), "\\#x\\ ");
        assert_eq!(escape_dn_value("plain"), "plain");
    }
}
