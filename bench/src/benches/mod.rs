//! The benchmarks, by name. To add one: write `benches/<name>.rs` with an
//! `async fn run(options: Options) -> anyhow::Result<Vec<Figure>>` and list it in [`BENCHES`].

pub(crate) mod account;
mod balances;
mod kafka_append;
mod kafka_feed;
mod kafka_redis_projection;
mod kafka_takeover;
mod live_lag;
mod memory_command;
mod pg_append_1;
mod pg_append_100;
mod pg_feed;
mod pg_load;
mod process_transfers;
mod redis_projection;
mod tantivy_projection;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::report::Figure;

/// Settings shared by the benchmarks; each uses those that apply to it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// How long each measured phase of the foldline path runs, in seconds (default 2; live-lag:
    /// 5). The raw limit runs the same number of operations, so both end with stores of the
    /// same size.
    #[arg(long, value_name = "S")]
    pub(crate) seconds: Option<f64>,

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

    /// Concurrent tasks issuing operations (default: the number of CPUs; pg-append-100: 8).
    #[arg(long, value_name = "N")]
    pub(crate) tasks: Option<usize>,

    /// Aggregates (streams) written at any one time (default: 1000).
    #[arg(long, value_name = "N")]
    pub(crate) streams: Option<u32>,

    /// Events a stream receives before it is retired and a fresh one takes its place.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub(crate) events_per_stream: u32,

    /// pg-append-1, kafka-append: the numbers of concurrent command handlers to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,16,64",
        value_name = "N,N,.."
    )]
    pub(crate) handlers: Vec<usize>,

    /// pg-feed, kafka-feed, redis-projection, kafka-redis-projection: events in the feed that
    /// is read (default 1 000 000);
    /// tantivy-projection: events indexed (default 200 000).
    #[arg(long, value_name = "N")]
    pub(crate) events: Option<u64>,

    /// pg-feed, kafka-feed: events per `read_all` call (and per page of pg-feed's raw scan;
    /// default 1000);
    /// redis-projection, kafka-redis-projection, tantivy-projection, live-lag,
    /// process-transfers: the projector's batch size (defaults 2000, 2000, 10 000, 2000 and
    /// 500).
    #[arg(long, value_name = "N")]
    pub(crate) batch: Option<usize>,

    /// pg-feed, redis-projection: reuse the feed's schema when it already holds exactly
    /// --events events, instead of dropping it and writing them again.
    #[arg(long)]
    pub(crate) keep: bool,

    /// live-lag: appends per second (one event each; default 500); process-transfers:
    /// transfers per second of the latency phases (default: half the throughput measured
    /// through the process manager in the same run). Started on a fixed schedule.
    #[arg(long, value_name = "N")]
    pub(crate) rate: Option<f64>,

    /// process-transfers: transfers each requesting task keeps in flight through the process
    /// manager (default 16).
    #[arg(long, value_name = "N")]
    pub(crate) in_flight: Option<usize>,

    /// process-transfers: the runner's idle interval, in milliseconds (default 20, the
    /// process worker's).
    #[arg(long, value_name = "MS")]
    pub(crate) idle_ms: Option<u64>,

    /// process-transfers: how many instances' inputs of a batch the runner carries out at
    /// once (`ProcessTarget::with_concurrency`; default its own, 32).
    #[arg(long, value_name = "N")]
    pub(crate) concurrent: Option<usize>,
}

impl Options {
    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    pub(crate) fn measured(&self) -> Duration {
        self.measured_or(2.0)
    }

    /// `--seconds`, or this benchmark's `default`.
    pub(crate) fn measured_or(&self, default: f64) -> Duration {
        Duration::from_secs_f64(self.seconds.unwrap_or(default).max(0.01))
    }

    /// `--events`, or this benchmark's `default`.
    pub(crate) fn events_or(&self, default: u64) -> u64 {
        self.events.unwrap_or(default)
    }

    /// `--batch`, or this benchmark's `default`.
    pub(crate) fn batch_or(&self, default: usize) -> usize {
        self.batch.unwrap_or(default)
    }

    pub(crate) fn tasks(&self) -> usize {
        self.tasks
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }

