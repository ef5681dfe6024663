//! Listening sockets: from the configuration or from systemd, served by the
//! rpc [`Server`], with TLS listeners that SIGHUP can re-arm.
//!
//! A TLS listener keeps its bound socket here and serves a duplicate of it
//! (`try_clone`, i.e. `dup(2)`), so a reload can stop the accept loop that
//! uses the old certificate/DN policy and start one with the new policy on
//! the same port, without a moment where connections are refused. Already
//! accepted connections are not touched by a reload.

use std::net::TcpListener as StdTcpListener;
use std::path::PathBuf;

use migrated_rpc::transport::tls::{ServerTlsConfig, TlsAcceptor};
use migrated_rpc::{Dispatcher, Listener, Server};
use tokio::task::JoinHandle;

use crate::config::{Config, Listen, TlsFiles};
use crate::error::{Error, Result};
use crate::systemd::ActivatedSocket;

/// A socket ready to be served, before the runtime-bound rpc [`Listener`]
/// is made from it.
#[derive(Debug)]
enum Bound {
    Tcp(StdTcpListener),
    Tls(StdTcpListener),
    Unix(Listener),
}

/// One served socket and the task accepting on it.
struct Served {
    name: String,
    /// The socket a TLS listener re-arms from; `None` for other kinds.
    tls_socket: Option<StdTcpListener>,
    task: JoinHandle<()>,
}

/// All listeners of the daemon.
pub struct Listeners {
    served: Vec<Served>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.served.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Listeners").field("served", &names).finish()
    }
}

/// Builds the rpc TLS acceptor from the configured files and DN globs,
/// after the start-up sanity check of the server certificate (expired, not
/// yet valid, a CA certificate, not issued by the CA, key not matching), so
/// the daemon refuses to start with a message naming the problem instead of
/// failing every handshake later.
///
/// # Errors
/// [`Error::Tls`] when a file is unreadable, the certificate fails the
/// sanity check, or a pattern is invalid.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    migrated_rpc::transport::tls::check_certificate(&files.cert, &files.key, &files.ca)
        .map_err(|e| Error::Tls(Box::new(e)))?;
    let config = ServerTlsConfig {
        ca_file: files.ca.clone(),
        cert_file: files.cert.clone(),
        key_file: files.key.clone(),
        verify_client: true,
        allowed_dns: files.allowed_dn.clone(),
    };
    TlsAcceptor::new(&config).map_err(|e| Error::Tls(Box::new(e)))
}

impl Listeners {
    /// Binds every listener: systemd's sockets when it passed any, else the
    /// configured `--listen` addresses, else the default local sockets. Then
    /// starts serving them all on `server`.
    ///
    /// Must run inside the tokio runtime.
    ///
    /// # Errors
    /// [`Error::Listen`] when a socket cannot be bound, [`Error::Tls`] when
    /// a TLS listener is configured but its files are unusable, and
    /// [`Error::CreateDir`] for a socket directory that cannot be created.
    pub fn start<D: Dispatcher>(
        config: &Config,
        activated: Vec<ActivatedSocket>,
        server: &Server<D>,
    ) -> Result<Self> {
        let bound = if activated.is_empty() {
            let specs = if config.listen.is_empty() {
                config.default_listeners()
            } else {
                config.listen.clone()
            };
            specs
                .iter()
                .map(|spec| bind(spec).map(|b| (spec.to_string(), b)))
                .collect::<Result<Vec<_>>>()?
        } else {
            activated
                .into_iter()
                .map(adopt)
                .collect::<Result<Vec<_>>>()?
        };
        let mut acceptor: Option<TlsAcceptor> = None;
        let mut served = Vec::with_capacity(bound.len());
        for (name, socket) in bound {
            let (listener, tls_socket) = match socket {
                Bound::Tcp(std) => (from_rpc(&name, Listener::from_std_tcp(std))?, None),
                Bound::Tls(std) => {
                    let acceptor = match &acceptor {
                        Some(acceptor) => acceptor.clone(),
                        None => acceptor.insert(tls_acceptor(&config.tls)?).clone(),
                    };
                    let dup = dup(&name, &std)?;
                    (
                        from_rpc(&name, Listener::from_std_tls(dup, acceptor))?,
                        Some(std),
                    )
                }
                Bound::Unix(listener) => (listener, None),
            };
            tracing::info!(listener = %name, "listening");
            served.push(Served {
                task: spawn_serve(server, listener),
                name,
                tls_socket,
            });
        }
        Ok(Listeners { served })
    }

