//! Small file helpers shared by the status files and the config store.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync,
/// rename, fsync of the directory. A crash leaves the old or the new
/// content, never a torn file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = write_and_rename(path, bytes, true)?;
    sync_dir(dir)
}

/// Replaces `path` with `bytes` through a temporary file and a rename, but
/// without fsync: readers and a restarted daemon see the old or the new
/// content, never a torn file, as long as the kernel keeps running. For
/// files that describe processes which do not survive a host crash either
/// (the runtime directory is a tmpfs on real hosts), where the two fsyncs
/// of [`write_atomic`] would only add their latency (several ms each on a
/// busy disk) to every start, pause and resume.
pub(crate) fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    write_and_rename(path, bytes, false).map(|_| ())
}

/// Writes a temporary file beside `path` (synced when `sync`) and renames it
/// over `path`; returns the directory.
fn write_and_rename<'a>(path: &'a Path, bytes: &[u8], sync: bool) -> Result<&'a Path> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| Error::file("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| if sync { f.sync_all() } else { Ok(()) })
        .map_err(|e| Error::file("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::file("write", path, e))?;
    Ok(dir)
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

    #[test]
    fn replace_without_sync_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/b.json");
        write_replace(&path, b"first").expect("write");
        write_replace(&path, b"second").expect("rewrite");
        assert_eq!(read_bounded(&path, 64).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("b.json")]);
    }
}
