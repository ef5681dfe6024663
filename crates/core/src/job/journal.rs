//! The migration journal: an append-only log, `<state_dir>/journal/log`, of
//! one JSON line per phase change (written *before* the daemon acts on the
//! phase) and one per ended job, so a restart finds the last phase each job
//! may have acted on and [`recover`](crate::job::recover) can decide what to do.
//!
//! # Durability
//!
//! Every record is written to the file before the call returns, so it
//! survives the daemon's death (kill, crash, restart) whatever happens next.
//! Only the records listed by [`needs_sync`] are also flushed to the disk
//! (`fdatasync`) before the call returns; they are the ones whose loss in a
//! *host* crash could break the invariant "the guest never runs on both hosts":
//!
//! | phase | synced | why |
//! |---|---|---|
//! | source `perform3_done` | yes | the destination may run the guest from now on; after a host crash and reboot the job must still hold the guest (no autostart, no start, no resume) until the peer's outcome is known |
//! | every other phase, ended jobs | no | a host crash also kills the guest processes those records describe (the incoming guest, a source still sending), so there is nothing left to resume or kill; a lost terminal record or end leaves an older phase, whose recovery is the safe one (e.g. `perform3_done` → held, settled by the peer query) |
//!
//! A flush covers every earlier line of the file too. An append can only
//! lose or cut the tail: a cut line is skipped on load, and the records before
//! it stay intact, so a synced record is never damaged by a later unsynced
//! one (a per-job file replaced by rename could be). When a host crash has
//! lost a job's end, the guest's newer job (if any) wins: per guest UUID only
//! the entry written last is recovered.
//!
//! One flush per migration replaces the two per phase of the previous format
//! (a file per job: temporary file, fsync, rename, fsync of the directory),
//! which cost 0.5–12 ms each on a loaded disk. Files of that format found at
//! start-up are taken over into the log.
//!
//! The log is rewritten with the live entries only (temporary file, fsync,
//! rename, fsync of the directory) once it holds [`COMPACT_AFTER`] records.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::job::phase::{Phase, SourcePhase};

/// Largest journal line read back (also the largest legacy per-job file);
/// real entries are well under 1 KiB.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// Largest log read at start-up; a longer one is cut there (with a warning).
const MAX_LOG_BYTES: u64 = 256 * 1024 * 1024;

/// Records appended before the log is rewritten with the live entries only.
pub const COMPACT_AFTER: u64 = 4096;

/// The log's file name in the journal directory.
const LOG: &str = "log";

/// What the journal records about one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Job id.
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

/// Whether a record of `phase` is flushed to the disk before
/// [`Journal::record`] returns (see the module doc's table).
pub fn needs_sync(phase: &Phase) -> bool {
    matches!(phase, Phase::Source(SourcePhase::Perform3Done))
}

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// A job's phase (replaces its previous one).
    Phase(JournalEntry),
    /// The job is over.
    Ended(Uuid),
}

/// The live entries and the open log.
#[derive(Debug)]
struct State {
    file: File,
    /// Live entries with the position of their last record.
    live: HashMap<Uuid, (u64, JournalEntry)>,
    /// Records written so far (positions), for "written last wins".
    position: u64,
    /// Records in the file since it was last rewritten.
    since_compaction: u64,
    /// The file may end in a cut line (a crash or a failed write): the next
    /// record starts on a new line so that it is not glued to it.
    torn: bool,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
}

