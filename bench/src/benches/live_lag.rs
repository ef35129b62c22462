//! `live-lag`: how long after an append its effect is visible in Redis, through a live
//! `Projector`, under a steady append load on PostgreSQL, against a plain subscriber that
//! writes one `SET` per batch.
//!
//! # What is measured
//!
//! `--rate` appends per second (default 500) of one `Deposited` event each, started on a fixed
//! schedule (each in its own task, so a slow one does not delay the next) for `--seconds`
//! (default 5) per phase, into `PgEventStore` (schema `bench_live_lag`, group commit on).
//! For each append, the latency is the time from just before `append` until its event is
//! visible:
//!
//! - **Value**: a spawned `Projector` of the [`Balances`] projection (three Redis writes per
//!   event, committed with the checkpoint in the target's Lua script) follows the store live;
//!   visible = `ProjectorHandle::wait_for(position)` resolved (the projector committed a
//!   checkpoint covering it to the active slot). Once per phase an extra append checks with
//!   `HGET` that its write is in Redis when `wait_for` resolves.
//! - **Limit**: the raw path, the same appends, and a task on the store's own `subscribe()`
//!   that writes each batch it receives to Redis with one plain `SET` (the batch's checkpoint)
//!   and then publishes the checkpoint; visible = that `SET` answered for a checkpoint covering
//!   the append. Both paths wait on PostgreSQL the same way: the feed's visibility horizon
//!   and LISTEN/NOTIFY wake-ups.
//!
//! Reported: p99 and p50 in milliseconds, foldline's as the value and the raw path's as the
//! limit; lower is better, so the ratio is `limit / value` (1 = as fast as the raw path).
//! Target: p99 ≤ 20 ms.
//!
//! # Keeping it fair
//!
//! The phases alternate over `--rounds` rounds (after a `--warmup` of each), on the same store
//! and Redis, and never overlap: the projector is shut down before the raw phase, and started
//! again (and caught up with the raw phase's appends) before its next phase. The percentiles
//! are over every append of every round. Appends go round robin to 1000 streams with
//! `ExpectedVersion::Any`, so none conflicts.
//!
//! The feed only shows events of transactions older than every transaction still open in the
//! database cluster, so another client's long transaction (on a shared server, say a test
//! that holds one open on purpose) stalls both paths alike for as long as it stays open. A
//! task watches `pg_stat_activity` every 50 ms during each phase; a phase during which another
//! client's transaction stayed open 100 ms or more is discarded and run again (at most 3 times;
//! the third is kept), and stderr says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{
    AppendRequest, Checkpoint, EventMetadata, EventStore, ExpectedVersion, Position, Projection,
    Projector, ProjectorHandle, ProjectorOptions, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_redis::RedisTarget;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Options;
use super::account::{AccountEvent, CENTS, Encoded};
use super::balances::Balances;
use crate::machine::Usage;
use crate::pg::{BenchSchema, application_name, connect, finish_usage};
use crate::redis_prefix::{self, RedisPrefix};
use crate::report::Figure;
use crate::stats::Latencies;

