//! [`Domain`]: a handle on one guest, like libvirt's `virDomainPtr`.
//!
//! A handle is a snapshot of the guest's name, UUID and id taken when it was
//! looked up; calls send it back to the server, which resolves the guest by
//! UUID. Only [`Domain::create`] and [`Domain::create_with_flags`] refresh
//! the id, as libvirt's remote driver does.
//!
//! Values come back as `migrated-core` types ([`DomainInfo`],
//! [`StateReason`], ...) and flags are `migrated_core::flags::*`.

use migrated_core::domain::{DomainInfo, DomainRef, DomainState, StateReason};
use migrated_core::typed_params::TypedParams;
use migrated_proto::{procs, NonnullDomain};
use serde::Serialize;
use uuid::Uuid;

use crate::connection::{c_chars_to_string, Connection};
use crate::error::{Error, Result};

/// `virDomainJobInfo` (DOMAIN_GET_JOB_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobInfo {
    /// `virDomainJobType`: 0 none, 1 bounded, 2 unbounded, 3 completed, 4 failed, 5 cancelled.
    pub job_type: i32,
    /// Milliseconds since the job started.
    pub time_elapsed_ms: u64,
    /// Milliseconds expected until the end (bounded jobs).
    pub time_remaining_ms: u64,
    /// Total bytes to process.
    pub data_total: u64,
    /// Bytes processed.
    pub data_processed: u64,
    /// Bytes remaining.
    pub data_remaining: u64,
    /// Total guest memory bytes.
    pub mem_total: u64,
    /// Memory bytes processed.
    pub mem_processed: u64,
    /// Memory bytes remaining.
    pub mem_remaining: u64,
    /// Total file bytes (disk migration).
    pub file_total: u64,
    /// File bytes processed.
    pub file_processed: u64,
    /// File bytes remaining.
    pub file_remaining: u64,
}

/// A handle on one guest.
#[derive(Debug, Clone)]
pub struct Domain {
    conn: Connection,
    dom: DomainRef,
}

impl Domain {
    pub(crate) fn from_wire(conn: Connection, dom: NonnullDomain) -> Self {
        Self {
            conn,
            dom: dom.into(),
        }
    }

    pub(crate) fn wire(&self) -> NonnullDomain {
        self.dom.clone().into()
    }

    /// The handle as `migrated-core` describes a domain (name, UUID, id).
    pub fn reference(&self) -> &DomainRef {
        &self.dom
    }

    /// The connection this handle belongs to.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The guest's name.
    pub fn name(&self) -> &str {
        &self.dom.name
    }

    /// The guest's UUID.
    pub fn uuid(&self) -> Uuid {
        self.dom.uuid
    }

    /// The id it had when looked up; `None` when it was not running.
    pub fn id(&self) -> Option<u32> {
        u32::try_from(self.dom.id).ok()
    }

    /// `DOMAIN_GET_INFO`.
    ///
    /// # Errors
    /// See [`Connection::call`]; [`Error::InvalidReply`] for an unknown state.
    pub async fn info(&self) -> Result<DomainInfo> {
        let args = migrated_proto::DomainGetInfoArgs { dom: self.wire() };
        let ret = self.conn.call::<procs::DomainGetInfo>(&args).await?;
        Ok(DomainInfo {
            state: state_from_code("DOMAIN_GET_INFO", i32::from(ret.state))?,
            max_mem_kib: ret.max_mem,
            memory_kib: ret.memory,
            nr_virt_cpu: ret.nr_virt_cpu,
            cpu_time_ns: ret.cpu_time,
        })
    }

    /// `DOMAIN_GET_STATE`: the state and its reason (a per-state number).
    ///
    /// # Errors
    /// See [`Connection::call`]; [`Error::InvalidReply`] for an unknown state.
    pub async fn state(&self) -> Result<StateReason> {
        let args = migrated_proto::DomainGetStateArgs {
            dom: self.wire(),
            flags: 0,
        };
        let ret = self.conn.call::<procs::DomainGetState>(&args).await?;
        Ok(StateReason {
            state: state_from_code("DOMAIN_GET_STATE", ret.state)?,
            reason: ret.reason,
        })
    }

    /// `DOMAIN_GET_OS_TYPE` ("hvm", ...).
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn os_type(&self) -> Result<String> {
        let args = migrated_proto::DomainGetOsTypeArgs { dom: self.wire() };
        Ok(self
            .conn
            .call::<procs::DomainGetOsType>(&args)
            .await?
            .r#type)
    }

    /// `DOMAIN_GET_XML_DESC` with `migrated_core::flags::xml::*` flags.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn xml_desc(&self, flags: u32) -> Result<String> {
        let args = migrated_proto::DomainGetXmlDescArgs {
            dom: self.wire(),
            flags,
        };
        Ok(self.conn.call::<procs::DomainGetXmlDesc>(&args).await?.xml)
    }

