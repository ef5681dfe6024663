//! Plain TCP sockets (libvirt's port 16509 and TLS's 16514 underneath).

use tokio::net::{TcpListener, TcpStream};

use crate::error::{Error, Result};

/// Binds a listener on `addr`.
///
/// # Errors
/// [`Error::Listen`].
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Registers an inherited std listener with tokio (made non-blocking first).
///
/// # Errors
/// [`Error::Listen`].
pub fn from_std(listener: std::net::TcpListener) -> Result<TcpListener> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
        .map_err(|source| Error::Listen { addr, source })
}

/// Connects to `addr` (`host:port`) with `TCP_NODELAY` set.
///
/// # Errors
/// [`Error::Io`].
pub async fn connect(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    tune(&stream);
    Ok(stream)
}

/// Disables Nagle: RPC calls are small and latency-bound.
pub fn tune(stream: &TcpStream) {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
}
