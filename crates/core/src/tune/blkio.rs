//! `virsh blkiotune`: the block I/O weights as typed parameters
//! (`VIR_DOMAIN_BLKIO_*`) and how a change merges into `<blkiotune>`, as
//! libvirt's `virDomainDriverSetupPersistentDefBlkioParams` merges it.

use crate::error::{Error, Result};
use crate::typed_params::{ParamSpec, ParamType, TypedParams, TypedValue};
use crate::xml::{BlkioDevice, BlkioTune};

/// `VIR_DOMAIN_BLKIO_WEIGHT` (uint): the domain's I/O weight.
pub const WEIGHT: &str = "weight";
/// `VIR_DOMAIN_BLKIO_DEVICE_WEIGHT` (string `path,weight,…`).
pub const DEVICE_WEIGHT: &str = "device_weight";
/// `VIR_DOMAIN_BLKIO_DEVICE_READ_IOPS` (string `path,iops,…`).
pub const DEVICE_READ_IOPS: &str = "device_read_iops_sec";
/// `VIR_DOMAIN_BLKIO_DEVICE_WRITE_IOPS` (string `path,iops,…`).
pub const DEVICE_WRITE_IOPS: &str = "device_write_iops_sec";
/// `VIR_DOMAIN_BLKIO_DEVICE_READ_BPS` (string `path,bytes,…`).
pub const DEVICE_READ_BPS: &str = "device_read_bytes_sec";
/// `VIR_DOMAIN_BLKIO_DEVICE_WRITE_BPS` (string `path,bytes,…`).
pub const DEVICE_WRITE_BPS: &str = "device_write_bytes_sec";

/// The per-device parameters in libvirt's order.
pub const DEVICE_PARAMS: [&str; 5] = [
    DEVICE_WEIGHT,
    DEVICE_READ_IOPS,
    DEVICE_WRITE_IOPS,
    DEVICE_READ_BPS,
    DEVICE_WRITE_BPS,
];

/// The setter's parameters.
pub const SPECS: [ParamSpec; 6] = [
    ParamSpec::one(WEIGHT, ParamType::UInt),
    ParamSpec::one(DEVICE_WEIGHT, ParamType::String),
    ParamSpec::one(DEVICE_READ_IOPS, ParamType::String),
    ParamSpec::one(DEVICE_WRITE_IOPS, ParamType::String),
    ParamSpec::one(DEVICE_READ_BPS, ParamType::String),
    ParamSpec::one(DEVICE_WRITE_BPS, ParamType::String),
];

/// The value of per-device parameter `param` (one of [`DEVICE_PARAMS`]).
fn field(d: &BlkioDevice, param: &str) -> u64 {
    match param {
        DEVICE_WEIGHT => u64::from(d.weight),
        DEVICE_READ_IOPS => d.read_iops,
        DEVICE_WRITE_IOPS => d.write_iops,
        DEVICE_READ_BPS => d.read_bytes,
        _ => d.write_bytes,
    }
}

fn set_field(d: &mut BlkioDevice, param: &str, value: u64) {
    match param {
        DEVICE_WEIGHT => d.weight = u32::try_from(value).unwrap_or(u32::MAX),
        DEVICE_READ_IOPS => d.read_iops = value,
        DEVICE_WRITE_IOPS => d.write_iops = value,
        DEVICE_READ_BPS => d.read_bytes = value,
        _ => d.write_bytes = value,
    }
}

/// The weights as `virDomainGetBlkioParameters` answers them: the weight,
/// then each per-device list as `path,value,…` of the devices that set it.
pub fn to_params(t: &BlkioTune) -> TypedParams {
    let mut params = TypedParams::new().with(WEIGHT, TypedValue::UInt(t.weight));
    for param in DEVICE_PARAMS {
        let list: Vec<String> = t
            .devices
            .iter()
            .filter(|d| field(d, param) != 0)
            .map(|d| format!("{},{}", d.path, field(d, param)))
            .collect();
        params.push(param, TypedValue::String(list.join(",")));
    }
    params
}