/// The journal; cheap to clone (clones share the log).
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl Journal {
    /// Opens (creating if needed) `<state_dir>/journal` and reads its log,
    /// taking over any per-job files of the previous format.
    ///
    /// # Errors
    /// [`Error::System`] if the directory or the log cannot be created, read
    /// or rewritten.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("journal");
        fs::create_dir_all(&dir)
            .map_err(|e| Error::system(format!("create directory {}", dir.display()), e))?;
        let path = dir.join(LOG);
        let (mut live, position, torn) = read_log(&path)?;
        let legacy = read_legacy(&dir, &mut live, position)?;
        let file = open_append(&path)?;
        let records = position;
        let journal = Self {
            inner: Arc::new(Inner {
                dir,
                state: Mutex::new(State {
                    file,
                    live,
                    position: records,
                    since_compaction: records,
                    torn,
                }),
            }),
        };
        if !legacy.is_empty() {
            // Durably in the log first, then the old files go.
            journal.compact(&mut journal.lock())?;
            for path in legacy {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a journal file taken over into the log");
                }
            }
        }
        Ok(journal)
    }

    /// The directory holding the log.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed after the file write succeeded.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `entry`, replacing the job's previous phase; flushed to the
    /// disk first when [`needs_sync`] says so.
    ///
    /// # Errors
    /// [`Error::System`] when writing or flushing fails; the previous entry
    /// then stays the live one.
    pub fn record(&self, entry: &JournalEntry) -> Result<()> {
        let sync = needs_sync(&entry.phase);
        let mut state = self.lock();
        self.append(&mut state, &Record::Phase(entry.clone()), sync)?;
        let position = state.position;
        state.live.insert(entry.job_id, (position, entry.clone()));
        self.maybe_compact(&mut state);
        Ok(())
    }

    /// The live entry of `job_id`, if any.
    ///
    /// # Errors
    /// None today; kept fallible for callers written against file reads.
    pub fn get(&self, job_id: &Uuid) -> Result<Option<JournalEntry>> {
        Ok(self.lock().live.get(job_id).map(|(_, e)| e.clone()))
    }

    /// Ends the job's entry (the job is over and nothing needs recovery).
    ///
    /// # Errors
    /// [`Error::System`] when the log cannot be written.
    pub fn remove(&self, job_id: &Uuid) -> Result<()> {
        let mut state = self.lock();
        if !state.live.contains_key(job_id) {
            return Ok(());
        }
        self.append(&mut state, &Record::Ended(*job_id), false)?;
        state.live.remove(job_id);
        self.maybe_compact(&mut state);
        Ok(())
    }

    /// Every live entry, one per guest (the one written last when a host
    /// crash lost an older job's end), ordered by job id.
    ///
    /// # Errors
    /// None today; kept fallible for callers written against file reads.
    pub fn load(&self) -> Result<Vec<JournalEntry>> {
        let state = self.lock();
        let mut newest: HashMap<Uuid, &(u64, JournalEntry)> = HashMap::new();
        for item in state.live.values() {
            let slot = newest.entry(item.1.uuid).or_insert(item);
            if item.0 > slot.0 {
                tracing::warn!(job_id = %slot.1.job_id, dom = %slot.1.name, newer = %item.1.job_id, "ignoring a journalled job superseded by a newer one of the same guest");
                *slot = item;
            } else if item.0 < slot.0 {
                tracing::warn!(job_id = %item.1.job_id, dom = %item.1.name, newer = %slot.1.job_id, "ignoring a journalled job superseded by a newer one of the same guest");
            }
        }
        let mut out: Vec<JournalEntry> = newest.into_values().map(|(_, e)| e.clone()).collect();
        out.sort_by_key(|e| e.job_id);
        Ok(out)
    }

    fn append(&self, state: &mut State, record: &Record, sync: bool) -> Result<()> {
        let mut line = Vec::with_capacity(512);
        if state.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, record)
            .map_err(|e| Error::internal(format!("encoding journal record: {e}")))?;
        line.push(b'\n');
        let path = || self.inner.dir.join(LOG);
        if let Err(e) = state.file.write_all(&line) {
            // Part of the line may be in the file.
            state.torn = true;
            return Err(Error::system(format!("write {}", path().display()), e));
        }
        state.torn = false;
        if sync {
            state
                .file
                .sync_data()
                .map_err(|e| Error::system(format!("sync {}", path().display()), e))?;
        }
        state.position += 1;
        state.since_compaction += 1;
        Ok(())
    }

    fn maybe_compact(&self, state: &mut State) {
        if state.since_compaction >= COMPACT_AFTER {
            if let Err(err) = self.compact(state) {
                // The long log is still valid; the next record tries again.
                tracing::warn!(error = %err, "could not rewrite the migration journal");
            }
        }
    }

    /// Rewrites the log with the live entries only, atomically and durably.
    fn compact(&self, state: &mut State) -> Result<()> {
        let path = self.inner.dir.join(LOG);
        let tmp = self.inner.dir.join(".log.tmp");
        let mut entries: Vec<&(u64, JournalEntry)> = state.live.values().collect();
        entries.sort_by_key(|(position, _)| *position);
        let mut data = Vec::new();
        for (_, entry) in &entries {
            serde_json::to_writer(&mut data, &Record::Phase(entry.clone()))
                .map_err(|e| Error::internal(format!("encoding journal record: {e}")))?;
            data.push(b'\n');
        }
        let write = || -> io::Result<File> {
            let mut file = File::create(&tmp)?;
            file.write_all(&data)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.inner.dir)?.sync_all()?;
            OpenOptions::new().append(true).open(&path)
        };
        let file = write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::system(format!("rewrite {}", path.display()), e)
        })?;
        state.file = file;
        state.since_compaction = entries.len() as u64;
        state.torn = false;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::system(format!("open {}", path.display()), e))
}

