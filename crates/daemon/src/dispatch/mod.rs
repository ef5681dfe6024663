//! Running one decoded call: the single `match` over [`Call`], split by
//! area into [`connection`], [`domain`] and [`events`].
//!
//! Every handler returns its procedure's `*Ret` value (or `()`), which is
//! encoded here with `migrated_xdr::to_bytes`; driver errors become wire
//! errors through [`crate::wire::to_wire_error`].

pub mod connection;
pub mod console;
pub mod devices;
pub mod devtune;
pub mod domain;
pub mod dump;
pub mod events;
pub mod hotplug;
pub mod metadata;
pub mod migration;
pub mod migration_jobs;
pub mod migration_local;
pub mod migration_peers;
pub mod migration_tunnel;
pub mod node;
pub mod qemu;
pub mod save;
pub mod snapshots;
pub mod stats;
pub mod tune;
pub mod vcpu_memory;

use bytes::Bytes;
use migrated_proto::{Call, NonnullDomain, Procedure};
use migrated_rpc::{CallContext, WireError};
use serde::Serialize;

use crate::handler::{Handler, Session};
use crate::wire;
use migrated_core::flags::{affect, memory};

/// Encodes a handler's result as the REPLY payload.
fn reply<T: Serialize>(proc_: Procedure, ret: &T) -> Result<Bytes, WireError> {
    migrated_xdr::to_bytes(ret)
        .map(Bytes::from)
        .map_err(|err| wire::cannot_encode(proc_.name(), &err))
}

/// A call whose procedure this daemon does not implement
/// (`VIR_ERR_NO_SUPPORT`: stock clients fall back on it).
fn unsupported(proc_: Procedure) -> WireError {
    wire::not_supported(&crate::handler::api_name(proc_))
}

