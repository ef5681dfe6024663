//! [`MigrateRequest`]: every variant of every migration call (typed params,
//! the positional v3/v2/v1 arguments) becomes this one value at the dispatch
//! edge, so each step has one code path.

use crate::error::{Error, Result};
use crate::flags::MigrateFlags;
use crate::support::SupportTable;
use crate::typed_params::{migrate_param as key, TypedParams, TypedValue, MAX_PARAMS};

/// Which side of the migration a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// The host the guest leaves.
    Source,
    /// The host the guest arrives on.
    Destination,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Destination => "destination",
        })
    }
}

/// The five steps of the v3 protocol (v2/v1 calls map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Begin3 (source).
    Begin,
    /// Prepare3 / PrepareTunnel3 / Prepare2 (destination).
    Prepare,
    /// Perform3 / Perform (source).
    Perform,
    /// Finish3 / Finish2 (destination).
    Finish,
    /// Confirm3 (source).
    Confirm,
}

impl Step {
    /// The libvirt API name used in error messages.
    pub const fn api_name(self) -> &'static str {
        match self {
            Step::Begin => "virDomainMigrateBegin3Params",
            Step::Prepare => "virDomainMigratePrepare3Params",
            Step::Perform => "virDomainMigratePerform3Params",
            Step::Finish => "virDomainMigrateFinish3Params",
            Step::Confirm => "virDomainMigrateConfirm3Params",
        }
    }

    /// The role that runs this step.
    pub const fn role(self) -> Role {
        match self {
            Step::Begin | Step::Perform | Step::Confirm => Role::Source,
            Step::Prepare | Step::Finish => Role::Destination,
        }
    }
}

/// Compression methods libvirt 9.0 names (`VIR_MIGRATE_PARAM_COMPRESSION`).
pub const COMPRESSION_METHODS: &[&str] = &["xbzrle", "mt"];

/// libvirt's refusal of post-copy for a migration that is not live
/// (`qemuMigrationSrcBeginPhase`), reported as `VIR_ERR_ARGUMENT_UNSUPPORTED`.
pub const POSTCOPY_NOT_LIVE: &str =
    "post-copy migration is not supported with non-live or paused migration";

/// One migration request: the flags and every parameter, resolved and typed.
///
/// `bandwidth_mib_s` of 0 on the wire means "default" and is stored as `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrateRequest {
    /// `VIR_MIGRATE_*` flags, driver defaults included once [`MigrateRequest::apply_defaults`] ran.
    pub flags: MigrateFlags,
    /// `migrate_uri`: the data-plane URI (`tcp:host:port`, `tcp://host:port`).
    pub uri: Option<String>,
    /// `destination_name`: new name on the destination.
    pub dname: Option<String>,
    /// `destination_xml`: the definition to run on the destination (Begin's xmlin,
    /// Prepare's dom_xml).
    pub dest_xml: Option<String>,
    /// `persistent_xml`: the persistent definition to store on the destination.
    pub persist_xml: Option<String>,
    /// `bandwidth` in MiB/s.
    pub bandwidth_mib_s: Option<u64>,
    /// `bandwidth.postcopy` in MiB/s.
    pub bandwidth_postcopy_mib_s: Option<u64>,
    /// `graphics_uri`.
    pub graphics_uri: Option<String>,
    /// `listen_address`: where the destination binds its data listener.
    pub listen_address: Option<String>,
    /// `migrate_disks` (repeatable).
    pub migrate_disks: Vec<String>,
    /// `disks_port`.
    pub disks_port: Option<i32>,
    /// `disks_uri`.
    pub disks_uri: Option<String>,
    /// `compression` methods (repeatable).
    pub compression: Vec<String>,
    /// `compression.mt.level`.
    pub compression_mt_level: Option<i32>,
    /// `compression.mt.threads`.
    pub compression_mt_threads: Option<i32>,
    /// `compression.mt.dthreads`.
    pub compression_mt_dthreads: Option<i32>,
    /// `compression.xbzrle.cache` in bytes.
    pub compression_xbzrle_cache: Option<u64>,
    /// `auto_converge.initial` in percent.
    pub auto_converge_initial: Option<i32>,
    /// `auto_converge.increment` in percent.
    pub auto_converge_increment: Option<i32>,
    /// `parallel.connections`.
    pub parallel_connections: Option<i32>,
    /// `tls.destination`.
    pub tls_destination: Option<String>,
}

