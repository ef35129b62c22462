//! `redis-projection`: a catch-up of the whole PostgreSQL feed (1M events by default) through
//! a `Projector` into Redis, against the same writes sent to the same Redis as plain
//! `MULTI … EXEC` batches.
//!
//! # What is measured
//!
//! - **Value**: `Projector::catch_up` of the [`Balances`] projection (three Redis operations
//!   per event: `HINCRBY` or `HSET` on the account's hash, `HSET` of its version, `INCRBY` of a
//!   global counter) from `PgEventStore` into a `RedisTarget`, from an empty target to the
//!   feed's head, in events/s: reading the feed, decoding every event, running the handler,
//!   and committing each batch with its checkpoint in the target's `MULTI … EXEC` under
//!   `WATCH`, batches of `--batch` events (default 2000: of 500, 1000 and 2000, the fastest;
//!   see the README).
//! - **Limit**: the same writes (same commands, key lengths, values and count) sent through a
//!   plain multiplexed connection as `MULTI … EXEC` pipelines, one per commit the projector
//!   made and of the same size (the projector's own commit sizes are replayed), built from the
//!   events already read and decoded in memory; the next pipeline is built while the previous
//!   one runs, so the limit is what Redis itself can write. Target: 0.5× the limit.
//!
//! Also reported: the batch size, the mean events per commit, and the process's resident
//! memory during the first round's catch-up (before it, at 10 %, 50 % and 100 % of the
//! events, and the peak): the runtime reads ahead a bounded number of batches, so it stays flat.
//!
//! # The feed
//!
//! The one `pg-feed` reads (schema `bench_pg_feed`, written by `pg::feed`; `--keep` reuses it
//! when it holds exactly `--events` events): streams of 10 account events, `Opened` then
//! `Deposited`, 1000 per transaction. One raw pass over it warms PostgreSQL's cache first.
//!
//! # Keeping it fair
//!
//! Each pass writes under a key prefix of its own, `bench-f-<12 hex>` for foldline and
//! `bench-r-<12 hex>` for the limit (equally long keys), starting from no keys, and deletes
//! them afterwards; each round runs the projector, then the limit with its commit sizes, and
//! both check the `events` counter reached `--events`. Of `--rounds` rounds, the one with the
//! median ratio is reported (its value and limit: the two passes of a round ran back to back,
//! under the same load from the rest of the machine).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{
    Checkpoint, EventStore, JsonCodec, Projection, Projector, ProjectorOptions, ProjectorProgress,
    SlotId,
};
use foldline_redis::RedisSlotKeys;
use redis::aio::MultiplexedConnection;

use super::Options;
use super::account::AccountEvent;
use super::balances::{Balances, Decoded, events_in, raw_writes};
use crate::machine::Usage;
use crate::metered::{CatchUp, CommitLog, MeteredTarget, PassDetail, snapshot};
use crate::pg::{connect, feed, finish_usage, scan};
use crate::redis_prefix::{self, RedisPrefix};
use crate::report::Figure;
use crate::rss::{self, Rss, Sampler};
use crate::stats::per_second;

const NAME: &str = "redis-projection";
/// Events in the feed unless `--events` says otherwise.
const EVENTS: u64 = 1_000_000;
/// The projector's batch size unless `--batch` says otherwise.
pub(super) const BATCH: usize = 2000;
/// Connections of the store's pool: the projector's reads, and its `head()` beside them.
const POOL: usize = 2;
/// The share of the events at which resident memory is sampled, in percent.
const MARKS: [u64; 3] = [10, 50, 100];

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let events = options.events_or(EVENTS);
    let batch = options.batch_or(BATCH);
    ensure!(batch >= 1, "--batch must be at least 1");
    ensure!(events >= 1, "--events must be at least 1");
    let (schema, store) = feed(events, options.keep, POOL).await?;
    let raw_pg = connect(&schema.url).await?;
    eprintln!("   batches of {batch}; warming PostgreSQL's cache with one raw pass");
    scan(&raw_pg, &schema.table("events"), 1000).await?;
    let measured = Measured {
        name: NAME,
        events,
        batch,
        rounds: options.rounds,
    };
    measured.run(&store, Some(&schema.admin)).await
}

