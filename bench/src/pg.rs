//! PostgreSQL for the `pg-*` benchmarks: connecting, each benchmark's own schema, and the raw
//! limits, written with bare tokio-postgres (no foldline in the path).
//!
//! Every raw limit works on the store's own row shape: the same columns, types and values
//! (stream id, version, UUID v7 event id, event type, schema version, `jsonb` payload and
//! metadata) as foldline writes, in a scratch table created `LIKE <schema>.events INCLUDING
//! ALL` (same defaults, identity, constraints and indexes) in the benchmark's schema.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use foldline::SchemaName;
use foldline_postgres::{PgEventStore, PgStoreOptions};
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::benches::account::{AccountEvent, CENTS, Encoded, OWNER, Rotation};
use crate::counters::{self, COMMAND_CONFLICTS, GROUP_COMMIT_APPENDS, GROUP_COMMIT_SECONDS};
use crate::machine::Usage;
use crate::timed::{Measured, Worker, run_for};

/// Where PostgreSQL is: `FOLDLINE_POSTGRES_URL`, or the local default; with this run's
/// application name, so the server processes serving it can be told apart from other
/// clients' (see [`backends`]).
pub(crate) fn url() -> String {
    let url = std::env::var(foldline_postgres::ENV_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| foldline_postgres::DEFAULT_URL.to_owned());
    let name = application_name();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// A plain connection (its driver task runs in the background).
pub(crate) async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| unreachable(url))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("   a raw PostgreSQL connection failed: {error}");
        }
    });
    Ok(client)
}

fn unreachable(url: &str) -> String {
    format!(
        "cannot connect to PostgreSQL at {}: start it with `scripts/postgres.sh start`, or set \
         {}",
        foldline::redact_url(url),
        foldline_postgres::ENV_URL,
    )
}

/// One benchmark's schema, and a plain connection for the raw SQL around it.
pub(crate) struct BenchSchema {
    pub(crate) url: String,
    pub(crate) name: SchemaName,
    pub(crate) admin: Client,
}

impl BenchSchema {
    /// Connects and names the schema, touching nothing yet.
    pub(crate) async fn open(name: &str) -> anyhow::Result<Self> {
        let url = url();
        let admin = connect(&url).await?;
        Ok(BenchSchema {
            name: SchemaName::new(name)?,
            url,
            admin,
        })
    }

    /// Drops the schema (with everything in it) if it exists; the next [`store`] creates it
    /// again.
    ///
    /// [`store`]: BenchSchema::store
    pub(crate) async fn drop_schema(&self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await
            .with_context(|| format!("dropping schema {}", self.name))
    }

    /// A store on this schema with a pool of `pool_size` connections, migrated (which creates
    /// the schema and its tables if they are missing).
    pub(crate) async fn store(&self, pool_size: usize) -> anyhow::Result<PgEventStore> {
        let options = PgStoreOptions::from_url(&self.url)?
            .with_schema(self.name.clone())
            .with_pool_size(pool_size);
        let store = PgEventStore::connect(options)
            .await
            .with_context(|| unreachable(&self.url))?;
        store.migrate().await?;
        Ok(store)
    }

    /// `schema.table`.
    pub(crate) fn table(&self, table: &str) -> String {
        format!("{}.{table}", self.name)
    }

    /// Creates (again) the scratch table `table`, defined like the store's `events` table.
    pub(crate) async fn scratch_table(&self, table: &str) -> anyhow::Result<String> {
        let scratch = self.table(table);
        let events = self.table("events");
        self.admin
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {scratch}; \
                 CREATE TABLE {scratch} (LIKE {events} INCLUDING ALL)"
            ))
            .await
            .with_context(|| format!("creating {scratch}"))?;
        Ok(scratch)
    }

    /// Rows in `schema.table`.
    pub(crate) async fn count(&self, table: &str) -> anyhow::Result<u64> {
        let row = self
            .admin
            .query_one(&format!("SELECT count(*) FROM {}", self.table(table)), &[])
            .await?;
        Ok(u64::try_from(row.get::<_, i64>(0))?)
    }
}

/// The columns an insert of an event fills, as foldline's writer fills them.
const INSERT_COLUMNS: &str =
    "stream_id, stream_version, event_id, event_type, schema_version, payload, metadata";

