//! Listening sockets and the accept loop (connection limits, TLS handshakes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::{connection, ConnInfo, Dispatcher, ServerInner, Transport};
use crate::error::Result;
use crate::transport::tls::TlsAcceptor;
use crate::transport::{tcp, unix};

/// Pause after a failed accept (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A socket the server accepts connections on.
#[derive(Debug)]
pub enum Listener {
    /// Plain TCP (libvirt's `listen_tcp`, port 16509).
    Tcp(TcpListener),
    /// UNIX socket; `readonly` marks connections from a read-only socket.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// Connections are read-only (`libvirt-sock-ro`).
        readonly: bool,
        /// Path, reported as the peer of its connections.
        path: PathBuf,
    },
    /// TLS over TCP (libvirt's `listen_tls`, port 16514).
    Tls {
        /// The TCP socket.
        listener: TcpListener,
        /// Handshake, client-certificate and DN policy.
        acceptor: TlsAcceptor,
    },
}

impl Listener {
    /// Binds a plain TCP listener (`"127.0.0.1:0"`, `"[::]:16509"`, ...).
    ///
    /// # Errors
    /// [`Error::Listen`](crate::Error::Listen).
    pub async fn bind_tcp(addr: &str) -> Result<Self> {
        Ok(Self::Tcp(tcp::bind(addr).await?))
    }

    /// Binds a TLS listener.
    ///
    /// # Errors
    /// [`Error::Listen`](crate::Error::Listen).
    pub async fn bind_tls(addr: &str, acceptor: TlsAcceptor) -> Result<Self> {
        Ok(Self::Tls {
            listener: tcp::bind(addr).await?,
            acceptor,
        })
    }

    /// Creates a UNIX socket with permission `mode`, replacing a stale
    /// socket file left by a dead process (a live one is an error).
    ///
    /// # Errors
    /// [`Error::SocketInUse`](crate::Error::SocketInUse), [`Error::Listen`](crate::Error::Listen).
    pub fn bind_unix(path: &Path, mode: u32, readonly: bool) -> Result<Self> {
        let listener = unix::bind(path, mode)?;
        Ok(Self::Unix {
            listener,
            readonly,
            path: path.to_path_buf(),
        })
    }

    /// Wraps an inherited TCP listener (systemd socket activation).
    ///
    /// # Errors
    /// [`Error::Listen`](crate::Error::Listen) when it cannot be registered with tokio.
    pub fn from_std_tcp(listener: std::net::TcpListener) -> Result<Self> {
        Ok(Self::Tcp(tcp::from_std(listener)?))
    }

    /// Wraps an inherited TCP listener that speaks TLS.
    ///
    /// # Errors
    /// [`Error::Listen`](crate::Error::Listen).
    pub fn from_std_tls(listener: std::net::TcpListener, acceptor: TlsAcceptor) -> Result<Self> {
        Ok(Self::Tls {
            listener: tcp::from_std(listener)?,
            acceptor,
        })
    }

    /// Wraps an inherited UNIX listener.
    ///
    /// # Errors
    /// [`Error::Listen`](crate::Error::Listen).
    pub fn from_std_unix(
        listener: std::os::unix::net::UnixListener,
        readonly: bool,
    ) -> Result<Self> {
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_default();
        let listener = unix::from_std(listener)?;
        Ok(Self::Unix {
            listener,
            readonly,
            path,
        })
    }

    /// The bound address of a TCP or TLS listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) | Self::Tls { listener: l, .. } => l.local_addr().ok(),
            Self::Unix { .. } => None,
        }
    }

    async fn accept(&self) -> std::io::Result<Accepted> {
        Ok(match self {
            Self::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Accepted::Tcp(s, peer)
            }
            Self::Tls { listener, .. } => {
                let (s, peer) = listener.accept().await?;
                Accepted::Tls(s, peer)
            }
            Self::Unix { listener, .. } => Accepted::Unix(listener.accept().await?.0),
        })
    }
}

enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Tls(TcpStream, SocketAddr),
    Unix(UnixStream),
}

pub(crate) async fn accept_loop<D: Dispatcher>(server: Arc<ServerInner<D>>, listener: Listener) {
    // Every connection task holds a clone; recv() → None once all have ended.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            _ = server.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(slot) = server.limits.try_client() else {
            tracing::warn!(
                limit = server.config.max_clients,
                "too many clients, closing new connection"
            );
            continue;
        };
        let id = server.next_conn_id();
        let done = done_tx.clone();
        let srv = server.clone();
        match accepted {
            Accepted::Tcp(stream, peer) => {
                tcp::tune(&stream);
                let info = ConnInfo {
                    id,
                    transport: Transport::Tcp,
                    peer: peer.to_string(),
                    readonly: false,
                    tls_subject: None,
                };
                tokio::spawn(async move {
                    connection::serve(srv, stream, info).await;
                    drop((slot, done));
                });
            }
            Accepted::Unix(stream) => {
                let Listener::Unix { readonly, path, .. } = &listener else {
                    continue;
                };
                let info = ConnInfo {
                    id,
                    transport: Transport::Unix,
                    peer: path.display().to_string(),
                    readonly: *readonly,
                    tls_subject: None,
                };
                tokio::spawn(async move {
                    connection::serve(srv, stream, info).await;
                    drop((slot, done));
                });
            }
            Accepted::Tls(stream, peer) => {
                let Listener::Tls { acceptor, .. } = &listener else {
                    continue;
                };
                let Some(anon) = server.limits.try_anonymous() else {
                    tracing::warn!(
                        %peer,
                        limit = server.config.max_anonymous_clients,
                        "too many TLS handshakes in progress, closing new connection"
                    );
                    continue;
                };
                tcp::tune(&stream);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(srv.config.handshake_timeout, acceptor.accept(stream));
                    let result = tokio::select! {
                        _ = srv.shutdown.cancelled() => return,
                        r = handshake => r,
                    };
                    drop(anon);
                    let (tls, subject) = match result {
                        Ok(Ok(ok)) => ok,
                        Ok(Err(err)) => {
                            tracing::warn!(%peer, error = %err, "TLS client refused");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let info = ConnInfo {
                        id,
                        transport: Transport::Tls,
                        peer: peer.to_string(),
                        readonly: false,
                        tls_subject: subject,
                    };
                    connection::serve(srv, tls, info).await;
                    drop((slot, done));
                });
            }
        }
    }
    drop(listener);
    drop(done_tx);
    while done_rx.recv().await.is_some() {}
}
