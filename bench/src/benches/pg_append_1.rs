//! `pg-append-1`: one-event commands per second through the whole command path on
//! PostgreSQL, at 1, 16 and 64 concurrent handlers, against plain single-row `INSERT`
//! transactions from 16 connections.
//!
//! # What is measured
//!
//! - **Value**: `CommandExecutor::execute` on a `PgEventStore` (load the account with
//!   `read_stream`, decide, encode, append with the expected version through the store's
//!   group-commit writer), in commands/s, once per `--handlers` count (default `1,16,64`). A
//!   handler is a task issuing one command at a time. The store runs with its default options
//!   (a pool of 16 connections, batches of up to 512 appends, 2 batches in flight). The
//!   executor keeps an aggregate cache (`with_cache`, 10 000 entries), as an application whose
//!   aggregates are mostly written through one process would: an account's first command loads
//!   it from the store, later ones decide on the cached state and the expected-version check
//!   guards against staleness.
//! - **Limit**: `INSERT` of the same row (same columns, event types, payloads and metadata
//!   size) into a scratch table defined like the store's `events` table, one row per
//!   transaction (autocommit) from 16 connections with bare tokio-postgres: what PostgreSQL
//!   takes when every event is its own commit. Group commit is how foldline should beat it:
//!   the target at 64 handlers is 3× the limit.
//! - **Diagnostics** (JSON lines too): `handlers=N/batch`, the store's mean group-commit
//!   batch (appends per transaction) at each count; and `handlers=64/append-only`, the same
//!   events appended by as many tasks with a bare `EventStore::append` (no load, no decision),
//!   against the same limit: what the group-commit writer takes on its own, so the gap
//!   between it and the command figure is the cost of loading the aggregate.
//!
//! # Keeping it fair
//!
//! - **No conflicts.** `--streams` accounts (default 1 000) are split into disjoint sets, one
//!   per handler, so no two commands race for a version; the executor's conflict counter is
//!   printed per phase and stays 0. Each account gets `Opened`, then `Deposited`, and is
//!   retired after `--events-per-stream` events (default 10) for a fresh one, so one command
//!   in ten is an account's first (a cache miss that reads its empty stream).
//! - **Fresh streams, same tables.** Every phase writes a new generation of every account, so
//!   no phase continues another's streams; the commands go to the store's `events` table and
//!   the limit to its scratch twin, which grow alike.
//! - **Alternation.** Each of `--rounds` rounds runs the limit, then each handler count, then
//!   the bare appends, for `--seconds` each; the medians are reported. Warm-up first.
//! - **Own schema.** `bench_pg_append_1` is dropped and recreated at the start, and left in
//!   place afterwards for inspection.
//!
//! On stderr, per phase: latency percentiles, the store's group-commit batches (appends per
//! transaction and time per transaction, from its `metrics`), conflicts, and the CPU used by
//! this process, by the local PostgreSQL server's processes and by everything else.

use std::time::Duration;

use foldline::{
    AppendRequest, CommandExecutor, EventMetadata, EventStore, ExpectedVersion, Version,
};
use foldline_postgres::PgEventStore;
use uuid::Uuid;

use super::Options;
use super::account::{
    AccountEvent, CENTS, Depositor, Encoded, Generations, Handler, OWNER, Rotation, open_accounts,
};
use crate::counters;
use crate::pg::{
    BenchSchema, Rows, SingleInsert, StorePhase, fresh_with_scratch, run_limit, run_on_store,
};
use crate::report::Figure;
use crate::stats::median;
use crate::timed::Worker;

