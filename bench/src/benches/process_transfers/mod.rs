//! `process-transfers`: transfers per second through a process manager on PostgreSQL, from
//! request to completed, against the same commands sent directly by a loop on the same store;
//! and the request-to-completed latency at a fixed rate.
//!
//! The domain is `foldline_tests::transfers`: a `RequestTransfer` on the source wallet starts a
//! `Transfer` instance, which sends `Withdraw` to the source, then (on `Withdrawn`) cancels its
//! timeout and sends `Deposit` to the target, then (on `Deposited`) completes.
//!
//! # What is measured
//!
//! - **Value**: `--tasks` tasks (default: the number of CPUs) request transfers
//!   (`RequestTransfer` through a `CommandExecutor`), each keeping up to `--in-flight`
//!   (default 16) transfers in flight: it requests the next one as soon as one of its
//!   transfers completes. The runner runs in this process, wired as the process worker
//!   (`tests/bin/process_worker.rs`) wires it: a `Projector` of `ProcessProjection<Transfer>`
//!   following the PostgreSQL feed into a `ProcessTarget` (decide, record the decision in the
//!   instance's stream, carry it out), its checkpoint in Redis (`RedisTarget`, as a
//!   deployment keeps it beside its other read models), its timers in PostgreSQL (the store's
//!   `TimerStore`) with `run_timers` polling every 100 ms, its commands sent through the
//!   domain's `Wallets` dispatcher over a `CommandExecutor` of its own; batches of `--batch`
//!   events (default 500, the projector's default) and an idle interval of `--idle-ms`
//!   (default 20 ms, the worker's). The figure is the pass's transfers divided by the time from the first request
//!   until the last transfer is completed.
//! - **Completed** means the instance recorded the decision holding `Complete` (its status is
//!   `Completed` from then on). A follower in this process sees it: it subscribes to the
//!   store's feed at the pass's start and decodes each `foldline.process.Decided` event
//!   (`Decision::decode`), stamping the batch it arrives in. A `Fail` fails the pass.
//! - **Limit**: the same three commands of each transfer (`RequestTransfer`, `Withdraw`,
//!   `Deposit`, the same values) executed one after the other by a loop, from as many tasks,
//!   through one `CommandExecutor` on the same store (schema, pool, group-commit writer).
//!   Ratio = value / limit; target ≥ 0.5.
//! - **Latency**: after the throughput rounds, `--rounds` rounds of transfers started on a
//!   fixed schedule at `--rate` per second, each in its own task, for `--seconds` (default 5)
//!   per path: request to completed through the process manager (the value), and the three
//!   commands in a row (the limit). p50 and p99 over every round, as `ratio = limit / value`.
//!   The default rate is half the value's throughput in its slowest round of this run: the
//!   runner's pace moves by 2× between minutes on a shared machine, and a rate above it would
//!   measure a queue. stderr warns when the runner was busy more than 80 % of a latency phase.
//! - **Concurrency** (`--concurrent N`, default `ProcessTarget`'s, 32): how many instances'
//!   inputs of a batch the target carries out at once (`ProcessTarget::with_concurrency`),
//!   each instance's in feed order. At 1, the runner waits on every round trip in turn.
//!
//! # Keeping it fair
//!
//! - **The same commands on the same store**, no conflicts, no refusals: every transfer has
//!   two wallets of its own, opened (off the clock, by an executor of their own) with exactly
//!   the amount it moves, and needs no approval. Each pass opens a new set, so the limit's and
//!   the value's executors start with cold caches alike (both keep the default cache): the
//!   limit loads each source and target wallet once; the runner's executor loads them once
//!   too, and the requesting executor loads the source.
//! - **What the process manager adds** is the point of the figure, so the value pays for it
//!   all: per transfer, three instance loads and three decisions appended, two commands with
//!   idempotency keys (looked up before each), a timer scheduled and cancelled and the
//!   instance's timers dropped at the end, the Redis checkpoint read and committed per batch,
//!   and three trips through the feed.
//! - **The feed follower** that sees completions is a second reader of the feed, in this
//!   process, which the limit does not have (about what one more projector reading the same
//!   events costs: one feed query per wake-up, ~6 events per transfer; estimated below 5 % of
//!   a core at these rates, not measured on its own).
//! - **Skipping the limit's transfers.** The runner is stopped while the limit runs (it would
//!   take the limit's requests for its own); before each of its passes its checkpoint is
//!   moved to the store's head in Redis, as an operator would, and it is started again and
//!   waits until it follows the feed live before the pass begins.
//! - **Bounded in flight.** The domain's transfers time out after 3 s (`STUCK_AFTER`): a
//!   transfer waiting longer for its withdrawal is called off. `--tasks × --in-flight` bounds
//!   the backlog, so that each transfer waits well under that; a transfer that fails anyway
//!   fails the pass, naming it.
//! - **Counted, not timed**: `--seconds` (default 2) is turned into a number of transfers per
//!   throughput pass from the limit's rate in the warm-up (or `--commands` transfers), and both
//!   passes of a round do that many; of `--rounds` rounds, the one with the median ratio is
//!   reported.
//!
//! On stderr, per pass: the rate, the CPU used by this process, PostgreSQL and Redis, the
//! store's group commits; for the value, where the runner's time went (per transfer: instance
//! reads, decision appends, commands and their parts, timer calls, checkpoint round trips,
//! and what is left, the runner's own work), how full its batches were, its lag behind the
//! head (`ProjectorProgress::lag_events` sampled every 50 ms; the projector samples the head
//! once per idle interval); for the latency phases, each hop's p50.

