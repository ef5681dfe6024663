//! On-disk persistent configs of the test driver.
//!
//! Layout under the daemon's state directory:
//!
//! ```text
//! <state_dir>/test/domains/<uuid>.xml    persistent definition (inactive XML, secrets included)
//! <state_dir>/test/autostart/<uuid>      present when autostart is enabled
//! <state_dir>/test/snapshots/<uuid>.xml  snapshot metadata (`<snapshots>`), when there is any
//! ```
//!
//! Every write is atomic (temporary file, fsync, rename, fsync of the directory),
//! so a crash leaves either the old or the new config, never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use migrated_core::snapshot::Snapshots;
use migrated_core::xml::{DomainDef, FormatOptions, MAX_XML_BYTES};
use migrated_core::{Error, Result};
use uuid::Uuid;

/// A config found on disk at start-up.
pub(crate) struct StoredDomain {
    pub def: DomainDef,
    pub autostart: bool,
    pub snapshots: Snapshots,
}

/// The test driver's directories.
#[derive(Debug)]
pub(crate) struct Store {
    domains: PathBuf,
    autostart: PathBuf,
    snapshots: PathBuf,
}

impl Store {
    /// Creates the directories under `state_dir` if needed.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let root = state_dir.join("test");
        let store = Self {
            domains: root.join("domains"),
            autostart: root.join("autostart"),
            snapshots: root.join("snapshots"),
        };
        for dir in [&store.domains, &store.autostart, &store.snapshots] {
            fs::create_dir_all(dir)
                .map_err(|e| Error::system(format!("create directory {}", dir.display()), e))?;
        }
        Ok(store)
    }

    fn config_path(&self, uuid: &Uuid) -> PathBuf {
        self.domains.join(format!("{uuid}.xml"))
    }

    fn autostart_path(&self, uuid: &Uuid) -> PathBuf {
        self.autostart.join(uuid.to_string())
    }

    fn snapshots_path(&self, uuid: &Uuid) -> PathBuf {
        self.snapshots.join(format!("{uuid}.xml"))
    }

    /// Writes the snapshot metadata of `uuid` (removes the file when there
    /// is none left).
    pub fn save_snapshots(&self, uuid: &Uuid, snapshots: &Snapshots) -> Result<()> {
        let path = self.snapshots_path(uuid);
        if snapshots.is_empty() {
            remove_if_exists(&path)?;
            sync_dir(&self.snapshots)
        } else {
            let xml = snapshots.to_stored()?;
            write_atomic(&path, xml.as_bytes())
        }
    }

    /// The stored snapshot metadata of `uuid`. A damaged file is kept and
    /// reported (the guest loads without snapshots rather than not at all).
    fn load_snapshots(&self, uuid: &Uuid) -> Snapshots {
        let path = self.snapshots_path(uuid);
        if !path.exists() {
            return Snapshots::default();
        }
        let read = read_bounded(&path).and_then(|xml| Snapshots::from_xml(&xml));
        read.unwrap_or_else(|err| {
            tracing::warn!(
                path = %path.display(),
                error = %flatten(&err),
                "ignoring unreadable stored snapshot metadata"
            );
            Snapshots::default()
        })
    }

    /// Writes `def` as the persistent config of its UUID.
    pub fn save(&self, def: &DomainDef) -> Result<()> {
        let xml = def.format(&FormatOptions {
            secure: true,
            inactive: true,
            migratable: false,
        });
        write_atomic(&self.config_path(&def.uuid), xml.as_bytes())
    }

    /// Removes the config and the autostart mark of `uuid`.
    pub fn remove(&self, uuid: &Uuid) -> Result<()> {
        remove_if_exists(&self.config_path(uuid))?;
        remove_if_exists(&self.autostart_path(uuid))?;
        remove_if_exists(&self.snapshots_path(uuid))?;
        sync_dir(&self.domains)?;
        sync_dir(&self.snapshots)
    }

    /// Records whether `uuid` starts with the daemon.
    pub fn set_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<()> {
        let path = self.autostart_path(uuid);
        if autostart {
            write_atomic(&path, b"")
        } else {
            remove_if_exists(&path)?;
            sync_dir(&self.autostart)
        }
    }

    /// Every readable config. A file that cannot be read or parsed, or whose UUID
    /// does not match its name, is left in place and skipped with a warning:
    /// one bad file must not keep the daemon and the other guests down.
    pub fn load(&self) -> Result<Vec<StoredDomain>> {
        let entries = fs::read_dir(&self.domains)
            .map_err(|e| Error::system(format!("read directory {}", self.domains.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                Error::system(format!("read directory {}", self.domains.display()), e)
            })?;
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".xml"))
            else {
                continue;
            };
            let Ok(uuid) = Uuid::parse_str(stem) else {
                continue;
            };
            match read_config(&path) {
                Ok(def) if def.uuid == uuid => out.push(StoredDomain {
                    autostart: self.autostart_path(&uuid).exists(),
                    snapshots: self.load_snapshots(&uuid),
                    def,
                }),
                Ok(def) => tracing::warn!(
                    path = %path.display(),
                    uuid = %def.uuid,
                    "skipping stored domain config whose uuid does not match its file name"
                ),
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    error = %flatten(&err),
                    "skipping unreadable stored domain config"
                ),
            }
        }
        out.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        Ok(out)
    }
}

