//! `DOMAIN_SNAPSHOT_CREATE_XML` on QEMU guests: libvirt's checks of the
//! request (`qemuSnapshotPrepare` and the create call's validation), then
//! the internal snapshot itself and its metadata.

use std::sync::Arc;

use migrated_core::domain::{
    event_detail, paused_reason, shutoff_reason, DomainRef, DomainState, StateReason,
};
use migrated_core::flags::snapshot::create;
use migrated_core::job::Abort;
use migrated_core::snapshot::{
    align_disks, assign_external_names, check_create_flags, now, state_of,
};
use migrated_core::typed_params::job_stats::operation;
use migrated_core::xml::{DomainDef, SnapshotDef, SnapshotLocation, SnapshotParse, SnapshotState};
use migrated_core::{Error, Result};
use tracing::{info, warn};

use super::super::registry::{Runtime, StopIntent};
use super::super::QemuDriver;
use super::{images, internal_disks, live_nodes, qemu_img, qmp_job};
use crate::qmp::commands::SnapshotSave;

const OP: &str = "virDomainSnapshotCreateXML";
/// The call libvirt's job-lock error names while a snapshot holds the job.
const JOB_HOLDER: &str = "remoteDispatchDomainSnapshotCreateXML";

/// libvirt's name rules for a snapshot kept in files named after it.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.contains('/') {
        "name can't contain '/'"
    } else if name.starts_with('.') {
        "name can't start with '.'"
    } else {
        return Ok(());
    };
    Err(Error::SnapshotConfig {
        reason: format!("invalid snapshot name '{name}': {reason}"),
    })
}

/// Completes a new snapshot's memory and disk choices for a domain `dom`
/// that runs (`active`) or not, and refuses what libvirt 9.0 refuses or
/// this driver cannot do honestly (external memory snapshots).
fn plan(def: &mut SnapshotDef, dom: &DomainDef, active: bool, flags: u32) -> Result<()> {
    let disk_only = flags & create::DISK_ONLY != 0;
    if flags & create::LIVE != 0
        && (!active || def.memory.snapshot != Some(SnapshotLocation::External))
    {
        return Err(Error::OperationUnsupported {
            reason: "live snapshot creation is supported only during full system snapshots".into(),
        });
    }
    let memory = match def.memory.snapshot {
        Some(SnapshotLocation::Internal | SnapshotLocation::External) if disk_only || !active => {
            return Err(Error::ConfigUnsupported {
                reason: "memory state cannot be saved with offline or disk-only snapshot".into(),
            })
        }
        Some(SnapshotLocation::Manual) => {
            return Err(Error::ConfigUnsupported {
                reason: "'manual' memory snapshot mode not supported".into(),
            })
        }
        Some(chosen) => chosen,
        None if disk_only || !active => SnapshotLocation::No,
        None => SnapshotLocation::Internal,
    };
    def.memory.snapshot = Some(memory);
    let default = if disk_only || memory == SnapshotLocation::External {
        SnapshotLocation::External
    } else {
        SnapshotLocation::Internal
    };
    def.disks = align_disks(&def.disks, dom, default)?;
    let (mut internal, mut external, mut excluded) = (false, false, false);
    for (snap, disk) in def.disks.iter().zip(&dom.devices.disks) {
        match snap.snapshot {
            Some(SnapshotLocation::Internal) => {
                internal = true;
                if disk_only && active {
                    return Err(Error::ConfigUnsupported {
                        reason: format!(
                            "active qemu domains require external disk snapshots; disk {} \
                             requested internal",
                            snap.name
                        ),
                    });
                }
                let format = disk
                    .driver
                    .as_ref()
                    .and_then(|d| d.format.as_deref())
                    .unwrap_or("raw");
                if format != "qcow2" {
                    return Err(Error::ConfigUnsupported {
                        reason: format!(
                            "internal snapshot for disk {} unsupported for storage type {format}",
                            snap.name
                        ),
                    });
                }
            }
            Some(SnapshotLocation::External) => external = true,
            Some(SnapshotLocation::Manual) => {
                return Err(Error::ConfigUnsupported {
                    reason: format!("'manual' snapshot mode of disk {} not supported", snap.name),
                })
            }
            Some(SnapshotLocation::No) | None => {
                excluded |= disk.source.is_some() && !disk.readonly;
            }
        }
    }
    if !internal && !external && memory == SnapshotLocation::No {
        return Err(Error::ConfigUnsupported {
            reason: "nothing selected for snapshot".into(),
        });
    }
    if (memory == SnapshotLocation::Internal && !internal) || (internal && excluded) {
        return Err(Error::ConfigUnsupported {
            reason: "internal and full system snapshots require all disks to be selected for \
                     snapshot"
                .into(),
        });
    }
    if disk_only && !external {
        return Err(Error::ConfigUnsupported {
            reason: "disk-only snapshots require at least one disk to be selected for snapshot"
                .into(),
        });
    }
    let internal_memory = memory == SnapshotLocation::Internal;
    let external_memory = memory == SnapshotLocation::External;
    if (external && (internal || internal_memory)) || (internal && external_memory) {
        return Err(Error::ConfigUnsupported {
            reason: "mixing internal and external targets for a snapshot is not yet supported"
                .into(),
        });
    }
    if active && internal && memory == SnapshotLocation::No {
        return Err(Error::ConfigUnsupported {
            reason: "internal snapshot of a running VM must include the memory state".into(),
        });
    }
    if memory == SnapshotLocation::External {
        return Err(Error::OperationUnsupported {
            reason: "external memory snapshots (--memspec) are not supported by this driver; \
                     take a disk-only snapshot or an internal one"
                .into(),
        });
    }
    Ok(())
}