/// Runs `call` for `session` and encodes its reply.
///
/// # Errors
/// The call's `remote_error`.
pub async fn run(
    handler: &Handler,
    session: &Session,
    ctx: &CallContext,
    call: Call,
) -> Result<Bytes, WireError> {
    use connection as c;
    use domain as d;
    use events as e;
    use hotplug::FLAGLESS;
    use migrated_core::hotplug::Change::{Attach, Detach, Update};
    use migration as m;
    use migration_jobs as j;

    // The arms after the read-only queries box their futures: an async fn's
    // state is as large as its largest await, and this future is built and
    // moved on every call (a GET_HOSTNAME paid for copying the migration
    // states, ~20% of the daemon's CPU in `bench rpc` (c)).
    let p = call.procedure();
    if j::settle_held_by_operator(handler, session, &call).await?
        || migration::guard(handler, session, &call).await?
    {
        return reply(p, &());
    }
    match call {
        // connection & authentication
        Call::AuthList => reply(p, &c::auth_list()),
        Call::ConnectOpen(args) => reply(p, &c::open(handler, session, args)?),
        Call::ConnectClose => reply(p, &c::close(session)),
        Call::ConnectSupportsFeature(args) => {
            reply(p, &c::supports_feature(handler, session, args))
        }
        Call::ConnectGetType => reply(p, &c::get_type(session).await?),
        Call::ConnectGetVersion => reply(p, &c::get_version(session).await?),
        Call::ConnectGetLibVersion => reply(p, &c::get_lib_version()),
        Call::ConnectGetHostname => reply(p, &c::get_hostname(handler)),
        Call::ConnectGetUri => reply(p, &c::get_uri(session)?),
        Call::ConnectGetCapabilities => reply(p, &c::get_capabilities(handler, session).await?),
        Call::ConnectGetSysinfo(args) => reply(p, &c::get_sysinfo(session, args).await?),
        Call::ConnectGetDomainCapabilities(args) => {
            reply(p, &c::get_domain_capabilities(session, args).await?)
        }
        Call::ConnectGetMaxVcpus(args) => reply(p, &c::get_max_vcpus(args)),
        Call::ConnectIsSecure => reply(p, &c::is_secure(ctx)),
        Call::NodeGetInfo => reply(p, &c::node_get_info(session).await?),
        Call::NodeGetSecurityModel => reply(p, &c::node_get_security_model(session).await?),
        Call::NodeGetMemoryStats(args) => reply(p, &node::get_memory_stats(session, args).await?),
        Call::NodeGetCpuStats(args) => reply(p, &node::get_cpu_stats(session, args).await?),
        Call::NodeGetFreeMemory => reply(p, &node::get_free_memory(session).await?),
        Call::NodeGetCellsFreeMemory(args) => {
            reply(p, &node::get_cells_free_memory(session, args).await?)
        }
        Call::ConnectRegisterCloseCallback => reply(p, &c::close_callback(session, true)),
        Call::ConnectUnregisterCloseCallback => reply(p, &c::close_callback(session, false)),

        // listing
        Call::ConnectListAllDomains(args) => reply(p, &d::list_all(session, args).await?),
        Call::ConnectNumOfDomains => reply(p, &d::num_of_domains(session).await?),
        Call::ConnectListDomains(args) => reply(p, &d::list_domains(session, args).await?),
        Call::ConnectGetAllDomainStats(args) => {
            reply(p, &Box::pin(stats::get_all(session, args)).await?)
        }
        Call::ConnectNumOfDefinedDomains => reply(p, &d::num_of_defined(session).await?),
        Call::ConnectListDefinedDomains(args) => reply(p, &d::list_defined(session, args).await?),

        // lookup, state, config
        Call::DomainLookupByName(args) => reply(p, &d::lookup_by_name(session, args).await?),
        Call::DomainLookupByUuid(args) => reply(p, &d::lookup_by_uuid(session, args).await?),
        Call::DomainLookupById(args) => reply(p, &d::lookup_by_id(session, args).await?),
        Call::DomainGetInfo(args) => reply(p, &d::get_info(session, args).await?),
        Call::DomainGetMaxMemory(args) => reply(p, &d::get_max_memory(session, args).await?),
        Call::DomainGetState(args) => reply(p, &d::get_state(session, args).await?),
        Call::DomainGetControlInfo(args) => {
            reply(p, &j::get_control_info(handler, session, args).await?)
        }
        Call::DomainGetVcpus(args) => reply(p, &vcpu_memory::get_vcpus(session, args).await?),
        Call::DomainSetVcpus(args) => reply(
            p,
            &Box::pin(vcpu_memory::set_vcpus(
                session,
                args.dom,
                args.nvcpus,
                affect::LIVE,
            ))
            .await?,
        ),
        Call::DomainSetVcpusFlags(args) => reply(
            p,
            &Box::pin(vcpu_memory::set_vcpus(
                session,
                args.dom,
                args.nvcpus,
                args.flags,
            ))
            .await?,
        ),
        Call::DomainGetVcpusFlags(args) => {
            reply(p, &vcpu_memory::get_vcpus_flags(session, args).await?)
        }
        Call::DomainGetMaxVcpus(args) => {
            reply(p, &vcpu_memory::get_max_vcpus(session, args).await?)
        }
        Call::DomainGetVcpuPinInfo(args) => {
            reply(p, &vcpu_memory::get_vcpu_pin_info(session, args).await?)
        }
        Call::DomainGetSchedulerType(args) => {
            reply(p, &tune::get_scheduler_type(session, args).await?)
        }
        Call::DomainGetSchedulerParameters(args) => {
            reply(p, &tune::get_scheduler_parameters(session, args).await?)
        }
        Call::DomainGetSchedulerParametersFlags(args) => reply(
            p,
            &tune::get_scheduler_parameters_flags(session, args).await?,
        ),
        Call::DomainSetSchedulerParameters(args) => reply(
            p,
            &Box::pin(tune::set_scheduler_parameters(session, args)).await?,
        ),
        Call::DomainSetSchedulerParametersFlags(args) => reply(
            p,
            &Box::pin(tune::set_scheduler_parameters_flags(session, args)).await?,
        ),
        Call::DomainGetMemoryParameters(args) => {
            reply(p, &tune::get_memory_parameters(session, args).await?)
        }
        Call::DomainSetMemoryParameters(args) => reply(
            p,
            &Box::pin(tune::set_memory_parameters(session, args)).await?,
        ),
        Call::DomainGetCpuStats(args) => reply(p, &tune::get_cpu_stats(session, args).await?),
        Call::DomainGetHostname(args) => reply(p, &tune::get_hostname(session, args).await?),
        Call::DomainGetTime(args) => reply(p, &tune::get_time(session, args).await?),
        Call::DomainSetTime(args) => reply(p, &Box::pin(tune::set_time(session, args)).await?),
        Call::DomainGetBlkioParameters(args) => {
            reply(p, &devtune::get_blkio_parameters(session, args).await?)
        }
        Call::DomainSetBlkioParameters(args) => reply(
            p,
            &Box::pin(devtune::set_blkio_parameters(session, args)).await?,
        ),
        Call::DomainGetBlockIoTune(args) => {
            reply(p, &devtune::get_block_io_tune(session, args).await?)
        }
        Call::DomainSetBlockIoTune(args) => reply(
            p,
            &Box::pin(devtune::set_block_io_tune(session, args)).await?,
        ),
        Call::DomainGetNumaParameters(args) => {
            reply(p, &devtune::get_numa_parameters(session, args).await?)
        }
        Call::DomainSetNumaParameters(args) => reply(
            p,
            &Box::pin(devtune::set_numa_parameters(session, args)).await?,
        ),
        Call::DomainGetInterfaceParameters(args) => {
            reply(p, &devtune::get_interface_parameters(session, args).await?)
        }
        Call::DomainSetInterfaceParameters(args) => reply(
            p,
            &Box::pin(devtune::set_interface_parameters(session, args)).await?,
        ),
        Call::DomainInterfaceAddresses(args) => reply(
            p,
            &Box::pin(devtune::interface_addresses(session, args)).await?,
        ),
        Call::DomainGetPerfEvents(args) => {
            reply(p, &devtune::get_perf_events(session, args).await?)
        }
        Call::DomainSetPerfEvents(args) => {
            reply(p, &Box::pin(devtune::set_perf_events(session, args)).await?)
        }
        Call::DomainGetIothreadInfo(args) => {
            reply(p, &vcpu_memory::get_iothread_info(session, args).await?)
        }
        Call::NodeGetCpuMap(args) => reply(p, &vcpu_memory::node_get_cpu_map(session, args).await?),
        Call::DomainMemoryStats(args) => reply(p, &vcpu_memory::memory_stats(session, args).await?),
        Call::DomainBlockStats(args) => reply(p, &devices::block_stats(session, args).await?),
        Call::DomainBlockStatsFlags(args) => {
            reply(p, &devices::block_stats_flags(session, args).await?)
        }
        Call::DomainGetBlockInfo(args) => reply(p, &devices::get_block_info(session, args).await?),
        Call::DomainInterfaceStats(args) => {
            reply(p, &devices::interface_stats(session, args).await?)
        }
        Call::DomainSetMemory(args) => reply(
            p,
            &Box::pin(vcpu_memory::set_memory(
                session,
                args.dom,
                args.memory,
                affect::LIVE,
            ))
            .await?,
        ),
        Call::DomainSetMaxMemory(args) => reply(
            p,
            &Box::pin(vcpu_memory::set_memory(
                session,
                args.dom,
                args.memory,
                memory::MAXIMUM,
            ))
            .await?,
        ),
        Call::DomainSetMemoryFlags(args) => reply(
            p,
            &Box::pin(vcpu_memory::set_memory(
                session,
                args.dom,
                args.memory,
                args.flags,
            ))
            .await?,
        ),
        Call::DomainSetMemoryStatsPeriod(args) => reply(
            p,
            &vcpu_memory::set_memory_stats_period(session, args).await?,
        ),
        Call::DomainGetOsType(args) => reply(p, &d::get_os_type(session, args).await?),
        Call::DomainGetXmlDesc(args) => reply(p, &d::get_xml_desc(session, args).await?),
        Call::DomainGetSecurityLabel(args) => {
            reply(p, &d::get_security_label(session, args).await?)
        }
        Call::DomainGetMetadata(args) => reply(p, &metadata::get(session, args).await?),
        Call::DomainAttachDevice(a) => reply(
            p,
            &Box::pin(hotplug::run(session, Attach, &a.dom, &a.xml, FLAGLESS)).await?,
        ),
        Call::DomainAttachDeviceFlags(a) => reply(
            p,
            &Box::pin(hotplug::run(session, Attach, &a.dom, &a.xml, a.flags)).await?,
        ),
        Call::DomainDetachDevice(a) => reply(
            p,
            &Box::pin(hotplug::run(session, Detach, &a.dom, &a.xml, FLAGLESS)).await?,
        ),
        Call::DomainDetachDeviceFlags(a) => reply(
            p,
            &Box::pin(hotplug::run(session, Detach, &a.dom, &a.xml, a.flags)).await?,
        ),
        Call::DomainUpdateDeviceFlags(a) => reply(
            p,
            &Box::pin(hotplug::run(session, Update, &a.dom, &a.xml, a.flags)).await?,
        ),
        Call::DomainSetMetadata(args) => reply(p, &Box::pin(metadata::set(session, args)).await?),
        Call::DomainGetAutostart(args) => reply(p, &d::get_autostart(session, args).await?),
        Call::DomainSetAutostart(args) => reply(p, &d::set_autostart(session, args).await?),
        Call::DomainIsActive(args) => reply(p, &d::is_active(session, args).await?),
        Call::DomainIsPersistent(args) => reply(p, &d::is_persistent(session, args).await?),
        Call::DomainIsUpdated(args) => reply(p, &d::is_updated(session, args).await?),
        Call::DomainHasManagedSaveImage(args) => {
            reply(p, &d::has_managed_save_image(session, args).await?)
        }
        Call::DomainSnapshotNum(args) => reply(p, &snapshots::num(session, args).await?),
        Call::DomainSnapshotCreateXml(args) => {
            reply(p, &snapshots::create_xml(session, args).await?)
        }
        Call::DomainSnapshotGetXmlDesc(args) => {
            reply(p, &snapshots::get_xml_desc(session, args).await?)
        }
        Call::DomainSnapshotListNames(args) => {
            reply(p, &snapshots::list_names(session, args).await?)
        }
        Call::DomainListAllSnapshots(args) => reply(p, &snapshots::list_all(session, args).await?),
        Call::DomainSnapshotNumChildren(args) => {
            reply(p, &snapshots::num_children(session, args).await?)
        }
        Call::DomainSnapshotListChildrenNames(args) => {
            reply(p, &snapshots::list_children_names(session, args).await?)
        }
        Call::DomainSnapshotListAllChildren(args) => {
            reply(p, &snapshots::list_all_children(session, args).await?)
        }
        Call::DomainSnapshotLookupByName(args) => {
            reply(p, &snapshots::lookup_by_name(session, args).await?)
        }
        Call::DomainSnapshotHasMetadata(args) => {
            reply(p, &snapshots::has_metadata(session, args).await?)
        }
        Call::DomainHasCurrentSnapshot(args) => {
            reply(p, &snapshots::has_current(session, args).await?)
        }
        Call::DomainSnapshotCurrent(args) => reply(p, &snapshots::current(session, args).await?),
        Call::DomainSnapshotIsCurrent(args) => {
            reply(p, &snapshots::is_current(session, args).await?)
        }
        Call::DomainSnapshotGetParent(args) => {
            reply(p, &snapshots::get_parent(session, args).await?)
        }
        Call::DomainRevertToSnapshot(args) => reply(p, &snapshots::revert(session, args).await?),
        Call::DomainSnapshotDelete(args) => reply(p, &snapshots::delete(session, args).await?),
        Call::DomainGetMessages(args) => reply(p, &d::get_messages(session, args).await?),
        Call::DomainDefineXml(args) => reply(p, &Box::pin(d::define_xml(session, args)).await?),
        Call::DomainDefineXmlFlags(args) => {
            reply(p, &Box::pin(d::define_xml_flags(session, args)).await?)
        }
        Call::DomainRename(args) => reply(p, &Box::pin(d::rename(session, args)).await?),
        Call::DomainUndefine(args) => reply(p, &Box::pin(d::undefine(session, args)).await?),
        Call::DomainUndefineFlags(args) => {
            reply(p, &Box::pin(d::undefine_flags(session, args)).await?)
        }

        // lifecycle
        Call::DomainCreate(args) => reply(p, &Box::pin(d::create(session, args)).await?),
        Call::DomainCreateWithFlags(args) => reply(
            p,
            &Box::pin(d::create_with_flags(handler, session, args)).await?,
        ),
        Call::DomainCreateXml(args) => {
            reply(p, &Box::pin(d::create_xml(handler, session, args)).await?)
        }
        Call::DomainDestroy(args) => reply(p, &Box::pin(d::destroy(session, args)).await?),
        Call::DomainDestroyFlags(args) => {
            reply(p, &Box::pin(d::destroy_flags(session, args)).await?)
        }
        Call::DomainSuspend(args) => reply(p, &Box::pin(d::suspend(session, args)).await?),
        Call::DomainResume(args) => reply(p, &Box::pin(d::resume(session, args)).await?),
        Call::DomainShutdown(args) => reply(p, &Box::pin(d::shutdown(session, args)).await?),
        Call::DomainShutdownFlags(args) => {
            reply(p, &Box::pin(d::shutdown_flags(session, args)).await?)
        }
        Call::DomainReset(args) => reply(p, &Box::pin(d::reset(session, args)).await?),
        Call::DomainReboot(args) => reply(p, &Box::pin(d::reboot(session, args)).await?),
        Call::DomainInjectNmi(args) => reply(p, &Box::pin(d::inject_nmi(session, args)).await?),
        Call::DomainSendKey(args) => reply(p, &Box::pin(d::send_key(session, args)).await?),

        // save/restore to a file on the daemon's host
        Call::DomainSave(args) => reply(p, &Box::pin(save::save(session, args)).await?),
        Call::DomainSaveFlags(args) => reply(p, &Box::pin(save::save_flags(session, args)).await?),
        Call::DomainRestore(args) => reply(p, &Box::pin(save::restore(session, args)).await?),
        Call::DomainRestoreFlags(args) => {
            reply(p, &Box::pin(save::restore_flags(session, args)).await?)
        }
        Call::DomainManagedSave(args) => {
            reply(p, &Box::pin(save::managed_save(session, args)).await?)
        }
        Call::DomainManagedSaveRemove(args) => reply(
            p,
            &Box::pin(save::managed_save_remove(session, args)).await?,
        ),
        Call::DomainSaveImageGetXmlDesc(args) => {
            reply(p, &save::save_image_get_xml_desc(session, args).await?)
        }
        Call::DomainSaveImageDefineXml(args) => {
            reply(p, &save::save_image_define_xml(session, args).await?)
        }
        Call::DomainManagedSaveGetXmlDesc(args) => {
            reply(p, &save::managed_save_get_xml_desc(session, args).await?)
        }
        Call::DomainManagedSaveDefineXml(args) => {
            reply(p, &save::managed_save_define_xml(session, args).await?)
        }

        // core dump and screenshot
        Call::DomainCoreDump(args) => reply(p, &Box::pin(dump::core_dump(session, args)).await?),
        Call::DomainCoreDumpWithFormat(args) => reply(
            p,
            &Box::pin(dump::core_dump_with_format(session, args)).await?,
        ),
        Call::DomainScreenshot(args) => {
            reply(p, &Box::pin(dump::screenshot(session, ctx, args)).await?)
        }

        // console
        Call::DomainOpenConsole(args) => reply(
            p,
            &Box::pin(console::open_console(session, ctx, args)).await?,
        ),

        // events
        Call::ConnectDomainEventCallbackRegisterAny(args) => {
            reply(p, &e::callback_register_any(session, args)?)
        }
        Call::ConnectDomainEventCallbackDeregisterAny(args) => {
            reply(p, &e::callback_deregister_any(session, args)?)
        }
        Call::ConnectDomainEventRegister => reply(p, &e::register(session)?),
        Call::ConnectDomainEventDeregister => reply(p, &e::deregister(session)?),
        Call::ConnectDomainEventRegisterAny(args) => reply(p, &e::register_any(session, args)?),
        Call::ConnectDomainEventDeregisterAny(args) => reply(p, &e::deregister_any(session, args)?),

        // migration (one MigrateRequest per call, see dispatch::migration)
        Call::DomainMigrateBegin3Params(a) => {
            reply(p, &Box::pin(m::begin3_params(handler, session, a)).await?)
        }
        Call::DomainMigrateBegin3(a) => reply(p, &Box::pin(m::begin3(handler, session, a)).await?),
        Call::DomainMigratePrepare3Params(a) => reply(
            p,
            &Box::pin(m::prepare3_params(handler, session, ctx, a)).await?,
        ),
        Call::DomainMigratePrepare3(a) => {
            reply(p, &Box::pin(m::prepare3(handler, session, ctx, a)).await?)
        }
        Call::DomainMigratePrepare2(a) => {
            reply(p, &Box::pin(m::prepare2(handler, session, ctx, a)).await?)
        }
        Call::DomainMigratePrepare(a) => {
            reply(p, &Box::pin(m::prepare1(handler, session, ctx, a)).await?)
        }
        Call::DomainMigratePrepareTunnel3Params(a) => reply(
            p,
            &Box::pin(m::prepare_tunnel3_params(handler, session, ctx, a)).await?,
        ),
        Call::DomainMigratePrepareTunnel3(a) => reply(
            p,
            &Box::pin(m::prepare_tunnel3(handler, session, ctx, a)).await?,
        ),
        Call::DomainMigratePrepareTunnel(a) => reply(
            p,
            &Box::pin(m::prepare_tunnel2(handler, session, ctx, a)).await?,
        ),
        Call::DomainMigratePerform3Params(a) => {
            reply(p, &Box::pin(m::perform3_params(handler, session, a)).await?)
        }
        Call::DomainMigratePerform3(a) => {
            reply(p, &Box::pin(m::perform3(handler, session, a)).await?)
        }
        Call::DomainMigratePerform(a) => {
            reply(p, &Box::pin(m::perform2(handler, session, a)).await?)
        }
        Call::DomainMigrateFinish3Params(a) => {
            reply(p, &Box::pin(m::finish3_params(handler, session, a)).await?)
        }
        Call::DomainMigrateFinish3(a) => {
            reply(p, &Box::pin(m::finish3(handler, session, a)).await?)
        }
        Call::DomainMigrateFinish2(a) => {
            reply(p, &Box::pin(m::finish2(handler, session, a)).await?)
        }
        Call::DomainMigrateFinish(a) => reply(p, &Box::pin(m::finish1(handler, session, a)).await?),
        Call::DomainMigrateConfirm3Params(a) => {
            reply(p, &Box::pin(m::confirm3_params(handler, session, a)).await?)
        }
        Call::DomainMigrateConfirm3(a) => {
            reply(p, &Box::pin(m::confirm3(handler, session, a)).await?)
        }

        // jobs and migration tuning
        Call::DomainGetJobInfo(a) => {
            reply(p, &Box::pin(j::get_job_info(handler, session, a)).await?)
        }
        Call::DomainGetJobStats(a) => {
            reply(p, &Box::pin(j::get_job_stats(handler, session, a)).await?)
        }
        Call::DomainAbortJob(a) => reply(
            p,
            &Box::pin(j::abort_job(handler, session, &a.dom, 0)).await?,
        ),
        Call::DomainAbortJobFlags(a) => reply(
            p,
            &Box::pin(j::abort_job(handler, session, &a.dom, a.flags)).await?,
        ),
        Call::DomainMigrateSetMaxSpeed(a) => {
            reply(p, &Box::pin(j::set_max_speed(handler, session, a)).await?)
        }
        Call::DomainMigrateGetMaxSpeed(a) => {
            reply(p, &Box::pin(j::get_max_speed(handler, session, a)).await?)
        }
        Call::DomainMigrateStartPostCopy(a) => {
            reply(p, &Box::pin(j::start_post_copy(handler, session, a)).await?)
        }
        Call::DomainMigrateGetCompressionCache(a) => {
            reply(p, &Box::pin(j::get_compression_cache(session, a)).await?)
        }
        Call::DomainMigrateSetCompressionCache(a) => {
            reply(p, &Box::pin(j::set_compression_cache(session, a)).await?)
        }
        Call::DomainMigrateSetMaxDowntime(a) => reply(
            p,
            &Box::pin(j::set_max_downtime(handler, session, a)).await?,
        ),
        Call::DomainMigrateGetMaxDowntime(a) => reply(
            p,
            &Box::pin(j::get_max_downtime(handler, session, a)).await?,
        ),

        // Everything else (SASL, ...) is not
        // served yet: NO_SUPPORT lets stock clients fall back.
        _ => Err(unsupported(p)),
    }
}

/// The wire form of a driver's domain reference.
pub fn to_wire_dom(dom: &migrated_core::driver::DomainRef) -> NonnullDomain {
    NonnullDomain {
        name: dom.name.clone(),
        uuid: *dom.uuid.as_bytes(),
        id: dom.id,
    }
}

/// A driver's domain reference from the wire form.
pub fn from_wire_dom(dom: &NonnullDomain) -> migrated_core::driver::DomainRef {
    migrated_core::driver::DomainRef {
        name: dom.name.clone(),
        uuid: uuid::Uuid::from_bytes(dom.uuid),
        id: dom.id,
    }
}

/// A string as libvirt's `char<N>` arrays carry it: one signed char per
/// byte plus the trailing NUL; empty stays empty ("none").
pub fn c_chars(text: &str) -> Vec<i8> {
    if text.is_empty() {
        return Vec::new();
    }
    text.bytes()
        .map(|b| i8::from_ne_bytes([b]))
        .chain(std::iter::once(0))
        .collect()
}
