//! rustls errors in words that name the certificate problem.

use rustls::{AlertDescription, CertificateError};

use crate::error::Error;

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
            AlertDescription::CertificateExpired => "peer says our certificate has expired or is not yet valid".into(),
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

pub(super) fn handshake_error(err: std::io::Error) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

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
