//! `virsh blkdeviotune`: a disk's I/O throttling as typed parameters
//! (`VIR_DOMAIN_BLOCK_IOTUNE_*`, the names of [`IOTUNE_LIMITS`] and
//! [`GROUP_NAME`]) and the checks libvirt makes before changing it.

use crate::error::{Error, Result};
use crate::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use crate::xml::{BlockIoTune, GROUP_AT, GROUP_NAME, IOTUNE_LIMITS};

/// The largest limit libvirt accepts (`QEMU_BLOCK_IOTUNE_MAX`, and its
/// test driver's `TEST_BLOCK_IOTUNE_MAX`): 10^15.
pub const LIMIT_MAX: u64 = 1_000_000_000_000_000;

/// The parameter list of a setter: every limit an ullong, the group a string.
pub const SPECS: [ParamSpec; IOTUNE_LIMITS.len() + 1] = {
    let mut specs = [ParamSpec::one(GROUP_NAME, ParamType::String); IOTUNE_LIMITS.len() + 1];
    let mut i = 0;
    while i < IOTUNE_LIMITS.len() {
        specs[i] = ParamSpec::one(IOTUNE_LIMITS[i], ParamType::ULLong);
        i += 1;
    }
    specs
};

/// The throttling as `virDomainGetBlockIoTune` answers it: the 20
/// parameters in libvirt's order, unset ones as 0 (the group as "").
pub fn to_params(t: &BlockIoTune) -> TypedParams {
    let mut params = TypedParams::new();
    for (i, (name, value)) in IOTUNE_LIMITS.iter().zip(t.limits).enumerate() {
        if i == GROUP_AT {
            let group = t.group_name.clone().unwrap_or_default();
            params.push(GROUP_NAME, TypedValue::String(group));
        }
        params.push(*name, TypedValue::ULLong(value));
    }
    params
}

/// `params` (checked against [`SPECS`]) applied to `current`, refused as
/// libvirt refuses it: a limit over [`LIMIT_MAX`]
/// (`VIR_ERR_ARGUMENT_UNSUPPORTED`), then in the result a total with a
/// read or write limit of the same kind (`VIR_ERR_INVALID_ARG` "total and
/// read/write of bytes_sec cannot be set at the same time").
///
/// # Errors
/// Those.
pub fn apply(current: &BlockIoTune, params: &TypedParams) -> Result<BlockIoTune> {
    params.validate(&SPECS)?;
    let mut t = current.clone();
    for p in params.iter() {
        match &p.value {
            TypedValue::ULLong(v) => {
                if *v > LIMIT_MAX {
                    return Err(Error::ArgumentRefused {
                        reason: format!(
                            "block I/O throttle limit value must be no more than {LIMIT_MAX}"
                        ),
                    });
                }
                t.set(&p.field, *v);
            }
            TypedValue::String(group) => {
                t.group_name = Some(group.clone()).filter(|g| !g.is_empty())
            }
            _ => {}
        }
    }
    for kind in ["bytes_sec", "iops_sec", "bytes_sec_max", "iops_sec_max"] {
        let total = t.get(&format!("total_{kind}"));
        let read = t.get(&format!("read_{kind}"));
        let write = t.get(&format!("write_{kind}"));
        if total != 0 && (read != 0 || write != 0) {
            return Err(Error::InvalidValue {
                reason: format!("total and read/write of {kind} cannot be set at the same time"),
            });
        }
    }
    Ok(t)
}

/// The pairs of a limit and its burst maximum, as libvirt checks them.
pub const MAX_PAIRS: [(&str, &str); 6] = [
    ("total_bytes_sec", "total_bytes_sec_max"),
    ("read_bytes_sec", "read_bytes_sec_max"),
    ("write_bytes_sec", "write_bytes_sec_max"),
    ("total_iops_sec", "total_iops_sec_max"),
    ("read_iops_sec", "read_iops_sec_max"),
    ("write_iops_sec", "write_iops_sec_max"),
];

/// libvirt's test driver's last check: no limit above its maximum, an
/// unset maximum counting as 0 (`VIR_ERR_INVALID_ARG` "read_iops_sec
/// cannot be set higher than read_iops_sec_max").
///
/// # Errors
/// That one.
pub fn check_max_as_test_driver(t: &BlockIoTune) -> Result<()> {
    for (limit, max) in MAX_PAIRS {
        if t.get(limit) > t.get(max) {
            return Err(Error::InvalidValue {
                reason: format!("{limit} cannot be set higher than {max}"),
            });
        }
    }
    Ok(())
}

