//! `DOMAIN_REVERT_TO_SNAPSHOT` on QEMU guests, as libvirt 9.0's
//! `qemuSnapshotRevert`:
//!
//! ```text
//! snapshot running/paused, guest runs (ABI-compatible):
//!     pause (suspended/from snapshot) ─ snapshot-load ─ cont (resumed/from
//!     snapshot) or stay paused
//! snapshot running/paused, guest off (or respawn with FORCE):
//!     start -S (started/from snapshot) ─ snapshot-load ─ cont or stay paused
//! snapshot shut off:
//!     stop the guest (stopped/from snapshot) ─ qemu-img snapshot -a ─
//!     with RUNNING/PAUSED boot it (started/from snapshot)
//! ```
//!
//! The snapshot's domain definition becomes the domain's config and the
//! snapshot the current one.

use std::sync::Arc;

use migrated_core::abi::check_abi_stability;
use migrated_core::domain::{
    event_detail, paused_reason, running_reason, shutoff_reason, DomainRef, DomainState,
    LifecycleEvent, StateReason,
};
use migrated_core::flags::snapshot::revert::{FORCE, PAUSED, RESET_NVRAM, RUNNING};
use migrated_core::job::Abort;
use migrated_core::snapshot::{check_revert_flags, check_transient_revert, Snapshots};
use migrated_core::typed_params::job_stats::operation;
use migrated_core::xml::{DomainDef, SnapshotDef, SnapshotState};
use migrated_core::{Error, Result};
use tracing::info;

use super::super::registry::{Domain, Runtime, StopIntent};
use super::super::{QemuDriver, StartMode};
use super::{images, internal_disks, live_nodes, qemu_img, qmp_job};
use crate::qmp::commands::{Cont, SnapshotLoad};

const OP: &str = "virDomainRevertToSnapshot";
/// The call libvirt's job-lock error names while a revert holds the job.
const JOB_HOLDER: &str = "remoteDispatchDomainRevertToSnapshot";

/// The stop of a guest for a revert.
const FROM_SNAPSHOT: StopIntent = StopIntent {
    reason: shutoff_reason::FROM_SNAPSHOT,
    detail: event_detail::STOPPED_FROM_SNAPSHOT,
};

/// Paused for a revert's load.
const PAUSED_FROM_SNAPSHOT: StateReason = StateReason {
    state: DomainState::Paused,
    reason: paused_reason::FROM_SNAPSHOT,
};

/// The domain as the revert finds it.
struct Found {
    snap: SnapshotDef,
    /// All the domain's snapshots (a transient domain's live only here).
    snapshots: Snapshots,
    persistent: bool,
    live: Option<(Arc<Runtime>, i32, StateReason, DomainDef)>,
}

impl QemuDriver {
    /// `DOMAIN_REVERT_TO_SNAPSHOT`.
    pub(in crate::driver) async fn snapshot_revert_impl(
        &self,
        dom: &DomainRef,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        check_revert_flags(flags, RUNNING | PAUSED | FORCE | RESET_NVRAM)?;
        let lock = self.job(dom)?;
        let _lock = lock.acquire(JOB_HOLDER).await?;
        // libvirt reverts under a "start" job: not abortable.
        let job = self.shared.jobs.begin(
            dom.uuid,
            operation::SNAPSHOT_REVERT,
            JOB_HOLDER,
            Abort::Refused("cannot abort VM start; use virDomainDestroy instead"),
        )?;
        let outcome = self.revert_locked(dom, name, flags).await;
        job.finish(&outcome);
        outcome
    }