/// One projection benchmark's settings: a catch-up of `events` events from a store into
/// Redis in batches of `batch`, against the raw limit, `rounds` times. `redis-projection` runs
/// it on PostgreSQL, `kafka-redis-projection` on a Kafka store.
pub(super) struct Measured {
    pub(super) name: &'static str,
    pub(super) events: u64,
    pub(super) batch: usize,
    pub(super) rounds: u32,
}

impl Measured {
    /// Its figures and rounds' detail.
    fn catch_up(&self) -> CatchUp {
        CatchUp {
            name: self.name,
            limit: "raw MULTI/EXEC",
            unit: "events/s",
            noun: "events",
        }
    }

    /// Runs the rounds on `store`, which holds exactly the feed's events. `postgres` is the
    /// store's admin connection, when it is PostgreSQL: the CPU split then names its backends.
    pub(super) async fn run<S>(
        &self,
        store: &S,
        postgres: Option<&tokio_postgres::Client>,
    ) -> anyhow::Result<Vec<Figure>>
    where
        S: EventStore + Clone + 'static,
    {
        let (events, batch) = (self.events, self.batch);
        let catch_up = self.catch_up();
        let mut conn = redis_prefix::connect().await?;
        let mut rounds = Vec::new();
        let mut per_commit = Vec::new();
        let mut memory = None;
        let mut decoded: Option<Feed> = None;
        for round in 1..=self.rounds {
            let prefix = RedisPrefix::new("f")?;
            let usage = Usage::start();
            let pass = project(store, &mut conn, &prefix, batch, events).await?;
            let value_usage = finish(usage, postgres).await?;
            let deleted = prefix.clear().await?;
            let value = per_second(events, pass.elapsed);
            let log = &pass.log;
            log.check(events, "events")?;

            let feed = match decoded.take() {
                Some(feed) => feed,
                None => {
                    let started = Instant::now();
                    let feed = Feed::load(store, events).await?;
                    eprintln!(
                        "   read and decoded the feed for the raw limit in {:.1} s",
                        started.elapsed().as_secs_f64()
                    );
                    feed
                }
            };
            let raw_prefix = RedisPrefix::new("r")?;
            let usage = Usage::start();
            let elapsed = raw_pass(&mut conn, &raw_prefix, &feed, &log.sizes).await?;
            let limit_usage = finish(usage, postgres).await?;
            let counted = read_counter(&mut conn, &slot_keys(&raw_prefix, SlotId::new(1))).await?;
            ensure!(
                counted == events,
                "the raw limit counted {counted} of {events} events"
            );
            let raw_deleted = raw_prefix.clear().await?;
            decoded = Some(feed);
            let limit = per_second(events, elapsed);

            let detail = catch_up.round_detail(
                (round, self.rounds),
                PassDetail {
                    rate: limit,
                    elapsed,
                    usage: &limit_usage,
                },
                PassDetail {
                    rate: value,
                    elapsed: pass.elapsed,
                    usage: &value_usage,
                },
                log,
            );
            eprintln!("{detail}; keys deleted: {deleted} + {raw_deleted}");
            rounds.push((value, limit));
            per_commit.push(log.mean());
            if memory.is_none() {
                memory = Some(pass.memory);
            }
        }

        let mut figures = catch_up.figures(&rounds, batch, &per_commit);
        if let Some(memory) = memory {
            figures.extend(memory.figures(self.name));
        }
        Ok(figures)
    }
}

/// Ends `usage`; with PostgreSQL's backends named when `postgres` is given.
async fn finish(usage: Usage, postgres: Option<&tokio_postgres::Client>) -> anyhow::Result<String> {
    match postgres {
        Some(admin) => finish_usage(usage, admin).await,
        None => Ok(usage.finish()),
    }
}