    /// `--tasks`, or `default` for a benchmark whose task count is part of its definition.
    pub(crate) fn tasks_or(&self, default: usize) -> usize {
        self.tasks.unwrap_or(default).max(1)
    }

    /// `--streams`, or this benchmark's `default`.
    pub(crate) fn streams_or(&self, default: u32) -> u32 {
        self.streams.unwrap_or(default)
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
pub(crate) const BENCHES: &[Bench] = &[
    Bench {
        name: "memory-command",
        about: "commands/s through CommandExecutor (load, decide, append) on the in-memory \
                store, against a bare EventStore::append loop on the same store",
        run: |options| Box::pin(memory_command::run(options)),
    },
    Bench {
        name: "pg-append-1",
        about: "1-event commands/s through CommandExecutor on PostgreSQL at 1, 16 and 64 \
                handlers, against single-row INSERT transactions from 16 connections",
        run: |options| Box::pin(pg_append_1::run(options)),
    },
    Bench {
        name: "pg-append-100",
        about: "events/s in 100-event EventStore::append calls on PostgreSQL from 8 tasks, \
                against 100-row INSERTs from 8 connections",
        run: |options| Box::pin(pg_append_100::run(options)),
    },
    Bench {
        name: "pg-feed",
        about: "events/s reading 1M events through read_all on PostgreSQL, against the raw \
                keyset scan by (xid, position)",
        run: |options| Box::pin(pg_feed::run(options)),
    },
    Bench {
        name: "pg-load",
        about: "loads/s of a 1000-event aggregate through CommandExecutor::load on PostgreSQL \
                (read, decode, fold), against a raw tokio-postgres fetch of the same rows",
        run: |options| Box::pin(pg_load::run(options)),
    },
    Bench {
        name: "kafka-append",
        about: "1-event commands/s through CommandExecutor on the Kafka store at 1, 16 and 64 \
                handlers, against a raw transactional producer per partition committing the \
                same records in transactions of the same size",
        run: |options| Box::pin(kafka_append::run(options)),
    },
    Bench {
        name: "kafka-feed",
        about: "events/s reading 1M events through read_all on the Kafka store, against a raw \
                read_committed consumer of the same topic",
        run: |options| Box::pin(kafka_feed::run(options)),
    },
    Bench {
        name: "kafka-takeover",
        about: "seconds until a new owner of a Kafka partition holding 1M events accepts \
                appends, over 10k and over 100k streams, with the process's peak RSS",
        run: |options| Box::pin(kafka_takeover::run(options)),
    },
    Bench {
        name: "redis-projection",
        about: "events/s of a Projector catching up 1M PostgreSQL events into Redis (3 writes \
                per event, committed with the checkpoint by MULTI/EXEC under WATCH), against \
                the same writes as MULTI/EXEC pipelines of the same size",
        run: |options| Box::pin(redis_projection::run(options)),
    },
    Bench {
        name: "kafka-redis-projection",
        about: "redis-projection with the Kafka store as the feed: a Projector catching up 1M \
                events from Kafka into Redis, against the same MULTI/EXEC pipelines",
        run: |options| Box::pin(kafka_redis_projection::run(options)),
    },
    Bench {
        name: "tantivy-projection",
        about: "documents/s of a Projector catching up 200k in-memory events into a Tantivy \
                index, against bare Tantivy indexing of the same documents with commits at \
                the same cadence",
        run: |options| Box::pin(tantivy_projection::run(options)),
    },
    Bench {
        name: "live-lag",
        about: "append-to-visible-in-Redis latency p50/p99 of a live Projector under a steady \
                append load on PostgreSQL, against a plain SET per subscription batch",
        run: |options| Box::pin(live_lag::run(options)),
    },
    Bench {
        name: "process-transfers",
        about: "transfers/s from request to completed through a process manager on \
                PostgreSQL (runner on the feed, checkpoint in Redis, timers in PostgreSQL), \
                against the same commands sent directly by a loop; request-to-completed \
                latency p50/p99 at a fixed rate",
        run: |options| Box::pin(process_transfers::run(options)),
    },
];

/// The benchmark called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Bench> {
    BENCHES.iter().find(|bench| bench.name == name)
}