type Live = HashMap<Uuid, (u64, JournalEntry)>;

/// Replays the log: the live entries, the number of records read, and
/// whether the file ends in a cut line. Unreadable lines (a tail cut by a
/// crash) are skipped with a warning.
fn read_log(path: &Path) -> Result<(Live, u64, bool)> {
    let mut live = Live::new();
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((live, 0, false)),
        Err(e) => return Err(Error::system(format!("read {}", path.display()), e)),
    };
    if data.len() as u64 > MAX_LOG_BYTES {
        tracing::warn!(path = %path.display(), bytes = data.len(), "migration journal larger than expected; reading its start only");
    }
    let torn = data.last().is_some_and(|&b| b != b'\n');
    let data = &data[..data.len().min(MAX_LOG_BYTES as usize)];
    let mut position = 0u64;
    for line in data.split(|&b| b == b'\n') {
        if line.iter().all(|&b| b == 0 || b.is_ascii_whitespace()) {
            continue;
        }
        position += 1;
        let record = if line.len() as u64 > MAX_ENTRY_BYTES {
            Err(format!("{} bytes is too large", line.len()))
        } else {
            serde_json::from_slice::<Record>(line).map_err(|e| e.to_string())
        };
        match record {
            Ok(Record::Phase(entry)) => {
                live.insert(entry.job_id, (position, entry));
            }
            Ok(Record::Ended(job_id)) => {
                live.remove(&job_id);
            }
            Err(reason) => tracing::warn!(
                path = %path.display(),
                record = position,
                %reason,
                "skipping an unreadable migration journal record"
            ),
        }
    }
    Ok((live, position, torn))
}

/// Takes over `<job-id>.json` files of the previous format into `live`
/// (after the log's records); returns their paths. Unreadable ones are
/// skipped with a warning and left for an operator.
fn read_legacy(dir: &Path, live: &mut Live, after: u64) -> Result<Vec<PathBuf>> {
    let list = fs::read_dir(dir)
        .map_err(|e| Error::system(format!("read directory {}", dir.display()), e))?;
    let mut found = Vec::new();
    for item in list {
        let item =
            item.map_err(|e| Error::system(format!("read directory {}", dir.display()), e))?;
        let path = item.path();
        let is_entry = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'));
        if !is_entry {
            continue;
        }
        match read_legacy_entry(&path) {
            Ok(entry) => {
                live.entry(entry.job_id)
                    .or_insert((after + found.len() as u64 + 1, entry));
                found.push(path);
            }
            Err(reason) => tracing::warn!(
                path = %path.display(),
                %reason,
                "skipping unreadable migration journal entry"
            ),
        }
    }
    Ok(found)
}