/// The columns `PgEventStore::read_all` selects, with the same conversions.
pub(crate) const FEED_COLUMNS: &str = "position, xid::text::bigint, stream_id, stream_version, event_id, \
     event_type, schema_version, payload::text, metadata::text, recorded_at";

/// One account event as the columns of a row.
#[derive(Debug, Clone)]
pub(crate) struct RowText {
    event_type: String,
    schema_version: i64,
    payload: String,
}

impl RowText {
    fn of(event: &AccountEvent) -> anyhow::Result<Self> {
        let encoded = Encoded::of(event)?;
        Ok(RowText {
            event_type: encoded.event_type.as_str().to_owned(),
            schema_version: i64::from(encoded.schema_version),
            payload: encoded.payload_text()?.to_owned(),
        })
    }
}

/// The rows the account benchmarks write: `Opened` first, `Deposited` after, each with
/// metadata holding a command id (as the executor records).
#[derive(Debug, Clone)]
pub(crate) struct Rows {
    opened: RowText,
    deposited: RowText,
    metadata: String,
}

impl Rows {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Rows {
            opened: RowText::of(&AccountEvent::Opened {
                owner: OWNER.to_owned(),
            })?,
            deposited: RowText::of(&AccountEvent::Deposited { cents: CENTS })?,
            metadata: serde_json::to_string(
                &foldline::EventMetadata::new().with_command_id(Uuid::now_v7()),
            )?,
        })
    }

    /// The row of the event at `version` (1-based) of an account.
    fn at(&self, version: u64) -> &RowText {
        if version == 1 {
            &self.opened
        } else {
            &self.deposited
        }
    }
}

/// The raw limit of `pg-append-1`: one single-row `INSERT` per transaction (autocommit) on its
/// own connection, the rows those of the commands.
pub(crate) struct SingleInsert {
    client: Client,
    insert: Statement,
    rotation: Rotation,
    rows: Rows,
}

impl SingleInsert {
    pub(crate) async fn new(
        schema: &BenchSchema,
        table: &str,
        rotation: Rotation,
        rows: Rows,
    ) -> anyhow::Result<Self> {
        let client = connect(&schema.url).await?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table} ({INSERT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)"
            ))
            .await?;
        Ok(SingleInsert {
            client,
            insert,
            rotation,
            rows,
        })
    }
}

impl Worker for SingleInsert {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let step = self.rotation.advance()?;
        let version = u64::from(step.version) + 1;
        let row = self.rows.at(version);
        self.client
            .execute(
                &self.insert,
                &[
                    &step.stream.as_str(),
                    &i64::try_from(version)?,
                    &Uuid::now_v7(),
                    &row.event_type,
                    &row.schema_version,
                    &row.payload,
                    &self.rows.metadata,
                ],
            )
            .await?;
        Ok(1)
    }
}

/// The raw limit of `pg-append-100`: one multi-row `INSERT` of `events` rows per transaction
/// (autocommit), the rows passed as arrays and expanded with `unnest` (one statement, seven
/// parameters, however many rows: the fastest plain way to insert a batch).
pub(crate) struct MultiInsert {
    client: Client,
    insert: Statement,
    rotation: Rotation,
    rows: Rows,
    events: u64,
}

impl MultiInsert {
    pub(crate) async fn new(
        schema: &BenchSchema,
        table: &str,
        rotation: Rotation,
        rows: Rows,
        events: u64,
    ) -> anyhow::Result<Self> {
        let client = connect(&schema.url).await?;
        let insert = client
            .prepare(&format!(
                "INSERT INTO {table} ({INSERT_COLUMNS}) \
                 SELECT st, v, e, t, sv, p::jsonb, m::jsonb \
                 FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::bigint[], \
                             $6::text[], $7::text[]) AS u(st, v, e, t, sv, p, m)"
            ))
            .await?;
        Ok(MultiInsert {
            client,
            insert,
            rotation,
            rows,
            events,
        })
    }
}