/// One catch-up through the projector.
struct Pass {
    elapsed: Duration,
    log: CommitLog,
    memory: Memory,
}

/// Resident memory around one catch-up, in bytes.
struct Memory {
    before: u64,
    /// `(percent of the events committed, VmRSS then)`.
    marks: Vec<(u64, u64)>,
    peak: u64,
    /// Where `peak` comes from.
    peak_source: &'static str,
}

impl Memory {
    /// Prints the samples and returns them as figures of the benchmark `name`.
    fn figures(&self, name: &str) -> Vec<Figure> {
        eprintln!(
            "   resident memory in round 1 (MiB): before {:.1}, {}, peak {:.1} ({})",
            rss::mib(self.before),
            self.marks
                .iter()
                .map(|(mark, bytes)| format!("{mark} % {:.1}", rss::mib(*bytes)))
                .collect::<Vec<_>>()
                .join(", "),
            rss::mib(self.peak),
            self.peak_source,
        );
        let mut figures = vec![
            Figure::alone(format!("{name}/rss-peak"), rss::mib(self.peak), "MiB"),
            Figure::alone(format!("{name}/rss-before"), rss::mib(self.before), "MiB"),
        ];
        for (mark, bytes) in &self.marks {
            figures.push(Figure::alone(
                format!("{name}/rss-{mark}%"),
                rss::mib(*bytes),
                "MiB",
            ));
        }
        figures
    }
}

/// Catches the projection up from an empty target under `prefix` and checks its result.
async fn project<S>(
    store: &S,
    conn: &mut MultiplexedConnection,
    prefix: &RedisPrefix,
    batch: usize,
    events: u64,
) -> anyhow::Result<Pass>
where
    S: EventStore + Clone + 'static,
{
    let target = MeteredTarget::new(prefix.target().await?, events_in);
    let log = target.log();
    let projector = Projector::new(store.clone(), Balances, target)
        .with_options(ProjectorOptions::new().with_batch_size(batch));

    let before = Rss::read().map_or(0, |r| r.now);
    let reset = rss::reset_peak();
    let sampler = Sampler::start(Duration::from_millis(5));
    let marks = tokio::spawn(watch_marks(projector.progress(), events));
    let started = Instant::now();
    let progress = projector.catch_up().await?;
    let elapsed = started.elapsed();
    let sampled = sampler.finish().await;
    let kernel = Rss::read().map_or(0, |r| r.peak);
    let marks = match tokio::time::timeout(Duration::from_secs(1), marks).await {
        Ok(joined) => joined.context("the memory sampling task panicked")?,
        Err(_) => Vec::new(),
    };
    let (peak, peak_source) = if reset {
        (kernel.max(sampled), "VmHWM, reset before the catch-up")
    } else {
        (sampled, "VmRSS sampled every 5 ms")
    };

    let applied = progress.applied + progress.skipped;
    ensure!(
        applied == events,
        "the projector handled {applied} of {events} events"
    );
    let counted = read_counter(conn, &slot_keys(prefix, progress.slot)).await?;
    ensure!(
        counted == events,
        "Redis counted {counted} of {events} events"
    );
    let log = snapshot(&log);
    Ok(Pass {
        elapsed,
        log,
        memory: Memory {
            before,
            marks,
            peak,
            peak_source,
        },
    })
}

/// Records `VmRSS` when the projector's progress passes each of [`MARKS`].
async fn watch_marks(
    mut progress: tokio::sync::watch::Receiver<ProjectorProgress>,
    events: u64,
) -> Vec<(u64, u64)> {
    let mut marks = Vec::new();
    let mut next = MARKS.iter().copied().peekable();
    while progress.changed().await.is_ok() {
        let done = {
            let p = progress.borrow_and_update();
            p.applied + p.skipped
        };
        while let Some(mark) = next.next_if(|mark| done * 100 >= mark * events) {
            marks.push((mark, Rss::read().map_or(0, |r| r.now)));
        }
        if next.peek().is_none() {
            break;
        }
    }
    marks
}

