//! `pg-load`: loading a 1000-event aggregate from PostgreSQL through `CommandExecutor::load`,
//! against a raw fetch of the same rows with tokio-postgres.
//!
//! # What is measured
//!
//! - **Value**: `CommandExecutor::load::<Account>` (no cache, no snapshots): `read_stream` in
//!   pages of 1000, every row decoded into a `RecordedEvent`, every payload decoded from JSON
//!   into an `AccountEvent` and folded into the account, in loads/s from one task, one load at
//!   a time, round robin over the accounts.
//! - **Limit**: bare tokio-postgres on a connection of its own: one prepared `SELECT` of the
//!   columns `read_stream` selects, `WHERE stream_id = $1 ORDER BY stream_version`, every value
//!   read out of every row, nothing else done with it. Target (issue 13): 0.7× the limit.
//!
//! Also reported: p50 and p99 of both, in microseconds.
//!
//! # The accounts
//!
//! 16 accounts of 1000 events each (`Opened`, then 999 `Deposited`), appended through the
//! store in appends of at most 200 events into schema `bench_pg_load`, dropped and written
//! again at every run. One raw pass over every account warms PostgreSQL's cache; then each of
//! `--rounds` rounds runs the limit, then the store path, for `--seconds` each; the medians are
//! reported.

use anyhow::Context;
use foldline::{
    AppendRequest, CommandExecutor, EventMetadata, EventStore, ExpectedVersion, StreamId,
};
use foldline_postgres::PgEventStore;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use super::Options;
use super::account::{Account, AccountEvent, AccountId, CENTS, Encoded, OWNER};
use crate::pg::{BenchSchema, FEED_COLUMNS, connect, read_out, run_limit, run_on_store};
use crate::report::Figure;
use crate::stats::median;
use crate::timed::Worker;

const NAME: &str = "pg-load";
const SCHEMA: &str = "bench_pg_load";
const ACCOUNTS: u32 = 16;
const EVENTS: usize = 1000;
const PER_APPEND: usize = 200;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    anyhow::ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let schema = BenchSchema::open(SCHEMA).await?;
    schema.drop_schema().await?;
    let store = schema.store(2).await?;
    let accounts = fill(&store).await?;
    eprintln!("   schema {SCHEMA} (dropped and recreated): {ACCOUNTS} accounts of {EVENTS} events");
    let table = schema.table("events");
    let mut raw = RawLoad::new(&schema, &table, accounts.clone()).await?;
    for _ in 0..accounts.len() {
        raw.step().await?;
    }

    let measured = options.measured();
    let (mut values, mut limits) = (Vec::new(), Vec::new());
    let (mut value_p50, mut limit_p50) = (Vec::new(), Vec::new());
    for round in 1..=options.rounds {
        eprintln!("   round {round}/{}", options.rounds);
        let raw = RawLoad::new(&schema, &table, accounts.clone()).await?;
        let limit = run_limit(&schema, vec![raw], measured, "loads").await?;
        limits.push(limit.measured.rate());
        limit_p50.push(limit.measured.latency_us(50.0));
        let loader = Loader {
            executor: CommandExecutor::new(store.clone()),
            accounts: accounts.clone(),
            next: 0,
        };
        let value =
            run_on_store(&schema, "1 loader", "loads", vec![loader], measured, false).await?;
        values.push(value.measured.rate());
        value_p50.push(value.measured.latency_us(50.0));
    }
    Ok(vec![
        Figure::against(
            format!("{NAME}/events={EVENTS}"),
            median(&values),
            median(&limits),
            "loads/s",
        ),
        Figure::alone(
            format!("{NAME}/events={EVENTS}/p50"),
            median(&value_p50),
            "us",
        ),
        Figure::alone(
            format!("{NAME}/events={EVENTS}/raw-p50"),
            median(&limit_p50),
            "us",
        ),
    ])
}

/// Writes the accounts; their ids.
async fn fill(store: &PgEventStore) -> anyhow::Result<Vec<AccountId>> {
    let opened = Encoded::of(&AccountEvent::Opened {
        owner: OWNER.to_owned(),
    })?;
    let deposited = Encoded::of(&AccountEvent::Deposited { cents: CENTS })?;
    let metadata = EventMetadata::new().with_command_id(Uuid::now_v7());
    let mut accounts = Vec::new();
    for slot in 0..ACCOUNTS {
        let id = AccountId::new(slot, 0);
        let stream = StreamId::for_aggregate(<Account as foldline::Aggregate>::NAME, &id)?;
        let mut written = 0;
        while written < EVENTS {
            let count = PER_APPEND.min(EVENTS - written);
            let events = (written..written + count)
                .map(|n| if n == 0 { &opened } else { &deposited }.event(&metadata))
                .collect();
            store
                .append(AppendRequest::new(
                    stream.clone(),
                    ExpectedVersion::Any,
                    events,
                ))
                .await?;
            written += count;
        }
        accounts.push(id);
    }
    Ok(accounts)
}

/// The store path: one load after another, round robin.
struct Loader {
    executor: CommandExecutor<PgEventStore>,
    accounts: Vec<AccountId>,
    next: usize,
}

impl Worker for Loader {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let id = self.accounts[self.next % self.accounts.len()];
        self.next += 1;
        let loaded = self.executor.load::<Account>(&id).await?;
        anyhow::ensure!(
            loaded.version.get() == EVENTS as u64,
            "loaded {id} at version {}",
            loaded.version
        );
        Ok(1)
    }
}

/// The limit: the same rows, fetched and read out with bare tokio-postgres.
struct RawLoad {
    client: Client,
    select: Statement,
    streams: Vec<String>,
    next: usize,
}

impl RawLoad {
    async fn new(
        schema: &BenchSchema,
        table: &str,
        accounts: Vec<AccountId>,
    ) -> anyhow::Result<Self> {
        let client = connect(&schema.url).await?;
        // The columns and conversions `read_stream` selects.
        let select = client
            .prepare(&format!(
                "SELECT {FEED_COLUMNS} FROM {table} WHERE stream_id = $1 AND stream_version >= 1 \
                 ORDER BY stream_version"
            ))
            .await
            .context("preparing the raw load")?;
        let streams = accounts
            .iter()
            .map(|id| {
                StreamId::for_aggregate(<Account as foldline::Aggregate>::NAME, id)
                    .map(|s| s.as_str().to_owned())
            })
            .collect::<Result<_, _>>()?;
        Ok(RawLoad {
            client,
            select,
            streams,
            next: 0,
        })
    }
}

impl Worker for RawLoad {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let stream = &self.streams[self.next % self.streams.len()];
        self.next += 1;
        let rows = self.client.query(&self.select, &[stream]).await?;
        rows.iter().for_each(read_out);
        anyhow::ensure!(rows.len() == EVENTS, "{} rows of {stream}", rows.len());
        Ok(1)
    }
}
