//! The migration entry points on a [`Domain`]: managed migration over two
//! connections ([`Domain::migrate`], like `virDomainMigrate3`) and
//! peer-to-peer migration driven by the source daemon
//! ([`Domain::migrate_to_uri`], like `virDomainMigrateToURI3`).

use migrated_core::flags::MigrateFlags;
use migrated_core::migration::MigrateRequest;
use migrated_core::typed_params::{migrate_param, TypedParams};
use migrated_proto::procs;

use crate::connection::Connection;
use crate::domain::Domain;
use crate::endpoint::{legacy_expressible, RemoteEndpoint};
use crate::error::Result;
use crate::sequencer::{self, feature, Timeline};
use crate::uri::ConnectUri;

fn invalid(operation: &'static str, reason: &str) -> crate::Error {
    migrated_core::Error::InvalidArg {
        operation,
        reason: reason.to_owned(),
    }
    .into()
}

impl Domain {
    /// Migrates this guest to the host behind `dest`, driving both daemons
    /// from this process (`virDomainMigrate3`, libvirt-wire.md §8.2) with
    /// `params` (`VIR_MIGRATE_PARAM_*`) and `flags` (`VIR_MIGRATE_*`).
    /// Answers the guest on the destination.
    ///
    /// # Errors
    /// `VIR_ERR_INVALID_ARG` for PEER2PEER or TUNNELLED (use
    /// [`Domain::migrate_to_uri`]) and for a bad parameter list; otherwise the
    /// sequencer's errors ([`sequencer::migrate`]).
    pub async fn migrate(
        &self,
        dest: &Connection,
        params: &TypedParams,
        flags: u64,
    ) -> Result<Domain> {
        self.migrate_timed(dest, params, flags, &mut Timeline::new())
            .await
    }

    /// [`Domain::migrate`], recording each step's duration in `timeline`.
    ///
    /// # Errors
    /// As [`Domain::migrate`].
    pub async fn migrate_timed(
        &self,
        dest: &Connection,
        params: &TypedParams,
        flags: u64,
        timeline: &mut Timeline,
    ) -> Result<Domain> {
        const API: &str = "virDomainMigrate3";
        let f = MigrateFlags(flags);
        if f.contains(MigrateFlags::NON_SHARED_DISK | MigrateFlags::NON_SHARED_INC) {
            return Err(invalid(
                API,
                "migration flags NON_SHARED_DISK and NON_SHARED_INC are mutually exclusive",
            ));
        }
        if f.contains(MigrateFlags::PEER2PEER) {
            return Err(invalid(
                API,
                "use virDomainMigrateToURI3 for peer-to-peer migration",
            ));
        }
        if f.contains(MigrateFlags::TUNNELLED) {
            return Err(invalid(
                API,
                "cannot perform tunnelled migration without using peer2peer flag",
            ));
        }
        let req = MigrateRequest::from_params(params, flags)?;
        let src = RemoteEndpoint::new(self.connection().clone());
        let dst = RemoteEndpoint::new(dest.clone());
        let ddom = sequencer::migrate_timed(&src, &dst, self.reference(), req, timeline).await?;
        Ok(Domain::from_wire(dest.clone(), ddom.into()))
    }

