//! `virsh perf`: perf events as typed parameters (boolean, one per
//! [`PERF_EVENTS`] name).

use crate::error::Result;
use crate::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use crate::xml::{Perf, PERF_EVENTS};

/// The setter's parameters: every event, a boolean.
pub const SPECS: [ParamSpec; PERF_EVENTS.len()] = {
    let mut specs = [ParamSpec::one("", ParamType::Boolean); PERF_EVENTS.len()];
    let mut i = 0;
    while i < PERF_EVENTS.len() {
        specs[i] = ParamSpec::one(PERF_EVENTS[i], ParamType::Boolean);
        i += 1;
    }
    specs
};

/// Every event and whether it is enabled, as `virDomainGetPerfEvents`
/// answers.
pub fn to_params(perf: &Perf) -> TypedParams {
    PERF_EVENTS
        .iter()
        .enumerate()
        .fold(TypedParams::new(), |p, (i, name)| {
            p.with(*name, TypedValue::Boolean(perf.enabled(i)))
        })
}

/// `params` (checked against [`SPECS`]) applied to `current`: each event
/// named is enabled or disabled (and so written to `<perf>`).
///
/// # Errors
/// An unknown event (`VIR_ERR_ARGUMENT_UNSUPPORTED`) or a value that is
/// not a boolean.
pub fn apply(current: &Perf, params: &TypedParams) -> Result<Perf> {
    params.validate(&SPECS)?;
    let mut perf = current.clone();
    for p in params.iter() {
        if let (Some(i), TypedValue::Boolean(on)) =
            (PERF_EVENTS.iter().position(|e| *e == p.field), &p.value)
        {
            perf.events[i] = Some(*on);
        }
    }
    Ok(perf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn events_toggle_and_unknown_ones_are_refused() {
        let on = TypedParams::new()
            .with("cmt", TypedValue::Boolean(true))
            .with("mbmt", TypedValue::Boolean(false));
        let perf = apply(&Perf::default(), &on).expect("toggle");
        assert_eq!(perf.events[1], Some(false));
        let p = to_params(&perf);
        assert_eq!(p.len(), 22);
        assert_eq!(p.get_bool("cmt").expect("bool"), Some(true));
        assert_eq!(p.get_bool("emulation_faults").expect("bool"), Some(false));
        let bogus = TypedParams::new().with("bogus", TypedValue::Boolean(true));
        let e = apply(&perf, &bogus).expect_err("unknown");
        assert_eq!(e.code(), ErrorCode::ArgumentUnsupported);
        assert!(
            e.to_string().contains("parameter 'bogus' not supported"),
            "{e}"
        );
    }
}