    async fn revert_locked(&self, dom: &DomainRef, name: &str, flags: u32) -> Result<()> {
        let found = self.read(|r| {
            let d = r.get(dom)?;
            Ok(Found {
                snap: d.snapshots.get(name)?.clone(),
                snapshots: d.snapshots.clone(),
                persistent: d.persistent,
                live: d
                    .live
                    .as_ref()
                    .map(|l| (Arc::clone(&l.runtime), l.id, l.state, l.def.clone())),
            })
        })?;
        let snap = &found.snap;
        check_transient_revert(found.persistent, snap.state, flags)?;
        if snap.is_external() {
            return Err(Error::OperationUnsupported {
                reason: "revert to external snapshot not supported yet".into(),
            });
        }
        match snap.state {
            SnapshotState::PmSuspended => {
                return Err(Error::OperationUnsupported {
                    reason: "qemu doesn't support reversion of snapshot taken in PMSUSPENDED \
                             state"
                        .into(),
                })
            }
            SnapshotState::NoState | SnapshotState::Blocked => {
                return Err(Error::internal(format!(
                    "Invalid target domain state '{}'. Refusing snapshot reversion",
                    snap.state
                )))
            }
            _ => {}
        }
        let Some(mut config) = snap.domain.clone() else {
            return Err(Error::SnapshotRevertRisky {
                reason: format!(
                    "snapshot '{name}' lacks domain '{}' rollback info",
                    dom.name
                ),
            });
        };
        config.name.clone_from(&dom.name);
        config.uuid = dom.uuid;
        config.id = None;
        let start = flags & (RUNNING | PAUSED) != 0;
        if flags & FORCE == 0 && found.live.is_some() && !snap.state.is_active() && start {
            return Err(Error::SnapshotRevertRisky {
                reason: "must respawn guest to start inactive snapshot".into(),
            });
        }
        let paused =
            flags & RUNNING == 0 && (snap.state == SnapshotState::Paused || flags & PAUSED != 0);
        let disks = internal_disks(snap, &config);
        if snap.state.is_active() {
            let in_place = match &found.live {
                Some((_, _, _, live_def)) => match check_abi_stability(live_def, &config) {
                    Ok(()) => true,
                    Err(_) if flags & FORCE != 0 => false,
                    Err(mismatch) => {
                        return Err(Error::SnapshotRevertRisky {
                            reason: mismatch.to_string(),
                        })
                    }
                },
                None => false,
            };
            self.install_config(dom, &config, found.persistent)?;
            match (&found.live, in_place) {
                (Some((runtime, id, state, _)), true) => {
                    self.load_in_place(dom, runtime, *id, *state, snap, &disks, paused)
                        .await?
                }
                (live, _) => {
                    if live.is_some() {
                        self.stop_locked(dom, FROM_SNAPSHOT, false).await?;
                        self.keep_transient(dom, &config, &found);
                    }
                    self.boot_into(dom, config, snap, &disks, paused).await?;
                }
            }
        } else {
            if found.live.is_some() {
                self.stop_locked(dom, FROM_SNAPSHOT, false).await?;
                self.keep_transient(dom, &config, &found);
            }
            qemu_img::each(qemu_img::Op::Apply, name, &images(&disks)).await?;
            self.install_config(dom, &config, found.persistent)?;
            if start {
                self.start_locked(dom, StartMode::Snapshot, Some(config))
                    .await?;
                self.leave_paused_or_run(dom, paused).await?;
            }
        }
        let mut snapshots = self.snapshots_of(dom)?;
        snapshots.set_current(Some(name));
        self.commit_snapshots(&dom.uuid, snapshots)?;
        info!(name = %dom.name, snapshot = name, "reverted to snapshot");
        Ok(())
    }

    /// The snapshot's definition becomes the domain's config (stored when
    /// persistent).
    fn install_config(&self, dom: &DomainRef, config: &DomainDef, persistent: bool) -> Result<()> {
        if persistent {
            self.shared
                .store
                .save(config)
                .map_err(|e| e.into_core(OP))?;
        }
        let mut reg = self.shared.lock()?;
        reg.get_mut(dom)?.config = config.clone();
        Ok(())
    }

    /// A transient domain stopped for a revert that starts it again is
    /// gone from the table once its QEMU ended: put it back, with its
    /// snapshots, as libvirt keeps it.
    fn keep_transient(&self, dom: &DomainRef, config: &DomainDef, found: &Found) {
        if found.persistent {
            return;
        }
        let Ok(mut reg) = self.shared.lock() else {
            return;
        };
        let snapshots = found.snapshots.clone();
        reg.domains.entry(dom.uuid).or_insert_with(|| Domain {
            config: config.clone(),
            persistent: false,
            autostart: false,
            shutoff_reason: shutoff_reason::FROM_SNAPSHOT,
            managed_save: false,
            live: None,
            snapshots,
            job: Arc::default(),
        });
    }

