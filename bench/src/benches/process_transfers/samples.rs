//! Latency samples of a path, whole and per hop, over the rounds of the latency phases.

use std::time::Duration;

use super::registry::{Stage, Stamps};
use crate::stats::Latencies;

/// Latencies of a path: whole, and per hop.
pub(super) struct Samples<const N: usize> {
    pub(super) names: [&'static str; N],
    pub(super) total: Latencies,
    hops: [Latencies; N],
    count: usize,
}

impl<const N: usize> Samples<N> {
    pub(super) fn new(names: [&'static str; N]) -> Self {
        Samples {
            names,
            total: Latencies::default(),
            hops: std::array::from_fn(|_| Latencies::default()),
            count: 0,
        }
    }

    pub(super) fn add(&mut self, total: Duration, hops: [Option<Duration>; N]) {
        self.count += 1;
        self.total.extend(vec![nanos(total)]);
        for (samples, hop) in self.hops.iter_mut().zip(hops) {
            if let Some(hop) = hop {
                samples.extend(vec![nanos(hop)]);
            }
        }
    }

    pub(super) fn absorb(&mut self, mut other: Samples<N>) {
        self.count += other.count;
        self.total.append(&mut other.total);
        for (samples, other) in self.hops.iter_mut().zip(&mut other.hops) {
            samples.append(other);
        }
    }

    /// `N transfers: p50 .. ms, p99 .. ms, max .. ms; p50 per hop: request .. ms, ...`.
    pub(super) fn summary(&mut self) -> String {
        let ms = |samples: &mut Latencies, p: f64| samples.percentile_us(p) / 1000.0;
        let hops = self
            .names
            .iter()
            .zip(&mut self.hops)
            .map(|(name, samples)| format!("{name} {:.2}", ms(samples, 50.0)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} transfers: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; p50 per hop (ms): {hops}",
            self.count,
            ms(&mut self.total, 50.0),
            ms(&mut self.total, 99.0),
            ms(&mut self.total, 100.0),
        )
    }
}

impl Samples<6> {
    /// A transfer through the process manager: request to completed, and its hops.
    pub(super) fn add_stamps(&mut self, stamps: &Stamps) {
        use Stage::{Completed, DepositSent, Deposited, Requested, Sent, WithdrawSent, Withdrawn};
        let Some(total) = stamps.between(Sent, Completed) else {
            return;
        };
        self.add(
            total,
            [
                stamps.between(Sent, Requested),
                stamps.between(Requested, WithdrawSent),
                stamps.between(WithdrawSent, Withdrawn),
                stamps.between(Withdrawn, DepositSent),
                stamps.between(DepositSent, Deposited),
                stamps.between(Deposited, Completed),
            ],
        );
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
