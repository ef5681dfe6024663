//! Memory sizes with libvirt's `unit` attribute, stored in KiB.
//!
//! Mirrors `virScaleInteger` / `virDomainParseMemory` (src/util/virutil.c,
//! src/conf/domain_conf.c): decimal units are powers of 1000, binary ones of
//! 1024, the result is rounded up to whole KiB and may not exceed `LLONG_MAX`
//! bytes.

use super::error::{Result, XmlError};
use super::read::Node;

/// The largest accepted size, in bytes (libvirt's `virMemoryMaxValue(false)`).
const MAX_BYTES: u128 = i64::MAX as u128;

/// The multiplier of `unit`, following `virScaleInteger`: bytes, or a
/// case-insensitive power letter followed by nothing or `iB` (binary) or `B`
/// (decimal).
fn scale(unit: &str) -> Option<u128> {
    if ["b", "byte", "bytes"]
        .iter()
        .any(|b| unit.eq_ignore_ascii_case(b))
    {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()?.to_ascii_lowercase() {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let rest = chars.as_str();
    let base: u128 = if rest.is_empty() || rest.eq_ignore_ascii_case("ib") {
        1024
    } else if rest.eq_ignore_ascii_case("b") {
        1000
    } else {
        return None;
    };
    Some(base.pow(power))
}

/// Converts `value` given in `unit` (default KiB) to KiB.
///
/// # Errors
/// [`XmlError::InvalidValue`] for a negative, non-numeric or too large value
/// or an unknown unit; `what` names the element.
pub(crate) fn to_kib(what: &str, value: &str, unit: Option<&str>) -> Result<u64> {
    let invalid = |value: &str, reason: &str| XmlError::InvalidValue {
        what: what.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let unit = unit.unwrap_or("KiB");
    let scale = scale(unit).ok_or_else(|| invalid(unit, "unknown memory unit"))?;
    let value = value.trim();
    if value.starts_with('-') {
        return Err(invalid(value, "memory size must not be negative"));
    }
    let n: u128 = value
        .parse::<u64>()
        .map_err(|e| {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                invalid(value, "memory size is too large")
            } else {
                invalid(value, "memory size must be a whole number")
            }
        })?
        .into();
    let bytes = n
        .checked_mul(scale)
        .filter(|b| *b <= MAX_BYTES)
        .ok_or_else(|| invalid(value, "memory size is too large"))?;
    u64::try_from(bytes.div_ceil(1024)).map_err(|_| invalid(value, "memory size is too large"))
}

/// Reads a `<memory unit='…'>N</memory>`-style element into KiB.
pub(crate) fn read_kib(mut node: Node<'_>) -> Result<u64> {
    let unit = node.attr("unit");
    let what = format!("<{}>", node.path());
    let text = node.text()?;
    to_kib(&what, &text, unit.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_scale_to_kib_rounding_up() {
        assert_eq!(to_kib("m", "256", Some("MiB")).ok(), Some(262_144));
        assert_eq!(to_kib("m", "1", Some("GB")).ok(), Some(976_563));
        assert_eq!(to_kib("m", "1025", Some("b")).ok(), Some(2));
        assert_eq!(to_kib("m", "7", None).ok(), Some(7));
        assert_eq!(to_kib("m", "1", Some("TiB")).ok(), Some(1 << 30));
        assert_eq!(to_kib("m", "1", Some("kb")).ok(), Some(1));
        assert_eq!(to_kib("m", "3", Some("G")).ok(), Some(3 << 20));
        assert_eq!(to_kib("m", "2048", Some("bytes")).ok(), Some(2));
        assert_eq!(to_kib("m", "1", Some("EiB")).ok(), Some(1 << 50));
    }

    #[test]
    fn negative_overflowing_and_unknown_units_are_refused() {
        let neg = to_kib("<memory>", "-1", None).expect_err("negative");
        assert!(neg.to_string().contains("negative"), "{neg}");
        let big = to_kib("<memory>", "99999999999999999999", None).expect_err("overflow");
        assert!(big.to_string().contains("too large"), "{big}");
        let big = to_kib("<memory>", "9000000", Some("TiB")).expect_err("overflow");
        assert!(big.to_string().contains("too large"), "{big}");
        assert!(to_kib("<memory>", "1", Some("parsecs")).is_err());
        assert!(to_kib("<memory>", "1", Some("KiBB")).is_err());
        assert!(to_kib("<memory>", "1", Some("")).is_err());
        assert!(to_kib("<memory>", "1.5", None).is_err());
    }
}