    /// Loads the snapshot into the running guest: paused first (suspended
    /// from snapshot) so QEMU does not run it in between.
    #[allow(clippy::too_many_arguments)]
    async fn load_in_place(
        &self,
        dom: &DomainRef,
        runtime: &Runtime,
        id: i32,
        state: StateReason,
        snap: &SnapshotDef,
        disks: &[(String, std::path::PathBuf)],
        paused: bool,
    ) -> Result<()> {
        let qmp = runtime.qmp.clone();
        if state.state == DomainState::Running {
            self.shared
                .pause_with(
                    &qmp,
                    &dom.uuid,
                    id,
                    state,
                    paused_reason::FROM_SNAPSHOT,
                    event_detail::SUSPENDED_FROM_SNAPSHOT,
                )
                .await
                .map_err(|e| e.into_core(OP))?;
        } else {
            self.shared.force_state(&dom.uuid, id, PAUSED_FROM_SNAPSHOT);
        }
        load(&qmp, snap, disks).await?;
        if paused {
            return Ok(());
        }
        self.run_from_snapshot(dom, runtime, id).await?;
        self.shared.emit(
            dom_ref_with(dom, id),
            LifecycleEvent::Resumed,
            event_detail::RESUMED_FROM_SNAPSHOT,
        );
        Ok(())
    }

    /// Starts QEMU paused with `config` and loads the snapshot into it.
    async fn boot_into(
        &self,
        dom: &DomainRef,
        config: DomainDef,
        snap: &SnapshotDef,
        disks: &[(String, std::path::PathBuf)],
        paused: bool,
    ) -> Result<()> {
        let started = self
            .start_locked(dom, StartMode::Snapshot, Some(config))
            .await?;
        let runtime = self.runtime(&started)?;
        if let Err(e) = load(&runtime.qmp, snap, disks).await {
            // A guest whose state did not load must not run.
            self.stop_locked(&started, FROM_SNAPSHOT, false).await?;
            return Err(e);
        }
        self.leave_paused_or_run(&started, paused).await
    }

    /// After a start for a revert: stays paused (suspended from snapshot)
    /// or runs (running, from snapshot).
    async fn leave_paused_or_run(&self, dom: &DomainRef, paused: bool) -> Result<()> {
        let (runtime, id) = self.runtime_and_id(dom)?;
        if paused {
            self.shared.emit(
                dom_ref_with(dom, id),
                LifecycleEvent::Suspended,
                event_detail::SUSPENDED_FROM_SNAPSHOT,
            );
            return Ok(());
        }
        self.run_from_snapshot(dom, &runtime, id).await
    }

    /// Records run `id` running (from snapshot) before `cont`, so QEMU's
    /// RESUME finds it so; back to paused if `cont` fails.
    async fn run_from_snapshot(&self, dom: &DomainRef, runtime: &Runtime, id: i32) -> Result<()> {
        let running = StateReason {
            state: DomainState::Running,
            reason: running_reason::FROM_SNAPSHOT,
        };
        self.shared.force_state(&dom.uuid, id, running);
        if let Err(e) = runtime.qmp.execute(&Cont).await {
            self.shared.force_state(&dom.uuid, id, PAUSED_FROM_SNAPSHOT);
            return Err(e.into_core(OP));
        }
        Ok(())
    }
}

/// `dom` as run `id`.
fn dom_ref_with(dom: &DomainRef, id: i32) -> DomainRef {
    DomainRef {
        name: dom.name.clone(),
        uuid: dom.uuid,
        id,
    }
}

/// QEMU's `snapshot-load` of `snap` into `disks` (the VM state from the
/// first).
async fn load(
    qmp: &crate::qmp::Qmp,
    snap: &SnapshotDef,
    disks: &[(String, std::path::PathBuf)],
) -> Result<()> {
    let devices = live_nodes(qmp, disks, "virDomainRevertToSnapshot").await?;
    let Some(vmstate) = devices.first().cloned() else {
        return Err(Error::internal(format!(
            "snapshot '{}' has no disk holding its memory",
            snap.name
        )));
    };
    let id = qmp_job::job_id("snapshot-load");
    let cmd = SnapshotLoad {
        job_id: id.clone(),
        tag: snap.name.clone(),
        vmstate,
        devices,
    };
    qmp_job::run(qmp, &id, &cmd, OP).await
}
