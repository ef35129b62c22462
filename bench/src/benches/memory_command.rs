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

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{Aggregate, Command};
use foldline::{
    AppendRequest, CommandExecutor, DomainEvent, EventMetadata, EventStore, EventType,
    ExpectedVersion, InMemoryEventStore, JsonCodec, NewEvent, StreamId, Version,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

use super::Options;
use crate::report::Figure;
use crate::stats::{Latencies, median};

const NAME: &str = "memory-command";

/// How often a time-bound phase looks at the clock.
const CLOCK_EVERY: u64 = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: u64 },
}

#[derive(Debug, Command)]
enum AccountCommand {
    Open {
        #[foldline(id)]
        id: AccountId,
        owner: String,
    },
    Deposit {
        #[foldline(id)]
        id: AccountId,
        cents: u64,
    },
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
}

/// A plain account; no snapshots (see the module docs).
#[derive(Debug, Default, Aggregate)]
#[foldline(id = AccountId, command = AccountCommand, event = AccountEvent, error = AccountError)]
struct Account {
    open: bool,
    balance: u64,
}

impl Account {
    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents, .. } => {
                Ok(vec![AccountEvent::Deposited { cents: *cents }])
            }
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { cents } => self.balance += cents,
        }
    }
}

/// Account `slot`, in its `generation`-th life: stream `account-<slot>.<generation>`.
#[derive(Debug, Clone, Copy)]
struct AccountId {
    slot: u32,
    generation: u32,
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

const OWNER: &str = "bench";
const CENTS: u64 = 100;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    let tasks = options.tasks();
    ensure!(
        usize::try_from(options.streams).is_ok_and(|streams| streams >= tasks),
        "--streams ({}) must be at least --tasks ({tasks})",
        options.streams
    );
    ensure!(
        options.events_per_stream >= 1,
        "--events-per-stream must be at least 1"
    );
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    eprintln!(
        "   tasks: {tasks}; streams: {} at a time, retired after {} events; snapshots off",
        options.streams, options.events_per_stream
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
            ops.max(u64::from(options.streams))
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
        // Operation counts are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let ops = self.ops as f64;
        ops / self.elapsed.as_secs_f64().max(1e-9)
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
        let rotation = Rotation::new(task, tasks, options)?;
        let barrier = Arc::clone(&barrier);
        let store = store.clone();
        handles.push(match path {
            Path::Command => tokio::spawn(drive(
                Executor(CommandExecutor::new(store)),
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
        let command = if step.version == 0 {
            AccountCommand::Open {
                id: step.id,
                owner: OWNER.to_owned(),
            }
        } else {
            AccountCommand::Deposit {
                id: step.id,
                cents: CENTS,
            }
        };
        self.0.execute::<Account>(command).await?;
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

struct Encoded {
    event_type: EventType,
    schema_version: u32,
    payload: Vec<u8>,
}

impl Encoded {
    fn of(event: &AccountEvent) -> anyhow::Result<Self> {
        Ok(Encoded {
            event_type: event.event_type(),
            schema_version: event.schema_version(),
            payload: event.encode(&JsonCodec).map_err(|e| anyhow::anyhow!(e))?,
        })
    }
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

/// Which account the next operation goes to: round robin over this task's slots, each slot
/// moving to a fresh account after `events_per_stream` events.
struct Rotation {
    slots: Vec<Slot>,
    next: usize,
    events_per_stream: u32,
}

struct Slot {
    id: AccountId,
    stream: StreamId,
    version: u32,
}

/// One operation: the account, its stream, and its version before the operation.
#[derive(Clone, Copy)]
struct Step<'a> {
    id: AccountId,
    stream: &'a StreamId,
    version: u32,
}

impl Rotation {
    /// Task `task` of `tasks` owns slots `task`, `task + tasks`, `task + 2 * tasks`...
    fn new(task: usize, tasks: usize, options: &Options) -> anyhow::Result<Self> {
        let slots = (0..options.streams)
            .skip(task)
            .step_by(tasks)
            .map(|slot| {
                Slot::new(AccountId {
                    slot,
                    generation: 0,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Rotation {
            slots,
            next: 0,
            events_per_stream: options.events_per_stream,
        })
    }

    /// Moves on to the next slot and returns it, after retiring the previous account of that
    /// slot if it is full.
    fn advance(&mut self) -> anyhow::Result<Step<'_>> {
        let index = self.next;
        self.next = (self.next + 1) % self.slots.len();
        let slot = &mut self.slots[index];
        if slot.version == self.events_per_stream {
            *slot = Slot::new(AccountId {
                slot: slot.id.slot,
                generation: slot.id.generation + 1,
            })?;
        }
        slot.version += 1;
        Ok(Step {
            id: slot.id,
            stream: &slot.stream,
            version: slot.version - 1,
        })
    }
}

impl Slot {
    fn new(id: AccountId) -> anyhow::Result<Self> {
        Ok(Slot {
            id,
            stream: StreamId::for_aggregate(Account::NAME, &id)?,
            version: 0,
        })
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
