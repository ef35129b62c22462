//! `pg-append-100`: events per second appended 100 at a time with `EventStore::append` on
//! PostgreSQL, from 8 concurrent tasks, against raw multi-row `INSERT`s of 100 rows from 8
//! connections.
//!
//! # What is measured
//!
//! - **Value**: `PgEventStore::append` of 100 pre-encoded `NewEvent`s (fresh ids, the
//!   account events' payloads, metadata with a command id) expecting the stream's version,
//!   from `--tasks` tasks (default 8), in events/s. The store coalesces concurrent appends
//!   into one transaction (group commit); it runs with its default options.
//! - **Limit**: one `INSERT ... SELECT FROM unnest(...)` of the same 100 rows per transaction
//!   (autocommit), from as many connections as there are tasks, with bare tokio-postgres, into
//!   a scratch table defined like the store's `events` table. Target: 0.7× the limit.
//!
//! # Keeping it fair
//!
//! - **Streams.** `--streams` streams (default 1000) are split into disjoint sets, one per
//!   task (no conflicts); a stream takes 10 appends (1000 events) and is then retired for a
//!   fresh one. Both paths write the same streams, versions and rows, each phase a new
//!   generation of streams.
//! - **Alternation.** Each of `--rounds` rounds runs the limit, then the store, for
//!   `--seconds` each; the medians are reported. Warm-up first (both paths).
//! - **Own schema.** `bench_pg_append_100` is dropped and recreated at the start, and left in
//!   place afterwards.
//!
//! On stderr, per phase: latency percentiles, the store's group-commit batches, and the CPU
//! used by this process, by the local PostgreSQL server's processes and by everything else.

use std::time::Duration;

use foldline::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Version};
use foldline_postgres::PgEventStore;
use uuid::Uuid;

use super::Options;
use super::account::{AccountEvent, CENTS, Encoded, Generations, OWNER, Rotation};
use crate::counters;
use crate::pg::{
    BenchSchema, MultiInsert, Rows, StorePhase, fresh_with_scratch, run_limit, run_on_store,
};
use crate::report::Figure;
use crate::stats::median;
use crate::timed::Worker;

const NAME: &str = "pg-append-100";
const SCHEMA: &str = "bench_pg_append_100";
/// Events per append.
const EVENTS: u64 = 100;
/// Tasks (and connections of the limit), unless `--tasks` says otherwise.
const TASKS: usize = 8;
/// Streams written at any one time, unless `--streams` says otherwise.
const STREAMS: u32 = 1000;
/// Appends a stream takes before it is retired.
const APPENDS_PER_STREAM: u32 = 10;
/// The store's connection pool (its default).
const POOL: usize = 16;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    counters::install()?;
    let tasks = options.tasks_or(TASKS);
    let streams = options.streams_or(STREAMS);
    anyhow::ensure!(
        usize::try_from(streams).is_ok_and(|streams| streams >= tasks),
        "--streams ({streams}) must be at least --tasks ({tasks})"
    );
    anyhow::ensure!(options.rounds >= 1, "--rounds must be at least 1");

    let (schema, store, scratch) = fresh_with_scratch(SCHEMA, POOL).await?;
    eprintln!(
        "   schema {SCHEMA} (dropped and recreated); {tasks} tasks, {EVENTS} events per append, \
         {streams} streams split over the tasks, retired after {APPENDS_PER_STREAM} appends; \
         limit: {tasks} connections inserting into {scratch}"
    );
    let mut bench = Bench {
        store,
        schema,
        scratch,
        tasks,
        streams,
        generations: Generations::default(),
    };
    let warmup = options.warmup();
    if !warmup.is_zero() {
        bench.limit(warmup / 2).await?;
        bench.appends(warmup / 2).await?;
    }
    let measured = options.measured();
    let mut limits = Vec::new();
    let mut values = Vec::new();
    let mut batches = Vec::new();
    for round in 1..=options.rounds {
        eprintln!("   round {round}/{}", options.rounds);
        limits.push(bench.limit(measured).await?.measured.rate());
        let phase = bench.appends(measured).await?;
        values.push(phase.measured.rate());
        batches.push(phase.batch);
    }
    Ok(vec![
        Figure::against(NAME, median(&values), median(&limits), "events/s"),
        Figure::alone(format!("{NAME}/batch"), median(&batches), "appends/commit"),
    ])
}

struct Bench {
    store: PgEventStore,
    schema: BenchSchema,
    scratch: String,
    tasks: usize,
    streams: u32,
    generations: Generations,
}

impl Bench {
    fn rotation(&self, task: usize, generation: u32) -> anyhow::Result<Rotation> {
        Rotation::with(
            task,
            self.tasks,
            self.streams,
            APPENDS_PER_STREAM,
            generation,
        )
    }

    async fn limit(&mut self, duration: Duration) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let rows = Rows::new()?;
        let mut workers = Vec::with_capacity(self.tasks);
        for task in 0..self.tasks {
            let rotation = self.rotation(task, generation)?;
            workers.push(
                MultiInsert::new(&self.schema, &self.scratch, rotation, rows.clone(), EVENTS)
                    .await?,
            );
        }
        run_limit(&self.schema, workers, duration, "events").await
    }

    /// The store path, and its mean group-commit batch.
    async fn appends(&mut self, duration: Duration) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let workers = (0..self.tasks)
            .map(|task| StoreAppend::new(self.store.clone(), self.rotation(task, generation)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let label = format!("store, {} tasks", self.tasks);
        run_on_store(&self.schema, &label, "events", workers, duration, false).await
    }
}

/// Appends 100 pre-encoded events at a time to the next stream of its rotation.
struct StoreAppend {
    store: PgEventStore,
    rotation: Rotation,
    opened: Encoded,
    deposited: Encoded,
    metadata: EventMetadata,
}

impl StoreAppend {
    fn new(store: PgEventStore, rotation: Rotation) -> anyhow::Result<Self> {
        Ok(StoreAppend {
            store,
            rotation,
            opened: Encoded::of(&AccountEvent::Opened {
                owner: OWNER.to_owned(),
            })?,
            deposited: Encoded::of(&AccountEvent::Deposited { cents: CENTS })?,
            // The same metadata as the raw rows: a command id.
            metadata: EventMetadata::new().with_command_id(Uuid::now_v7()),
        })
    }
}

impl Worker for StoreAppend {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let step = self.rotation.advance()?;
        let before = u64::from(step.version) * EVENTS;
        let events: Vec<NewEvent> = (before + 1..=before + EVENTS)
            .map(|version| {
                let encoded = if version == 1 {
                    &self.opened
                } else {
                    &self.deposited
                };
                encoded.event(&self.metadata)
            })
            .collect();
        let expected = ExpectedVersion::Exact(Version::new(before));
        self.store
            .append(AppendRequest::new(step.stream.clone(), expected, events))
            .await?;
        Ok(EVENTS)
    }
}
