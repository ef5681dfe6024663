//! Typed parameters (`virTypedParameter`): key/value lists used by the *Params
//! migration calls and job statistics.
//!
//! Values arrive from peers, so nothing here trusts them: [`TypedParams::validate`]
//! enforces the list bound, name length, known keys, one type per key and no
//! repetition except for keys declared multi-valued, with libvirt's error codes.
//! Getters refuse a value of the wrong type instead of converting it.

use std::fmt;

use crate::error::{Error, Result};

/// Most parameters one migration or job-stats list may carry
/// (`REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX`, `REMOTE_DOMAIN_JOB_STATS_MAX`).
pub const MAX_PARAMS: usize = 64;

/// `VIR_TYPED_PARAM_FIELD_LENGTH`: a name buffer of 80 bytes including the NUL.
pub const FIELD_LENGTH: usize = 80;

/// Longest parameter name in bytes.
pub const MAX_FIELD_BYTES: usize = FIELD_LENGTH - 1;

/// `virTypedParameterType`: the wire discriminant of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ParamType {
    /// `VIR_TYPED_PARAM_INT`.
    Int = 1,
    /// `VIR_TYPED_PARAM_UINT`.
    UInt = 2,
    /// `VIR_TYPED_PARAM_LLONG`.
    LLong = 3,
    /// `VIR_TYPED_PARAM_ULLONG`.
    ULLong = 4,
    /// `VIR_TYPED_PARAM_DOUBLE`.
    Double = 5,
    /// `VIR_TYPED_PARAM_BOOLEAN`.
    Boolean = 6,
    /// `VIR_TYPED_PARAM_STRING`.
    String = 7,
}

impl ParamType {
    /// libvirt's name for the type, as used in its error messages.
    pub const fn name(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::UInt => "uint",
            ParamType::LLong => "llong",
            ParamType::ULLong => "ullong",
            ParamType::Double => "double",
            ParamType::Boolean => "boolean",
            ParamType::String => "string",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// 32-bit signed.
    Int(i32),
    /// 32-bit unsigned.
    UInt(u32),
    /// 64-bit signed.
    LLong(i64),
    /// 64-bit unsigned.
    ULLong(u64),
    /// Double.
    Double(f64),
    /// Boolean (an `i32` 0/1 on the wire).
    Boolean(bool),
    /// String.
    String(String),
}

impl TypedValue {
    /// The value's type.
    pub const fn param_type(&self) -> ParamType {
        match self {
            TypedValue::Int(_) => ParamType::Int,
            TypedValue::UInt(_) => ParamType::UInt,
            TypedValue::LLong(_) => ParamType::LLong,
            TypedValue::ULLong(_) => ParamType::ULLong,
            TypedValue::Double(_) => ParamType::Double,
            TypedValue::Boolean(_) => ParamType::Boolean,
            TypedValue::String(_) => ParamType::String,
        }
    }
}

/// One named value.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedParam {
    /// The key, at most [`MAX_FIELD_BYTES`] bytes.
    pub field: String,
    /// The value.
    pub value: TypedValue,
}

impl TypedParam {
    /// A parameter from a key and a value.
    pub fn new(field: impl Into<String>, value: TypedValue) -> Self {
        Self {
            field: field.into(),
            value,
        }
    }
}

/// What a key accepts: its type and whether it may repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The key.
    pub key: &'static str,
    /// The only type accepted.
    pub ty: ParamType,
    /// Whether the key may appear more than once (e.g. `migrate_disks`).
    pub multi: bool,
}

impl ParamSpec {
    /// A single-valued key.
    pub const fn one(key: &'static str, ty: ParamType) -> Self {
        Self {
            key,
            ty,
            multi: false,
        }
    }

    /// A key that may repeat.
    pub const fn multi(key: &'static str, ty: ParamType) -> Self {
        Self {
            key,
            ty,
            multi: true,
        }
    }
}

/// An ordered list of typed parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypedParams(Vec<TypedParam>);

impl TypedParams {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a list received from a peer, checking only the bounds
    /// (count and name length); use [`TypedParams::validate`] for keys and types.
    ///
    /// # Errors
    /// [`Error::TooManyParams`] (`VIR_ERR_RPC`) above `max` entries,
    /// [`Error::ParamNameTooLong`] (`VIR_ERR_INVALID_ARG`) for a name over [`MAX_FIELD_BYTES`].
    pub fn from_received(params: Vec<TypedParam>, max: usize) -> Result<Self> {
        if params.len() > max {
            return Err(Error::TooManyParams {
                count: params.len(),
                max,
            });
        }
        for param in &params {
            check_name(&param.field)?;
        }
        Ok(Self(params))
    }