    /// Asks the source daemon to migrate this guest to `dconnuri` itself
    /// (`virDomainMigrateToURI3` with PEER2PEER, libvirt-wire.md §8.3); the
    /// call returns when the whole migration is over. PEER2PEER is added to
    /// `flags` when missing.
    ///
    /// # Errors
    /// `VIR_ERR_INVALID_ARG` when `dconnuri` names this host as "localhost*"
    /// or is not a URI; `VIR_ERR_ARGUMENT_UNSUPPORTED` when the source lacks
    /// peer-to-peer (or offline) migration; the source daemon's error for the
    /// migration itself.
    pub async fn migrate_to_uri(
        &self,
        dconnuri: &str,
        params: &TypedParams,
        flags: u64,
    ) -> Result<()> {
        const API: &str = "virDomainMigrateToURI3";
        let flags = flags | MigrateFlags::PEER2PEER.bits();
        let req = MigrateRequest::from_params(params, flags)?;
        let conn = self.connection();
        if req.is_offline() && !conn.supports_feature(feature::MIGRATION_OFFLINE).await? {
            return Err(migrated_core::Error::ArgumentUnsupported {
                what: "offline migration on the source host".into(),
                driver: "remote",
            }
            .into());
        }
        if !conn.supports_feature(feature::MIGRATION_P2P).await? {
            return Err(migrated_core::Error::ArgumentUnsupported {
                what: "peer-to-peer migration on the source host".into(),
                driver: "remote",
            }
            .into());
        }
        let parsed = ConnectUri::parse(dconnuri)?;
        let same_host = match parsed.host.as_deref() {
            None => true,
            Some(h) => h.starts_with("localhost"),
        };
        if same_host {
            return Err(invalid(API, "Attempt to migrate guest to the same host"));
        }
        let dom = self.reference().clone().into();
        if conn.supports_feature(feature::MIGRATION_PARAMS).await? {
            let args = migrated_proto::DomainMigratePerform3ParamsArgs {
                dom,
                dconnuri: Some(dconnuri.to_owned()),
                params: params.clone().into_wire(),
                cookie_in: Vec::new(),
                flags: u32::try_from(flags).map_err(|_| {
                    crate::Error::from(migrated_core::Error::UnknownFlags {
                        operation: API,
                        unknown: flags & !u64::from(u32::MAX),
                    })
                })?,
            };
            conn.call::<procs::DomainMigratePerform3Params>(&args)
                .await?;
            return Ok(());
        }
        legacy_expressible(&req)?;
        if conn.supports_feature(feature::MIGRATION_V3).await? {
            let args = migrated_proto::DomainMigratePerform3Args {
                dom,
                xmlin: req.dest_xml.clone(),
                cookie_in: Vec::new(),
                dconnuri: Some(dconnuri.to_owned()),
                uri: req.uri.clone(),
                flags,
                dname: req.dname.clone(),
                resource: req.bandwidth_mib_s.unwrap_or(0),
            };
            conn.call::<procs::DomainMigratePerform3>(&args).await?;
            return Ok(());
        }
        if params.get(migrate_param::URI).is_some() {
            return Err(migrated_core::Error::ArgumentUnsupported {
                what: "parameter migrate_uri with a v2 peer-to-peer source".into(),
                driver: "remote",
            }
            .into());
        }
        let args = migrated_proto::DomainMigratePerformArgs {
            dom,
            cookie: Vec::new(),
            uri: dconnuri.to_owned(),
            flags,
            dname: req.dname.clone(),
            resource: req.bandwidth_mib_s.unwrap_or(0),
        };
        conn.call::<procs::DomainMigratePerform>(&args).await
    }
}

impl Connection {
    /// `MIGRATION_STATUS` of migrated's own program: the migration job of the
    /// guest named `name` as the daemon's journal and registry know it (a
    /// guest kept paused after a restart says so in `detail`).
    ///
    /// # Errors
    /// [`crate::Error::Remote`] (e.g. `VIR_ERR_NO_DOMAIN`; "cannot find
    /// program" from a stock libvirtd), [`crate::Error::Rpc`].
    pub async fn migration_status(&self, name: &str) -> Result<migrated_proto::MigrationStatusRet> {
        const PROCEDURE: &str = "MIGRATED_PROC_MIGRATION_STATUS";
        let args = migrated_proto::MigrationStatusArgs {
            name: name.to_owned(),
        };
        let payload = migrated_xdr::to_bytes(&args).map_err(|source| crate::Error::Encode {
            procedure: PROCEDURE,
            source,
        })?;
        let reply = self
            .rpc()
            .call(
                migrated_proto::MIGRATED_PROGRAM,
                migrated_proto::MIGRATED_PROTOCOL_VERSION,
                migrated_proto::MigratedProcedure::MigrationStatus as i32,
                payload,
            )
            .await
            .map_err(|e| crate::Error::from_rpc(PROCEDURE, e))?;
        migrated_xdr::from_bytes(&reply).map_err(|source| crate::Error::Decode {
            procedure: PROCEDURE,
            source,
        })
    }
}
