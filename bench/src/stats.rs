//! Small statistics over measured rounds and latency samples.

use std::time::Duration;

/// The median of `values` (the upper one for an even count); 0 for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Of rounds measured as `(value, limit)` pairs, the one whose ratio `value / limit` is the
/// median (the upper one for an even count); `(0, 0)` for none. Both passes of a round ran
/// back to back, under the same load from the rest of a shared machine, so their ratio is
/// steadier than the ratio of separate medians.
pub(crate) fn median_round(rounds: &[(f64, f64)]) -> (f64, f64) {
    let ratio = |(value, limit): &(f64, f64)| value / limit.max(f64::MIN_POSITIVE);
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    sorted.get(sorted.len() / 2).copied().unwrap_or((0.0, 0.0))
}

/// `count` units (events, operations) done in `elapsed`, per second.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    // Counts are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    count / elapsed.as_secs_f64().max(1e-9)
}

/// A size (a batch, a count of documents) as a figure's value.
pub(crate) fn size_f64(n: usize) -> f64 {
    // Sizes are far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n
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

    /// Moves every sample of `other` into these.
    pub(crate) fn append(&mut self, other: &mut Latencies) {
        self.nanos.append(&mut other.nanos);
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
        assert_eq!(
            median_round(&[(10.0, 100.0), (90.0, 100.0), (60.0, 200.0)]),
            (60.0, 200.0)
        );
        assert_eq!(median_round(&[]), (0.0, 0.0));
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(size_f64(2000), 2000.0);
        let mut latencies = Latencies::default();
        latencies.extend((1..=100).map(|us| us * 1000).collect());
        assert_eq!(latencies.percentile_us(50.0).round(), 51.0);
        assert_eq!(latencies.percentile_us(99.0), 99.0);
        assert_eq!(latencies.percentile_us(100.0), 100.0);
    }
}
