//! Settling a source job held after a restart by asking its peer.
//!
//! A restarted source that had sent everything (phase perform-done) keeps
//! the guest paused, because the destination may run it. For a peer-to-peer
//! migration the source daemon itself knew the destination's URI, so it
//! records it next to the journal (`<state_dir>/migration-peers/<uuid>`)
//! for the duration of the migration; after a restart it asks that host:
//!
//! | destination answers | decision |
//! |---|---|
//! | the guest runs there | the copy here is stopped (undefined with UNDEFINE_SOURCE) |
//! | no such guest | the guest is given back here (resumed) |
//! | anything else (paused, shut off, an error) | ask again; past the retries the operator decides |
//! | unreachable | retry for a while, then keep holding for the operator |
//!
//! Client-managed migrations never tell the source who the destination is,
//! so their held jobs wait for the operator (docs/operations.md §6).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use migrated_client::{Connection, OpenFlags};
use migrated_core::domain::{DomainRef, DomainState};
use migrated_core::error::ErrorCode;
use migrated_core::migration::Manager;
use uuid::Uuid;

/// Directory under the state directory holding the peers' URIs.
const PEERS_DIR: &str = "migration-peers";
/// Attempts to reach an unreachable peer before leaving it to the operator.
const ATTEMPTS: u32 = 30;
/// Pause between attempts.
const RETRY: Duration = Duration::from_secs(5);
/// Bound of one query (open, lookup, state).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

fn path(state_dir: &Path, uuid: &Uuid) -> PathBuf {
    state_dir.join(PEERS_DIR).join(uuid.to_string())
}

/// Records where the guest `uuid` is being migrated to (best effort: without
/// it a held job waits for the operator, as a client-managed one does).
pub fn record(state_dir: &Path, uuid: &Uuid, dconnuri: &str) {
    let file = path(state_dir, uuid);
    let written = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&file, dconnuri));
    if let Err(err) = written {
        tracing::warn!(path = %file.display(), error = %err, "cannot record the migration peer");
    }
}

/// Forgets the peer of `uuid` once its migration is over.
pub fn forget(state_dir: &Path, uuid: &Uuid) {
    let _ = std::fs::remove_file(path(state_dir, uuid));
}

/// What the peer says about the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerSays {
    Runs,
    Lacks,
    Unclear,
}

async fn ask(dconnuri: &str, uuid: Uuid) -> Result<PeerSays, String> {
    let conn = Connection::open(dconnuri, OpenFlags::default())
        .await
        .map_err(|e| e.to_string())?;
    let answer = match conn.lookup_domain_by_uuid(uuid).await {
        Err(e) if e.is_code(ErrorCode::NoDomain) => Ok(PeerSays::Lacks),
        Err(e) => Err(e.to_string()),
        Ok(dom) => match dom.state().await {
            Ok(s) if s.state == DomainState::Running => Ok(PeerSays::Runs),
            Ok(_) => Ok(PeerSays::Unclear),
            Err(e) => Err(e.to_string()),
        },
    };
    let _ = conn.close().await;
    answer
}

/// Asks the recorded peers of the jobs `manager` holds and settles each
/// one the peer's answer decides; bounded by [`ATTEMPTS`] × [`RETRY`].
pub async fn settle_held(manager: Arc<Manager>) {
    for attempt in 1..=ATTEMPTS {
        let mut waiting = 0;
        for entry in manager.held() {
            let Ok(dconnuri) = std::fs::read_to_string(path(manager.state_dir(), &entry.uuid))
            else {
                continue;
            };
            let dconnuri = dconnuri.trim().to_owned();
            let dom = DomainRef {
                name: entry.name.clone(),
                uuid: entry.uuid,
                id: DomainRef::INACTIVE_ID,
            };
            let answer = tokio::time::timeout(QUERY_TIMEOUT, ask(&dconnuri, entry.uuid))
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            let peer_runs = match answer {
                Ok(PeerSays::Runs) => true,
                Ok(PeerSays::Lacks) => false,
                Ok(PeerSays::Unclear) => {
                    // E.g. an incoming copy the peer has not cleaned up yet:
                    // ask again later; past the retries the operator decides.
                    tracing::warn!(dom = %dom.name, %dconnuri, attempt, "the peer has the guest but not running");
                    waiting += 1;
                    continue;
                }
                Err(err) => {
                    tracing::warn!(dom = %dom.name, %dconnuri, attempt, error = %err, "cannot ask the migration peer yet");
                    waiting += 1;
                    continue;
                }
            };
            tracing::warn!(dom = %dom.name, %dconnuri, peer_runs, "held migration job settled by asking the peer");
            match manager.resolve(&dom, peer_runs).await {
                Ok(()) => forget(manager.state_dir(), &entry.uuid),
                Err(err) => {
                    tracing::error!(dom = %dom.name, error = %err, "settling the held migration job failed");
                }
            }
        }
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::warn!("migration peers still unreachable: held jobs wait for the operator");
}
