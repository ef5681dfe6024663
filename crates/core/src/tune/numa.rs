//! `virsh numatune`: the NUMA memory policy as typed parameters
//! (`VIR_DOMAIN_NUMA_*`) and libvirt's test driver's checks of a change.

use crate::error::{Error, Result};
use crate::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use crate::xml::{NumaMemory, NumaTune, NUMA_MODES};

/// `VIR_DOMAIN_NUMA_MODE` (int): an index into [`NUMA_MODES`].
pub const MODE: &str = "numa_mode";
/// `VIR_DOMAIN_NUMA_NODESET` (string): host NUMA nodes (`0-1`).
pub const NODESET: &str = "numa_nodeset";

/// The setter's parameters.
pub const SPECS: [ParamSpec; 2] = [
    ParamSpec::one(MODE, ParamType::Int),
    ParamSpec::one(NODESET, ParamType::String),
];

/// `VIR_DOMAIN_CPUMASK_LEN`: node numbers must stay below it.
const MASK_LEN: usize = 1024;

/// The policy as `virDomainGetNumaParameters` answers it: the mode
/// (strict when none is set) and the nodeset ("" when none).
pub fn to_params(t: &NumaTune) -> TypedParams {
    let m = t.memory.clone().unwrap_or_default();
    let mode = i32::try_from(m.mode.unwrap_or(0)).unwrap_or(0);
    TypedParams::new()
        .with(MODE, TypedValue::Int(mode))
        .with(NODESET, TypedValue::String(m.nodeset.unwrap_or_default()))
}

/// A nodeset as libvirt's `virBitmapParse` reads it (`0-3,^2,5`): the
/// nodes it holds, in order.
///
/// # Errors
/// `VIR_ERR_INVALID_ARG` "Failed to parse bitmap '…'".
pub fn parse_nodeset(text: &str) -> Result<Vec<usize>> {
    let bad = || Error::InvalidValue {
        reason: format!("Failed to parse bitmap '{text}'"),
    };
    let mut set = vec![false; MASK_LEN];
    for part in text.split(',').map(str::trim) {
        let (negate, range) = match part.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, part),
        };
        let number = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|n| *n < MASK_LEN)
                .ok_or_else(bad)
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) if !negate => (number(a)?, number(b)?),
            Some(_) => return Err(bad()),
            None => (number(range)?, number(range)?),
        };
        if first > last {
            return Err(bad());
        }
        set[first..=last].iter_mut().for_each(|b| *b = !negate);
    }
    Ok(set
        .iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(i, _)| i)
        .collect())
}

/// `params` (checked against [`SPECS`]) applied to `current` of a domain
/// that is (`live`) or is not running, as libvirt's test driver applies
/// them.
///
/// # Errors
/// An unknown or mistyped parameter; a mode past the last
/// (`VIR_ERR_INVALID_ARG` "unsupported numatune mode: '7'"); a nodeset
/// that does not parse or holds no node (`VIR_ERR_OPERATION_INVALID`
/// "Invalid nodeset of 'numatune': …"); another mode for a running domain
/// ("can't change numatune mode for running domain").
pub fn apply(current: &NumaTune, params: &TypedParams, live: bool) -> Result<NumaTune> {
    params.validate(&SPECS)?;
    let mut mode = None;
    let mut nodeset = None;
    for p in params.iter() {
        match &p.value {
            TypedValue::Int(m) => {
                let index = usize::try_from(*m)
                    .ok()
                    .filter(|i| *i < NUMA_MODES.len())
                    .ok_or_else(|| Error::InvalidValue {
                        reason: format!("unsupported numatune mode: '{m}'"),
                    })?;
                mode = Some(index);
            }
            TypedValue::String(text) => {
                if parse_nodeset(text)?.is_empty() {
                    return Err(Error::invalid(format!(
                        "Invalid nodeset of 'numatune': {text}"
                    )));
                }
                nodeset = Some(text.clone());
            }
            _ => {}
        }
    }
    let old = current.memory.clone();
    if let (true, Some(m), Some(old)) = (live, mode, &old) {
        if old.mode.unwrap_or(0) != m {
            return Err(Error::invalid(
                "can't change numatune mode for running domain",
            ));
        }
    }
    if mode.is_none() && nodeset.is_none() {
        return Ok(current.clone());
    }
    let old = old.unwrap_or_default();
    Ok(NumaTune {
        memory: Some(NumaMemory {
            mode: mode.or(old.mode),
            placement: if nodeset.is_some() {
                None
            } else {
                old.placement
            },
            nodeset: nodeset.or(old.nodeset),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn nodesets_parse_as_libvirts_bitmaps() {
        assert_eq!(parse_nodeset("0-3,^2,5").expect("set"), vec![0, 1, 3, 5]);
        assert!(parse_nodeset("0-1,^0,^1").expect("empty").is_empty());
        for bad in ["abc", "3-1", "", "1024", "^1-2"] {
            let e = parse_nodeset(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("invalid argument: Failed to parse bitmap '{bad}'")
            );
        }
    }

    #[test]
    fn mode_and_nodeset_change_as_libvirts_test_driver() {
        let set = |mode: Option<i32>, nodes: Option<&str>| {
            let mut p = TypedParams::new();
            if let Some(m) = mode {
                p.push(MODE, TypedValue::Int(m));
            }
            if let Some(n) = nodes {
                p.push(NODESET, TypedValue::String(n.into()));
            }
            p
        };
        let t = apply(&NumaTune::default(), &set(None, Some("0")), false).expect("nodeset");
        let t = apply(&t, &set(Some(1), None), false).expect("mode");
        let p = to_params(&t);
        assert_eq!(p.get_int(MODE).expect("int"), Some(1));
        assert_eq!(p.get_string(NODESET).expect("s"), Some("0"));
        let e = apply(&t, &set(Some(0), None), true).expect_err("live mode");
        assert_eq!(e.code(), ErrorCode::OperationInvalid);
        apply(&t, &set(Some(1), Some("1")), true).expect("same mode live");
        let e = apply(&t, &set(Some(7), None), false).expect_err("mode 7");
        assert_eq!(
            e.to_string(),
            "invalid argument: unsupported numatune mode: '7'"
        );
        let e = apply(&t, &set(None, Some("0,^0")), false).expect_err("empty");
        assert_eq!(e.code(), ErrorCode::OperationInvalid);
        assert_eq!(
            to_params(&NumaTune::default()).get_int(MODE).expect("i"),
            Some(0)
        );
    }
}