/// libvirt's QEMU driver's check of the maxima: a maximum needs its limit
/// and may not be below it (`VIR_ERR_CONFIG_UNSUPPORTED`).
///
/// # Errors
/// "value 'total_bytes_sec_max' cannot be set if 'total_bytes_sec' is not
/// set", "value 'total_bytes_sec_max' cannot be smaller than
/// 'total_bytes_sec'".
pub fn check_max_as_qemu(t: &BlockIoTune) -> Result<()> {
    for (limit, max) in MAX_PAIRS {
        let (value, ceiling) = (t.get(limit), t.get(max));
        if ceiling == 0 {
            continue;
        }
        if value == 0 {
            return Err(Error::ConfigUnsupported {
                reason: format!("value '{max}' cannot be set if '{limit}' is not set"),
            });
        }
        if ceiling < value {
            return Err(Error::ConfigUnsupported {
                reason: format!("value '{max}' cannot be smaller than '{limit}'"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn params(list: &[(&str, u64)]) -> TypedParams {
        list.iter().fold(TypedParams::new(), |p, (k, v)| {
            p.with(*k, TypedValue::ULLong(*v))
        })
    }

    #[test]
    fn answers_twenty_parameters_with_the_group_fourteenth() {
        let mut t = BlockIoTune::default();
        t.set("total_bytes_sec", 1000);
        t.group_name = Some("g".into());
        let p = to_params(&t);
        assert_eq!(p.len(), 20);
        let names: Vec<&str> = p.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(names[13], "group_name");
        assert_eq!(names[14], "total_bytes_sec_max_length");
        assert_eq!(p.get_ullong("total_bytes_sec").expect("t"), Some(1000));
        assert_eq!(p.get_string("group_name").expect("g"), Some("g"));
    }

    #[test]
    fn apply_merges_and_refuses_as_libvirt() {
        let base =
            apply(&BlockIoTune::default(), &params(&[("read_bytes_sec", 5)])).expect("read limit");
        let e = apply(&base, &params(&[("total_bytes_sec", 9)])).expect_err("total+read");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        assert_eq!(
            e.to_string(),
            "invalid argument: total and read/write of bytes_sec cannot be set at the same time"
        );
        let cleared = apply(
            &base,
            &params(&[("read_bytes_sec", 0), ("total_bytes_sec", 9)]),
        )
        .expect("switch to total");
        assert_eq!(
            (
                cleared.get("read_bytes_sec"),
                cleared.get("total_bytes_sec")
            ),
            (0, 9)
        );
        let e = apply(&base, &params(&[("write_iops_sec", LIMIT_MAX + 1)])).expect_err("big");
        assert_eq!(e.code(), ErrorCode::ArgumentUnsupported);
        let e = apply(
            &base,
            &TypedParams::new().with("read_bytes_sec", TypedValue::UInt(1)),
        )
        .expect_err("type");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        let e = apply(&base, &params(&[("fast_bytes_sec", 1)])).expect_err("unknown");
        assert_eq!(e.code(), ErrorCode::ArgumentUnsupported);
    }

    #[test]
    fn maxima_checks_of_both_drivers() {
        let t = apply(&BlockIoTune::default(), &params(&[("read_iops_sec", 5)])).expect("set");
        let e = check_max_as_test_driver(&t).expect_err("over max 0");
        assert!(e
            .to_string()
            .contains("read_iops_sec cannot be set higher than read_iops_sec_max"));
        check_max_as_qemu(&t).expect("qemu: no max is fine");
        let t2 = apply(&t, &params(&[("read_iops_sec_max", 3)])).expect("set");
        let e = check_max_as_qemu(&t2).expect_err("max below");
        assert_eq!(e.code(), ErrorCode::ConfigUnsupported);
        let t3 = apply(
            &BlockIoTune::default(),
            &params(&[("total_bytes_sec_max", 3)]),
        )
        .expect("set");
        assert!(check_max_as_qemu(&t3)
            .expect_err("no base")
            .to_string()
            .contains("value 'total_bytes_sec_max' cannot be set if 'total_bytes_sec' is not set"));
    }
}