impl MigrateRequest {
    /// A request from the *Params calls.
    ///
    /// # Errors
    /// - [`Error::TooManyParams`] (`VIR_ERR_RPC`) above 64 entries;
    /// - [`Error::ParamUnsupported`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) for a key libvirt
    ///   does not define;
    /// - [`Error::ParamType`] / [`Error::ParamDuplicate`] (`VIR_ERR_INVALID_ARG`).
    pub fn from_params(params: &TypedParams, flags: u64) -> Result<Self> {
        if params.len() > MAX_PARAMS {
            return Err(Error::TooManyParams {
                count: params.len(),
                max: MAX_PARAMS,
            });
        }
        params.validate(key::SPECS)?;
        let s =
            |k: &str| -> Result<Option<String>> { Ok(params.get_string(k)?.map(str::to_owned)) };
        let strings = |k: &str| -> Result<Vec<String>> {
            Ok(params
                .get_strings(k)?
                .into_iter()
                .map(str::to_owned)
                .collect())
        };
        Ok(Self {
            flags: MigrateFlags(flags),
            uri: s(key::URI)?,
            dname: s(key::DEST_NAME)?,
            dest_xml: s(key::DEST_XML)?,
            persist_xml: s(key::PERSIST_XML)?,
            bandwidth_mib_s: params.get_ullong(key::BANDWIDTH)?.filter(|&b| b != 0),
            bandwidth_postcopy_mib_s: params
                .get_ullong(key::BANDWIDTH_POSTCOPY)?
                .filter(|&b| b != 0),
            graphics_uri: s(key::GRAPHICS_URI)?,
            listen_address: s(key::LISTEN_ADDRESS)?,
            migrate_disks: strings(key::MIGRATE_DISKS)?,
            disks_port: params.get_int(key::DISKS_PORT)?,
            disks_uri: s(key::DISKS_URI)?,
            compression: strings(key::COMPRESSION)?,
            compression_mt_level: params.get_int(key::COMPRESSION_MT_LEVEL)?,
            compression_mt_threads: params.get_int(key::COMPRESSION_MT_THREADS)?,
            compression_mt_dthreads: params.get_int(key::COMPRESSION_MT_DTHREADS)?,
            compression_xbzrle_cache: params.get_ullong(key::COMPRESSION_XBZRLE_CACHE)?,
            auto_converge_initial: params.get_int(key::AUTO_CONVERGE_INITIAL)?,
            auto_converge_increment: params.get_int(key::AUTO_CONVERGE_INCREMENT)?,
            parallel_connections: params.get_int(key::PARALLEL_CONNECTIONS)?,
            tls_destination: s(key::TLS_DESTINATION)?,
        })
    }

    /// A request from the positional arguments of the v3 (non-params), v2 and v1
    /// calls: `xmlin`/`dom_xml`, `dname`, `uri`, `resource` (MiB/s, 0 = default).
    pub fn from_legacy(
        xml: Option<&str>,
        dname: Option<&str>,
        uri: Option<&str>,
        bandwidth_mib_s: u64,
        flags: u64,
    ) -> Self {
        Self {
            flags: MigrateFlags(flags),
            dest_xml: xml.map(str::to_owned),
            dname: dname.map(str::to_owned),
            uri: uri.map(str::to_owned),
            bandwidth_mib_s: Some(bandwidth_mib_s).filter(|&b| b != 0),
            ..Self::default()
        }
    }