fn read_legacy_entry(path: &Path) -> std::result::Result<JournalEntry, String> {
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
        assert_eq!(reopened.load().expect("load"), vec![b.clone()]);
        let again = Journal::open(dir.path()).expect("reopen");
        assert_eq!(again.load().expect("load"), vec![b]);
    }

    #[test]
    fn a_cut_or_garbled_tail_is_skipped_and_earlier_records_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let good = entry(Phase::Source(SourcePhase::Perform3Done));
        journal.record(&good).expect("record");
        let mut later = good.clone();
        later.phase = Phase::Source(SourcePhase::Confirm3);
        journal.record(&later).expect("record");
        drop(journal);
        // A host crash cut the last line and left zeros after it.
        let path = dir.path().join("journal").join(LOG);
        let mut data = fs::read(&path).expect("read");
        let cut = data.len() - 20;
        data.truncate(cut);
        data.extend_from_slice(&[0u8; 64]);
        fs::write(&path, &data).expect("write");
        let reopened = Journal::open(dir.path()).expect("reopen");
        assert_eq!(reopened.load().expect("load"), vec![good]);
    }

    #[test]
    fn a_record_after_a_cut_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let first = entry(Phase::Source(SourcePhase::Perform3));
        journal.record(&first).expect("record");
        drop(journal);
        // A crash cut the last record in the middle, newline included.
        let path = dir.path().join("journal").join(LOG);
        let mut data = fs::read(&path).expect("read");
        data.truncate(data.len() / 2);
        fs::write(&path, &data).expect("write");
        // The restarted daemon journals a new job, then restarts again.
        let journal = Journal::open(dir.path()).expect("reopen");
        assert!(journal.load().expect("load").is_empty());
        let second = entry(Phase::Source(SourcePhase::Perform3Done));
        journal.record(&second).expect("record");
        drop(journal);
        let again = Journal::open(dir.path()).expect("reopen");
        assert_eq!(again.load().expect("load"), vec![second]);
    }

    #[test]
    fn only_the_newest_job_of_a_guest_is_recovered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        // An old job whose end was lost, then a newer job of the same guest.
        let old = entry(Phase::Source(SourcePhase::Confirm3Cancelled));
        let mut new = entry(Phase::Source(SourcePhase::Perform3Done));
        new.uuid = old.uuid;
        journal.record(&old).expect("record");
        journal.record(&new).expect("record");
        let other = entry(Phase::Destination(DestinationPhase::Finish3));
        journal.record(&other).expect("record");
        let mut loaded = Journal::open(dir.path())
            .expect("reopen")
            .load()
            .expect("load");
        loaded.sort_by_key(|e| e.name.clone() + &e.uuid.to_string());
        assert_eq!(loaded.len(), 2);
        assert!(loaded.contains(&new) && loaded.contains(&other));
    }

    #[test]
    fn only_perform3_done_is_flushed_to_disk() {
        assert!(needs_sync(&Phase::Source(SourcePhase::Perform3Done)));
        for p in [
            Phase::Source(SourcePhase::Begin3 { offline: false }),
            Phase::Source(SourcePhase::Perform3),
            Phase::Source(SourcePhase::Confirm3),
            Phase::Source(SourcePhase::Confirm3Cancelled),
            Phase::Destination(DestinationPhase::Prepare3 { offline: false }),
            Phase::Destination(DestinationPhase::Finish3),
            Phase::Destination(DestinationPhase::Finish3Done),
            Phase::Destination(DestinationPhase::Finish3Cancelled),
        ] {
            assert!(!needs_sync(&p), "{p:?}");
        }
    }

    #[test]
    fn the_log_is_compacted_to_the_live_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let journal = Journal::open(dir.path()).expect("open");
        let keep = entry(Phase::Source(SourcePhase::Perform3Done));
        journal.record(&keep).expect("record");
        for _ in 0..(COMPACT_AFTER / 2 + 1) {
            let e = entry(Phase::Destination(DestinationPhase::Finish3));
            journal.record(&e).expect("record");
            journal.remove(&e.job_id).expect("remove");
        }
        let path = dir.path().join("journal").join(LOG);
        let lines = fs::read(&path)
            .expect("read")
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        assert!(lines < COMPACT_AFTER / 2, "{lines} lines after compaction");
        assert_eq!(
            Journal::open(dir.path())
                .expect("reopen")
                .load()
                .expect("load"),
            vec![keep]
        );
    }

    #[test]
    fn files_of_the_previous_format_are_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jdir = dir.path().join("journal");
        fs::create_dir_all(&jdir).expect("mkdir");
        let old = entry(Phase::Source(SourcePhase::Perform3Done));
        fs::write(
            jdir.join(format!("{}.json", old.job_id)),
            serde_json::to_vec_pretty(&old).expect("json"),
        )
        .expect("write");
        fs::write(jdir.join("bad.json"), b"{not json").expect("write");
        let journal = Journal::open(dir.path()).expect("open");
        assert_eq!(journal.load().expect("load"), vec![old.clone()]);
        assert!(!jdir.join(format!("{}.json", old.job_id)).exists());
        assert!(jdir.join("bad.json").exists(), "left for an operator");
        assert_eq!(
            Journal::open(dir.path())
                .expect("reopen")
                .load()
                .expect("load"),
            vec![old]
        );
    }
}
