//! UNIX stream sockets (`libvirt-sock` read-write and `libvirt-sock-ro`).

use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};

use crate::error::{Error, Result};

/// Creates a listening socket at `path` with permission bits `mode`.
///
/// A socket file left by a dead process is removed first; a socket some
/// live process still accepts on is [`Error::SocketInUse`]; any other kind
/// of file is left alone and reported.
///
/// # Errors
/// [`Error::SocketInUse`], [`Error::Listen`].
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    let listen_err = |source| Error::Listen {
        addr: path.display().to_string(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::SocketInUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(listen_err)?;
        }
        Ok(_) => {
            return Err(listen_err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "path exists and is not a socket",
            )))
        }
        Err(err) if err.kind() == ErrorKind::NotFound => {}
        Err(err) => return Err(listen_err(err)),
    }
    let listener = UnixListener::bind(path).map_err(listen_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(listen_err)?;
    Ok(listener)
}

/// Registers an inherited std listener with tokio.
///
/// # Errors
/// [`Error::Listen`].
pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<UnixListener> {
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|source| Error::Listen {
            addr: "inherited unix socket".into(),
            source,
        })
}

/// Connects to the socket at `path`.
///
/// # Errors
/// [`Error::Io`].
pub async fn connect(path: &Path) -> Result<UnixStream> {
    Ok(UnixStream::connect(path).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_sets_mode_and_replaces_stale_socket_but_not_live_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sock");
        let live = bind(&path, 0o600).expect("first bind");
        let mode = std::fs::metadata(&path)
            .expect("socket exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind(&path, 0o666), Err(Error::SocketInUse(_))));
        drop(live); // file stays behind, nobody listens: stale
        let again = bind(&path, 0o666).expect("stale socket replaced");
        let mode = std::fs::metadata(&path)
            .expect("socket exists")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o666);
        drop(again);
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(bind(&file, 0o600), Err(Error::Listen { .. })));
    }
}
