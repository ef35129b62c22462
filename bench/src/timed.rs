//! Time-bound phases: a set of workers started together, each repeating one operation until
//! the phase's time is up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Barrier;

use crate::stats::{Latencies, per_second};

/// One kind of operation, repeated by one task.
pub(crate) trait Worker: Send + 'static {
    /// Runs the operation once and returns how many units (commands, events) it did.
    fn step(&mut self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}

/// What one phase did, over all its workers.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    /// Units done (commands, events).
    pub(crate) units: u64,
    /// Operations done (one per `step`).
    pub(crate) ops: u64,
    /// From the first worker's start to the last worker's end.
    pub(crate) elapsed: Duration,
    /// Per operation, in nanoseconds.
    pub(crate) latencies: Vec<u64>,
}

impl Measured {
    /// Units per second.
    pub(crate) fn rate(&self) -> f64 {
        per_second(self.units, self.elapsed)
    }

    /// The `p`-th percentile (0-100) of the operations' latencies, in microseconds.
    pub(crate) fn latency_us(&self, p: f64) -> f64 {
        let mut latencies = Latencies::default();
        latencies.extend(self.latencies.clone());
        latencies.percentile_us(p)
    }
}

/// Runs every worker on its own task for `duration` (an operation under way when the time is
/// up finishes and counts; the phase lasts until the last one has), and gives the workers
/// back: their connections stay open until the caller has read the machine's CPU counters
/// (a server process that exits takes its CPU time with it).
pub(crate) async fn run_for<W: Worker>(
    workers: Vec<W>,
    duration: Duration,
) -> anyhow::Result<(Measured, Vec<W>)> {
    let barrier = Arc::new(Barrier::new(workers.len()));
    let handles: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(drive(worker, duration, Arc::clone(&barrier))))
        .collect();
    let mut measured = Measured::default();
    let mut workers = Vec::with_capacity(handles.len());
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    for handle in handles {
        let (run, worker) = handle.await.context("a benchmark task panicked")??;
        workers.push(worker);
        first_start = Some(first_start.map_or(run.start, |s| s.min(run.start)));
        last_end = Some(last_end.map_or(run.end, |e| e.max(run.end)));
        measured.units += run.units;
        measured.ops += u64::try_from(run.latencies.len()).unwrap_or(u64::MAX);
        measured.latencies.extend(run.latencies);
    }
    if let (Some(start), Some(end)) = (first_start, last_end) {
        measured.elapsed = end - start;
    }
    Ok((measured, workers))
}

struct Run {
    start: Instant,
    end: Instant,
    units: u64,
    latencies: Vec<u64>,
}

async fn drive<W: Worker>(
    mut worker: W,
    duration: Duration,
    barrier: Arc<Barrier>,
) -> anyhow::Result<(Run, W)> {
    let mut latencies = Vec::with_capacity(1 << 12);
    let mut units = 0;
    barrier.wait().await;
    let start = Instant::now();
    let stop = start + duration;
    loop {
        let before = Instant::now();
        if before >= stop {
            break;
        }
        units += worker.step().await?;
        latencies.push(u64::try_from(before.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let run = Run {
        start,
        end: Instant::now(),
        units,
        latencies,
    };
    Ok((run, worker))
}