fn flatten(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        msg.push_str(": ");
        msg.push_str(&cause.to_string());
        cur = cause.source();
    }
    msg
}

fn read_config(path: &Path) -> Result<DomainDef> {
    Ok(DomainDef::parse(&read_bounded(path)?)?)
}

/// Reads a stored XML file of at most [`MAX_XML_BYTES`].
fn read_bounded(path: &Path) -> Result<String> {
    let op = || format!("read {}", path.display());
    let len = fs::metadata(path)
        .map_err(|e| Error::system(op(), e))?
        .len();
    if len > MAX_XML_BYTES as u64 {
        return Err(Error::system(
            op(),
            io::Error::new(io::ErrorKind::InvalidData, format!("file is {len} bytes")),
        ));
    }
    fs::read_to_string(path).map_err(|e| Error::system(op(), e))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::system(format!("remove {}", path.display()), e)),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::system(format!("sync directory {}", dir.display()), e))
}

/// Replaces `path` with `data` atomically and durably.
fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::internal(format!("{} has no parent directory", path.display())))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::internal(format!("{} has no file name", path.display())))?;
    // Writers of one UUID are serialised by the driver, so a fixed temporary
    // name per target cannot collide.
    let tmp = dir.join(format!(".{name}.tmp"));
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        // Best effort: a stale temporary file is harmless (it is skipped on load).
        let _ = fs::remove_file(&tmp);
        return Err(Error::system(format!("write {}", path.display()), e));
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='test'><name>{name}</name><memory unit='MiB'>4</memory>\
             <os><type>hvm</type></os></domain>"
        ))
        .expect("valid xml")
    }

    #[test]
    fn saved_configs_load_back_with_autostart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let a = def("a");
        let b = def("b");
        store.save(&a).expect("save a");
        store.save(&b).expect("save b");
        store.set_autostart(&b.uuid, true).expect("autostart");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].def, a);
        assert!(!loaded[0].autostart);
        assert_eq!(loaded[1].def, b);
        assert!(loaded[1].autostart);

        store.remove(&a.uuid).expect("remove");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].def.name, "b");
    }

    #[test]
    fn bad_files_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let good = def("good");
        store.save(&good).expect("save");
        let domains = dir.path().join("test/domains");
        fs::write(domains.join(format!("{}.xml", Uuid::new_v4())), "<domain")
            .expect("write garbage");
        // A valid config stored under another UUID's name.
        let other = def("other");
        fs::write(
            domains.join(format!("{}.xml", Uuid::new_v4())),
            other.format(&FormatOptions::default()),
        )
        .expect("write mismatched");
        fs::write(domains.join("notes.txt"), "ignored").expect("write unrelated");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].def.uuid, good.uuid);
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        store.save(&def("x")).expect("save");
        let names: Vec<_> = fs::read_dir(dir.path().join("test/domains"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(!names[0].to_string_lossy().starts_with('.'));
    }
}