    /// Re-arms every TLS listener with a freshly loaded acceptor (new
    /// certificates, new allowed-DN list). Returns how many were re-armed.
    ///
    /// # Errors
    /// [`Error::Tls`] when the new files or patterns are unusable; the old
    /// acceptors then stay in service.
    pub fn reload_tls<D: Dispatcher>(
        &mut self,
        files: &TlsFiles,
        server: &Server<D>,
    ) -> Result<usize> {
        if self.served.iter().all(|s| s.tls_socket.is_none()) {
            return Ok(0);
        }
        let acceptor = tls_acceptor(files)?;
        let mut rearmed = 0;
        for served in &mut self.served {
            let Some(socket) = &served.tls_socket else {
                continue;
            };
            let listener = from_rpc(
                &served.name,
                Listener::from_std_tls(dup(&served.name, socket)?, acceptor.clone()),
            )?;
            // Dropping the old accept loop stops accepting with the old policy;
            // its connections run on their own tasks and are unaffected.
            served.task.abort();
            served.task = spawn_serve(server, listener);
            rearmed += 1;
        }
        Ok(rearmed)
    }

    /// Names of the served listeners, for logs and the systemd status line.
    pub fn names(&self) -> Vec<String> {
        self.served.iter().map(|s| s.name.clone()).collect()
    }

    /// Waits until every accept loop has ended (after `Server::shutdown`,
    /// each loop also waits for its connections to drain).
    pub async fn drained(self) {
        for served in self.served {
            let _ = served.task.await;
        }
    }
}

fn spawn_serve<D: Dispatcher>(server: &Server<D>, listener: Listener) -> JoinHandle<()> {
    let server = server.clone();
    tokio::spawn(async move { server.serve(listener).await })
}

fn dup(name: &str, socket: &StdTcpListener) -> Result<StdTcpListener> {
    socket.try_clone().map_err(|source| Error::Listen {
        what: name.to_owned(),
        source,
    })
}

fn from_rpc(name: &str, result: migrated_rpc::Result<Listener>) -> Result<Listener> {
    result.map_err(|source| Error::RpcListen {
        what: name.to_owned(),
        source: Box::new(source),
    })
}

fn bind(spec: &Listen) -> Result<Bound> {
    let listen_err = |source| Error::Listen {
        what: spec.to_string(),
        source,
    };
    match spec {
        // std's bind sets SO_REUSEADDR, so a restarted daemon gets its port back
        // while old connections sit in TIME_WAIT.
        Listen::Tcp(addr) => StdTcpListener::bind(addr)
            .map(Bound::Tcp)
            .map_err(listen_err),
        Listen::Tls(addr) => StdTcpListener::bind(addr)
            .map(Bound::Tls)
            .map_err(listen_err),
        Listen::Unix(unix) => {
            if let Some(dir) = unix.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                    path: PathBuf::from(dir),
                    source,
                })?;
            }
            from_rpc(
                &spec.to_string(),
                Listener::bind_unix(&unix.path, unix.mode, unix.readonly),
            )
            .map(Bound::Unix)
        }
    }
}

fn adopt(socket: ActivatedSocket) -> Result<(String, Bound)> {
    Ok(match socket {
        ActivatedSocket::Tcp(l) => (format!("systemd tcp {}", addr_of(&l)), Bound::Tcp(l)),
        ActivatedSocket::Tls(l) => (format!("systemd tls {}", addr_of(&l)), Bound::Tls(l)),
        ActivatedSocket::Unix { listener, readonly } => {
            let name = format!(
                "systemd unix{} {}",
                if readonly { "-ro" } else { "" },
                listener
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    .unwrap_or_default()
            );
            let listener = from_rpc(&name, Listener::from_std_unix(listener, readonly))?;
            (name, Bound::Unix(listener))
        }
    })
}

fn addr_of(listener: &StdTcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UnixListen;

    #[test]
    fn a_taken_tcp_port_is_an_error_naming_the_listener() {
        let taken = StdTcpListener::bind("127.0.0.1:0").expect("bind");
        let spec = Listen::Tcp(taken.local_addr().expect("addr"));
        match bind(&spec) {
            Err(Error::Listen { what, .. }) => assert_eq!(what, spec.to_string()),
            other => panic!("expected a listen error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unix_listeners_get_their_directory_and_mode() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/dir/sock-ro");
        let spec = Listen::Unix(UnixListen {
            path: path.clone(),
            readonly: true,
            mode: 0o640,
        });
        let bound = bind(&spec).expect("bind unix");
        assert!(matches!(
            bound,
            Bound::Unix(Listener::Unix { readonly: true, .. })
        ));
        let mode = std::fs::metadata(&path)
            .expect("socket exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}