/// What the driver knows of the domain when the snapshot is taken.
struct Subject {
    persistent: bool,
    /// Running instance: its runtime, run id and state.
    live: Option<(Arc<Runtime>, i32, StateReason)>,
    /// The definition the snapshot records (the live one while it runs).
    def: DomainDef,
}

impl QemuDriver {
    /// `DOMAIN_SNAPSHOT_CREATE_XML`, as `qemuSnapshotCreateXML`.
    pub(in crate::driver) async fn snapshot_create_impl(
        &self,
        dom: &DomainRef,
        xml: &str,
        flags: u32,
    ) -> Result<String> {
        use create::*;
        check_create_flags(
            flags,
            REDEFINE
                | CURRENT
                | NO_METADATA
                | HALT
                | DISK_ONLY
                | REUSE_EXT
                | QUIESCE
                | ATOMIC
                | LIVE
                | VALIDATE,
        )?;
        // libvirt's qemuSnapshotCreateXML flag rules.
        if flags & LIVE != 0 && flags & REDEFINE != 0 {
            return Err(Error::InvalidArg {
                operation: OP,
                reason: "Flags 'VIR_DOMAIN_SNAPSHOT_CREATE_LIVE' and \
                         'VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE' are mutually exclusive"
                    .into(),
            });
        }
        if flags & QUIESCE != 0 && flags & DISK_ONLY == 0 {
            return Err(Error::InvalidArg {
                operation: OP,
                reason: "Flag 'VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY' is required by flag \
                         'VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE'"
                    .into(),
            });
        }
        let redefine = flags & REDEFINE != 0;
        let how = SnapshotParse {
            redefine,
            internal: false,
        };
        let def = SnapshotDef::parse(xml, how, now()).map_err(Error::SnapshotXml)?;
        check_name(&def.name)?;
        let lock = self.job(dom)?;
        let _lock = lock.acquire(JOB_HOLDER).await?;
        if redefine {
            let mut snapshots = self.snapshots_of(dom)?;
            let name = def.name.clone();
            snapshots.redefine(def, flags & CURRENT != 0)?;
            self.commit_snapshots(&dom.uuid, snapshots)?;
            return Ok(name);
        }
        let job = self.shared.jobs.begin(
            dom.uuid,
            operation::SNAPSHOT,
            JOB_HOLDER,
            Abort::Refused("cannot abort internal snapshot job"),
        )?;
        let outcome = self.take_snapshot(dom, def, flags).await;
        job.finish(&outcome);
        outcome
    }

