//! Persistent domain configs of the QEMU driver.
//!
//! ```text
//! <state_dir>/qemu/domains/<uuid>.xml    persistent definition (inactive XML, secrets included)
//! <state_dir>/qemu/autostart/<uuid>      present when autostart is enabled
//! <state_dir>/qemu/snapshots/<uuid>.xml  snapshot metadata (`<snapshots>`), when there is any
//! ```
//!
//! Every write is atomic, so a crash leaves the old or the new config.

use std::path::{Path, PathBuf};

use migrated_core::snapshot::Snapshots;
use migrated_core::xml::{DomainDef, FormatOptions, MAX_XML_BYTES};
use tracing::warn;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::files::{read_bounded, remove_if_exists, write_atomic};

/// A config found at start-up.
#[derive(Debug)]
pub(crate) struct Stored {
    pub def: DomainDef,
    pub autostart: bool,
    pub snapshots: Snapshots,
}

/// The driver's config directories.
#[derive(Debug)]
pub(crate) struct Store {
    domains: PathBuf,
    autostart: PathBuf,
    snapshots: PathBuf,
}

impl Store {
    /// Creates the directories under `state_dir` if needed.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let root = state_dir.join("qemu");
        let store = Self {
            domains: root.join("domains"),
            autostart: root.join("autostart"),
            snapshots: root.join("snapshots"),
        };
        for dir in [&store.domains, &store.autostart, &store.snapshots] {
            std::fs::create_dir_all(dir).map_err(|e| Error::file("create", dir, e))?;
        }
        Ok(store)
    }

    fn config_path(&self, uuid: &Uuid) -> PathBuf {
        self.domains.join(format!("{uuid}.xml"))
    }

    fn autostart_path(&self, uuid: &Uuid) -> PathBuf {
        self.autostart.join(uuid.to_string())
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

    fn snapshots_path(&self, uuid: &Uuid) -> PathBuf {
        self.snapshots.join(format!("{uuid}.xml"))
    }

    /// Removes the config, autostart mark and snapshot metadata of `uuid`.
    pub fn remove(&self, uuid: &Uuid) -> Result<()> {
        remove_if_exists(&self.config_path(uuid))?;
        remove_if_exists(&self.autostart_path(uuid))?;
        remove_if_exists(&self.snapshots_path(uuid))
    }

    /// Writes the snapshot metadata of `uuid` (removes the file when there
    /// is none).
    pub fn save_snapshots(&self, uuid: &Uuid, snapshots: &Snapshots) -> migrated_core::Result<()> {
        const OP: &str = "virDomainSnapshotCreateXML";
        let path = self.snapshots_path(uuid);
        if snapshots.is_empty() {
            return remove_if_exists(&path).map_err(|e| e.into_core(OP));
        }
        let xml = snapshots.to_stored()?;
        write_atomic(&path, xml.as_bytes()).map_err(|e| e.into_core(OP))
    }

    /// The stored snapshot metadata of `uuid`. A damaged file is kept and
    /// reported: the domain loads without snapshots rather than not at all.
    fn load_snapshots(&self, uuid: &Uuid) -> Snapshots {
        let path = self.snapshots_path(uuid);
        if !path.exists() {
            return Snapshots::default();
        }
        let read = read_bounded(&path, MAX_XML_BYTES as u64).and_then(|bytes| {
            Snapshots::from_xml(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                Error::InvalidConfig {
                    reason: e.to_string(),
                }
            })
        });
        read.unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e.chain(), "ignoring unreadable stored snapshot metadata");
            Snapshots::default()
        })
    }

    /// Records whether `uuid` starts with the daemon.
    pub fn set_autostart(&self, uuid: &Uuid, autostart: bool) -> Result<()> {
        let path = self.autostart_path(uuid);
        if autostart {
            write_atomic(&path, b"")
        } else {
            remove_if_exists(&path)
        }
    }

    /// Every readable config; unreadable ones are skipped with a warning and
    /// left in place for the operator.
    pub fn load(&self) -> Result<Vec<Stored>> {
        let entries =
            std::fs::read_dir(&self.domains).map_err(|e| Error::file("list", &self.domains, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::file("list", &self.domains, e))?
                .path();
            if path.extension().map_or(true, |e| e != "xml") {
                continue;
            }
            let def = read_bounded(&path, MAX_XML_BYTES as u64).and_then(|bytes| {
                let text = String::from_utf8_lossy(&bytes);
                DomainDef::parse(&text).map_err(|e| Error::InvalidConfig {
                    reason: e.to_string(),
                })
            });
            match def {
                Ok(def) => {
                    let autostart = self.autostart_path(&def.uuid).exists();
                    let snapshots = self.load_snapshots(&def.uuid);
                    out.push(Stored {
                        def,
                        autostart,
                        snapshots,
                    });
                }
                Err(e) => {
                    warn!(path = %path.display(), error = %e.chain(), "skipping unreadable domain config")
                }
            }
        }
        Ok(out)
    }
}
