//! The few `metrics` the store benchmarks read back from foldline (group-commit batch sizes
//! and durations on PostgreSQL and Kafka, command conflicts), through a minimal recorder: every other metric
//! goes to a no-op handle, so recording costs an atomic add at most.
//!
//! The recorder is installed by the benchmarks that read it ([`install`]), not at start-up:
//! the in-memory benchmark runs with metrics off, as it always has.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// Appends per group-commit transaction (`foldline-postgres`).
pub(crate) const GROUP_COMMIT_APPENDS: &str = "foldline_pg_group_commit_appends";
/// Seconds per group-commit transaction (`foldline-postgres`).
pub(crate) const GROUP_COMMIT_SECONDS: &str = "foldline_pg_group_commit_seconds";
/// Appends per committed transaction (`foldline-kafka`).
pub(crate) const KAFKA_TRANSACTION_APPENDS: &str = "foldline_kafka_transaction_appends";
/// Seconds per committed transaction (`foldline-kafka`).
pub(crate) const KAFKA_TRANSACTION_SECONDS: &str = "foldline_kafka_transaction_seconds";
/// Version conflicts the command executor retried (`foldline`).
pub(crate) const COMMAND_CONFLICTS: &str = "foldline_command_conflicts_total";

/// Count and sum of one metric, over all its labels.
#[derive(Debug, Default)]
struct Stat {
    count: AtomicU64,
    /// The sum in millionths, so durations in seconds keep microseconds.
    sum_micros: AtomicU64,
}

impl Stat {
    fn add(&self, value: f64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        // Recorded values are small and non-negative (batch sizes, seconds).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = (value.max(0.0) * 1e6).round() as u64;
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn read(&self) -> Reading {
        Reading {
            count: self.count.load(Ordering::Relaxed),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

impl HistogramFn for Stat {
    fn record(&self, value: f64) {
        self.add(value);
    }
}

impl CounterFn for Stat {
    fn increment(&self, value: u64) {
        self.count.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.count.fetch_max(value, Ordering::Relaxed);
    }
}

/// A metric's count and sum at one moment; subtract two to get a phase's share.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    pub(crate) count: u64,
    sum_micros: u64,
}

impl Reading {
    /// What happened between `earlier` and `self`.
    pub(crate) fn since(self, earlier: Reading) -> Reading {
        Reading {
            count: self.count.saturating_sub(earlier.count),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// The mean recorded value (0 when nothing was recorded).
    pub(crate) fn mean(self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        // Counts and sums stay far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let mean = self.sum_micros as f64 / 1e6 / self.count as f64;
        mean
    }
}

#[derive(Debug, Default)]
struct Stats {
    appends: Arc<Stat>,
    seconds: Arc<Stat>,
    conflicts: Arc<Stat>,
    kafka_appends: Arc<Stat>,
    kafka_seconds: Arc<Stat>,
}

impl Stats {
    fn get(&self, name: &str) -> Option<&Arc<Stat>> {
        match name {
            GROUP_COMMIT_APPENDS => Some(&self.appends),
            GROUP_COMMIT_SECONDS => Some(&self.seconds),
            COMMAND_CONFLICTS => Some(&self.conflicts),
            KAFKA_TRANSACTION_APPENDS => Some(&self.kafka_appends),
            KAFKA_TRANSACTION_SECONDS => Some(&self.kafka_seconds),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Sink(Arc<Stats>);

impl Recorder for Sink {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0
            .get(key.name())
            .map_or_else(Counter::noop, |stat| Counter::from_arc(Arc::clone(stat)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0.get(key.name()).map_or_else(Histogram::noop, |stat| {
            Histogram::from_arc(Arc::clone(stat))
        })
    }
}

static STATS: OnceLock<Arc<Stats>> = OnceLock::new();

/// Installs the recorder (once per process; later calls do nothing). Fails if another global
/// recorder is already installed.
pub(crate) fn install() -> anyhow::Result<()> {
    if STATS.get().is_some() {
        return Ok(());
    }
    let stats = Arc::new(Stats::default());
    metrics::set_global_recorder(Sink(Arc::clone(&stats)))
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    let _ = STATS.set(stats);
    Ok(())
}

/// The current reading of the metric `name` (one of the constants above); zero before
/// [`install`].
pub(crate) fn read(name: &str) -> Reading {
    STATS
        .get()
        .and_then(|stats| stats.get(name))
        .map_or_else(Reading::default, |stat| stat.read())
}