    /// Appends a parameter; the caller is trusted (bounds are checked when sending
    /// or receiving).
    pub fn push(&mut self, field: impl Into<String>, value: TypedValue) {
        self.0.push(TypedParam::new(field, value));
    }

    /// Builder form of [`TypedParams::push`].
    #[must_use]
    pub fn with(mut self, field: impl Into<String>, value: TypedValue) -> Self {
        self.push(field, value);
        self
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The parameters in order.
    pub fn iter(&self) -> std::slice::Iter<'_, TypedParam> {
        self.0.iter()
    }

    /// The parameters, consuming the list.
    pub fn into_vec(self) -> Vec<TypedParam> {
        self.0
    }

    /// Checks every key against `specs`: known, right type, repeated only if multi.
    ///
    /// # Errors
    /// [`Error::ParamUnsupported`] (`VIR_ERR_ARGUMENT_UNSUPPORTED`) for an unknown key,
    /// [`Error::ParamType`] / [`Error::ParamDuplicate`] (`VIR_ERR_INVALID_ARG`).
    pub fn validate(&self, specs: &[ParamSpec]) -> Result<()> {
        for (i, param) in self.0.iter().enumerate() {
            let spec = specs.iter().find(|s| s.key == param.field).ok_or_else(|| {
                Error::ParamUnsupported {
                    key: param.field.clone(),
                }
            })?;
            let actual = param.value.param_type();
            if actual != spec.ty {
                return Err(Error::ParamType {
                    key: param.field.clone(),
                    expected: spec.ty.name(),
                    actual: actual.name(),
                });
            }
            if !spec.multi && self.0[..i].iter().any(|p| p.field == param.field) {
                return Err(Error::ParamDuplicate {
                    key: param.field.clone(),
                });
            }
        }
        Ok(())
    }

    /// The first value of `key`, whatever its type.
    pub fn get(&self, key: &str) -> Option<&TypedValue> {
        self.0.iter().find(|p| p.field == key).map(|p| &p.value)
    }

    fn typed<'a, T>(
        &'a self,
        key: &str,
        expected: ParamType,
        pick: impl Fn(&'a TypedValue) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => pick(value).map(Some).ok_or_else(|| Error::ParamType {
                key: key.to_owned(),
                expected: expected.name(),
                actual: value.param_type().name(),
            }),
        }
    }

    /// The `int` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_int(&self, key: &str) -> Result<Option<i32>> {
        self.typed(key, ParamType::Int, |v| match v {
            TypedValue::Int(x) => Some(*x),
            _ => None,
        })
    }

    /// The `uint` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_uint(&self, key: &str) -> Result<Option<u32>> {
        self.typed(key, ParamType::UInt, |v| match v {
            TypedValue::UInt(x) => Some(*x),
            _ => None,
        })
    }

    /// The `llong` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_llong(&self, key: &str) -> Result<Option<i64>> {
        self.typed(key, ParamType::LLong, |v| match v {
            TypedValue::LLong(x) => Some(*x),
            _ => None,
        })
    }

    /// The `ullong` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_ullong(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, ParamType::ULLong, |v| match v {
            TypedValue::ULLong(x) => Some(*x),
            _ => None,
        })
    }

    /// The `double` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_double(&self, key: &str) -> Result<Option<f64>> {
        self.typed(key, ParamType::Double, |v| match v {
            TypedValue::Double(x) => Some(*x),
            _ => None,
        })
    }

    /// The `boolean` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, ParamType::Boolean, |v| match v {
            TypedValue::Boolean(x) => Some(*x),
            _ => None,
        })
    }

    /// The `string` value of `key`.
    ///
    /// # Errors
    /// [`Error::ParamType`] if the key holds another type.
    pub fn get_string(&self, key: &str) -> Result<Option<&str>> {
        self.typed(key, ParamType::String, |v| match v {
            TypedValue::String(x) => Some(x.as_str()),
            _ => None,
        })
    }

    /// Every `string` value of a multi-valued `key`, in order.
    ///
    /// # Errors
    /// [`Error::ParamType`] if any occurrence holds another type.
    pub fn get_strings(&self, key: &str) -> Result<Vec<&str>> {
        self.0
            .iter()
            .filter(|p| p.field == key)
            .map(|p| match &p.value {
                TypedValue::String(s) => Ok(s.as_str()),
                other => Err(Error::ParamType {
                    key: key.to_owned(),
                    expected: ParamType::String.name(),
                    actual: other.param_type().name(),
                }),
            })
            .collect()
    }
}