mod registry;
mod runner;
mod samples;
mod timed;
mod transfer_set;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::CommandExecutor;
use foldline_postgres::PgEventStore;
use foldline_redis::RedisTarget;
use foldline_tests::transfers::Wallet;
use tokio::task::{JoinError, JoinSet};

use self::registry::{Follower, Registry, Stage, Stamps};
use self::runner::{Running, Settings};
use self::samples::Samples;
use self::timed::{StoreTallies, TimedStore};
use self::transfer_set::TransferSet;
use super::Options;
use crate::counters::{self, GROUP_COMMIT_APPENDS, GROUP_COMMIT_SECONDS, Reading};
use crate::machine::Usage;
use crate::pg::{BenchSchema, finish_usage};
use crate::redis_prefix::RedisPrefix;
use crate::report::Figure;
use crate::stats::{Latencies, median_round, per_second, size_f64};

const NAME: &str = "process-transfers";
const SCHEMA: &str = "bench_process_transfers";
/// The store's pool (its default).
const POOL: usize = 16;
/// Transfers each requesting task keeps in flight, unless `--in-flight` says otherwise.
const IN_FLIGHT: usize = 16;
/// The runner's batch unless `--batch` says otherwise: the projector's default.
const BATCH: usize = 500;
/// The runner's idle interval unless `--idle-ms` says otherwise (the process worker's: a busy
/// runner never waits for it).
const IDLE_MS: u64 = 20;
/// Seconds per latency phase unless `--seconds` says otherwise.
const LATENCY_SECONDS: f64 = 5.0;
/// Transfers per task in one warm-up pass of the limit.
const WARMUP_CHUNK: usize = 25;
/// The share of a latency phase the runner may spend carrying inputs out before stderr warns
/// that the rate is near its capacity.
const BUSY_WARNING: f64 = 0.8;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    counters::install()?;
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let settings = Settings {
        batch: options.batch_or(BATCH).max(1),
        idle: Duration::from_millis(options.idle_ms.unwrap_or(IDLE_MS)),
        concurrent: options.concurrent,
    };
    let schema = BenchSchema::open(SCHEMA).await?;
    schema.drop_schema().await?;
    let store = schema.store(POOL).await?;
    let prefix = RedisPrefix::new("p")?;
    let checkpoints = prefix.target().await?;
    let mut bench = Bench {
        store,
        schema,
        checkpoints,
        settings,
        tasks: options.tasks(),
        in_flight: options.in_flight.unwrap_or(IN_FLIGHT).max(1),
        passes: 0,
    };
    eprintln!(
        "   schema {SCHEMA} dropped and recreated; runner checkpoint under Redis prefix {}; \
         {} tasks, {} transfers in flight each; runner batches of {} events, idle interval \
         {} ms",
        prefix.as_str(),
        bench.tasks,
        bench.in_flight,
        settings.batch,
        settings.idle.as_millis(),
    );
    if let Some(instances) = settings.concurrent {
        eprintln!("   the runner carries out up to {instances} instances' inputs at once");
    }
    // The runner's slot, created on the empty feed: every later start moves its checkpoint to
    // the head first.
    runner::start(&bench.store, &bench.checkpoints, settings, Arc::default())
        .await?
        .stop()
        .await?;

    let count = bench.calibrate(&options).await?;
    eprintln!("   {count} transfers per throughput pass");
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        eprintln!("   round {round}/{}", options.rounds);
        let limit = bench.limit(count).await?;
        let value = bench.value(count).await?;
        eprintln!(
            "     ratio {:.3}",
            value.rate() / limit.rate().max(f64::MIN_POSITIVE)
        );
        rounds.push((value.rate(), limit.rate()));
    }
    let (value, limit) = median_round(&rounds);
    // Half the slowest round: on a shared machine the runner's pace moves by 2× between
    // minutes, and a rate above it measures a queue, not the path.
    let slowest = rounds
        .iter()
        .map(|(value, _)| *value)
        .fold(f64::MAX, f64::min);

    let rate = options.rate.unwrap_or((slowest / 2.0).round().max(1.0));
    ensure!(
        rate > 0.0 && rate <= 100_000.0,
        "--rate must be above 0 and at most 100 000"
    );
    let seconds = options.measured_or(LATENCY_SECONDS);
    eprintln!(
        "   latency: {rate} transfers/s for {:.1} s per path",
        seconds.as_secs_f64()
    );
    let mut direct = Samples::new(["request", "withdraw", "deposit"]);
    let mut managed = Samples::new([
        "request",
        "to withdraw",
        "withdraw",
        "to deposit",
        "deposit",
        "to completed",
    ]);
    for round in 1..=options.rounds {
        eprintln!("   latency round {round}/{}", options.rounds);
        bench.limit_at(rate, seconds, &mut direct).await?;
        bench.value_at(rate, seconds, &mut managed).await?;
    }
    eprintln!(
        "   over all latency rounds: direct loop {}\n   {:>21}process manager {}",
        direct.summary(),
        "",
        managed.summary()
    );
    let deleted = prefix.clear().await?;
    eprintln!("   {deleted} Redis keys deleted");

    let ms = |samples: &mut Latencies, p: f64| samples.percentile_us(p) / 1000.0;
    Ok(vec![
        Figure::against(NAME, value, limit, "transfers/s"),
        Figure::against_lower(
            format!("{NAME}/p50"),
            ms(&mut managed.total, 50.0),
            ms(&mut direct.total, 50.0),
            "ms",
        ),
        Figure::against_lower(
            format!("{NAME}/p99"),
            ms(&mut managed.total, 99.0),
            ms(&mut direct.total, 99.0),
            "ms",
        ),
        Figure::alone(format!("{NAME}/rate"), rate, "transfers/s"),
        Figure::alone(
            format!("{NAME}/in-flight"),
            size_f64(bench.tasks * bench.in_flight),
            "transfers",
        ),
        Figure::alone(format!("{NAME}/batch"), size_f64(settings.batch), "events"),
    ])
}

