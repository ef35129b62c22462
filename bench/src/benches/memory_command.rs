//! `memory-command`: commands per second through the whole command path on the in-memory
//! store, against a bare append loop on the same store.
//!
//! # What is measured
//!
//! - **Value**: `CommandExecutor::execute` (build the stream id, load the aggregate by reading
//!   and decoding its stream, decide, encode, append with the expected version), in commands/s.
//! - **Limit**: `EventStore::append` of one pre-encoded event of the same type, payload and
//!   metadata size to the same stream with the same expected version, in appends/s. That is
//!   what the store itself can take; the ratio is the share of it that foldline keeps.
//!
//! # Keeping it fair
//!
//! - **Bounded streams.** Load cost grows with the stream, so no stream grows without bound:
//!   `--streams` accounts (default 1000) are written at any one time, round robin, and after
//!   `--events-per-stream` events (default 10: `Opened` then 9 `Deposited`) an account is
//!   retired and a fresh one takes its slot. A command therefore folds 0 to 9 events (4.5 on
//!   average), as it would for a short-lived aggregate, and the store's size grows the same
//!   way in both paths. Snapshots are off: with streams this short they would only add a
//!   read.
//! - **Same work, fresh store.** Each measured phase runs on a new `InMemoryEventStore`, and
//!   both paths run the same number of operations over the same stream ids, so they end with
//!   identical store contents. The paths alternate for `--rounds` rounds and the median round
//!   is reported.
//! - **No contention.** `--tasks` tasks (default: one per CPU) each own a disjoint set of
//!   accounts, so no version conflicts occur: this measures throughput, not retries.
//! - **Warm-up** first, for both paths; it also calibrates `--seconds` into an operation count.
//!
//! Latency percentiles are per command, over every measured round (no limit: the raw append
//! is not a command).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{
    AppendRequest, CommandExecutor, EventMetadata, EventStore, ExpectedVersion, InMemoryEventStore,
    NewEvent, Version,
};
use tokio::sync::Barrier;

use super::Options;
use super::account::{
    Account, AccountCommand, AccountEvent, CENTS, Encoded, OWNER, Rotation, Step,
};
use crate::report::Figure;
use crate::stats::{Latencies, median, per_second};

const NAME: &str = "memory-command";

/// Accounts written at any one time, unless `--streams` says otherwise.
const STREAMS: u32 = 1000;

/// How often a time-bound phase looks at the clock.
const CLOCK_EVERY: u64 = 256;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    let tasks = options.tasks();
    ensure!(
        usize::try_from(options.streams_or(STREAMS)).is_ok_and(|streams| streams >= tasks),
        "--streams ({}) must be at least --tasks ({tasks})",
        options.streams_or(STREAMS)
    );
    ensure!(
        options.events_per_stream >= 1,
        "--events-per-stream must be at least 1"
    );
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    eprintln!(
        "   tasks: {tasks}; streams: {} at a time, retired after {} events; snapshots off",
        options.streams_or(STREAMS),
        options.events_per_stream
    );

    let warmup = options.warmup();
    phase(Path::Append, &options, Budget::For(warmup / 2)).await?;
    let warm = phase(Path::Command, &options, Budget::For(warmup)).await?;
    let ops = match options.commands {
        Some(ops) => ops,
        None => {
            // Rates are far below 2^52, so the float round trip is exact enough.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let ops = (warm.rate() * options.measured().as_secs_f64()) as u64;
            ops.max(u64::from(options.streams_or(STREAMS)))
        }
    };
    eprintln!(
        "   warm-up: {:.0} commands/s; measuring {ops} operations per phase",
        warm.rate()
    );

    let mut limits = Vec::new();
    let mut values = Vec::new();
    let mut latencies = Latencies::default();
    for round in 1..=options.rounds {
        let raw = phase(Path::Append, &options, Budget::Ops(ops)).await?;
        let commands = phase(Path::Command, &options, Budget::Ops(ops)).await?;
        eprintln!(
            "   round {round}/{}: append {:.0}/s ({:.2} s), command {:.0}/s ({:.2} s)",
            options.rounds,
            raw.rate(),
            raw.elapsed.as_secs_f64(),
            commands.rate(),
            commands.elapsed.as_secs_f64()
        );
        limits.push(raw.rate());
        values.push(commands.rate());
        latencies.extend(commands.latencies);
    }
    Ok(vec![
        Figure::against(NAME, median(&values), median(&limits), "commands/s"),
        Figure::alone(format!("{NAME}/p50"), latencies.percentile_us(50.0), "us"),
        Figure::alone(format!("{NAME}/p99"), latencies.percentile_us(99.0), "us"),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Through `CommandExecutor::execute`.
    Command,
    /// A bare `EventStore::append` of a pre-encoded event.
    Append,
}

#[derive(Debug, Clone, Copy)]
enum Budget {
    /// This many operations in all, split over the tasks.
    Ops(u64),
    /// As many as fit in this long (warm-up).
    For(Duration),
}

/// What one phase did.
#[derive(Debug)]
struct Measured {
    ops: u64,
    elapsed: Duration,
    /// Per operation, in nanoseconds.
    latencies: Vec<u64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        per_second(self.ops, self.elapsed)
    }
}