impl<'a> IntoIterator for &'a TypedParams {
    type Item = &'a TypedParam;
    type IntoIter = std::slice::Iter<'a, TypedParam>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn check_name(key: &str) -> Result<()> {
    if key.len() > MAX_FIELD_BYTES {
        return Err(Error::ParamNameTooLong {
            key: key.to_owned(),
            len: key.len(),
            max: MAX_FIELD_BYTES,
        });
    }
    Ok(())
}

/// `VIR_MIGRATE_PARAM_*` keys (libvirt-wire.md §7.2) and their specs.
pub mod migrate_param {
    use super::{ParamSpec, ParamType};

    /// Hypervisor data URI; not with TUNNELLED.
    pub const URI: &str = "migrate_uri";
    /// New name on the destination.
    pub const DEST_NAME: &str = "destination_name";
    /// Domain XML to use on the destination.
    pub const DEST_XML: &str = "destination_xml";
    /// Persistent config to define on the destination.
    pub const PERSIST_XML: &str = "persistent_xml";
    /// Bandwidth in MiB/s.
    pub const BANDWIDTH: &str = "bandwidth";
    /// Bandwidth in MiB/s during post-copy.
    pub const BANDWIDTH_POSTCOPY: &str = "bandwidth.postcopy";
    /// Where graphics clients should reconnect.
    pub const GRAPHICS_URI: &str = "graphics_uri";
    /// Address the destination binds for incoming data.
    pub const LISTEN_ADDRESS: &str = "listen_address";
    /// Disk targets to copy (multi).
    pub const MIGRATE_DISKS: &str = "migrate_disks";
    /// NBD port on the destination.
    pub const DISKS_PORT: &str = "disks_port";
    /// NBD URI.
    pub const DISKS_URI: &str = "disks_uri";
    /// Compression method (multi).
    pub const COMPRESSION: &str = "compression";
    /// Multi-thread compression level.
    pub const COMPRESSION_MT_LEVEL: &str = "compression.mt.level";
    /// Multi-thread compression threads.
    pub const COMPRESSION_MT_THREADS: &str = "compression.mt.threads";
    /// Multi-thread decompression threads.
    pub const COMPRESSION_MT_DTHREADS: &str = "compression.mt.dthreads";
    /// XBZRLE cache size in bytes.
    pub const COMPRESSION_XBZRLE_CACHE: &str = "compression.xbzrle.cache";
    /// Initial auto-converge throttle in percent.
    pub const AUTO_CONVERGE_INITIAL: &str = "auto_converge.initial";
    /// Auto-converge throttle increment in percent.
    pub const AUTO_CONVERGE_INCREMENT: &str = "auto_converge.increment";
    /// Number of parallel connections.
    pub const PARALLEL_CONNECTIONS: &str = "parallel.connections";
    /// Host name to verify in hypervisor TLS.
    pub const TLS_DESTINATION: &str = "tls.destination";

    /// Every key libvirt 9.0 defines, with its type and multiplicity.
    pub const SPECS: &[ParamSpec] = &[
        ParamSpec::one(URI, ParamType::String),
        ParamSpec::one(DEST_NAME, ParamType::String),
        ParamSpec::one(DEST_XML, ParamType::String),
        ParamSpec::one(PERSIST_XML, ParamType::String),
        ParamSpec::one(BANDWIDTH, ParamType::ULLong),
        ParamSpec::one(BANDWIDTH_POSTCOPY, ParamType::ULLong),
        ParamSpec::one(GRAPHICS_URI, ParamType::String),
        ParamSpec::one(LISTEN_ADDRESS, ParamType::String),
        ParamSpec::multi(MIGRATE_DISKS, ParamType::String),
        ParamSpec::one(DISKS_PORT, ParamType::Int),
        ParamSpec::one(DISKS_URI, ParamType::String),
        ParamSpec::multi(COMPRESSION, ParamType::String),
        ParamSpec::one(COMPRESSION_MT_LEVEL, ParamType::Int),
        ParamSpec::one(COMPRESSION_MT_THREADS, ParamType::Int),
        ParamSpec::one(COMPRESSION_MT_DTHREADS, ParamType::Int),
        ParamSpec::one(COMPRESSION_XBZRLE_CACHE, ParamType::ULLong),
        ParamSpec::one(AUTO_CONVERGE_INITIAL, ParamType::Int),
        ParamSpec::one(AUTO_CONVERGE_INCREMENT, ParamType::Int),
        ParamSpec::one(PARALLEL_CONNECTIONS, ParamType::Int),
        ParamSpec::one(TLS_DESTINATION, ParamType::String),
    ];
}