    /// Starts a defined domain with `DOMAIN_CREATE`, then refreshes the id
    /// with `DOMAIN_LOOKUP_BY_UUID` (libvirt's remote driver does the same,
    /// because CREATE returns nothing).
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn create(&mut self) -> Result<()> {
        let args = migrated_proto::DomainCreateArgs { dom: self.wire() };
        self.conn.call::<procs::DomainCreate>(&args).await?;
        let fresh = self.conn.lookup_domain_by_uuid(self.dom.uuid).await?;
        self.dom.id = fresh.dom.id;
        Ok(())
    }

    /// `DOMAIN_CREATE_WITH_FLAGS` (`migrated_core::flags::create::*`); updates the id.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn create_with_flags(&mut self, flags: u32) -> Result<()> {
        let args = migrated_proto::DomainCreateWithFlagsArgs {
            dom: self.wire(),
            flags,
        };
        let ret = self
            .conn
            .call::<procs::DomainCreateWithFlags>(&args)
            .await?;
        self.dom.id = ret.dom.id;
        Ok(())
    }

    /// `DOMAIN_DESTROY`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn destroy(&self) -> Result<()> {
        let args = migrated_proto::DomainDestroyArgs { dom: self.wire() };
        self.conn.call::<procs::DomainDestroy>(&args).await
    }

    /// `DOMAIN_SUSPEND`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn suspend(&self) -> Result<()> {
        let args = migrated_proto::DomainSuspendArgs { dom: self.wire() };
        self.conn.call::<procs::DomainSuspend>(&args).await
    }

    /// `DOMAIN_RESUME`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn resume(&self) -> Result<()> {
        let args = migrated_proto::DomainResumeArgs { dom: self.wire() };
        self.conn.call::<procs::DomainResume>(&args).await
    }

    /// `DOMAIN_SHUTDOWN`: asks the guest to shut down.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn shutdown(&self) -> Result<()> {
        let args = migrated_proto::DomainShutdownArgs { dom: self.wire() };
        self.conn.call::<procs::DomainShutdown>(&args).await
    }

    /// Removes the persistent config: `DOMAIN_UNDEFINE` when `flags` is 0
    /// (what virsh sends), else `DOMAIN_UNDEFINE_FLAGS`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn undefine(&self, flags: u32) -> Result<()> {
        if flags == 0 {
            let args = migrated_proto::DomainUndefineArgs { dom: self.wire() };
            self.conn.call::<procs::DomainUndefine>(&args).await
        } else {
            let args = migrated_proto::DomainUndefineFlagsArgs {
                dom: self.wire(),
                flags,
            };
            self.conn.call::<procs::DomainUndefineFlags>(&args).await
        }
    }

    /// `DOMAIN_GET_AUTOSTART`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn autostart(&self) -> Result<bool> {
        let args = migrated_proto::DomainGetAutostartArgs { dom: self.wire() };
        Ok(self
            .conn
            .call::<procs::DomainGetAutostart>(&args)
            .await?
            .autostart
            != 0)
    }

    /// `DOMAIN_SET_AUTOSTART`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn set_autostart(&self, enabled: bool) -> Result<()> {
        let args = migrated_proto::DomainSetAutostartArgs {
            dom: self.wire(),
            autostart: i32::from(enabled),
        };
        self.conn.call::<procs::DomainSetAutostart>(&args).await
    }

    /// `DOMAIN_IS_ACTIVE`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn is_active(&self) -> Result<bool> {
        let args = migrated_proto::DomainIsActiveArgs { dom: self.wire() };
        Ok(self.conn.call::<procs::DomainIsActive>(&args).await?.active != 0)
    }

    /// `DOMAIN_IS_PERSISTENT`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn is_persistent(&self) -> Result<bool> {
        let args = migrated_proto::DomainIsPersistentArgs { dom: self.wire() };
        Ok(self
            .conn
            .call::<procs::DomainIsPersistent>(&args)
            .await?
            .persistent
            != 0)
    }

    /// `DOMAIN_GET_JOB_INFO`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn job_info(&self) -> Result<JobInfo> {
        let args = migrated_proto::DomainGetJobInfoArgs { dom: self.wire() };
        let r = self.conn.call::<procs::DomainGetJobInfo>(&args).await?;
        Ok(JobInfo {
            job_type: r.r#type,
            time_elapsed_ms: r.time_elapsed,
            time_remaining_ms: r.time_remaining,
            data_total: r.data_total,
            data_processed: r.data_processed,
            data_remaining: r.data_remaining,
            mem_total: r.mem_total,
            mem_processed: r.mem_processed,
            mem_remaining: r.mem_remaining,
            file_total: r.file_total,
            file_processed: r.file_processed,
            file_remaining: r.file_remaining,
        })
    }

    /// `DOMAIN_GET_JOB_STATS`: the job type and its typed statistics.
    ///
    /// # Errors
    /// See [`Connection::call`]; [`Error::ReplyValue`] for a malformed parameter.
    pub async fn job_stats(&self, flags: u32) -> Result<(i32, TypedParams)> {
        let args = migrated_proto::DomainGetJobStatsArgs {
            dom: self.wire(),
            flags,
        };
        let ret = self.conn.call::<procs::DomainGetJobStats>(&args).await?;
        let params =
            TypedParams::from_wire(ret.params, migrated_proto::REMOTE_DOMAIN_JOB_STATS_MAX)
                .map_err(|source| Error::ReplyValue {
                    procedure: "DOMAIN_GET_JOB_STATS",
                    source: Box::new(source),
                })?;
        Ok((ret.r#type, params))
    }

    /// `DOMAIN_ABORT_JOB`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn abort_job(&self) -> Result<()> {
        let args = migrated_proto::DomainAbortJobArgs { dom: self.wire() };
        self.conn.call::<procs::DomainAbortJob>(&args).await
    }

    /// `DOMAIN_MIGRATE_SET_MAX_SPEED`: bandwidth in MiB/s.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn migrate_set_max_speed(&self, bandwidth: u64, flags: u32) -> Result<()> {
        let args = migrated_proto::DomainMigrateSetMaxSpeedArgs {
            dom: self.wire(),
            bandwidth,
            flags,
        };
        self.conn
            .call::<procs::DomainMigrateSetMaxSpeed>(&args)
            .await
    }

    /// `DOMAIN_MIGRATE_GET_MAX_SPEED`: bandwidth in MiB/s.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn migrate_get_max_speed(&self, flags: u32) -> Result<u64> {
        let args = migrated_proto::DomainMigrateGetMaxSpeedArgs {
            dom: self.wire(),
            flags,
        };
        Ok(self
            .conn
            .call::<procs::DomainMigrateGetMaxSpeed>(&args)
            .await?
            .bandwidth)
    }

    /// `DOMAIN_MIGRATE_SET_MAX_DOWNTIME`: milliseconds.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn migrate_set_max_downtime(&self, downtime_ms: u64, flags: u32) -> Result<()> {
        let args = migrated_proto::DomainMigrateSetMaxDowntimeArgs {
            dom: self.wire(),
            downtime: downtime_ms,
            flags,
        };
        self.conn
            .call::<procs::DomainMigrateSetMaxDowntime>(&args)
            .await
    }

    /// `DOMAIN_MIGRATE_GET_MAX_DOWNTIME`: milliseconds.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn migrate_get_max_downtime(&self, flags: u32) -> Result<u64> {
        let args = migrated_proto::DomainMigrateGetMaxDowntimeArgs {
            dom: self.wire(),
            flags,
        };
        Ok(self
            .conn
            .call::<procs::DomainMigrateGetMaxDowntime>(&args)
            .await?
            .downtime)
    }

    /// `DOMAIN_GET_SECURITY_LABEL`: the label and whether it is enforced
    /// (empty label: the domain has none).
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn security_label(&self) -> Result<(String, bool)> {
        let args = migrated_proto::DomainGetSecurityLabelArgs { dom: self.wire() };
        let ret = self
            .conn
            .call::<procs::DomainGetSecurityLabel>(&args)
            .await?;
        Ok((c_chars_to_string(&ret.label), ret.enforcing != 0))
    }

    /// `DOMAIN_GET_MESSAGES`: notes the driver keeps about the domain
    /// (e.g. "tainted: ...").
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn messages(&self, flags: u32) -> Result<Vec<String>> {
        let args = migrated_proto::DomainGetMessagesArgs {
            dom: self.wire(),
            flags,
        };
        Ok(self
            .conn
            .call::<procs::DomainGetMessages>(&args)
            .await?
            .msgs)
    }

    /// `DOMAIN_HAS_MANAGED_SAVE_IMAGE`.
    ///
    /// # Errors
    /// See [`Connection::call`].
    pub async fn has_managed_save_image(&self) -> Result<bool> {
        let args = migrated_proto::DomainHasManagedSaveImageArgs {
            dom: self.wire(),
            flags: 0,
        };
        Ok(self
            .conn
            .call::<procs::DomainHasManagedSaveImage>(&args)
            .await?
            .result
            != 0)
    }
}

/// Maps libvirt's `virDomainState` number from a reply.
fn state_from_code(procedure: &'static str, code: i32) -> Result<DomainState> {
    Ok(match code {
        0 => DomainState::NoState,
        1 => DomainState::Running,
        2 => DomainState::Blocked,
        3 => DomainState::Paused,
        4 => DomainState::Shutdown,
        5 => DomainState::Shutoff,
        6 => DomainState::Crashed,
        7 => DomainState::PmSuspended,
        _ => {
            return Err(Error::InvalidReply {
                procedure,
                reason: format!("unknown domain state {code}"),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libvirt_state_maps_back_to_its_number() {
        for code in 0..=7 {
            let state = state_from_code("X", code).expect("libvirt defines 0..=7");
            assert_eq!(state as i32, code);
        }
    }

    #[test]
    fn unknown_state_numbers_are_an_invalid_reply() {
        for code in [-1, 8, 99] {
            assert!(matches!(
                state_from_code("X", code),
                Err(Error::InvalidReply { .. })
            ));
        }
    }
}