impl Worker for MultiInsert {
    async fn step(&mut self) -> anyhow::Result<u64> {
        let step = self.rotation.advance()?;
        let first = u64::from(step.version) * self.events + 1;
        let versions: Vec<u64> = (first..first + self.events).collect();
        let rows: Vec<&RowText> = versions.iter().map(|&v| self.rows.at(v)).collect();
        let streams = vec![step.stream.as_str(); rows.len()];
        let versions = versions
            .into_iter()
            .map(i64::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
        let schema_versions: Vec<i64> = rows.iter().map(|r| r.schema_version).collect();
        let payloads: Vec<&str> = rows.iter().map(|r| r.payload.as_str()).collect();
        let metadata = vec![self.rows.metadata.as_str(); rows.len()];
        self.client
            .execute(
                &self.insert,
                &[
                    &streams,
                    &versions,
                    &ids,
                    &types,
                    &schema_versions,
                    &payloads,
                    &metadata,
                ],
            )
            .await?;
        Ok(self.events)
    }
}

/// Writes `events` account events into `schema.events` with plain `INSERT ... SELECT FROM
/// generate_series`, in transactions of `chunk` events spread over `connections` connections
/// (so the feed holds many transactions, committed out of order as in real life), then fills
/// `streams` to match and runs `VACUUM ANALYZE`. Stream `account-f<n>` holds events
/// `10n+1..=10n+10`: `Opened`, then `Deposited`.
pub(crate) async fn populate(
    schema: &BenchSchema,
    events: u64,
    chunk: u64,
    connections: usize,
) -> anyhow::Result<()> {
    let rows = Rows::new()?;
    let table = schema.table("events");
    let insert = format!(
        "INSERT INTO {table} ({INSERT_COLUMNS}) \
         SELECT 'account-f' || (g / 10), g % 10 + 1, gen_random_uuid(), \
                CASE WHEN g % 10 = 0 THEN $3 ELSE $4 END, \
                CASE WHEN g % 10 = 0 THEN $5::bigint ELSE $6::bigint END, \
                (CASE WHEN g % 10 = 0 THEN $7 ELSE $8 END)::jsonb, \
                jsonb_build_object('command_id', gen_random_uuid()) \
         FROM generate_series($1::bigint, $2::bigint) AS g"
    );
    let chunks = events.div_ceil(chunk.max(1));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let client = connect(&schema.url).await?;
        let insert = insert.clone();
        let rows = rows.clone();
        let next = std::sync::Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(&insert).await?;
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= chunks {
                    return anyhow::Ok(());
                }
                let from = i64::try_from(index * chunk)?;
                let to = i64::try_from(((index + 1) * chunk).min(events))? - 1;
                client
                    .execute(
                        &statement,
                        &[
                            &from,
                            &to,
                            &rows.opened.event_type,
                            &rows.deposited.event_type,
                            &rows.opened.schema_version,
                            &rows.deposited.schema_version,
                            &rows.opened.payload,
                            &rows.deposited.payload,
                        ],
                    )
                    .await?;
            }
        }));
    }
    for task in tasks {
        task.await.context("a populating task panicked")??;
    }
    let streams = schema.table("streams");
    // One statement per call: VACUUM cannot run in the implicit transaction of a batch.
    for statement in [
        format!(
            "INSERT INTO {streams} (stream_id, version) \
             SELECT stream_id, max(stream_version) FROM {table} GROUP BY stream_id"
        ),
        format!("VACUUM ANALYZE {table}"),
        format!("VACUUM ANALYZE {streams}"),
    ] {
        schema
            .admin
            .batch_execute(&statement)
            .await
            .with_context(|| format!("running `{statement}`"))?;
    }
    Ok(())
}

/// The schema of the feed `pg-feed` reads and `redis-projection` projects: both use [`feed`],
/// so one `--keep` run serves the other.
pub(crate) const FEED_SCHEMA: &str = "bench_pg_feed";
/// Events per transaction when writing the feed.
const FEED_CHUNK: u64 = 1000;
/// Connections writing the feed.
const FEED_WRITERS: usize = 4;