    async fn take_snapshot(
        &self,
        dom: &DomainRef,
        mut def: SnapshotDef,
        flags: u32,
    ) -> Result<String> {
        let subject = self.read(|r| {
            let d = r.get(dom)?;
            d.snapshots.check_new(&def.name)?;
            Ok(match &d.live {
                Some(live) => Subject {
                    persistent: d.persistent,
                    live: Some((Arc::clone(&live.runtime), live.id, live.state)),
                    def: live.def.clone(),
                },
                None => Subject {
                    persistent: d.persistent,
                    live: None,
                    def: d.config.clone(),
                },
            })
        })?;
        if !subject.persistent && flags & create::HALT != 0 {
            return Err(Error::invalid(
                "cannot halt after transient domain snapshot",
            ));
        }
        plan(&mut def, &subject.def, subject.live.is_some(), flags)?;
        let external = def.is_external();
        if external {
            assign_external_names(&mut def.disks, &subject.def, &def.name)?;
        }
        let disks = internal_disks(&def, &subject.def);
        def.state = match &subject.live {
            _ if flags & create::DISK_ONLY != 0 => SnapshotState::DiskSnapshot,
            Some((_, _, state)) => state_of(state.state),
            None => SnapshotState::Shutoff,
        };
        let mut recorded = subject.def.clone();
        recorded.id = None;
        def.domain = Some(recorded);
        let name = def.name.clone();
        match &subject.live {
            _ if external => {
                let live = subject.live.as_ref().map(|(rt, id, _)| (rt.as_ref(), *id));
                self.take_external(dom, live, &subject.def, &mut def, flags)
                    .await?
            }
            Some((runtime, id, state)) => {
                self.save_running(dom, runtime, *id, *state, &def, flags)
                    .await?
            }
            None => qemu_img::each(qemu_img::Op::Create, &name, &images(&disks)).await?,
        }
        info!(name = %dom.name, snapshot = %name, state = %def.state, "snapshot taken");
        if flags & create::NO_METADATA == 0 {
            let mut snapshots = self.snapshots_of(dom)?;
            snapshots.add(def)?;
            self.commit_snapshots(&dom.uuid, snapshots).map_err(|e| {
                Error::internal(format!("unable to save metadata for snapshot {name}: {e}"))
            })?;
        }
        Ok(name)
    }