/// Job statistics keys (`VIR_DOMAIN_JOB_*`, libvirt-wire.md §7.3) and their specs.
pub mod job_stats {
    use super::{ParamSpec, ParamType};

    /// Job operation (int, [`operation`] values).
    pub const OPERATION: &str = "operation";
    /// Elapsed time in ms.
    pub const TIME_ELAPSED: &str = "time_elapsed";
    /// Elapsed time in ms, without the network part.
    pub const TIME_ELAPSED_NET: &str = "time_elapsed_net";
    /// Estimated remaining time in ms.
    pub const TIME_REMAINING: &str = "time_remaining";
    /// Downtime in ms (expected while running, real when completed).
    pub const DOWNTIME: &str = "downtime";
    /// Downtime in ms, without the network part.
    pub const DOWNTIME_NET: &str = "downtime_net";
    /// Setup time in ms.
    pub const SETUP_TIME: &str = "setup_time";
    /// Total bytes to transfer.
    pub const DATA_TOTAL: &str = "data_total";
    /// Bytes transferred.
    pub const DATA_PROCESSED: &str = "data_processed";
    /// Bytes remaining.
    pub const DATA_REMAINING: &str = "data_remaining";
    /// Total memory bytes.
    pub const MEMORY_TOTAL: &str = "memory_total";
    /// Memory bytes transferred.
    pub const MEMORY_PROCESSED: &str = "memory_processed";
    /// Memory bytes remaining.
    pub const MEMORY_REMAINING: &str = "memory_remaining";
    /// Pages filled with one constant byte.
    pub const MEMORY_CONSTANT: &str = "memory_constant";
    /// Pages sent in full.
    pub const MEMORY_NORMAL: &str = "memory_normal";
    /// Bytes of pages sent in full.
    pub const MEMORY_NORMAL_BYTES: &str = "memory_normal_bytes";
    /// Memory transfer rate in bytes/s.
    pub const MEMORY_BPS: &str = "memory_bps";
    /// Pages dirtied per second.
    pub const MEMORY_DIRTY_RATE: &str = "memory_dirty_rate";
    /// Page size in bytes.
    pub const MEMORY_PAGE_SIZE: &str = "memory_page_size";
    /// Number of pre-copy iterations.
    pub const MEMORY_ITERATION: &str = "memory_iteration";
    /// Post-copy page requests.
    pub const MEMORY_POSTCOPY_REQUESTS: &str = "memory_postcopy_requests";
    /// Total disk bytes.
    pub const DISK_TOTAL: &str = "disk_total";
    /// Disk bytes transferred.
    pub const DISK_PROCESSED: &str = "disk_processed";
    /// Disk bytes remaining.
    pub const DISK_REMAINING: &str = "disk_remaining";
    /// Disk transfer rate in bytes/s.
    pub const DISK_BPS: &str = "disk_bps";
    /// Compression cache size in bytes.
    pub const COMPRESSION_CACHE: &str = "compression_cache";
    /// Compressed bytes.
    pub const COMPRESSION_BYTES: &str = "compression_bytes";
    /// Compressed pages.
    pub const COMPRESSION_PAGES: &str = "compression_pages";
    /// Compression cache misses.
    pub const COMPRESSION_CACHE_MISSES: &str = "compression_cache_misses";
    /// Compression overflows.
    pub const COMPRESSION_OVERFLOW: &str = "compression_overflow";
    /// Current auto-converge throttle in percent (int).
    pub const AUTO_CONVERGE_THROTTLE: &str = "auto_converge_throttle";
    /// Whether the job succeeded (boolean).
    pub const SUCCESS: &str = "success";
    /// Error message of a failed job (string).
    pub const ERRMSG: &str = "errmsg";
    /// Temporary disk space used.
    pub const DISK_TEMP_USED: &str = "disk_temp_used";
    /// Temporary disk space total.
    pub const DISK_TEMP_TOTAL: &str = "disk_temp_total";

