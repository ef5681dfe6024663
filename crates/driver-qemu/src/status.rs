//! Status files: what the daemon must remember about a running guest to
//! re-attach to it after a restart.
//!
//! One JSON file per running guest, `<runtime_dir>/qemu/<name>.json`, written
//! atomically when the guest starts and whenever its recorded state changes,
//! removed when it stops. The runtime directory is a tmpfs on real hosts, so
//! a host reboot (which also ends every guest) clears them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::files::{read_bounded, remove_if_exists, write_replace};

/// Version of the file layout; a newer daemon reads older files.
pub const STATUS_VERSION: u32 = 1;

/// Largest status file read back (the domain XML is bounded at 4 MiB).
const MAX_STATUS_BYTES: u64 = 8 * 1024 * 1024;

/// The run state recorded for a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedState {
    /// vCPUs run.
    Running,
    /// vCPUs stopped.
    Paused,
}

/// What is recorded for one running guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    /// Layout version ([`STATUS_VERSION`]).
    pub version: u32,
    /// Guest name.
    pub name: String,
    /// Guest UUID (also the marker looked for in QEMU's command line).
    pub uuid: Uuid,
    /// Domain id of this run.
    pub id: i32,
    /// QEMU's pid.
    pub pid: i32,
    /// The QMP socket.
    pub qmp_socket: PathBuf,
    /// QEMU's log file.
    pub log: PathBuf,
    /// Live domain XML of this run.
    pub xml: String,
    /// Whether the domain also has a persistent config.
    pub persistent: bool,
    /// Recorded run state.
    pub state: RecordedState,
    /// State reason (libvirt's number for `state`).
    pub reason: i32,
}

impl StatusFile {
    /// `<runtime_dir>/qemu/<name>.json`.
    pub fn path(runtime_dir: &Path, name: &str) -> PathBuf {
        runtime_dir.join("qemu").join(format!("{name}.json"))
    }

    /// Replaces the file atomically (temporary file and rename), without
    /// fsync: the file must survive a daemon crash or restart, which the
    /// page cache does, not a host crash, which ends the guest too (and
    /// clears the tmpfs it lives on). A status file left behind on a
    /// persistent disk after a power loss names a pid that is gone or runs
    /// something else, which re-attaching already handles. The fsyncs cost
    /// 1-15 ms each on this project's build machine, and the file is
    /// rewritten on every start, pause and resume, some of them on a
    /// migration's critical path.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn write(&self, runtime_dir: &Path) -> Result<()> {
        let path = Self::path(runtime_dir, &self.name);
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::ParseFile {
            path: path.clone(),
            source,
        })?;
        write_replace(&path, &bytes)
    }

    /// Reads one file.
    ///
    /// # Errors
    /// [`Error::File`] when unreadable or too large, [`Error::ParseFile`]
    /// when it is not a status file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = read_bounded(path, MAX_STATUS_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::ParseFile {
            path: path.to_owned(),
            source,
        })
    }

    /// Removes the file of `name`.
    ///
    /// # Errors
    /// [`Error::File`].
    pub fn remove(runtime_dir: &Path, name: &str) -> Result<()> {
        remove_if_exists(&Self::path(runtime_dir, name))
    }

    /// Every `*.json` under `<runtime_dir>/qemu/`, each read or with its error.
    ///
    /// # Errors
    /// [`Error::File`] when the directory exists but cannot be listed.
    pub fn list(runtime_dir: &Path) -> Result<Vec<(PathBuf, Result<Self>)>> {
        let dir = runtime_dir.join("qemu");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::file("list", dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::file("list", &dir, e))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let status = Self::read(&path);
                out.push((path, status));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StatusFile {
        StatusFile {
            version: STATUS_VERSION,
            name: "web1".into(),
            uuid: Uuid::nil(),
            id: 3,
            pid: 1234,
            qmp_socket: "/run/migrated/qemu/web1.monitor".into(),
            log: "/var/log/migrated/qemu/web1.log".into(),
            xml: "<domain/>".into(),
            persistent: true,
            state: RecordedState::Paused,
            reason: 1,
        }
    }

    #[test]
    fn round_trips_and_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = sample();
        s.write(dir.path()).expect("write");
        std::fs::write(dir.path().join("qemu/broken.json"), "{").expect("write broken");
        std::fs::write(dir.path().join("qemu/web1.monitor"), "").expect("other file");
        let listed = StatusFile::list(dir.path()).expect("list");
        assert_eq!(listed.len(), 2);
        assert!(matches!(listed[0].1, Err(Error::ParseFile { .. })));
        assert_eq!(listed[1].1.as_ref().expect("parses"), &s);
        StatusFile::remove(dir.path(), "web1").expect("remove");
        assert!(!StatusFile::path(dir.path(), "web1").exists());
    }

    #[test]
    fn missing_directory_lists_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(StatusFile::list(&dir.path().join("none"))
            .expect("list")
            .is_empty());
    }
}
