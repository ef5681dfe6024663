//! systemd integration: socket activation (LISTEN_FDS) and readiness
//! notification (sd_notify). Both are no-ops when systemd is not involved.
//!
//! Socket names come from `FileDescriptorName=` in `deploy/systemd/*.socket`:
//! `rw` (or the unit name `migrated.socket`, systemd's default name) is the
//! read-write local socket, `ro` the read-only one, `tcp` and `tls` the
//! network sockets.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

use crate::error::{Error, Result};

/// One socket handed over by systemd.
#[derive(Debug)]
pub enum ActivatedSocket {
    /// A plain TCP socket.
    Tcp(TcpListener),
    /// A TCP socket that speaks TLS.
    Tls(TcpListener),
    /// A local socket.
    Unix {
        /// The listening socket.
        listener: UnixListener,
        /// Whether connections through it are read-only.
        readonly: bool,
    },
}

/// What a `FileDescriptorName=` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketRole {
    UnixRw,
    UnixRo,
    Tcp,
    Tls,
}

fn role_for_name(name: &str) -> Option<SocketRole> {
    match name {
        "rw" | "migrated.socket" => Some(SocketRole::UnixRw),
        "ro" | "migrated-ro.socket" => Some(SocketRole::UnixRo),
        "tcp" | "migrated-tcp.socket" => Some(SocketRole::Tcp),
        "tls" | "migrated-tls.socket" => Some(SocketRole::Tls),
        _ => None,
    }
}

/// Takes the sockets systemd passed to this process, if any, and clears the
/// LISTEN_* variables so child processes (QEMU) do not see them.
///
/// Must be called before any thread is started: it edits the environment.
///
/// # Errors
/// [`Error::SocketActivation`] when the variables are malformed,
/// [`Error::UnknownSocketName`] for a socket name we do not serve.
pub fn take_activated_sockets() -> Result<Vec<ActivatedSocket>> {
    let fds = sd_notify::listen_fds_with_names(true).map_err(Error::SocketActivation)?;
    let mut sockets = Vec::with_capacity(fds.len());
    for (fd, name) in fds {
        let role = role_for_name(&name).ok_or_else(|| Error::UnknownSocketName(name.clone()))?;
        // SAFETY: systemd passed this descriptor to us (LISTEN_PID is our pid
        // and the fd lies in the LISTEN_FDS range, checked by sd_notify), it is
        // open, and nothing else in the process has taken ownership of it.
        sockets.push(unsafe { adopt(fd, role) });
        tracing::info!(fd, name = %name, "adopted socket from systemd");
    }
    Ok(sockets)
}

/// # Safety
/// `fd` must be an open listening socket owned by nobody else.
unsafe fn adopt(fd: RawFd, role: SocketRole) -> ActivatedSocket {
    // SAFETY: the caller guarantees `fd` is open and unowned.
    unsafe {
        match role {
            SocketRole::Tcp => ActivatedSocket::Tcp(TcpListener::from_raw_fd(fd)),
            SocketRole::Tls => ActivatedSocket::Tls(TcpListener::from_raw_fd(fd)),
            SocketRole::UnixRw => ActivatedSocket::Unix {
                listener: UnixListener::from_raw_fd(fd),
                readonly: false,
            },
            SocketRole::UnixRo => ActivatedSocket::Unix {
                listener: UnixListener::from_raw_fd(fd),
                readonly: true,
            },
        }
    }
}

/// Tells systemd the daemon is ready (all listeners accept), with a status line.
pub fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Updates the status line `systemctl status` shows.
pub fn notify_status(status: &str) {
    notify(&[sd_notify::NotifyState::Status(status)]);
}

/// Tells systemd a reload (SIGHUP) is in progress.
pub fn notify_reloading() {
    notify(&[sd_notify::NotifyState::Reloading]);
}

/// Tells systemd the daemon is stopping.
pub fn notify_stopping() {
    notify(&[sd_notify::NotifyState::Stopping]);
}

/// Readiness is best effort: without NOTIFY_SOCKET this does nothing, and a
/// failure to notify must not stop a daemon that is otherwise fine.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::warn!(error = %err, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_file_names_map_to_roles() {
        assert_eq!(role_for_name("rw"), Some(SocketRole::UnixRw));
        assert_eq!(role_for_name("migrated.socket"), Some(SocketRole::UnixRw));
        assert_eq!(role_for_name("ro"), Some(SocketRole::UnixRo));
        assert_eq!(role_for_name("tcp"), Some(SocketRole::Tcp));
        assert_eq!(role_for_name("tls"), Some(SocketRole::Tls));
        assert_eq!(role_for_name("unknown"), None);
    }
}