    /// Every key with its type (none repeats).
    pub const SPECS: &[ParamSpec] = &[
        ParamSpec::one(OPERATION, ParamType::Int),
        ParamSpec::one(TIME_ELAPSED, ParamType::ULLong),
        ParamSpec::one(TIME_ELAPSED_NET, ParamType::ULLong),
        ParamSpec::one(TIME_REMAINING, ParamType::ULLong),
        ParamSpec::one(DOWNTIME, ParamType::ULLong),
        ParamSpec::one(DOWNTIME_NET, ParamType::ULLong),
        ParamSpec::one(SETUP_TIME, ParamType::ULLong),
        ParamSpec::one(DATA_TOTAL, ParamType::ULLong),
        ParamSpec::one(DATA_PROCESSED, ParamType::ULLong),
        ParamSpec::one(DATA_REMAINING, ParamType::ULLong),
        ParamSpec::one(MEMORY_TOTAL, ParamType::ULLong),
        ParamSpec::one(MEMORY_PROCESSED, ParamType::ULLong),
        ParamSpec::one(MEMORY_REMAINING, ParamType::ULLong),
        ParamSpec::one(MEMORY_CONSTANT, ParamType::ULLong),
        ParamSpec::one(MEMORY_NORMAL, ParamType::ULLong),
        ParamSpec::one(MEMORY_NORMAL_BYTES, ParamType::ULLong),
        ParamSpec::one(MEMORY_BPS, ParamType::ULLong),
        ParamSpec::one(MEMORY_DIRTY_RATE, ParamType::ULLong),
        ParamSpec::one(MEMORY_PAGE_SIZE, ParamType::ULLong),
        ParamSpec::one(MEMORY_ITERATION, ParamType::ULLong),
        ParamSpec::one(MEMORY_POSTCOPY_REQUESTS, ParamType::ULLong),
        ParamSpec::one(DISK_TOTAL, ParamType::ULLong),
        ParamSpec::one(DISK_PROCESSED, ParamType::ULLong),
        ParamSpec::one(DISK_REMAINING, ParamType::ULLong),
        ParamSpec::one(DISK_BPS, ParamType::ULLong),
        ParamSpec::one(COMPRESSION_CACHE, ParamType::ULLong),
        ParamSpec::one(COMPRESSION_BYTES, ParamType::ULLong),
        ParamSpec::one(COMPRESSION_PAGES, ParamType::ULLong),
        ParamSpec::one(COMPRESSION_CACHE_MISSES, ParamType::ULLong),
        ParamSpec::one(COMPRESSION_OVERFLOW, ParamType::ULLong),
        ParamSpec::one(AUTO_CONVERGE_THROTTLE, ParamType::Int),
        ParamSpec::one(SUCCESS, ParamType::Boolean),
        ParamSpec::one(ERRMSG, ParamType::String),
        ParamSpec::one(DISK_TEMP_USED, ParamType::ULLong),
        ParamSpec::one(DISK_TEMP_TOTAL, ParamType::ULLong),
    ];

    /// `virDomainJobOperation` values for [`OPERATION`].
    pub mod operation {
        /// Unknown.
        pub const UNKNOWN: i32 = 0;
        /// Starting.
        pub const START: i32 = 1;
        /// Saving.
        pub const SAVE: i32 = 2;
        /// Restoring.
        pub const RESTORE: i32 = 3;
        /// Incoming migration.
        pub const MIGRATION_IN: i32 = 4;
        /// Outgoing migration.
        pub const MIGRATION_OUT: i32 = 5;
        /// Snapshot.
        pub const SNAPSHOT: i32 = 6;
        /// Snapshot revert.
        pub const SNAPSHOT_REVERT: i32 = 7;
        /// Core dump.
        pub const DUMP: i32 = 8;
        /// Backup.
        pub const BACKUP: i32 = 9;
        /// Snapshot delete.
        pub const SNAPSHOT_DELETE: i32 = 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn s(v: &str) -> TypedValue {
        TypedValue::String(v.to_owned())
    }

    #[test]
    fn wire_discriminants_match_libvirt() {
        assert_eq!(ParamType::Int as i32, 1);
        assert_eq!(ParamType::Boolean as i32, 6);
        assert_eq!(ParamType::String as i32, 7);
        assert_eq!(TypedValue::ULLong(1).param_type(), ParamType::ULLong);
    }

