//! Percentile summaries of samples in microseconds, reported in
//! milliseconds (nearest-rank percentiles over every sample, no buckets).

use serde::Serialize;

/// Distribution of a set of samples, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

/// Nearest-rank percentile `p` (0–100) of `sorted` (ascending, non-empty).
pub fn percentile(sorted: &[i64], p: f64) -> i64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// Summarises `samples_us` (sorted in place). Empty input gives all zeros.
pub fn summarize_us(samples_us: &mut [i64]) -> Summary {
    if samples_us.is_empty() {
        return Summary::default();
    }
    samples_us.sort_unstable();
    let ms = |us: i64| us as f64 / 1000.0;
    let sum: i128 = samples_us.iter().map(|&v| v as i128).sum();
    let mean_us = sum as f64 / samples_us.len() as f64;
    Summary {
        count: samples_us.len() as u64,
        min_ms: ms(samples_us[0]),
        mean_ms: mean_us.round() / 1000.0,
        p50_ms: ms(percentile(samples_us, 50.0)),
        p90_ms: ms(percentile(samples_us, 90.0)),
        p99_ms: ms(percentile(samples_us, 99.0)),
        p999_ms: ms(percentile(samples_us, 99.9)),
        max_ms: ms(samples_us[samples_us.len() - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn summary_in_ms() {
        let mut v: Vec<i64> = (1..=1000).map(|i| i * 1000).collect();
        v.reverse();
        let s = summarize_us(&mut v);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 500.0);
        assert_eq!(s.p99_ms, 990.0);
        assert_eq!(s.max_ms, 1000.0);
        assert_eq!(s.mean_ms, 500.5);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(summarize_us(&mut []), Summary::default());
    }
}