struct Bench {
    store: PgEventStore,
    schema: BenchSchema,
    checkpoints: RedisTarget,
    settings: Settings,
    tasks: usize,
    in_flight: usize,
    /// Passes so far: each names its transfers and wallets after its number.
    passes: u32,
}

/// A throughput pass: how many transfers, and how long from the first request to the last
/// completed.
struct Pass {
    transfers: usize,
    elapsed: Duration,
}

impl Pass {
    fn rate(&self) -> f64 {
        per_second(
            u64::try_from(self.transfers).unwrap_or(u64::MAX),
            self.elapsed,
        )
    }
}

impl Bench {
    /// Transfers per throughput pass: `--commands`, or `--seconds` of the limit's rate in the
    /// warm-up (passes of the limit until `--warmup` seconds have passed, at least one); then
    /// one pass through the process manager, to warm it up too.
    async fn calibrate(&mut self, options: &Options) -> anyhow::Result<usize> {
        let chunk = WARMUP_CHUNK * self.tasks;
        let started = Instant::now();
        let (mut transfers, mut elapsed) = (0, Duration::ZERO);
        loop {
            let pass = self.limit(chunk).await?;
            transfers += pass.transfers;
            elapsed += pass.elapsed;
            if started.elapsed() >= options.warmup() {
                break;
            }
        }
        let count = match options.commands {
            Some(count) => usize::try_from(count)?,
            None => {
                let rate = per_second(u64::try_from(transfers)?, elapsed);
                let count = rate * options.measured().as_secs_f64();
                // A count of transfers: far below 2^52 and never negative.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let count = count.round() as usize;
                count.max(self.tasks)
            }
        };
        if !options.warmup().is_zero() {
            self.value(chunk.min(count)).await?;
        }
        Ok(count)
    }

    /// The runner, and the follower that sees its transfers completed in the registry.
    async fn start_runner(&self) -> anyhow::Result<(Arc<Registry>, Running, Follower)> {
        let registry = Arc::new(Registry::default());
        let running = runner::start(
            &self.store,
            &self.checkpoints,
            self.settings,
            Arc::clone(&registry),
        )
        .await?;
        let follower = Follower::start(&self.store, Arc::clone(&registry)).await?;
        Ok((registry, running, follower))
    }