/// The feed schema ([`FEED_SCHEMA`]) holding exactly `events` events, and a store on it with a
/// pool of `pool_size` connections. With `keep`, a schema that already holds exactly `events` events is
/// used as it is; otherwise the schema is dropped and the events are written again with
/// [`populate`] (1000 per transaction from 4 connections).
pub(crate) async fn feed(
    events: u64,
    keep: bool,
    pool_size: usize,
) -> anyhow::Result<(BenchSchema, PgEventStore)> {
    let schema = BenchSchema::open(FEED_SCHEMA).await?;
    if keep && holds(&schema, events).await? {
        eprintln!("   schema {FEED_SCHEMA} kept (--keep): it holds {events} events");
        let store = schema.store(pool_size).await?;
        return Ok((schema, store));
    }
    schema.drop_schema().await?;
    let store = schema.store(pool_size).await?;
    let started = std::time::Instant::now();
    populate(&schema, events, FEED_CHUNK, FEED_WRITERS).await?;
    eprintln!(
        "   schema {FEED_SCHEMA} dropped and recreated; wrote {events} events in {:.1} s \
         ({FEED_CHUNK} per transaction, {FEED_WRITERS} connections; --keep reuses them next time)",
        started.elapsed().as_secs_f64()
    );
    Ok((schema, store))
}

/// Whether the schema exists and its `events` table holds exactly `events` rows.
async fn holds(schema: &BenchSchema, events: u64) -> anyhow::Result<bool> {
    let exists: Option<String> = schema
        .admin
        .query_one("SELECT to_regclass($1)::text", &[&schema.table("events")])
        .await
        .context("looking for the kept feed")?
        .get(0);
    Ok(exists.is_some() && schema.count("events").await? == events)
}

/// The raw limit of `pg-feed`: the ordered index scan over `schema.table` by `(xid,
/// position)`, paged with a keyset of `batch` rows, fetching the columns `read_all` fetches
/// and reading every value out of each row. Returns the rows read (all of them).
///
/// The columns are qualified (`e.xid`): the select list converts `xid::text::bigint`, and an
/// unqualified `ORDER BY xid` would name that output column, whose order no index provides
/// (a full sort per page instead of an index scan).
pub(crate) async fn scan(client: &Client, table: &str, batch: usize) -> anyhow::Result<u64> {
    let page = client
        .prepare(&format!(
            "SELECT {FEED_COLUMNS} FROM {table} AS e \
             WHERE (e.xid, e.position) > ($1::bigint::text::xid8, $2::bigint) \
             ORDER BY e.xid, e.position LIMIT $3"
        ))
        .await?;
    let limit = i64::try_from(batch)?;
    let (mut xid, mut position) = (0_i64, 0_i64);
    let mut read = 0;
    loop {
        let rows = client.query(&page, &[&xid, &position, &limit]).await?;
        let Some(last) = rows.last() else {
            return Ok(read);
        };
        (position, xid) = (last.get(0), last.get(1));
        rows.iter().for_each(read_out);
        read += u64::try_from(rows.len())?;
    }
}

/// Reads every value out of a row selected with the columns `read_all` and `read_stream`
/// select (`FEED_COLUMNS`), and does nothing with them: what a raw reader pays.
pub(crate) fn read_out(row: &tokio_postgres::Row) {
    let values: (i64, i64, &str, i64, Uuid, &str, i64, &str, &str, SystemTime) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
        row.get(8),
        row.get(9),
    );
    std::hint::black_box(values);
}

/// A group-commit benchmark's tables: the schema `name` dropped and recreated, a store on it
/// with a pool of `pool_size` connections, and the scratch table `raw_events` its raw limit
/// inserts into (returned as `schema.table`).
pub(crate) async fn fresh_with_scratch(
    name: &str,
    pool_size: usize,
) -> anyhow::Result<(BenchSchema, PgEventStore, String)> {
    let schema = BenchSchema::open(name).await?;
    schema.drop_schema().await?;
    let store = schema.store(pool_size).await?;
    let scratch = schema.scratch_table("raw_events").await?;
    Ok((schema, store, scratch))
}

