//! Turns a [`ConnectUri`] into a running [`RpcClient`]: TCP, Unix socket,
//! or TLS with libvirt's client certificate files (libvirt-wire.md §9).

use migrated_rpc::transport::{tcp, tls, unix};
use migrated_rpc::{ClientConfig, RpcClient};

use crate::error::{Error, Result};
use crate::uri::{Address, ConnectUri};

/// Connects to where `uri` points (the read-only socket for local URIs when
/// `readonly`) and starts the RPC client's tasks.
///
/// # Errors
/// [`Error::Connect`] naming the address, with the socket, certificate or
/// handshake failure as its source.
pub(crate) async fn connect(uri: &ConnectUri, readonly: bool) -> Result<RpcClient> {
    let address = uri.address(readonly);
    let fail = |source: migrated_rpc::Error| Error::Connect {
        address: address.to_string(),
        source: Box::new(source),
    };
    let config = ClientConfig::default();
    match &address {
        Address::Tcp { host, port } => {
            let stream = tcp::connect(&host_port(host, *port)).await.map_err(fail)?;
            Ok(RpcClient::new(stream, config))
        }
        Address::Unix(path) => {
            let stream = unix::connect(path).await.map_err(fail)?;
            Ok(RpcClient::new(stream, config))
        }
        Address::Tls { host, port } => {
            let mut files = match &uri.params.pkipath {
                Some(dir) => tls::ClientTlsConfig::from_pkipath(dir),
                None => tls::ClientTlsConfig::default_locations(),
            };
            files.no_verify = uri.params.no_verify;
            if !uri.params.no_sanity {
                sanity_check(&files).map_err(fail)?;
            }
            let connector = tls::TlsConnector::new(&files).map_err(fail)?;
            let stream = tcp::connect(&host_port(host, *port)).await.map_err(fail)?;
            let stream = connector.connect(host, stream).await.map_err(fail)?;
            Ok(RpcClient::new(stream, config))
        }
    }
}

/// libvirt checks its own certificate against its CA before connecting
/// (`virNetTLSContextSanityCheckCert`); a missing certificate is tolerated
/// there too, the server decides whether to accept a client without one.
fn sanity_check(files: &tls::ClientTlsConfig) -> migrated_rpc::Result<()> {
    match (&files.cert_file, &files.key_file) {
        (Some(cert), Some(key)) if cert.exists() && key.exists() => {
            tls::check_certificate(cert, key, &files.ca_file)
        }
        _ => Ok(()),
    }
}

/// `host:port`, bracketing IPv6 literals.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("::1", 16509), "[::1]:16509");
        assert_eq!(host_port("127.0.0.1", 16514), "127.0.0.1:16514");
    }
}