    /// A fresh set of `count` transfers, their wallets opened.
    async fn fresh(&mut self, count: usize) -> anyhow::Result<TransferSet> {
        self.passes += 1;
        TransferSet::open(&self.store, format!("p{}", self.passes), count).await
    }

    /// The limit: `--tasks` loops executing each transfer's three commands in a row.
    async fn limit(&mut self, count: usize) -> anyhow::Result<Pass> {
        let set = self.fresh(count).await?;
        let tallies = Arc::new(StoreTallies::default());
        let executor =
            CommandExecutor::new(TimedStore::new(self.store.clone(), Arc::clone(&tallies)));
        let watch = Watch::start();
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for task in 0..self.tasks {
            let (executor, set, step) = (executor.clone(), set.clone(), self.tasks);
            tasks.spawn(async move {
                for n in (task..set.count()).step_by(step) {
                    for command in set.commands(n) {
                        executor.execute::<Wallet>(command).await?;
                    }
                }
                anyhow::Ok(())
            });
        }
        let done = join_all(tasks).await;
        let elapsed = started.elapsed();
        let watched = watch.finish(&self.schema).await?;
        done?;
        let pass = Pass {
            transfers: count,
            elapsed,
        };
        eprintln!(
            "     direct loop, {} tasks: {:.0} transfers/s ({count} in {:.2} s); per transfer: \
             wallet reads {}, appends {}; {watched}",
            self.tasks,
            pass.rate(),
            elapsed.as_secs_f64(),
            tallies.reads.per(count),
            tallies.appends.per(count),
        );
        Ok(pass)
    }

    /// The value: `--tasks` tasks requesting transfers, each keeping `--in-flight` of them
    /// in flight, until every one is completed.
    async fn value(&mut self, count: usize) -> anyhow::Result<Pass> {
        let set = self.fresh(count).await?;
        let (registry, running, follower) = self.start_runner().await?;
        let requests = Arc::new(StoreTallies::default());
        let executor =
            CommandExecutor::new(TimedStore::new(self.store.clone(), Arc::clone(&requests)));
        let watch = Watch::start();
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for task in 0..self.tasks {
            let (executor, set, registry) = (executor.clone(), set.clone(), Arc::clone(&registry));
            let (step, in_flight) = (self.tasks, self.in_flight);
            tasks.spawn(async move {
                let mut waiting = JoinSet::new();
                for n in (task..set.count()).step_by(step) {
                    while waiting.len() >= in_flight {
                        completed(waiting.join_next().await)?;
                    }
                    let id = set.id(n);
                    let waiter = registry.expect(&id, Instant::now());
                    executor.execute::<Wallet>(set.request(n)).await?;
                    registry.stamp(&id, Stage::Requested, Instant::now());
                    waiting.spawn(waiter.completed());
                }
                while !waiting.is_empty() {
                    completed(waiting.join_next().await)?;
                }
                anyhow::Ok(())
            });
        }
        let done = join_all(tasks).await;
        let elapsed = started.elapsed();
        let watched = watch.finish(&self.schema).await?;
        let profile = Arc::clone(&running.profile);
        follower.stop().await?;
        running.stop().await?;
        done?;
        let pass = Pass {
            transfers: count,
            elapsed,
        };
        eprintln!(
            "     process manager, {} tasks × {} in flight: {:.0} transfers/s ({count} in \
             {:.2} s); {watched}\n{}       requests: wallet reads {}, appends {}",
            self.tasks,
            self.in_flight,
            pass.rate(),
            elapsed.as_secs_f64(),
            profile.summary(count, elapsed),
            requests.reads.per(count),
            requests.appends.per(count),
        );
        Ok(pass)
    }

    /// The limit's latency: a transfer's three commands in a row, one transfer started every
    /// `1 / rate` s in a task of its own, for `duration`.
    async fn limit_at(
        &mut self,
        rate: f64,
        duration: Duration,
        samples: &mut Samples<3>,
    ) -> anyhow::Result<()> {
        let count = count_at(rate, duration);
        let set = self.fresh(count).await?;
        let executor = CommandExecutor::new(self.store.clone());
        let watch = Watch::start();
        let mut ticks = schedule(rate);
        let mut tasks = JoinSet::new();
        for n in 0..count {
            ticks.tick().await;
            let (executor, set) = (executor.clone(), set.clone());
            tasks.spawn(async move {
                let started = Instant::now();
                let mut hops = [None; 3];
                for (hop, command) in hops.iter_mut().zip(set.commands(n)) {
                    let sent = Instant::now();
                    executor.execute::<Wallet>(command).await?;
                    *hop = Some(sent.elapsed());
                }
                anyhow::Ok((started.elapsed(), hops))
            });
        }
        let mut phase = Samples::new(samples.names);
        while let Some(done) = tasks.join_next().await {
            let (total, hops) = done.context("a transfer task panicked")??;
            phase.add(total, hops);
        }
        let watched = watch.finish(&self.schema).await?;
        eprintln!("     direct loop {}; {watched}", phase.summary());
        samples.absorb(phase);
        Ok(())
    }