    /// The request as a typed-parameter list (what a p2p source sends to the
    /// destination's Prepare3Params/Finish3Params).
    pub fn to_params(&self) -> TypedParams {
        let mut p = TypedParams::new();
        let mut s = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.push(k, TypedValue::String(v.clone()));
            }
        };
        s(key::URI, &self.uri);
        s(key::DEST_NAME, &self.dname);
        s(key::DEST_XML, &self.dest_xml);
        s(key::PERSIST_XML, &self.persist_xml);
        s(key::GRAPHICS_URI, &self.graphics_uri);
        s(key::LISTEN_ADDRESS, &self.listen_address);
        s(key::DISKS_URI, &self.disks_uri);
        s(key::TLS_DESTINATION, &self.tls_destination);
        for d in &self.migrate_disks {
            p.push(key::MIGRATE_DISKS, TypedValue::String(d.clone()));
        }
        for c in &self.compression {
            p.push(key::COMPRESSION, TypedValue::String(c.clone()));
        }
        let u = [
            (key::BANDWIDTH, self.bandwidth_mib_s),
            (key::BANDWIDTH_POSTCOPY, self.bandwidth_postcopy_mib_s),
            (key::COMPRESSION_XBZRLE_CACHE, self.compression_xbzrle_cache),
        ];
        for (k, v) in u {
            if let Some(v) = v {
                p.push(k, TypedValue::ULLong(v));
            }
        }
        let i = [
            (key::DISKS_PORT, self.disks_port),
            (key::COMPRESSION_MT_LEVEL, self.compression_mt_level),
            (key::COMPRESSION_MT_THREADS, self.compression_mt_threads),
            (key::COMPRESSION_MT_DTHREADS, self.compression_mt_dthreads),
            (key::AUTO_CONVERGE_INITIAL, self.auto_converge_initial),
            (key::AUTO_CONVERGE_INCREMENT, self.auto_converge_increment),
            (key::PARALLEL_CONNECTIONS, self.parallel_connections),
        ];
        for (k, v) in i {
            if let Some(v) = v {
                p.push(k, TypedValue::Int(v));
            }
        }
        p
    }

    /// The parameter keys this request sets.
    pub fn param_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.to_params().iter().map(|p| p.field.clone()).collect();
        keys.dedup();
        keys
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: MigrateFlags) -> bool {
        self.flags.contains(flag)
    }

    /// Whether only the persistent config moves.
    pub fn is_offline(&self) -> bool {
        self.has(MigrateFlags::OFFLINE)
    }

    /// Whether data goes through the daemon connection.
    pub fn is_tunnelled(&self) -> bool {
        self.has(MigrateFlags::TUNNELLED)
    }

    /// The flags a client or p2p source sends to the destination: without
    /// ABORT_ON_ERROR and AUTO_CONVERGE (libvirt-wire.md §7.1).
    pub fn destination_flags(&self) -> MigrateFlags {
        self.flags
            .difference(MigrateFlags::ABORT_ON_ERROR | MigrateFlags::AUTO_CONVERGE)
    }

    /// Adds the driver's default flags when the caller chose neither LIVE nor
    /// OFFLINE, so a plain `migrate GUEST DEST` of a running guest behaves as the
    /// driver documents (the test driver: live).
    pub fn apply_defaults(&mut self, support: &SupportTable, guest_active: bool) {
        let chosen = self
            .flags
            .intersects(MigrateFlags::LIVE | MigrateFlags::OFFLINE);
        if guest_active && !chosen {
            self.flags |= MigrateFlags(support.defaults.flags);
        }
    }

    /// Checks the request for `step`: known flag bits, driver support of every
    /// flag and parameter, contradictions, value sanity.
    ///
    /// # Errors
    /// - [`Error::UnknownFlags`] (`VIR_ERR_INVALID_ARG`) for bits libvirt does not define;
    /// - [`Error::ArgumentUnsupported`] naming the flag or parameter and the driver;
    /// - [`Error::ArgumentConflict`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) naming both inputs;
    /// - [`Error::InvalidArg`] for a bad value (empty or '/' in `dname`, unknown
    ///   compression method, out-of-range percentages).
    pub fn validate(&self, step: Step, support: &SupportTable) -> Result<()> {
        let op = step.api_name();
        let f = self.flags;
        f.check_known(op)?;
        // Destination calls arrive without the source-only flags (§7.1), so the
        // support check covers what this side must honour.
        support.check_migration_flags(op, f)?;
        for k in self.param_keys() {
            support.check_migration_param(&k)?;
        }
        let flag = |name: &str| format!("migration flag {name}");
        let conflict = |a: String, b: String| {
            Err(Error::ArgumentConflict {
                first: a,
                second: b,
            })
        };
        if f.contains(MigrateFlags::TUNNELLED) && !f.contains(MigrateFlags::PEER2PEER) {
            return conflict(
                flag("TUNNELLED"),
                "a migration without flag PEER2PEER".into(),
            );
        }
        if f.contains(MigrateFlags::TUNNELLED) && self.uri.is_some() {
            return conflict(flag("TUNNELLED"), format!("parameter '{}'", key::URI));
        }
        if f.contains(MigrateFlags::OFFLINE) {
            // libvirt's own refusal (code and words), which stock clients show.
            if !f.contains(MigrateFlags::PERSIST_DEST) {
                return Err(Error::invalid(
                    "offline migration must be specified with the persistent flag set",
                ));
            }
            // libvirt's QEMU driver refuses post-copy of a guest that is
            // not migrated live before it looks at OFFLINE; stock clients
            // see its words.
            if f.contains(MigrateFlags::POSTCOPY) {
                return Err(Error::ArgumentRefused {
                    reason: POSTCOPY_NOT_LIVE.into(),
                });
            }
            for other in [
                MigrateFlags::TUNNELLED,
                MigrateFlags::NON_SHARED_DISK,
                MigrateFlags::NON_SHARED_INC,
            ] {
                if f.contains(other) {
                    return conflict(flag("OFFLINE"), flag(&other.to_string()));
                }
            }
        }
        if f.contains(MigrateFlags::NON_SHARED_DISK | MigrateFlags::NON_SHARED_INC) {
            return conflict(flag("NON_SHARED_DISK"), flag("NON_SHARED_INC"));
        }
        if f.contains(MigrateFlags::POSTCOPY_RESUME) {
            self.check_postcopy_resume(step)?;
        }
        let compression_tuned = !self.compression.is_empty()
            || self.compression_mt_level.is_some()
            || self.compression_mt_threads.is_some()
            || self.compression_mt_dthreads.is_some()
            || self.compression_xbzrle_cache.is_some();
        if compression_tuned && !f.contains(MigrateFlags::COMPRESSED) {
            return conflict(
                "compression parameters".into(),
                "a migration without flag COMPRESSED".into(),
            );
        }
        if (self.auto_converge_initial.is_some() || self.auto_converge_increment.is_some())
            && !f.contains(MigrateFlags::AUTO_CONVERGE)
            && step.role() == Role::Source
        {
            return conflict(
                "auto_converge parameters".into(),
                "a migration without flag AUTO_CONVERGE".into(),
            );
        }
        let invalid = |reason: String| {
            Err(Error::InvalidArg {
                operation: op,
                reason,
            })
        };
        // Parallel connections are the hypervisor's own sockets; a tunnel is
        // one stream (QEMU refuses multifd over `fd:`). libvirt's client
        // library refuses the pair with these words before calling a daemon.
        if f.contains(MigrateFlags::PARALLEL | MigrateFlags::TUNNELLED) {
            return invalid(
                "Flags 'VIR_MIGRATE_TUNNELLED' and 'VIR_MIGRATE_PARALLEL' are mutually exclusive"
                    .into(),
            );
        }
        // As libvirt's client library words it (VIR_REQUIRE_FLAG_GOTO in
        // virDomainMigrate*; virsh refuses it before that), for callers that
        // skip the library.
        if f.contains(MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES)
            && !f.intersects(MigrateFlags::NON_SHARED_DISK | MigrateFlags::NON_SHARED_INC)
        {
            return invalid(
                "Flag 'VIR_MIGRATE_NON_SHARED_DISK | VIR_MIGRATE_NON_SHARED_INC' is required by flag 'VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES'"
                    .into(),
            );
        }
        // libvirt's wording and code (qemuMigrationParamsFromFlags), on
        // both sides.
        if self.parallel_connections.is_some() && !f.contains(MigrateFlags::PARALLEL) {
            return invalid("Turn parallel migration on to tune it".into());
        }
        if let Some(n) = self.parallel_connections.filter(|&n| n < 1) {
            return invalid(format!(
                "parameter '{}' must be at least 1, got {n}",
                key::PARALLEL_CONNECTIONS
            ));
        }
        for m in &self.compression {
            if !COMPRESSION_METHODS.contains(&m.as_str()) {
                // libvirt's qemuMigrationParamsSetCompression words it so.
                return Err(Error::InvalidValue {
                    reason: format!("Unsupported compression method '{m}'"),
                });
            }
        }
        if let Some(d) = &self.dname {
            if d.is_empty() || d.contains('/') {
                return invalid(format!("destination name '{d}' is empty or contains '/'"));
            }
        }
        for (k, v) in [
            (key::AUTO_CONVERGE_INITIAL, self.auto_converge_initial),
            (key::AUTO_CONVERGE_INCREMENT, self.auto_converge_increment),
        ] {
            if let Some(v) = v.filter(|v| !(0..=100).contains(v)) {
                return invalid(format!("parameter '{k}' must be 0-100 percent, got {v}"));
            }
        }
        if let Some(level) = self.compression_mt_level.filter(|l| !(0..=9).contains(l)) {
            return invalid(format!(
                "parameter '{}' must be 0-9, got {level}",
                key::COMPRESSION_MT_LEVEL
            ));
        }
        Ok(())
    }

    /// The checks of a POSTCOPY_RESUME request that need no guest: libvirt's
    /// (`qemuMigrationAnyCanResume`, in its words) and the flags a recovery
    /// of a running migration cannot honour.
    fn check_postcopy_resume(&self, step: Step) -> Result<()> {
        let f = self.flags;
        if !f.contains(MigrateFlags::POSTCOPY) {
            return Err(Error::ArgumentRefused {
                reason: "resuming failed post-copy migration requires post-copy to be enabled"
                    .into(),
            });
        }
        // The source's job must live from Begin to Confirm (libvirt-wire.md
        // §8.5): a stock client adds CHANGE_PROTECTION, a p2p source keeps it.
        if step.role() == Role::Source
            && !f.intersects(MigrateFlags::CHANGE_PROTECTION | MigrateFlags::PEER2PEER)
        {
            return Err(Error::ArgumentRefused {
                reason: "resuming failed post-copy migration requires change protection".into(),
            });
        }
        // The storage copy ended before the migration being recovered
        // switched to post-copy.
        for other in [MigrateFlags::NON_SHARED_DISK, MigrateFlags::NON_SHARED_INC] {
            if f.contains(other) {
                return Err(Error::ArgumentConflict {
                    first: "migration flag POSTCOPY_RESUME".into(),
                    second: format!("migration flag {other}"),
                });
            }
        }
        Ok(())
    }

    /// Checks the request against the guest's state on the source (Begin).
    ///
    /// # Errors
    /// [`Error::ArgumentConflict`] for OFFLINE with LIVE on a running guest;
    /// [`Error::OperationInvalid`] for a live migration of a guest that is not running.
    pub fn check_guest_state(&self, guest_active: bool) -> Result<()> {
        if self.is_offline() {
            if guest_active && self.has(MigrateFlags::LIVE) {
                return Err(Error::ArgumentConflict {
                    first: "migration flag OFFLINE".into(),
                    second: "migration flag LIVE on a running guest".into(),
                });
            }
            return Ok(());
        }
        if !guest_active {
            // libvirt's virDomainObjCheckActive, word for word.
            return Err(Error::invalid(crate::error::DOMAIN_NOT_RUNNING));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::support::{MigrationDefaults, Procedure};
    use crate::typed_params::TypedParam;

    const ALL: SupportTable = SupportTable {
        driver: "Sample",
        error_domain: crate::error::ErrorDomain::Domain,
        procedures: &[(Procedure::DomainSuspend, "0.1.0")],
        migration_flags: MigrateFlags::KNOWN.bits(),
        migration_params: &[
            key::URI,
            key::DEST_NAME,
            key::DEST_XML,
            key::PERSIST_XML,
            key::BANDWIDTH,
            key::COMPRESSION,
            key::COMPRESSION_MT_LEVEL,
            key::AUTO_CONVERGE_INITIAL,
            key::AUTO_CONVERGE_INCREMENT,
            key::LISTEN_ADDRESS,
            key::PARALLEL_CONNECTIONS,
        ],
        defaults: MigrationDefaults {
            flags: MigrateFlags::LIVE.bits(),
        },
        qemu_procedures: &[],
        device_stats: false,
    };

    const NARROW: SupportTable = SupportTable {
        driver: "Narrow",
        error_domain: crate::error::ErrorDomain::Domain,
        procedures: &[],
        migration_flags: MigrateFlags::LIVE.bits() | MigrateFlags::PEER2PEER.bits(),
        migration_params: &[key::BANDWIDTH],
        defaults: MigrationDefaults { flags: 0 },
        qemu_procedures: &[],
        device_stats: false,
    };

    fn s(v: &str) -> TypedValue {
        TypedValue::String(v.to_owned())
    }

    fn req(flags: MigrateFlags) -> MigrateRequest {
        MigrateRequest {
            flags,
            ..MigrateRequest::default()
        }
    }

    #[test]
    fn params_and_legacy_arguments_give_the_same_request() {
        let params = TypedParams::new()
            .with(key::DEST_XML, s("<domain/>"))
            .with(key::DEST_NAME, s("b"))
            .with(key::URI, s("tcp://127.0.0.1:49152"))
            .with(key::BANDWIDTH, TypedValue::ULLong(100));
        let a = MigrateRequest::from_params(&params, 1).expect("valid");
        let b = MigrateRequest::from_legacy(
            Some("<domain/>"),
            Some("b"),
            Some("tcp://127.0.0.1:49152"),
            100,
            1,
        );
        assert_eq!(a, b);
        assert_eq!(
            MigrateRequest::from_params(&a.to_params(), 1).expect("round trip"),
            a
        );
    }

    #[test]
    fn zero_bandwidth_means_default() {
        let r = MigrateRequest::from_legacy(None, None, None, 0, 0);
        assert_eq!(r.bandwidth_mib_s, None);
    }

    #[test]
    fn bad_param_lists_are_refused_with_libvirt_codes() {
        let many: Vec<_> = (0..65)
            .map(|_| TypedParam::new(key::MIGRATE_DISKS, s("vda")))
            .collect();
        let list = TypedParams::from_received(many, usize::MAX).expect("no bound here");
        let err = MigrateRequest::from_params(&list, 0).expect_err("65 params");
        assert_eq!(err.code(), ErrorCode::Rpc);

        let dup = TypedParams::new()
            .with(key::DEST_NAME, s("a"))
            .with(key::DEST_NAME, s("b"));
        let err = MigrateRequest::from_params(&dup, 0).expect_err("duplicate");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        assert!(err.to_string().contains("destination_name"), "{err}");

        let wrong = TypedParams::new().with(key::BANDWIDTH, s("fast"));
        let err = MigrateRequest::from_params(&wrong, 0).expect_err("wrong type");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn unknown_flag_bit_is_invalid_arg() {
        let err = req(MigrateFlags(1 << 25))
            .validate(Step::Begin, &ALL)
            .expect_err("bit 25");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn unsupported_flag_and_param_name_the_driver() {
        let err = req(MigrateFlags::LIVE | MigrateFlags::COMPRESSED)
            .validate(Step::Begin, &NARROW)
            .expect_err("compressed");
        assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
        let msg = err.to_string();
        assert!(
            msg.contains("COMPRESSED") && msg.contains("Narrow"),
            "{msg}"
        );

        let mut r = req(MigrateFlags::LIVE);
        r.dname = Some("x".into());
        let err = r.validate(Step::Begin, &NARROW).expect_err("dname");
        let msg = err.to_string();
        assert!(
            msg.contains("destination_name") && msg.contains("Narrow"),
            "{msg}"
        );
    }

    #[test]
    fn post_copy_recovery_is_checked_as_libvirt_checks_it() {
        let resume = MigrateFlags::LIVE | MigrateFlags::POSTCOPY | MigrateFlags::POSTCOPY_RESUME;
        req(resume | MigrateFlags::CHANGE_PROTECTION)
            .validate(Step::Begin, &ALL)
            .expect("managed recovery");
        req(resume | MigrateFlags::PEER2PEER)
            .validate(Step::Perform, &ALL)
            .expect("p2p recovery");
        // The destination gets no CHANGE_PROTECTION and needs none.
        req(resume)
            .validate(Step::Prepare, &ALL)
            .expect("destination");
        for (flags, step, code, words) in [
            (
                MigrateFlags::LIVE
                    | MigrateFlags::POSTCOPY_RESUME
                    | MigrateFlags::CHANGE_PROTECTION,
                Step::Begin,
                ErrorCode::ArgumentUnsupported,
                "resuming failed post-copy migration requires post-copy to be enabled",
            ),
            (
                resume,
                Step::Begin,
                ErrorCode::ArgumentUnsupported,
                "resuming failed post-copy migration requires change protection",
            ),
            (
                resume | MigrateFlags::CHANGE_PROTECTION | MigrateFlags::NON_SHARED_DISK,
                Step::Begin,
                ErrorCode::ArgumentUnsupported,
                "NON_SHARED_DISK",
            ),
        ] {
            let err = req(flags).validate(step, &ALL).expect_err("refused");
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn offline_without_persist_dest_is_refused_in_libvirts_words() {
        let err = req(MigrateFlags::OFFLINE)
            .validate(Step::Begin, &ALL)
            .expect_err("refused");
        assert_eq!(err.code(), ErrorCode::OperationInvalid, "{err}");
        assert_eq!(
            err.to_string(),
            "Requested operation is not valid: offline migration must be specified with the persistent flag set"
        );
    }

    #[test]
    fn contradictions_name_both_inputs() {
        let cases: Vec<(MigrateRequest, &str, &str)> = vec![
            (req(MigrateFlags::TUNNELLED), "TUNNELLED", "PEER2PEER"),
            (
                MigrateRequest {
                    uri: Some("tcp:127.0.0.1:1".into()),
                    ..req(MigrateFlags::TUNNELLED | MigrateFlags::PEER2PEER)
                },
                "TUNNELLED",
                "migrate_uri",
            ),
            (
                req(MigrateFlags::NON_SHARED_DISK | MigrateFlags::NON_SHARED_INC),
                "NON_SHARED_DISK",
                "NON_SHARED_INC",
            ),
            (
                req(MigrateFlags::OFFLINE
                    | MigrateFlags::PERSIST_DEST
                    | MigrateFlags::TUNNELLED
                    | MigrateFlags::PEER2PEER),
                "OFFLINE",
                "TUNNELLED",
            ),
            (
                MigrateRequest {
                    compression: vec!["mt".into()],
                    ..req(MigrateFlags::LIVE)
                },
                "compression",
                "COMPRESSED",
            ),
        ];
        for (r, a, b) in cases {
            let err = r.validate(Step::Begin, &ALL).expect_err("conflict");
            assert_eq!(err.code(), ErrorCode::ArgumentUnsupported, "{err}");
            let msg = err.to_string();
            assert!(msg.contains(a) && msg.contains(b), "{msg}");
        }
    }

    #[test]
    fn offline_live_on_running_guest_is_refused() {
        let r = req(MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST | MigrateFlags::LIVE);
        let err = r.check_guest_state(true).expect_err("running");
        let msg = err.to_string();
        assert!(msg.contains("OFFLINE") && msg.contains("LIVE"), "{msg}");
        r.check_guest_state(false).expect("shut off guest is fine");
        let err = req(MigrateFlags::LIVE)
            .check_guest_state(false)
            .expect_err("live of a shut-off guest");
        assert_eq!(err.code(), ErrorCode::OperationInvalid);
    }

    #[test]
    fn defaults_apply_only_when_the_caller_chose_nothing() {
        let mut r = req(MigrateFlags::empty());
        r.apply_defaults(&ALL, true);
        assert!(r.has(MigrateFlags::LIVE));
        let mut r = req(MigrateFlags::OFFLINE | MigrateFlags::PERSIST_DEST);
        r.apply_defaults(&ALL, true);
        assert!(!r.has(MigrateFlags::LIVE));
        let mut r = req(MigrateFlags::empty());
        r.apply_defaults(&ALL, false);
        assert!(!r.has(MigrateFlags::LIVE), "nothing to keep live");
    }

    #[test]
    fn bad_values_are_invalid_arg() {
        for r in [
            MigrateRequest {
                dname: Some("a/b".into()),
                ..req(MigrateFlags::LIVE)
            },
            MigrateRequest {
                compression: vec!["zstd".into()],
                ..req(MigrateFlags::LIVE | MigrateFlags::COMPRESSED)
            },
            MigrateRequest {
                auto_converge_initial: Some(150),
                ..req(MigrateFlags::LIVE | MigrateFlags::AUTO_CONVERGE)
            },
            MigrateRequest {
                parallel_connections: Some(0),
                ..req(MigrateFlags::LIVE | MigrateFlags::PARALLEL)
            },
            req(MigrateFlags::LIVE
                | MigrateFlags::PEER2PEER
                | MigrateFlags::TUNNELLED
                | MigrateFlags::PARALLEL),
            req(MigrateFlags::LIVE | MigrateFlags::NON_SHARED_SYNCHRONOUS_WRITES),
        ] {
            let err = r.validate(Step::Begin, &ALL).expect_err("bad value");
            assert_eq!(err.code(), ErrorCode::InvalidArg, "{err}");
        }
    }

    #[test]
    fn parallel_connections_need_the_parallel_flag_on_both_sides() {
        let r = MigrateRequest {
            parallel_connections: Some(4),
            ..req(MigrateFlags::LIVE)
        };
        for step in [Step::Begin, Step::Prepare] {
            let err = r.validate(step, &ALL).expect_err("no PARALLEL");
            assert_eq!(err.code(), ErrorCode::InvalidArg, "{err}");
            assert!(
                err.to_string()
                    .contains("Turn parallel migration on to tune it"),
                "{err}"
            );
        }
        let ok = MigrateRequest {
            parallel_connections: Some(4),
            ..req(MigrateFlags::LIVE | MigrateFlags::PARALLEL)
        };
        ok.validate(Step::Begin, &ALL)
            .expect("parallel with 4 connections");
        // libvirt 9.0 lets COMPRESSED (xbzrle) through with PARALLEL.
        req(MigrateFlags::LIVE | MigrateFlags::PARALLEL | MigrateFlags::COMPRESSED)
            .validate(Step::Begin, &ALL)
            .expect("parallel and compressed");
    }

    #[test]
    fn destination_flags_drop_source_only_bits() {
        let r =
            req(MigrateFlags::LIVE | MigrateFlags::AUTO_CONVERGE | MigrateFlags::ABORT_ON_ERROR);
        assert_eq!(r.destination_flags(), MigrateFlags::LIVE);
    }
}
