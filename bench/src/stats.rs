//! Small statistics over measured rounds and latency samples.

use std::time::Duration;

/// The median of `values` (the upper one for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Latency samples in nanoseconds, merged from every task and round.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    nanos: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub(crate) fn extend(&mut self, samples: Vec<u64>) {
        self.nanos.extend(samples);
        self.sorted = false;
    }

    /// The `p`-th percentile (0-100), in microseconds.
    pub(crate) fn percentile_us(&mut self, p: f64) -> f64 {
        if !self.sorted {
            self.nanos.sort_unstable();
            self.sorted = true;
        }
        let Some(last) = self.nanos.len().checked_sub(1) else {
            return 0.0;
        };
        // Nearest rank; the sample count is far below 2^52, so the casts are exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((p / 100.0) * last as f64).round() as usize;
        Duration::from_nanos(self.nanos[rank.min(last)]).as_secs_f64() * 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
        let mut latencies = Latencies::default();
        latencies.extend((1..=100).map(|us| us * 1000).collect());
        assert_eq!(latencies.percentile_us(50.0).round(), 51.0);
        assert_eq!(latencies.percentile_us(99.0), 99.0);
        assert_eq!(latencies.percentile_us(100.0), 100.0);
    }
}
