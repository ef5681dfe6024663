//! Order statistics over timing samples: medians and nearest-rank
//! percentiles. Kept free of I/O so it can be unit tested.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `sorted` by the nearest-rank method;
/// `None` for an empty slice. `sorted` must be in ascending order.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(index).copied()
}

/// The median of `values` (mean of the two middle values for an even
/// count); `None` when empty. NaNs sort last and so rarely matter.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v[mid - 1] + v[mid]) / 2.0)
    }
}

/// Smallest value, `None` when empty.
pub fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().min_by(f64::total_cmp)
}

/// Milliseconds as a float, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Microseconds as a float, for tables.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `a / b`, or `None` when `b` is zero or either side is missing.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7u32], 99.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        // 10 samples: p99 is the largest, p50 the fifth.
        let v: Vec<u32> = (10..20).collect();
        assert_eq!(percentile(&v, 99.0), Some(19));
        assert_eq!(percentile(&v, 50.0), Some(14));
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(min(&[4.0, 1.5, 3.0]), Some(1.5));
    }

    #[test]
    fn ratios_refuse_zero_and_missing() {
        assert_eq!(ratio(Some(6.0), Some(2.0)), Some(3.0));
        assert_eq!(ratio(Some(6.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }
}
