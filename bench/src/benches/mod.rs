//! The benchmarks, by name. To add one: write `benches/<name>.rs` with an
//! `async fn run(options: Options) -> anyhow::Result<Vec<Figure>>` and list it in [`BENCHES`].

mod memory_command;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::report::Figure;

/// Settings shared by the benchmarks; each uses those that apply to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// How long each measured phase of the foldline path runs, in seconds. The raw limit runs
    /// the same number of operations, so both end with stores of the same size.
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub(crate) seconds: f64,

    /// Operations per measured phase; overrides --seconds (no calibration).
    #[arg(long, value_name = "N")]
    pub(crate) commands: Option<u64>,

    /// Warm-up before measuring, in seconds; it also calibrates --seconds into a count.
    #[arg(long, default_value_t = 1.0, value_name = "S")]
    pub(crate) warmup: f64,

    /// Measured rounds; the foldline path and the raw limit alternate, and the median is
    /// reported.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) rounds: u32,

    /// Concurrent tasks issuing operations (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub(crate) tasks: Option<usize>,

    /// Aggregates (streams) written at any one time.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub(crate) streams: u32,

    /// Events a stream receives before it is retired and a fresh one takes its place.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) events_per_stream: u32,
}

impl Options {
    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    pub(crate) fn measured(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.max(0.01))
    }

    pub(crate) fn tasks(&self) -> usize {
        self.tasks
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

/// What a benchmark's `run` returns.
pub(crate) type BenchFuture = Pin<Box<dyn Future<Output = anyhow::Result<Vec<Figure>>>>>;

/// A benchmark in the registry.
#[derive(Debug)]
pub(crate) struct Bench {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) run: fn(Options) -> BenchFuture,
}

/// Every benchmark, in the order `all` runs them.
pub(crate) const BENCHES: &[Bench] = &[Bench {
    name: "memory-command",
    about: "commands/s through CommandExecutor (load, decide, append) on the in-memory store, \
            against a bare EventStore::append loop on the same store",
    run: |options| Box::pin(memory_command::run(options)),
}];

/// The benchmark called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Bench> {
    BENCHES.iter().find(|bench| bench.name == name)
}
