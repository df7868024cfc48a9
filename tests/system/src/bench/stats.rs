//! Percentiles of small samples.

use serde::Serialize;

/// Nearest-rank percentile `p` (0–100) of `v`: the smallest value with at least `p` % of the
/// sample at or below it (with 5 values, p95 is the largest). `None` for an empty sample.
pub fn percentile(v: &[i64], p: f64) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

/// p50, p95 and the sample.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Values, in run order.
    pub values: Vec<i64>,
    /// Median (nearest rank).
    pub p50: Option<i64>,
    /// 95th percentile (nearest rank).
    pub p95: Option<i64>,
}

impl Summary {
    /// Of the values present.
    pub fn of(values: impl IntoIterator<Item = Option<i64>>) -> Self {
        let values: Vec<i64> = values.into_iter().flatten().collect();
        Self {
            p50: percentile(&values, 50.0),
            p95: percentile(&values, 95.0),
            values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v = [5, 1, 4, 2, 3];
        assert_eq!(percentile(&v, 50.0), Some(3));
        assert_eq!(percentile(&v, 95.0), Some(5));
        assert_eq!(percentile(&[7, 9], 50.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
