//! Small file helpers shared by the status files and the config store.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the directory. A crash leaves the old or the new
/// content, never a torn file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| Error::file("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::file("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::file("write", path, e))?;
    sync_dir(dir)
}

/// Removes `path`; a file that is already gone is fine.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::file("remove", path, e)),
    }
}

/// Reads at most `limit` bytes of `path`; a larger file is an error rather
/// than an allocation of whatever size the disk holds.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::file("read", path, e))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::file("read", path, e))?;
    if buf.len() as u64 > limit {
        return Err(Error::file(
            "read",
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {limit} bytes"),
            ),
        ));
    }
    Ok(buf)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::file("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_bounded_read_refuses_big_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("rewrite");
        assert_eq!(read_bounded(&path, 3).expect("read"), b"two");
        assert!(read_bounded(&path, 2).is_err());
        remove_if_exists(&path).expect("remove");
        remove_if_exists(&path).expect("remove again");
        assert!(!path.exists());
    }
}