const NAME: &str = "live-lag";
const SCHEMA: &str = "bench_live_lag";
/// Seconds per measured phase unless `--seconds` says otherwise.
const SECONDS: f64 = 5.0;
/// Appends per second unless `--rate` says otherwise.
const RATE: f64 = 500.0;
/// Streams the appends go to, round robin.
const STREAMS: u64 = 1000;
/// Connections of the store's pool (the writer has its own).
const POOL: usize = 4;
/// How many times a phase is run when another client's transaction held the feed back.
const ATTEMPTS: u32 = 3;
/// How long such a transaction may stay open before the phase is run again.
const STALL: f64 = 0.1;
/// How long one append may take to become visible before the benchmark fails.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let rate = options.rate.unwrap_or(RATE);
    ensure!(
        rate > 0.0 && rate <= 100_000.0,
        "--rate must be above 0 and at most 100 000"
    );
    let batch = options.batch_or(super::redis_projection::BATCH);
    ensure!(batch >= 1, "--batch must be at least 1");
    let measured = options.measured_or(SECONDS);
    let schema = BenchSchema::open(SCHEMA).await?;
    schema.drop_schema().await?;
    let store = schema.store(POOL).await?;
    let prefix = RedisPrefix::new("f")?;
    let raw_prefix = RedisPrefix::new("r")?;
    let target = prefix.target().await?;
    let conn = redis_prefix::connect().await?;
    let load = Load::new(&store, rate)?;
    eprintln!(
        "   {} appends/s for {:.1} s per phase; projector batches of {batch}; schema {SCHEMA} \
         dropped and recreated",
        rate,
        measured.as_secs_f64()
    );

    let projector = || {
        Projector::new(store.clone(), Balances, target.clone())
            .with_options(ProjectorOptions::new().with_batch_size(batch))
    };
    if options.warmup > 0.0 {
        let handle = start(&projector).await?;
        load.run(options.warmup(), Visible::Projector(&handle))
            .await?;
        handle.shutdown().await?;
        let raw = RawFollower::start(&store, &raw_prefix, conn.clone()).await?;
        load.run(options.warmup(), Visible::Raw(&raw.visible))
            .await?;
        raw.stop();
    }

    let mut value = Phase::default();
    let mut limit = Phase::default();
    for round in 1..=options.rounds {
        let mut attempt = 1;
        let (run, value_held, value_usage) = loop {
            let handle = start(&projector).await?;
            check_visible(&store, &handle, &target).await?;
            let usage = Usage::start();
            let holders = Holders::watch(&schema).await?;
            let run = load.run(measured, Visible::Projector(&handle)).await?;
            let held = holders.finish().await;
            let usage = finish_usage(usage, &schema.admin).await?;
            handle.shutdown().await?;
            if !held.stalled() || attempt == ATTEMPTS {
                break (run, held, usage);
            }
            eprintln!("   round {round}: projector phase discarded and run again: {held}");
            attempt += 1;
        };

        let mut attempt = 1;
        let (raw_run, limit_held, limit_usage) = loop {
            let raw = RawFollower::start(&store, &raw_prefix, conn.clone()).await?;
            let usage = Usage::start();
            let holders = Holders::watch(&schema).await?;
            let run = load.run(measured, Visible::Raw(&raw.visible)).await?;
            let held = holders.finish().await;
            let usage = finish_usage(usage, &schema.admin).await?;
            raw.stop();
            if !held.stalled() || attempt == ATTEMPTS {
                break (run, held, usage);
            }
            eprintln!("   round {round}: raw phase discarded and run again: {held}");
            attempt += 1;
        };

        eprintln!(
            "   round {round}/{}: raw SET   {}; {limit_held}; {limit_usage}\n   \
             {:>13}projector {}; {value_held}; {value_usage}",
            options.rounds,
            raw_run.summary(),
            "",
            run.summary(),
        );
        value.add(run);
        limit.add(raw_run);
    }
    eprintln!(
        "   over all rounds: raw SET {}\n   {:>16}projector {}",
        limit.summary(),
        "",
        value.summary()
    );
    let deleted = prefix.clear().await? + raw_prefix.clear().await?;
    eprintln!("   {deleted} Redis keys deleted");
    Ok(vec![
        Figure::against_lower(
            NAME,
            value.visible.percentile_us(99.0) / 1000.0,
            limit.visible.percentile_us(99.0) / 1000.0,
            "ms",
        ),
        Figure::against_lower(
            format!("{NAME}/p50"),
            value.visible.percentile_us(50.0) / 1000.0,
            limit.visible.percentile_us(50.0) / 1000.0,
            "ms",
        ),
    ])
}

/// Spawns a projector and waits until it has caught up (its slot active).
async fn start<F>(projector: &F) -> anyhow::Result<ProjectorHandle>
where
    F: Fn() -> Projector<PgEventStore, Balances, RedisTarget>,
{
    let handle = projector().spawn();
    let mut progress = handle.watch();
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|p| p.caught_up && p.active),
    )
    .await
    .context("the projector did not catch up within 60 s")?
    .context("the projector stopped before catching up")?;
    Ok(handle)
}

/// Appends one event to a stream of its own, waits until the projector says it is visible,
/// and checks Redis has it then.
async fn check_visible(
    store: &PgEventStore,
    handle: &ProjectorHandle,
    target: &RedisTarget,
) -> anyhow::Result<()> {
    let stream = StreamId::new(format!("account-check{}", uuid::Uuid::now_v7().simple()))?;
    let encoded = Encoded::of(&AccountEvent::Deposited { cents: CENTS })?;
    let appended = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![encoded.event(&EventMetadata::new())],
        ))
        .await?;
    let position = appended
        .position
        .context("an append returned no position")?;
    handle.wait_for(&position, TIMEOUT).await?;
    let keys = target.slot_keys(&Balances::NAME, handle.progress().slot);
    let (cents, version): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(keys.key(&format!("account:{stream}")))
        .arg("cents")
        .arg("version")
        .query_async(&mut target.connection())
        .await?;
    ensure!(
        cents == Some(CENTS) && version == Some(1),
        "wait_for resolved but Redis holds cents {cents:?}, version {version:?} for {stream}"
    );
    Ok(())
}

