//! QEMU's snapshot jobs (`snapshot-save`, `snapshot-load`,
//! `snapshot-delete`, QEMU 6.0+) run to their end: started with a unique
//! job-id, followed through `JOB_STATUS_CHANGE` events (and `query-jobs`
//! in case an event was missed), their outcome read and the job dismissed.
//!
//! ```text
//! start ──▶ created ─▶ running ─▶ … ─▶ concluded ──▶ query-jobs: error?
//!                                                   └▶ job-dismiss
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migrated_core::{Error, Result};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::qmp::commands::{Command, Empty, JobDismiss, JobStatus, QueryJobs};
use crate::qmp::message::names;
use crate::qmp::Qmp;

/// How often `query-jobs` is asked, in case a status event was missed.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// The longest a snapshot job may run (writing the memory of a large
/// guest to a slow disk); past it the driver stops waiting and reports.
const JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Job ids of this process, numbered.
static JOB_IDS: AtomicU64 = AtomicU64::new(0);

/// A fresh job id for a `kind` job (`snapshot-save`).
pub(super) fn job_id(kind: &str) -> String {
    format!(
        "migrated-{kind}-{}",
        JOB_IDS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts `cmd` (a job command whose id is `id`) and waits until the job
/// concluded; `operation` names the API in errors.
///
/// # Errors
/// `VIR_ERR_OPERATION_FAILED` with QEMU's reason when the command or the
/// job fails, when QEMU exits, or when the job outlives [`JOB_TIMEOUT`].
pub(super) async fn run<C>(qmp: &Qmp, id: &str, cmd: &C, operation: &'static str) -> Result<()>
where
    C: Command<Reply = Empty> + Serialize,
{
    let failed = |reason: String| Error::OperationFailed { operation, reason };
    let mut events = qmp.events();
    qmp.execute(cmd)
        .await
        .map_err(|e| failed(format!("{} refused: {}", C::NAME, e.chain())))?;
    let waited = tokio::time::timeout(JOB_TIMEOUT, wait_concluded(qmp, id, &mut events)).await;
    match waited {
        Err(_) => {
            return Err(failed(format!(
                "{} job {id} did not finish within {} s",
                C::NAME,
                JOB_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(reason)) => return Err(failed(format!("{} job {id}: {reason}", C::NAME))),
        Ok(Ok(())) => {}
    }
    // The outcome is in query-jobs until the job is dismissed.
    let error = qmp
        .execute(&QueryJobs)
        .await
        .ok()
        .and_then(|jobs| jobs.into_iter().find(|j| j.id == id))
        .and_then(|j| j.error);
    if let Err(e) = qmp.execute(&JobDismiss { id: id.to_owned() }).await {
        tracing::warn!(job = id, error = %e.chain(), "cannot dismiss a concluded job");
    }
    match error {
        Some(reason) => Err(failed(format!("{} failed: {reason}", C::NAME))),
        None => Ok(()),
    }
}

/// Waits for job `id` to conclude; `Err` says why it cannot be followed.
async fn wait_concluded(
    qmp: &Qmp,
    id: &str,
    events: &mut broadcast::Receiver<crate::qmp::Event>,
) -> std::result::Result<(), String> {
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.event == names::JOB_STATUS_CHANGE
                    && e.data.get("id").and_then(|v| v.as_str()) == Some(id)
                    && e.data.get("status").and_then(|v| v.as_str()) == Some("concluded") =>
                {
                    return Ok(());
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return Err("qemu exited during the job".into());
                }
            },
            _ = tick.tick() => {
                let jobs = qmp.execute(&QueryJobs).await.map_err(|e| e.chain())?;
                match jobs.iter().find(|j| j.id == id) {
                    Some(j) if matches!(j.status, JobStatus::Concluded | JobStatus::Null) => return Ok(()),
                    Some(_) => {}
                    None => return Err("the job disappeared".into()),
                }
            }
        }
    }
}