    #[test]
    fn sixty_five_params_are_refused_with_rpc_error() {
        let list: Vec<_> = (0..65)
            .map(|i| TypedParam::new(format!("k{i}"), TypedValue::Int(i)))
            .collect();
        let err = TypedParams::from_received(list.clone(), MAX_PARAMS).expect_err("65 > 64");
        assert_eq!(err.code(), ErrorCode::Rpc);
        assert!(err.to_string().contains("65"), "{err}");
        let ok = TypedParams::from_received(list[..64].to_vec(), MAX_PARAMS).expect("64 is fine");
        assert_eq!(ok.len(), 64);
    }

    #[test]
    fn field_names_over_79_bytes_are_refused() {
        let long = "x".repeat(80);
        let err = TypedParams::from_received(vec![TypedParam::new(long, TypedValue::Int(1))], 64)
            .expect_err("80 bytes is too long");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        TypedParams::from_received(
            vec![TypedParam::new("x".repeat(79), TypedValue::Int(1))],
            64,
        )
        .expect("79 bytes is fine");
    }

    #[test]
    fn duplicate_single_key_is_refused_but_multi_key_repeats() {
        let dup = TypedParams::new()
            .with(migrate_param::BANDWIDTH, TypedValue::ULLong(1))
            .with(migrate_param::BANDWIDTH, TypedValue::ULLong(2));
        let err = dup
            .validate(migrate_param::SPECS)
            .expect_err("bandwidth twice");
        assert!(matches!(&err, Error::ParamDuplicate { key } if key == "bandwidth"));
        assert_eq!(err.code(), ErrorCode::InvalidArg);

        let multi = TypedParams::new()
            .with(migrate_param::MIGRATE_DISKS, s("vda"))
            .with(migrate_param::MIGRATE_DISKS, s("vdb"));
        multi
            .validate(migrate_param::SPECS)
            .expect("migrate_disks repeats");
        assert_eq!(
            multi
                .get_strings(migrate_param::MIGRATE_DISKS)
                .expect("strings"),
            vec!["vda", "vdb"]
        );
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        let params = TypedParams::new().with(migrate_param::BANDWIDTH, s("fast"));
        let err = params
            .validate(migrate_param::SPECS)
            .expect_err("string bandwidth");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
        let msg = err.to_string();
        assert!(
            msg.contains("bandwidth") && msg.contains("ullong") && msg.contains("string"),
            "{msg}"
        );

        let err = params
            .get_ullong(migrate_param::BANDWIDTH)
            .expect_err("getter refuses too");
        assert!(matches!(
            err,
            Error::ParamType {
                expected: "ullong",
                ..
            }
        ));
    }

    #[test]
    fn unknown_key_is_argument_unsupported() {
        let params = TypedParams::new().with("compression.zstd.level", TypedValue::Int(3));
        let err = params.validate(migrate_param::SPECS).expect_err("9.1 key");
        assert_eq!(err.code(), ErrorCode::ArgumentUnsupported);
    }

    #[test]
    fn getters_return_values_and_none_for_absent_keys() {
        let params = TypedParams::new()
            .with(migrate_param::URI, s("tcp://127.0.0.1:49152"))
            .with(migrate_param::BANDWIDTH, TypedValue::ULLong(100))
            .with(job_stats::SUCCESS, TypedValue::Boolean(true))
            .with(migrate_param::DISKS_PORT, TypedValue::Int(-1));
        assert_eq!(
            params.get_string(migrate_param::URI).expect("string"),
            Some("tcp://127.0.0.1:49152")
        );
        assert_eq!(
            params.get_ullong(migrate_param::BANDWIDTH).expect("u64"),
            Some(100)
        );
        assert_eq!(
            params.get_bool(job_stats::SUCCESS).expect("bool"),
            Some(true)
        );
        assert_eq!(
            params.get_int(migrate_param::DISKS_PORT).expect("int"),
            Some(-1)
        );
        assert_eq!(
            params.get_string(migrate_param::DEST_NAME).expect("absent"),
            None
        );
    }

    #[test]
    fn spec_tables_have_unique_keys_and_libvirt_counts() {
        for specs in [migrate_param::SPECS, job_stats::SPECS] {
            let mut keys: Vec<_> = specs.iter().map(|s| s.key).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), specs.len());
        }
        assert_eq!(
            migrate_param::SPECS.len(),
            20,
            "libvirt 9.0 has 20 migration params"
        );
    }
}