/// Watches, every 50 ms, for transactions of other clients that hold the feed's visibility
/// horizon back (what `PgEventStore::feed_holders` lists): while one is open, no event
/// appended after it started is visible to any subscriber, foldline's or the raw one, so
/// such a stall shows in both paths' latencies and is no part of what the projector costs.
struct Holders {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<Option<(f64, String)>>>,
}

impl Holders {
    async fn watch(schema: &BenchSchema) -> anyhow::Result<Self> {
        let client = connect(&schema.url).await?;
        let statement = client
            .prepare(
                "SELECT coalesce(application_name, ''), \
                        greatest(extract(epoch FROM clock_timestamp() - xact_start), 0)::float8, \
                        left(coalesce(query, ''), 60) \
                 FROM pg_stat_activity \
                 WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
                   AND application_name <> $1 \
                 ORDER BY xact_start LIMIT 1",
            )
            .await?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let ours = application_name();
            let mut longest: Option<(f64, String)> = None;
            loop {
                if let Some(row) = client.query_opt(&statement, &[&ours]).await? {
                    let (name, age, query): (String, f64, String) =
                        (row.get(0), row.get(1), row.get(2));
                    if longest.as_ref().is_none_or(|(l, _)| age > *l) {
                        longest = Some((age, format!("application `{name}`, `{query}`")));
                    }
                }
                tokio::select! {
                    _ = stopped.changed() => return Ok(longest),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        Ok(Holders { stop, task })
    }

    /// The longest-open transaction of another client seen since the start.
    async fn finish(self) -> Held {
        self.stop.send_replace(true);
        match self.task.await {
            Ok(Ok(longest)) => Held::Seen(longest),
            Ok(Err(error)) => Held::Unknown(error.to_string()),
            Err(_) => Held::Unknown("the watching task panicked".to_owned()),
        }
    }
}

/// What [`Holders`] saw.
enum Held {
    /// The longest-open transaction of another client, if any: age in seconds, who.
    Seen(Option<(f64, String)>),
    /// The watch failed.
    Unknown(String),
}

impl Held {
    /// Whether another client held the feed back [`STALL`] seconds or more.
    fn stalled(&self) -> bool {
        matches!(self, Held::Seen(Some((age, _))) if *age >= STALL)
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::Seen(Some((age, who))) if *age >= STALL => write!(
                f,
                "feed held back by another client's transaction for {age:.2} s ({who})"
            ),
            Held::Seen(_) => write!(
                f,
                "no other client's transaction held the feed back {:.0} ms or more",
                STALL * 1000.0
            ),
            Held::Unknown(why) => write!(
                f,
                "could not watch for transactions holding the feed: {why}"
            ),
        }
    }
}

/// How a phase learns that an append is visible.
enum Visible<'a> {
    Projector(&'a ProjectorHandle),
    Raw(&'a watch::Receiver<Checkpoint>),
}

impl Visible<'_> {
    /// A future that resolves once the event at a position is visible.
    fn waiter(&self) -> Waiter {
        match self {
            Visible::Projector(handle) => Waiter::Projector(handle.watch()),
            Visible::Raw(visible) => Waiter::Raw((*visible).clone()),
        }
    }
}

/// What one append task waits on (owned, so the task can be spawned).
enum Waiter {
    Projector(watch::Receiver<foldline::ProjectorProgress>),
    Raw(watch::Receiver<Checkpoint>),
}

impl Waiter {
    /// Waits until the event at `position` is visible: the same condition as
    /// `ProjectorHandle::wait_for`, or the raw follower's checkpoint covering it.
    async fn wait(self, position: Position) -> anyhow::Result<()> {
        match self {
            Waiter::Projector(mut progress) => {
                tokio::time::timeout(TIMEOUT, progress.wait_for(|p| p.is_visible(&position)))
                    .await
                    .context("an append was not visible in time")?
                    .context("the projector stopped")?;
            }
            Waiter::Raw(mut visible) => {
                tokio::time::timeout(TIMEOUT, visible.wait_for(|c| c.covers(&position)))
                    .await
                    .context("an append was not visible in time")?
                    .context("the raw follower stopped")?;
            }
        }
        Ok(())
    }
}

/// The raw path: the store's subscription, one `SET` per batch, then the checkpoint published.
struct RawFollower {
    visible: watch::Receiver<Checkpoint>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RawFollower {
    /// Subscribes from the store's head.
    async fn start(
        store: &PgEventStore,
        prefix: &RedisPrefix,
        mut conn: MultiplexedConnection,
    ) -> anyhow::Result<Self> {
        let head = store.head().await?;
        let mut subscription = store.subscribe(head.clone()).await?;
        let (publish, visible) = watch::channel(head);
        let key = format!("{}:raw:checkpoint", prefix.as_str());
        let task = tokio::spawn(async move {
            while let Some(batch) = subscription.next().await {
                let batch = batch?;
                redis::cmd("SET")
                    .arg(&key)
                    .arg(batch.checkpoint.to_string())
                    .exec_async(&mut conn)
                    .await?;
                publish.send_replace(batch.checkpoint);
            }
            Ok(())
        });
        Ok(RawFollower { visible, task })
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// The append load: one event per append, to streams round robin.
struct Load {
    store: PgEventStore,
    streams: Arc<Vec<StreamId>>,
    event: Arc<Encoded>,
    interval: Duration,
}

impl Load {
    fn new(store: &PgEventStore, rate: f64) -> anyhow::Result<Self> {
        let streams = (0..STREAMS)
            .map(|n| StreamId::new(format!("account-l{n}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Load {
            store: store.clone(),
            streams: Arc::new(streams),
            event: Arc::new(Encoded::of(&AccountEvent::Deposited { cents: CENTS })?),
            interval: Duration::from_secs_f64(1.0 / rate),
        })
    }

    /// Starts one append per interval for `duration`, each in its own task that then waits
    /// until the event is visible; returns every append's latencies.
    async fn run(&self, duration: Duration, visible: Visible<'_>) -> anyhow::Result<Run> {
        let count = (duration.as_secs_f64() / self.interval.as_secs_f64()).round();
        // A count of appends: far below 2^52 and never negative.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = count.max(1.0) as usize;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for n in 0..count {
            ticks.tick().await;
            let store = self.store.clone();
            let stream = self.streams[n % self.streams.len()].clone();
            let event = self.event.event(&EventMetadata::new());
            let waiter = visible.waiter();
            tasks.spawn(async move {
                let before = Instant::now();
                let appended = store
                    .append(AppendRequest::new(
                        stream,
                        ExpectedVersion::Any,
                        vec![event],
                    ))
                    .await?;
                let append = before.elapsed();
                let position = appended
                    .position
                    .context("an append returned no position")?;
                waiter.wait(position).await?;
                anyhow::Ok((append, before.elapsed()))
            });
        }
        let mut run = Run::default();
        while let Some(done) = tasks.join_next().await {
            let (append, visible) = done.context("an append task panicked")??;
            run.append.push(nanos(append));
            run.visible.push(nanos(visible));
            run.after.push(nanos(visible.saturating_sub(append)));
        }
        run.elapsed = started.elapsed();
        Ok(run)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One phase's latencies, in nanoseconds: of the append call, until visible, and from the
/// append's return until visible (the projection's own share).
#[derive(Debug, Default)]
struct Run {
    append: Vec<u64>,
    visible: Vec<u64>,
    after: Vec<u64>,
    elapsed: Duration,
}

impl Run {
    fn summary(&self) -> String {
        let mut phase = Phase::default();
        phase.add(Run {
            append: self.append.clone(),
            visible: self.visible.clone(),
            after: self.after.clone(),
            elapsed: self.elapsed,
        });
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let rate = self.visible.len() as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!("{} at {rate:.0}/s", phase.summary())
    }
}

/// Every round's latencies of one path.
#[derive(Debug, Default)]
struct Phase {
    append: Latencies,
    visible: Latencies,
    after: Latencies,
    count: usize,
}

impl Phase {
    fn add(&mut self, run: Run) {
        self.count += run.visible.len();
        self.append.extend(run.append);
        self.visible.extend(run.visible);
        self.after.extend(run.after);
    }

    fn summary(&mut self) -> String {
        let ms = |latencies: &mut Latencies, p: f64| latencies.percentile_us(p) / 1000.0;
        format!(
            "{} appends: visible p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; append alone p50 \
             {:.2} ms, p99 {:.2} ms; from the append's return p50 {:.2} ms, p99 {:.2} ms",
            self.count,
            ms(&mut self.visible, 50.0),
            ms(&mut self.visible, 99.0),
            ms(&mut self.visible, 100.0),
            ms(&mut self.append, 50.0),
            ms(&mut self.append, 99.0),
            ms(&mut self.after, 50.0),
            ms(&mut self.after, 99.0),
        )
    }
}