/// Runs a raw limit's `workers` (one connection each) for `duration`, closes them, and prints
/// `limit, N connections: R <unit>/s`, the latency percentiles and the CPU use.
pub(crate) async fn run_limit<W: Worker>(
    schema: &BenchSchema,
    workers: Vec<W>,
    duration: Duration,
    unit: &str,
) -> anyhow::Result<StorePhase> {
    let connections = workers.len();
    let usage = Usage::start();
    let (measured, workers) = run_for(workers, duration).await?;
    let (usage, postgres) = finish_split(usage, &schema.admin).await?;
    drop(workers);
    let phase = StorePhase {
        measured,
        batch: 1.0,
        postgres,
    };
    eprintln!(
        "     limit, {connections} connections: {:.0} {unit}/s; latency p50 {:.0} us, \
         p99 {:.0} us; PostgreSQL {:.0} us CPU per operation; {usage}",
        phase.measured.rate(),
        phase.measured.latency_us(50.0),
        phase.measured.latency_us(99.0),
        phase.postgres_us(),
    );
    Ok(phase)
}

/// A phase on a store (or a raw limit's), the store's mean group-commit batch (appends per
/// transaction) during it, and the CPUs PostgreSQL's processes used.
pub(crate) struct StorePhase {
    pub(crate) measured: Measured,
    pub(crate) batch: f64,
    pub(crate) postgres: f64,
}

impl StorePhase {
    /// PostgreSQL's CPU time per operation, in microseconds (all its processes: the
    /// backends, the WAL writer, the checkpointer).
    pub(crate) fn postgres_us(&self) -> f64 {
        self.postgres * 1e6 / self.measured.rate().max(f64::MIN_POSITIVE)
    }
}

/// Runs `workers` on a store for `duration`, reads the store's group-commit batches over that
/// time (and the executor's conflicts when `conflicts`), and prints them after `label`, the
/// rate in `unit`/s, the latency percentiles and the CPU use. Needs [`counters::install`].
pub(crate) async fn run_on_store<W: Worker>(
    schema: &BenchSchema,
    label: &str,
    unit: &str,
    workers: Vec<W>,
    duration: Duration,
    conflicts: bool,
) -> anyhow::Result<StorePhase> {
    let appends = counters::read(GROUP_COMMIT_APPENDS);
    let seconds = counters::read(GROUP_COMMIT_SECONDS);
    let conflicted = counters::read(COMMAND_CONFLICTS);
    let usage = Usage::start();
    let (measured, _workers) = run_for(workers, duration).await?;
    let (usage, postgres) = finish_split(usage, &schema.admin).await?;
    let appends = counters::read(GROUP_COMMIT_APPENDS).since(appends);
    let seconds = counters::read(GROUP_COMMIT_SECONDS).since(seconds);
    let conflicted = counters::read(COMMAND_CONFLICTS).since(conflicted);
    let conflicted = if conflicts {
        format!("{} conflicts; ", conflicted.count)
    } else {
        String::new()
    };
    let phase = StorePhase {
        measured,
        batch: appends.mean(),
        postgres,
    };
    eprintln!(
        "     {label}: {:.0} {unit}/s; latency p50 {:.0} us, p99 {:.0} us; {} commits of \
         {:.1} appends, {:.2} ms each; {conflicted}PostgreSQL {:.0} us CPU per operation; \
         {usage}",
        phase.measured.rate(),
        phase.measured.latency_us(50.0),
        phase.measured.latency_us(99.0),
        appends.count,
        appends.mean(),
        seconds.mean() * 1e3,
        phase.postgres_us(),
    );
    Ok(phase)
}

/// Ends `usage` with the share of this run's server processes named beside the rest.
pub(crate) async fn finish_usage(usage: Usage, admin: &Client) -> anyhow::Result<String> {
    let backends = backends(admin).await?;
    Ok(usage.finish_with(Some(&backends)))
}

/// As [`finish_usage`], with the CPUs PostgreSQL's processes used.
async fn finish_split(usage: Usage, admin: &Client) -> anyhow::Result<(String, f64)> {
    let backends = backends(admin).await?;
    Ok(usage.finish_split(Some(&backends)))
}

/// The pids of the server processes serving this process's connections (found by the
/// application name every connection of this run carries).
async fn backends(admin: &Client) -> anyhow::Result<Vec<u32>> {
    let rows = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name()],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| u32::try_from(row.get::<_, i32>(0)).ok())
        .collect())
}

/// The application name of this run's connections: `foldline-bench-<pid>`.
pub(crate) fn application_name() -> String {
    format!("foldline-bench-{}", std::process::id())
}
