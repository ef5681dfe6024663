//! `virsh domiftune`: an interface's traffic shaping as typed parameters
//! (`VIR_DOMAIN_BANDWIDTH_*`, uint) and how a change merges into
//! `<bandwidth>`, as libvirt's drivers merge it.

use crate::error::Result;
use crate::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use crate::xml::{Bandwidth, BandwidthRate};

/// `VIR_DOMAIN_BANDWIDTH_IN_AVERAGE`.
pub const IN_AVERAGE: &str = "inbound.average";
/// `VIR_DOMAIN_BANDWIDTH_IN_PEAK`.
pub const IN_PEAK: &str = "inbound.peak";
/// `VIR_DOMAIN_BANDWIDTH_IN_BURST`.
pub const IN_BURST: &str = "inbound.burst";
/// `VIR_DOMAIN_BANDWIDTH_IN_FLOOR`.
pub const IN_FLOOR: &str = "inbound.floor";
/// `VIR_DOMAIN_BANDWIDTH_OUT_AVERAGE`.
pub const OUT_AVERAGE: &str = "outbound.average";
/// `VIR_DOMAIN_BANDWIDTH_OUT_PEAK`.
pub const OUT_PEAK: &str = "outbound.peak";
/// `VIR_DOMAIN_BANDWIDTH_OUT_BURST`.
pub const OUT_BURST: &str = "outbound.burst";

/// The setter's parameters: all uint.
pub const SPECS: [ParamSpec; 7] = [
    ParamSpec::one(IN_AVERAGE, ParamType::UInt),
    ParamSpec::one(IN_PEAK, ParamType::UInt),
    ParamSpec::one(IN_BURST, ParamType::UInt),
    ParamSpec::one(IN_FLOOR, ParamType::UInt),
    ParamSpec::one(OUT_AVERAGE, ParamType::UInt),
    ParamSpec::one(OUT_PEAK, ParamType::UInt),
    ParamSpec::one(OUT_BURST, ParamType::UInt),
];

fn uint(v: u64) -> TypedValue {
    TypedValue::UInt(u32::try_from(v).unwrap_or(u32::MAX))
}

/// The shaping as `virDomainGetInterfaceParameters` answers it: the seven
/// values in libvirt's order, 0 for what is not shaped.
pub fn to_params(bw: &Bandwidth) -> TypedParams {
    let i = bw.inbound.unwrap_or_default();
    let o = bw.outbound.unwrap_or_default();
    TypedParams::new()
        .with(IN_AVERAGE, uint(i.average))
        .with(IN_PEAK, uint(i.peak))
        .with(IN_BURST, uint(i.burst))
        .with(IN_FLOOR, uint(i.floor))
        .with(OUT_AVERAGE, uint(o.average))
        .with(OUT_PEAK, uint(o.peak))
        .with(OUT_BURST, uint(o.burst))
}

/// `params` (checked against [`SPECS`]) merged into `current` as libvirt
/// does: each direction given is replaced by the rates given (peak and
/// burst default to 0); a direction whose average (inbound: average and
/// floor) ends up 0 is cleared when it was named, else left alone.
///
/// # Errors
/// An unknown parameter or one of the wrong type.
pub fn apply(current: &Bandwidth, params: &TypedParams) -> Result<Bandwidth> {
    params.validate(&SPECS)?;
    let (mut inbound, mut outbound) = (BandwidthRate::default(), BandwidthRate::default());
    let (mut in_named, mut out_named) = (false, false);
    for p in params.iter() {
        let TypedValue::UInt(v) = p.value else {
            continue;
        };
        let v = u64::from(v);
        match p.field.as_str() {
            IN_AVERAGE => (inbound.average, in_named) = (v, true),
            IN_PEAK => inbound.peak = v,
            IN_BURST => inbound.burst = v,
            IN_FLOOR => (inbound.floor, in_named) = (v, true),
            OUT_AVERAGE => (outbound.average, out_named) = (v, true),
            OUT_PEAK => outbound.peak = v,
            OUT_BURST => outbound.burst = v,
            _ => {}
        }
    }
    let mut bw = *current;
    if inbound.average != 0 || inbound.floor != 0 {
        bw.inbound = Some(inbound);
    } else if in_named {
        bw.inbound = None;
    }
    if outbound.average != 0 {
        bw.outbound = Some(outbound);
    } else if out_named {
        bw.outbound = None;
    }
    Ok(bw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, u32)]) -> TypedParams {
        list.iter().fold(TypedParams::new(), |p, (k, v)| {
            p.with(*k, TypedValue::UInt(*v))
        })
    }

    #[test]
    fn directions_are_replaced_or_cleared_when_named() {
        let bw = apply(
            &Bandwidth::default(),
            &params(&[(IN_AVERAGE, 100), (IN_PEAK, 200), (OUT_AVERAGE, 10)]),
        )
        .expect("set");
        assert_eq!(bw.inbound.map(|r| (r.average, r.peak)), Some((100, 200)));
        let p = to_params(&bw);
        assert_eq!(p.len(), 7);
        assert_eq!(p.get_uint(OUT_AVERAGE).expect("uint"), Some(10));
        // A new inbound average drops the old peak; outbound stays.
        let bw2 = apply(&bw, &params(&[(IN_AVERAGE, 5)])).expect("replace");
        assert_eq!(bw2.inbound.map(|r| (r.average, r.peak)), Some((5, 0)));
        assert!(bw2.outbound.is_some());
        let bw3 = apply(&bw2, &params(&[(OUT_AVERAGE, 0)])).expect("clear");
        assert!(bw3.outbound.is_none() && bw3.inbound.is_some());
        // A peak alone shapes nothing.
        let bw4 = apply(&bw3, &params(&[(OUT_PEAK, 9)])).expect("peak");
        assert!(bw4.outbound.is_none());
        assert!(apply(&bw, &params(&[("inbound.size", 1)])).is_err());
    }
}