const NAME: &str = "pg-append-1";
const SCHEMA: &str = "bench_pg_append_1";
/// Accounts written at any one time, unless `--streams` says otherwise.
const STREAMS: u32 = 1_000;
/// Aggregates the executor keeps in its cache.
const EXECUTOR_CACHE: usize = 10_000;
/// Connections of the raw limit (fixed by the benchmark's definition).
const LIMIT_CONNECTIONS: usize = 16;
/// The store's connection pool (its default).
const POOL: usize = 16;
/// The hot accounts of the contention phases, and the task counts writing them.
const HOT_ACCOUNTS: u32 = 10;
const CONTENTION_TASKS: [usize; 2] = [8, 64];

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    counters::install()?;
    let streams = options.streams_or(STREAMS);
    let handlers = options.handlers.clone();
    anyhow::ensure!(!handlers.is_empty(), "--handlers needs at least one count");
    let most_handlers = handlers.iter().copied().max().unwrap_or(1);
    let most = most_handlers.max(LIMIT_CONNECTIONS);
    anyhow::ensure!(
        usize::try_from(streams).is_ok_and(|streams| streams >= most),
        "--streams ({streams}) must be at least the number of handlers and connections ({most})"
    );
    anyhow::ensure!(options.rounds >= 1, "--rounds must be at least 1");

    let (schema, store, scratch) = fresh_with_scratch(SCHEMA, POOL).await?;
    eprintln!(
        "   schema {SCHEMA} (dropped and recreated); {streams} accounts split over the \
         handlers (no conflicts), retired after {} events; limit: {LIMIT_CONNECTIONS} \
         connections inserting into {scratch}",
        options.events_per_stream
    );

    let mut bench = Bench {
        store,
        schema,
        scratch,
        streams,
        options,
        generations: Generations::default(),
    };
    let warmup = bench.options.warmup();
    if !warmup.is_zero() {
        bench.limit(LIMIT_CONNECTIONS, warmup / 2).await?;
        bench.commands(most_handlers, warmup).await?;
    }

    let measured = bench.options.measured();
    let mut limits = Vec::new();
    let mut sequential = Vec::new();
    let mut values = vec![Vec::new(); handlers.len()];
    let mut batches = vec![Vec::new(); handlers.len()];
    let mut cpu = vec![Vec::new(); handlers.len()];
    let mut bare = Vec::new();
    let (mut limit_cpu, mut sequential_cpu) = (Vec::new(), Vec::new());
    let mut hot = vec![Vec::new(); CONTENTION_TASKS.len()];
    let mut spread = vec![Vec::new(); CONTENTION_TASKS.len()];
    for round in 1..=bench.options.rounds {
        eprintln!("   round {round}/{}", bench.options.rounds);
        let limit = bench.limit(LIMIT_CONNECTIONS, measured).await?;
        limits.push(limit.measured.rate());
        limit_cpu.push(limit.postgres_us());
        let one = bench.limit(1, measured).await?;
        sequential.push(one.measured.rate());
        sequential_cpu.push(one.postgres_us());
        for (index, &count) in handlers.iter().enumerate() {
            let phase = bench.commands(count, measured).await?;
            values[index].push(phase.measured.rate());
            batches[index].push(phase.batch);
            cpu[index].push(phase.postgres_us());
        }
        bare.push(
            bench
                .appends(most_handlers, measured)
                .await?
                .measured
                .rate(),
        );
        for (index, &tasks) in CONTENTION_TASKS.iter().enumerate() {
            let on_hot = bench.deposits(tasks, HOT_ACCOUNTS, measured).await?;
            hot[index].push(on_hot.measured.rate());
            let own = u32::try_from(tasks)?;
            let on_own = bench.deposits(tasks, own, measured).await?;
            spread[index].push(on_own.measured.rate());
        }
    }
    let limit = median(&limits);
    let sequential_limit = median(&sequential);
    let mut figures = Vec::new();
    for (index, &count) in handlers.iter().enumerate() {
        // One handler issues one command at a time: its limit is one connection's inserts,
        // one at a time.
        let against = if count == 1 { sequential_limit } else { limit };
        figures.push(Figure::against(
            format!("{NAME}/handlers={count}"),
            median(&values[index]),
            against,
            "commands/s",
        ));
    }
    figures.push(Figure::against(
        format!("{NAME}/handlers={most_handlers}/append-only"),
        median(&bare),
        limit,
        "appends/s",
    ));
    for (index, count) in handlers.iter().enumerate() {
        figures.push(Figure::alone(
            format!("{NAME}/handlers={count}/batch"),
            median(&batches[index]),
            "appends/commit",
        ));
    }
    for (index, count) in handlers.iter().enumerate() {
        figures.push(Figure::alone(
            format!("{NAME}/handlers={count}/postgres-cpu"),
            median(&cpu[index]),
            "us/command",
        ));
    }
    figures.push(Figure::alone(
        format!("{NAME}/limit-{LIMIT_CONNECTIONS}-connections/postgres-cpu"),
        median(&limit_cpu),
        "us/insert",
    ));
    for (index, tasks) in CONTENTION_TASKS.iter().enumerate() {
        figures.push(Figure::against(
            format!("{NAME}/contention/tasks={tasks}/accounts={HOT_ACCOUNTS}"),
            median(&hot[index]),
            median(&spread[index]),
            "commands/s",
        ));
    }
    figures.push(Figure::alone(
        format!("{NAME}/limit-1-connection"),
        sequential_limit,
        "inserts/s",
    ));
    figures.push(Figure::alone(
        format!("{NAME}/limit-1-connection/postgres-cpu"),
        median(&sequential_cpu),
        "us/insert",
    ));
    Ok(figures)
}