    /// The value's latency: one request every `1 / rate` s in a task of its own, for
    /// `duration`, each until its transfer is completed.
    async fn value_at(
        &mut self,
        rate: f64,
        duration: Duration,
        samples: &mut Samples<6>,
    ) -> anyhow::Result<()> {
        let count = count_at(rate, duration);
        let set = self.fresh(count).await?;
        let (registry, running, follower) = self.start_runner().await?;
        let executor = CommandExecutor::new(self.store.clone());
        let watch = Watch::start();
        let started = Instant::now();
        let mut ticks = schedule(rate);
        let mut tasks = JoinSet::new();
        for n in 0..count {
            ticks.tick().await;
            let (executor, set, registry) = (executor.clone(), set.clone(), Arc::clone(&registry));
            tasks.spawn(async move {
                let id = set.id(n);
                let waiter = registry.expect(&id, Instant::now());
                executor.execute::<Wallet>(set.request(n)).await?;
                registry.stamp(&id, Stage::Requested, Instant::now());
                waiter.completed().await
            });
        }
        let mut phase = Samples::new(samples.names);
        let mut failed = None;
        while let Some(done) = tasks.join_next().await {
            match done.context("a transfer task panicked").and_then(|d| d) {
                Ok(stamps) => phase.add_stamps(&stamps),
                Err(error) => {
                    failed.get_or_insert(error);
                }
            }
        }
        let elapsed = started.elapsed();
        let watched = watch.finish(&self.schema).await?;
        let profile = Arc::clone(&running.profile);
        follower.stop().await?;
        running.stop().await?;
        if let Some(error) = failed {
            return Err(error);
        }
        eprintln!(
            "     process manager {}; {watched}\n{}",
            phase.summary(),
            profile.summary(count, elapsed)
        );
        let busy = profile.runner.commits.busy().as_secs_f64() / elapsed.as_secs_f64();
        if busy > BUSY_WARNING {
            eprintln!(
                "     the runner was busy {:.0} % of the phase: near its capacity, these \
                 latencies include queueing; lower --rate",
                busy * 100.0
            );
        }
        samples.absorb(phase);
        Ok(())
    }
}

/// Waits for every task; the first failure.
async fn join_all(mut tasks: JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut first = Ok(());
    while let Some(done) = tasks.join_next().await {
        let done = done.context("a transfer task panicked").and_then(|d| d);
        if first.is_ok() {
            first = done;
        }
    }
    first
}

/// A transfer awaited by a requesting task: an error if it failed.
fn completed(joined: Option<Result<anyhow::Result<Stamps>, JoinError>>) -> anyhow::Result<()> {
    if let Some(joined) = joined {
        joined.context("a waiting task panicked")??;
    }
    Ok(())
}

/// Transfers started in `duration` at `rate` per second.
fn count_at(rate: f64, duration: Duration) -> usize {
    // A count: far below 2^52 and never negative.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let count = (rate * duration.as_secs_f64()).round().max(1.0) as usize;
    count
}

/// Ticks every `1 / rate` s, catching up at once after a late tick (so the rate holds).
fn schedule(rate: f64) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    ticks
}

/// The machine's CPU use and the store's group commits over a pass.
struct Watch {
    usage: Usage,
    appends: Reading,
    seconds: Reading,
}

impl Watch {
    fn start() -> Self {
        Watch {
            usage: Usage::start(),
            appends: counters::read(GROUP_COMMIT_APPENDS),
            seconds: counters::read(GROUP_COMMIT_SECONDS),
        }
    }

    /// `N group commits of M appends (T ms each); <CPU use>`.
    async fn finish(self, schema: &BenchSchema) -> anyhow::Result<String> {
        let usage = finish_usage(self.usage, &schema.admin).await?;
        let appends = counters::read(GROUP_COMMIT_APPENDS).since(self.appends);
        let seconds = counters::read(GROUP_COMMIT_SECONDS).since(self.seconds);
        Ok(format!(
            "{} group commits of {:.1} appends ({:.2} ms each); {usage}",
            appends.count,
            appends.mean(),
            seconds.mean() * 1e3,
        ))
    }
}