/// The feed read and decoded in memory, for the raw limit.
struct Feed {
    streams: Vec<String>,
    events: Vec<Decoded>,
    /// Stream id → index in `streams`. Kept as long as the feed: freeing a hundred thousand
    /// small strings in the middle of the run fragments the allocator's heap, which made
    /// every later projector pass in the same process about twice as costly in `malloc`.
    #[allow(dead_code, reason = "held, never read")]
    index: std::collections::HashMap<String, u32>,
}

impl Feed {
    /// Reads the whole feed (`events` events) through the store and decodes every event.
    async fn load(store: &impl EventStore, events: u64) -> anyhow::Result<Feed> {
        let capacity = usize::try_from(events)?;
        let mut feed = Feed {
            streams: Vec::with_capacity(capacity / 8),
            events: Vec::with_capacity(capacity),
            index: std::collections::HashMap::with_capacity(capacity / 8),
        };
        let mut checkpoint = Checkpoint::START;
        loop {
            let batch = store.read_all(&checkpoint, 1000).await?;
            if batch.is_empty() {
                return Ok(feed);
            }
            for recorded in &batch.events {
                let name = recorded.stream_id.as_str();
                let stream = match feed.index.get(name) {
                    Some(&stream) => stream,
                    None => {
                        let stream = u32::try_from(feed.streams.len())?;
                        feed.streams.push(name.to_owned());
                        feed.index.insert(name.to_owned(), stream);
                        stream
                    }
                };
                feed.events.push(Decoded {
                    stream,
                    version: recorded.stream_version.get(),
                    event: recorded.decode::<AccountEvent, _>(&JsonCodec)?,
                });
            }
            checkpoint = batch.checkpoint;
        }
    }
}

/// Sends the feed's writes under `prefix` as one `MULTI … EXEC` pipeline per entry of
/// `sizes` (events per pipeline), building each while the previous one runs. Returns the time
/// from the first build to the last reply.
async fn raw_pass(
    conn: &mut MultiplexedConnection,
    prefix: &RedisPrefix,
    feed: &Feed,
    sizes: &[usize],
) -> anyhow::Result<Duration> {
    let keys = slot_keys(prefix, SlotId::new(1));
    let started = Instant::now();
    let mut at = 0;
    let mut in_flight: Option<tokio::task::JoinHandle<redis::RedisResult<()>>> = None;
    for &size in sizes {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for event in &feed.events[at..at + size] {
            let stream = &feed.streams[event.stream as usize];
            raw_writes(&mut pipe, &keys, stream, event.version, &event.event);
        }
        at += size;
        if let Some(previous) = in_flight.take() {
            previous.await.context("a raw pipeline task panicked")??;
        }
        let mut conn = conn.clone();
        in_flight = Some(tokio::spawn(
            async move { pipe.exec_async(&mut conn).await },
        ));
    }
    if let Some(last) = in_flight {
        last.await.context("a raw pipeline task panicked")??;
    }
    Ok(started.elapsed())
}

/// The `events` counter under `keys`.
async fn read_counter(
    conn: &mut MultiplexedConnection,
    keys: &RedisSlotKeys,
) -> anyhow::Result<u64> {
    Ok(redis::cmd("GET")
        .arg(keys.key("events"))
        .query_async::<Option<u64>>(conn)
        .await?
        .unwrap_or(0))
}

/// The keys of `slot` of the projection under `prefix`; the raw limit writes those of slot
/// 1, the slot a fresh projector builds.
fn slot_keys(prefix: &RedisPrefix, slot: SlotId) -> RedisSlotKeys {
    RedisSlotKeys::new(prefix.as_str(), &Balances::NAME, slot)
}