    /// The memory and disks of a running or paused guest into its qcow2
    /// images (`snapshot-save`): paused meanwhile (reason "snapshot"),
    /// then resumed, or stopped (from snapshot) with `HALT`.
    async fn save_running(
        &self,
        dom: &DomainRef,
        runtime: &Runtime,
        id: i32,
        state: StateReason,
        def: &SnapshotDef,
        flags: u32,
    ) -> Result<()> {
        let qmp = runtime.qmp.clone();
        let Some(domain) = def.domain.as_ref() else {
            return Err(Error::internal("snapshot without its domain definition"));
        };
        let devices = live_nodes(&qmp, &internal_disks(def, domain), OP).await?;
        let Some(vmstate) = devices.first().cloned() else {
            return Err(Error::internal("no disk to hold the snapshot's memory"));
        };
        let resume = state.state == DomainState::Running;
        if resume {
            self.shared
                .pause_for(&qmp, &dom.uuid, id, state, paused_reason::SNAPSHOT)
                .await
                .map_err(|e| e.into_core(OP))?;
        }
        let job_id = qmp_job::job_id("snapshot-save");
        let cmd = SnapshotSave {
            job_id: job_id.clone(),
            tag: def.name.clone(),
            vmstate,
            devices,
        };
        let saved = qmp_job::run(&qmp, &job_id, &cmd, OP).await;
        if saved.is_ok() && flags & create::HALT != 0 {
            let intent = StopIntent {
                reason: shutoff_reason::FROM_SNAPSHOT,
                detail: event_detail::STOPPED_FROM_SNAPSHOT,
            };
            return self.stop_locked(dom, intent, false).await;
        }
        if resume {
            if let Err(e) = self.shared.unpause(&qmp, &dom.uuid, id).await {
                warn!(error = %e.chain(), "resuming after snapshot failed");
                if saved.is_ok() {
                    return Err(Error::OperationFailed {
                        operation: OP,
                        reason: "resuming after snapshot failed".into(),
                    });
                }
            }
        }
        saved
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_domain;
    use super::*;
    use migrated_core::error::ErrorCode;
    use migrated_core::xml::SnapshotDisk;

    fn snap(xml: &str) -> SnapshotDef {
        SnapshotDef::parse(xml, SnapshotParse::default(), 1).expect("snapshot")
    }

    fn refusal(def: &mut SnapshotDef, d: &DomainDef, active: bool, flags: u32) -> String {
        plan(def, d, active, flags)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn qcow2_domains_get_full_internal_snapshots() {
        let d = test_domain(&["qcow2", "qcow2"]);
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        plan(&mut s, &d, true, 0).expect("running");
        assert_eq!(s.memory.snapshot, Some(SnapshotLocation::Internal));
        assert!(s
            .disks
            .iter()
            .all(|d| d.snapshot == Some(SnapshotLocation::Internal)));
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        plan(&mut s, &d, false, 0).expect("shut off");
        assert_eq!(s.memory.snapshot, Some(SnapshotLocation::No));
    }

    #[test]
    fn libvirt_refusals() {
        let raw = test_domain(&["qcow2", "raw"]);
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        let e = plan(&mut s, &raw, true, 0).expect_err("raw disk");
        assert_eq!(e.code(), ErrorCode::ConfigUnsupported);
        assert!(
            e.to_string()
                .contains("internal snapshot for disk vdb unsupported for storage type raw"),
            "{e}"
        );

        let d = test_domain(&["qcow2", "qcow2"]);
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        s.disks = vec![SnapshotDisk {
            name: "vdb".into(),
            snapshot: Some(SnapshotLocation::No),
            ..SnapshotDisk::default()
        }];
        assert!(refusal(&mut s, &d, true, 0).contains("require all disks"));

        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        plan(&mut s, &d, true, create::DISK_ONLY).expect("disk-only is external");
        assert!(s
            .disks
            .iter()
            .all(|d| d.snapshot == Some(SnapshotLocation::External)));
        let mut s = snap(
            "<domainsnapshot><name>s</name><disks><disk name='vda' snapshot='internal'/>\
             </disks></domainsnapshot>",
        );
        let e = refusal(&mut s, &d, true, create::DISK_ONLY);
        assert!(e.contains("require external disk snapshots"), "{e}");
        let mut s = snap(
            "<domainsnapshot><name>s</name><memory snapshot='external' file='/m'/>\
             </domainsnapshot>",
        );
        assert!(refusal(&mut s, &d, true, 0).contains("--memspec"));

        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        assert!(refusal(&mut s, &d, true, create::LIVE).contains("live snapshot creation"));

        let mut s =
            snap("<domainsnapshot><name>s</name><memory snapshot='internal'/></domainsnapshot>");
        assert!(refusal(&mut s, &d, false, 0).contains("memory state cannot be saved"));

        let none = test_domain(&[]);
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        assert!(refusal(&mut s, &none, false, 0).contains("nothing selected"));
        let mut s = snap("<domainsnapshot><name>s</name></domainsnapshot>");
        assert!(refusal(&mut s, &none, true, 0).contains("require all disks"));
    }

    #[test]
    fn names_as_libvirt() {
        check_name("fine-name").expect("fine");
        assert!(check_name("a/b").is_err());
        assert!(check_name(".hidden").is_err());
    }
}