/// One `path,value,…` list as libvirt's `virDomainDriverParseBlkioDeviceStr`
/// reads it: weights are uint, the rest ullong.
fn parse_list(param: &str, text: &str) -> Result<Vec<(String, u64)>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<&str> = text.split(',').collect();
    if fields.len() % 2 != 0 || fields.iter().step_by(2).any(|p| p.is_empty()) {
        return Err(Error::InvalidValue {
            reason: format!("unable to parse blkio device '{param}' '{text}'"),
        });
    }
    fields
        .chunks(2)
        .map(|pair| {
            let (path, raw) = (pair[0], pair[1]);
            let value = if param == DEVICE_WEIGHT {
                raw.parse::<u32>().map(u64::from).ok()
            } else {
                raw.parse::<u64>().ok()
            };
            value
                .map(|v| (path.to_owned(), v))
                .ok_or_else(|| Error::InvalidValue {
                    reason: format!(
                        "invalid value '{raw}' for parameter '{param}' of device '{path}'"
                    ),
                })
        })
        .collect()
}

/// `params` (checked against [`SPECS`]) merged into `current`: the weight
/// replaced; each device listed updated, added if it sets something, and
/// dropped once nothing is set.
///
/// # Errors
/// An unknown or mistyped parameter; a list libvirt cannot parse
/// (`VIR_ERR_INVALID_ARG` "unable to parse blkio device …", "invalid value
/// '…' for parameter '…' of device '…'").
pub fn apply(current: &BlkioTune, params: &TypedParams) -> Result<BlkioTune> {
    params.validate(&SPECS)?;
    let mut t = current.clone();
    for p in params.iter() {
        match &p.value {
            TypedValue::UInt(w) => t.weight = *w,
            TypedValue::String(text) => {
                for (path, value) in parse_list(&p.field, text)? {
                    match t.devices.iter_mut().find(|d| d.path == path) {
                        Some(d) => set_field(d, &p.field, value),
                        None if value != 0 => {
                            let mut d = BlkioDevice {
                                path,
                                ..BlkioDevice::default()
                            };
                            set_field(&mut d, &p.field, value);
                            t.devices.push(d);
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
    }
    t.devices.retain(|d| !d.is_empty());
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn string(k: &str, v: &str) -> TypedParams {
        TypedParams::new().with(k, TypedValue::String(v.into()))
    }

    #[test]
    fn devices_merge_and_list_as_libvirt() {
        let t = apply(
            &BlkioTune::default(),
            &string(DEVICE_WEIGHT, "/dev/sda,300,/dev/sdb,10"),
        )
        .expect("weights");
        let t = apply(&t, &string(DEVICE_READ_BPS, "/dev/sda,1000,/dev/sdc,0")).expect("bps");
        assert_eq!(t.devices.len(), 2, "{t:?}");
        let p = to_params(&t);
        assert_eq!(p.len(), 6);
        assert_eq!(
            p.get_string(DEVICE_WEIGHT).expect("s"),
            Some("/dev/sda,300,/dev/sdb,10")
        );
        assert_eq!(
            p.get_string(DEVICE_READ_BPS).expect("s"),
            Some("/dev/sda,1000")
        );
        assert_eq!(p.get_string(DEVICE_WRITE_IOPS).expect("s"), Some(""));
        let t = apply(&t, &string(DEVICE_WEIGHT, "/dev/sdb,0")).expect("drop");
        assert_eq!(t.devices.len(), 1);
        let t = apply(&t, &TypedParams::new().with(WEIGHT, TypedValue::UInt(5000))).expect("w");
        assert_eq!(t.weight, 5000);
    }

    #[test]
    fn lists_libvirt_cannot_parse_are_refused() {
        let e = apply(&BlkioTune::default(), &string(DEVICE_WEIGHT, "/dev/sda")).expect_err("odd");
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        assert_eq!(
            e.to_string(),
            "invalid argument: unable to parse blkio device 'device_weight' '/dev/sda'"
        );
        let e = apply(
            &BlkioTune::default(),
            &string(DEVICE_WEIGHT, "/dev/sda,abc"),
        )
        .expect_err("value");
        assert!(e
            .to_string()
            .contains("invalid value 'abc' for parameter 'device_weight' of device '/dev/sda'"));
        assert!(apply(&BlkioTune::default(), &string(WEIGHT, "5")).is_err());
    }
}
