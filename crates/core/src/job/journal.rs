//! The migration journal: one JSON file per job in `<state_dir>/journal/<job-id>.json`,
//! written (temporary file, fsync, rename, fsync of the directory) *before*
//! the daemon acts on a phase, so a restart finds the last phase it may have
//! acted on and [`recover`](crate::job::recover) can decide what to do.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::job::phase::Phase;

/// Largest journal file read back; real entries are well under 1 KiB.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// What the journal records about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Job id (the file name).
    pub job_id: Uuid,
    /// Guest name on this host.
    pub name: String,
    /// Guest UUID.
    pub uuid: Uuid,
    /// The phase the daemon is about to act on, or acted on last.
    pub phase: Phase,
    /// The migration flags.
    pub flags: u64,
    /// The peer host's UUID, once known.
    pub peer_host: Option<Uuid>,
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// Opens (creating if needed) `<state_dir>/journal`.
    ///
    /// # Errors
    /// [`Error::System`] if the directory cannot be created.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("journal");
        fs::create_dir_all(&dir)
            .map_err(|e| Error::system(format!("create directory {}", dir.display()), e))?;
        Ok(Self { dir })
    }

    /// The directory holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, job_id: &Uuid) -> PathBuf {
        self.dir.join(format!("{job_id}.json"))
    }

    /// Durably records `entry`, replacing the job's previous one.
    ///
    /// # Errors
    /// [`Error::System`] when writing, syncing or renaming fails; the previous
    /// entry is then still in place.
    pub fn record(&self, entry: &JournalEntry) -> Result<()> {
        let path = self.path(&entry.job_id);
        let data = serde_json::to_vec_pretty(entry)
            .map_err(|e| Error::internal(format!("encoding journal entry: {e}")))?;
        let tmp = self.dir.join(format!(".{}.tmp", entry.job_id));
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&data)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            // Best effort: a stale temporary file is ignored by `load`.
            let _ = fs::remove_file(&tmp);
            Error::system(format!("write {}", path.display()), e)
        })
    }

    /// The entry of `job_id`, if recorded.
    ///
    /// # Errors
    /// [`Error::System`] when the file exists but cannot be read or decoded.
    pub fn get(&self, job_id: &Uuid) -> Result<Option<JournalEntry>> {
        let path = self.path(job_id);
        if !path.exists() {
            return Ok(None);
        }
        read_entry(&path).map(Some).map_err(|reason| {
            Error::system(
                format!("read {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, reason),
            )
        })
    }

    /// Removes the job's entry (the job is over and nothing needs recovery).
    ///
    /// # Errors
    /// [`Error::System`] when removal fails for another reason than absence.
    pub fn remove(&self, job_id: &Uuid) -> Result<()> {
        let path = self.path(job_id);
        match fs::remove_file(&path) {
            Ok(()) => File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::system(format!("sync {}", self.dir.display()), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::system(format!("remove {}", path.display()), e)),
        }
    }

    /// Every readable entry. Unreadable files are skipped with a warning (and
    /// left for an operator): one bad file must not stop recovery of the others.
    ///
    /// # Errors
    /// [`Error::System`] if the directory cannot be listed.
    pub fn load(&self) -> Result<Vec<JournalEntry>> {
        let list = fs::read_dir(&self.dir)
            .map_err(|e| Error::system(format!("read directory {}", self.dir.display()), e))?;
        let mut out = Vec::new();
        for item in list {
            let item = item
                .map_err(|e| Error::system(format!("read directory {}", self.dir.display()), e))?;
            let path = item.path();
            let is_entry = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'));
            if !is_entry {
                continue;
            }
            match read_entry(&path) {
                Ok(entry) => out.push(entry),
                Err(reason) => tracing::warn!(
                    path = %path.display(),
                    %reason,
                    "skipping unreadable migration journal entry"
                ),
            }
        }
        out.sort_by_key(|e| e.job_id);
        Ok(out)
    }
}

fn read_entry(path: &Path) -> std::result::Result<JournalEntry, String> {
    let len = fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_ENTRY_BYTES {
        return Err(format!("{len} bytes is too large"));
    }
    let data = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::phase::{DestinationPhase, SourcePhase};

    fn entry(phase: Phase) -> JournalEntry {
        JournalEntry {
            job_id: Uuid::new_v4(),
            name: "web1".into(),
            uuid: Uuid::new_v4(),
            phase,
            flags: 1,
            peer_host: Some(Uuid::from_u128(2)),
        }
    }

    #[test]
    fn entries_survive_reopening_and_are_replaced_per_job() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let mut a = entry(Phase::Source(SourcePhase::Begin3 { offline: false }));
        journal.record(&a).expect("record");
        a.phase = Phase::Source(SourcePhase::Perform3Done);
        journal.record(&a).expect("replace");
        let b = entry(Phase::Destination(DestinationPhase::Prepare3 {
            offline: true,
        }));
        journal.record(&b).expect("record");

        let reopened = Journal::open(dir.path()).expect("reopen");
        assert_eq!(reopened.get(&a.job_id).expect("get"), Some(a.clone()));
        assert_eq!(reopened.get(&Uuid::nil()).expect("get"), None);
        let mut loaded = reopened.load().expect("load");
        loaded.sort_by_key(|e| e.name.clone());
        assert_eq!(loaded.len(), 2);
        assert!(loaded.contains(&a) && loaded.contains(&b));

        reopened.remove(&a.job_id).expect("remove");
        reopened.remove(&a.job_id).expect("removing twice is fine");
        assert_eq!(reopened.load().expect("load"), vec![b]);
    }

    #[test]
    fn garbage_files_are_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let good = entry(Phase::Source(SourcePhase::Perform3));
        journal.record(&good).expect("record");
        fs::write(journal.dir().join("bad.json"), b"{not json").expect("write");
        fs::write(journal.dir().join(".x.tmp"), b"partial").expect("write");
        assert_eq!(journal.load().expect("load"), vec![good]);
    }
}