/// Runs one phase on a fresh store: every task takes its share of the accounts and of the
/// operations, all start together, and the phase lasts from the first start to the last end.
async fn phase(path: Path, options: &Options, budget: Budget) -> anyhow::Result<Measured> {
    let store = InMemoryEventStore::new();
    let tasks = options.tasks();
    let barrier = Arc::new(Barrier::new(tasks));
    let deadline = match budget {
        Budget::For(duration) => Some(duration),
        Budget::Ops(_) => None,
    };
    let mut handles = Vec::with_capacity(tasks);
    for task in 0..tasks {
        let ops = match budget {
            Budget::Ops(ops) => {
                let tasks = tasks as u64;
                ops / tasks + u64::from((task as u64) < ops % tasks)
            }
            Budget::For(_) => u64::MAX,
        };
        let rotation = Rotation::new(task, tasks, options.streams_or(STREAMS), options)?;
        let barrier = Arc::clone(&barrier);
        let store = store.clone();
        handles.push(match path {
            Path::Command => tokio::spawn(drive(
                // No cache: every command loads its aggregate, as measured (module docs).
                Executor(CommandExecutor::new(store).with_cache(0)),
                rotation,
                ops,
                deadline,
                barrier,
            )),
            Path::Append => tokio::spawn(drive(
                RawAppend::new(store)?,
                rotation,
                ops,
                deadline,
                barrier,
            )),
        });
    }
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    let mut measured = Measured {
        ops: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for handle in handles {
        let run = handle.await.context("a benchmark task panicked")??;
        first_start = Some(first_start.map_or(run.start, |s| s.min(run.start)));
        last_end = Some(last_end.map_or(run.end, |e| e.max(run.end)));
        measured.ops += run.ops;
        measured.latencies.extend(run.latencies);
    }
    if let (Some(start), Some(end)) = (first_start, last_end) {
        measured.elapsed = end - start;
    }
    drop(store); // outside the timed part: freeing a large store takes a while
    Ok(measured)
}

/// One kind of operation, run once per step.
trait Operation: Send + 'static {
    fn run(&mut self, step: Step<'_>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The command path: load, decide, append.
struct Executor(CommandExecutor<InMemoryEventStore>);

impl Operation for Executor {
    async fn run(&mut self, step: Step<'_>) -> anyhow::Result<()> {
        self.0
            .execute::<Account>(AccountCommand::for_step(step))
            .await?;
        Ok(())
    }
}

/// The raw limit: the same event, encoded once, appended with the same expectation.
struct RawAppend {
    store: InMemoryEventStore,
    opened: Encoded,
    deposited: Encoded,
    metadata: EventMetadata,
}

impl RawAppend {
    fn new(store: InMemoryEventStore) -> anyhow::Result<Self> {
        Ok(RawAppend {
            store,
            opened: Encoded::of(&AccountEvent::Opened {
                owner: OWNER.to_owned(),
            })?,
            deposited: Encoded::of(&AccountEvent::Deposited { cents: CENTS })?,
            // The executor records a command id on every event; so does this, so the stored
            // events have the same size.
            metadata: EventMetadata::new().with_command_id(uuid::Uuid::now_v7()),
        })
    }
}

impl Operation for RawAppend {
    async fn run(&mut self, step: Step<'_>) -> anyhow::Result<()> {
        let encoded = if step.version == 0 {
            &self.opened
        } else {
            &self.deposited
        };
        let event = NewEvent::new(
            encoded.event_type.clone(),
            encoded.schema_version,
            encoded.payload.clone(),
        )
        .with_metadata(self.metadata.clone());
        let expected = ExpectedVersion::Exact(Version::new(step.version.into()));
        let request = AppendRequest::new(step.stream.clone(), expected, vec![event]);
        self.store.append(request).await?;
        Ok(())
    }
}

/// What one task did.
struct TaskRun {
    start: Instant,
    end: Instant,
    ops: u64,
    latencies: Vec<u64>,
}

/// Runs `operation` `ops` times (or until `deadline` has passed since the start), timing each.
async fn drive<O: Operation>(
    mut operation: O,
    mut rotation: Rotation,
    ops: u64,
    deadline: Option<Duration>,
    barrier: Arc<Barrier>,
) -> anyhow::Result<TaskRun> {
    let capacity = usize::try_from(ops).unwrap_or(0).min(1 << 20);
    let mut latencies = Vec::with_capacity(capacity);
    barrier.wait().await;
    let start = Instant::now();
    let stop = deadline.map(|d| start + d);
    let mut done = 0;
    while done < ops {
        if done % CLOCK_EVERY == 0 && stop.is_some_and(|stop| Instant::now() >= stop) {
            break;
        }
        let step = rotation.advance()?;
        let before = Instant::now();
        operation.run(step).await?;
        latencies.push(u64::try_from(before.elapsed().as_nanos()).unwrap_or(u64::MAX));
        done += 1;
    }
    Ok(TaskRun {
        start,
        end: Instant::now(),
        ops: done,
        latencies,
    })
}