struct Bench {
    store: PgEventStore,
    schema: BenchSchema,
    scratch: String,
    streams: u32,
    options: Options,
    generations: Generations,
}

impl Bench {
    /// A raw limit: single-row INSERT transactions, back to back on each of `connections`
    /// connections (16, and 1 for the one-handler figure).
    async fn limit(
        &mut self,
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let rows = Rows::new()?;
        let mut workers = Vec::with_capacity(connections);
        for task in 0..connections {
            let rotation = self.rotation(task, connections, generation)?;
            workers.push(
                SingleInsert::new(&self.schema, &self.scratch, rotation, rows.clone()).await?,
            );
        }
        run_limit(&self.schema, workers, duration, "inserts").await
    }

    /// `handlers` tasks issuing commands through one executor on the store.
    async fn commands(
        &mut self,
        handlers: usize,
        duration: Duration,
    ) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let executor = CommandExecutor::new(self.store.clone()).with_cache(EXECUTOR_CACHE);
        let workers = (0..handlers)
            .map(|task| {
                Ok(Handler {
                    executor: executor.clone(),
                    rotation: self.rotation(task, handlers, generation)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let label = format!("{handlers} handlers");
        run_on_store(&self.schema, &label, "commands", workers, duration, true).await
    }

    /// `tasks` handlers depositing through one cached executor into `accounts` accounts opened
    /// first: with fewer accounts than handlers, every handler deposits into each in turn,
    /// starting at its own, so they contend (the contention phase); with as many, each handler
    /// has one of its own and they never do (its limit).
    async fn deposits(
        &mut self,
        tasks: usize,
        accounts: u32,
        duration: Duration,
    ) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let executor = CommandExecutor::new(self.store.clone()).with_cache(EXECUTOR_CACHE);
        let opened = open_accounts(&executor, accounts, generation).await?;
        let workers = (0..tasks)
            .map(|task| Depositor {
                executor: executor.clone(),
                // As many accounts as handlers: each its own.
                accounts: if opened.len() >= tasks {
                    vec![opened[task]]
                } else {
                    opened.clone()
                },
                next: task,
            })
            .collect();
        let label = format!("{tasks} handlers on {accounts} accounts");
        run_on_store(&self.schema, &label, "commands", workers, duration, true).await
    }

    /// The same events appended by `tasks` tasks with a bare `EventStore::append` (no load,
    /// no decision): what the group-commit writer takes on its own.
    async fn appends(&mut self, tasks: usize, duration: Duration) -> anyhow::Result<StorePhase> {
        let generation = self.generations.fresh();
        let workers = (0..tasks)
            .map(|task| {
                Ok(Appender {
                    store: self.store.clone(),
                    rotation: self.rotation(task, tasks, generation)?,
                    opened: Encoded::of(&AccountEvent::Opened {
                        owner: OWNER.to_owned(),
                    })?,
                    deposited: Encoded::of(&AccountEvent::Deposited { cents: CENTS })?,
                    metadata: EventMetadata::new().with_command_id(Uuid::now_v7()),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let label = format!("{tasks} appenders");
        run_on_store(&self.schema, &label, "appends", workers, duration, true).await
    }

    fn rotation(&self, task: usize, tasks: usize, generation: u32) -> anyhow::Result<Rotation> {
        Rotation::with(
            task,
            tasks,
            self.streams,
            self.options.events_per_stream,
            generation,
        )
    }
}

/// A bare appender: the event the command would record, encoded once, appended with the
/// version the executor would expect.
struct Appender {
    store: PgEventStore,
    rotation: Rotation,
    opened: Encoded,
    deposited: Encoded,
    metadata: EventMetadata,
}

impl Worker for Appender {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let step = self.rotation.advance()?;
        let encoded = if step.version == 0 {
            &self.opened
        } else {
            &self.deposited
        };
        let expected = ExpectedVersion::Exact(Version::new(step.version.into()));
        let request = AppendRequest::new(
            step.stream.clone(),
            expected,
            vec![encoded.event(&self.metadata)],
        );
        self.store.append(request).await?;
        Ok(1)
    }
}
