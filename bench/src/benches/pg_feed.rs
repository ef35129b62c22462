//! `pg-feed`: a catch-up read of the whole global feed (1M events by default) through
//! `EventStore::read_all` on PostgreSQL, against the raw ordered index scan of the same rows.
//!
//! # What is measured
//!
//! - **Value**: `PgEventStore::read_all` from `Checkpoint::START` in batches of `--batch`
//!   events (default 1000) until the feed is exhausted, every row decoded by the store into a
//!   `RecordedEvent` (ids, names and metadata validated and parsed), in events/s.
//! - **Limit**: the same rows read with bare tokio-postgres: `SELECT` of the same columns
//!   `ORDER BY xid, position`, paged by keyset (`WHERE (xid, position) > (last)`) in pages of
//!   the same size, every column read out of every row, nothing else done with it. It lacks
//!   the store's visibility-horizon filter and its decoding. Target: 0.7× the limit.
//!
//! # The feed
//!
//! `--events` events (default 1 000 000) written straight into the store's `events` table in
//! schema `bench_pg_feed` with `INSERT ... SELECT FROM generate_series`, in transactions of
//! 1000 events spread over 4 connections (so the feed holds 1000 transactions committed out
//! of order), with `streams` filled to match and `VACUUM ANALYZE` after: valid rows the store
//! reads like its own (streams of 10 account events, `Opened` then `Deposited`). Writing them
//! takes a few seconds; the schema is dropped and written again at every run unless `--keep`
//! is given and it already holds exactly `--events` events. It is left in place afterwards.
//! `redis-projection` projects the same feed, written by the same function (`pg::feed`).
//!
//! # Keeping it fair
//!
//! Both paths read the same rows from the same table, one connection each, one request in
//! flight at a time. A full raw pass warms the cache first; then each of `--rounds` rounds
//! reads the whole feed with the limit, then with the store; the medians are reported.

use std::time::{Duration, Instant};

use anyhow::ensure;
use foldline::{Checkpoint, EventStore, ManagedStore};
use foldline_postgres::PgEventStore;

use super::Options;
use crate::machine::Usage;
use crate::pg::{connect, feed, finish_usage, scan};
use crate::report::Figure;
use crate::stats::{median, per_second};

const NAME: &str = "pg-feed";
/// Events in the feed unless `--events` says otherwise.
const EVENTS: u64 = 1_000_000;
/// Events per read unless `--batch` says otherwise.
const BATCH: usize = 1000;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let events = options.events_or(EVENTS);
    let batch = options.batch_or(BATCH);
    ensure!(batch >= 1, "--batch must be at least 1");
    let (schema, store) = feed(events, options.keep, 1).await?;
    let table = schema.table("events");
    let raw = connect(&schema.url).await?;
    eprintln!("   batches of {batch}; warming the cache with one raw pass");
    scan(&raw, &table, batch).await?;

    let mut limits = Vec::new();
    let mut values = Vec::new();
    for round in 1..=options.rounds {
        let usage = Usage::start();
        let started = Instant::now();
        let read = scan(&raw, &table, batch).await?;
        let limit = Pass::new(read, started.elapsed());
        let limit_usage = finish_usage(usage, &schema.admin).await?;
        ensure!(
            read == events,
            "the raw scan read {read} of {events} events"
        );

        let usage = Usage::start();
        let started = Instant::now();
        let read = read_feed(&store, batch).await?;
        let value = Pass::new(read, started.elapsed());
        let value_usage = finish_usage(usage, &schema.admin).await?;
        if read != events {
            let holders = store.feed_holders().await?;
            anyhow::bail!(
                "read_all returned {read} of {events} events: transactions hold the feed's \
                 visibility horizon back: {holders:?}"
            );
        }
        eprintln!(
            "   round {round}/{}: raw scan {:.0} events/s ({:.2} s; {limit_usage})\n   \
             {:>12}read_all {:.0} events/s ({:.2} s; {value_usage})",
            options.rounds,
            limit.rate(),
            limit.elapsed.as_secs_f64(),
            "",
            value.rate(),
            value.elapsed.as_secs_f64(),
        );
        limits.push(limit.rate());
        values.push(value.rate());
    }
    Ok(vec![Figure::against(
        NAME,
        median(&values),
        median(&limits),
        "events/s",
    )])
}

/// Reads the whole feed with `read_all` and returns how many events it read.
async fn read_feed(store: &PgEventStore, batch: usize) -> anyhow::Result<u64> {
    let mut checkpoint = Checkpoint::START;
    let mut read = 0;
    loop {
        let events = store.read_all(&checkpoint, batch).await?;
        if events.is_empty() {
            return Ok(read);
        }
        read += u64::try_from(events.events.len())?;
        checkpoint = events.checkpoint;
        std::hint::black_box(&events.events);
    }
}

/// One full read.
struct Pass {
    events: u64,
    elapsed: Duration,
}

impl Pass {
    fn new(events: u64, elapsed: Duration) -> Self {
        Pass { events, elapsed }
    }

    fn rate(&self) -> f64 {
        per_second(self.events, self.elapsed)
    }
}
