// Run with `cargo run -p example-bank` (a few seconds: one transfer waits 1 s for an approval
// that never comes). Needs no services: events go to the in-memory store, the transfers'
// timers to an in-memory timer store, balances (and the checkpoint of the `transfer` process)
// to an in-memory stand-in for Redis, the memo index to a temporary directory.
// Each variable that is set swaps in a real service (`scripts/services.sh up` starts them):
// - FOLDLINE_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres): the events and
//   the transfers' timers go to PostgreSQL, in schema `example_bank`, which it DROPS and
//   recreates first;
// - FOLDLINE_KAFKA_BROKERS (e.g. 127.0.0.1:9092), with `--features kafka`
//   (`cargo run -p example-bank --features kafka`): the events go to Apache Kafka, under topic
//   prefix `example_bank`, whose topics (`example_bank.*`) it DELETES first; it wins over
//   FOLDLINE_POSTGRES_URL when both are set. The Kafka store keeps no timers: the transfers'
//   timers stay in memory then (lost if the program dies, which a story that starts afresh
//   every run can afford). The feature is off by default so that a plain `cargo run` never
//   builds librdkafka (it needs cmake, a C compiler and curl's headers);
// - FOLDLINE_REDIS_URL (e.g. redis://127.0.0.1:6379/): the balances and the checkpoint of the
//   `transfer` process go to Redis, under key prefix `example_bank`, whose keys it DELETES
//   first;
// - FOLDLINE_TANTIVY_DIR: the memo index goes to `$FOLDLINE_TANTIVY_DIR/transfer_memos`, which
//   it DELETES first, and stays there after the run.
// The story needs an empty store and empty read models. `RUST_LOG=foldline=debug` shows the
// framework's logs (stderr).

//! The foldline bank example: accounts, a refused overdraft, an idempotent redelivery, a
//! version conflict retried for real, snapshots, transfers run by a process manager (one
//! completed, one refused by its target and refunded, one timed out and cancelled, all of
//! them handed their inputs again without anything happening twice), and two read models
//! kept by projectors beside the commands: balances in Redis, transfer memos in a Tantivy
//! index. See `src/story/` for the steps and `src/transfer/` for the process.

use std::io::Write;
use std::path::PathBuf;

use example_bank::KAFKA_BROKERS_VAR;
use example_bank::postgres::{SCHEMA, fresh_store};
use example_bank::projections::balances::BalanceTarget;
use example_bank::targets::{REDIS_PREFIX, fresh_memo_index, fresh_redis};
use foldline::{InMemoryEventStore, InMemoryTarget, InMemoryTimerStore};
use foldline_redis::RedisKeyspace;
use foldline_tantivy::TantivyTarget;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut out = std::io::stdout();
    let events_at = EventsAt::from_env();
    let redis = var(foldline_redis::ENV_URL);
    let tantivy = var(foldline_tantivy::ENV_DIR);

    writeln!(out, "foldline bank example")?;
    if let Some(ignored) = kafka_ignored() {
        writeln!(out, "{ignored}")?;
    }
    let events = events_at.describe();
    let balances = match &redis {
        Some(url) => format!(
            "Redis at {}, key prefix {REDIS_PREFIX} (its keys deleted first: the story needs \
             an empty read model)",
            foldline::redact_url(url)
        ),
        None => format!(
            "in memory, as Redis would hold them (set {} to use Redis)",
            foldline_redis::ENV_URL
        ),
    };
    let memos = match &tantivy {
        Some(dir) => format!("a Tantivy index in {dir}/transfer_memos (deleted first)"),
        None => format!(
            "a Tantivy index in a temporary directory (set {} to keep it)",
            foldline_tantivy::ENV_DIR
        ),
    };
    writeln!(out, "  events:          {events}")?;
    writeln!(out, "  transfer timers: {}", events_at.describe_timers())?;
    writeln!(out, "  balances:        {balances}")?;
    writeln!(out, "  transfer memos:  {memos}")?;
    writeln!(out)?;

    // `_temporary` is declared before the index, so it outlives it: dropping it deletes the
    // temporary directory.
    let (memo_root, _temporary) = match tantivy {
        Some(dir) => (PathBuf::from(dir), None),
        None => {
            let dir = tempfile::TempDir::with_prefix("example-bank-")?;
            (dir.path().to_owned(), Some(dir))
        }
    };
    let memos = fresh_memo_index(&memo_root).await?;
    match redis {
        Some(url) => {
            let balances = fresh_redis(&url, REDIS_PREFIX).await?;
            with_store(events_at, balances, memos, &mut out).await
        }
        None => {
            let balances = InMemoryTarget::<RedisKeyspace>::new();
            with_store(events_at, balances, memos, &mut out).await
        }
    }
}

/// Where the story's events go.
enum EventsAt {
    Memory,
    Postgres(String),
    #[cfg(feature = "kafka")]
    Kafka(String),
}

impl EventsAt {
    /// From the variables: Kafka's brokers (when built with the `kafka` feature), else
    /// PostgreSQL's URL, else memory.
    fn from_env() -> Self {
        #[cfg(feature = "kafka")]
        if let Some(brokers) = var(KAFKA_BROKERS_VAR) {
            return EventsAt::Kafka(brokers);
        }
        match var(foldline_postgres::ENV_URL) {
            Some(url) => EventsAt::Postgres(url),
            None => EventsAt::Memory,
        }
    }

    /// Where the transfers' timers go: the timer store beside the events where the store is
    /// one.
    fn describe_timers(&self) -> String {
        match self {
            EventsAt::Memory => "in memory".to_owned(),
            EventsAt::Postgres(_) => format!("PostgreSQL, table {SCHEMA}.process_timers"),
            #[cfg(feature = "kafka")]
            EventsAt::Kafka(_) => "in memory (the Kafka store keeps no timers)".to_owned(),
        }
    }

    fn describe(&self) -> String {
        match self {
            EventsAt::Memory => format!(
                "the in-memory event store (set {} to use PostgreSQL, or {KAFKA_BROKERS_VAR} \
                 to use Apache Kafka)",
                foldline_postgres::ENV_URL
            ),
            EventsAt::Postgres(url) => format!(
                "PostgreSQL at {}, schema {SCHEMA} (dropped and recreated: the story needs an \
                 empty store)",
                foldline::redact_url(url)
            ),
            #[cfg(feature = "kafka")]
            EventsAt::Kafka(brokers) => format!(
                "Apache Kafka at {}, topics {}.* (deleted and created again: the story needs \
                 an empty store)",
                foldline::redact_url(brokers),
                example_bank::KAFKA_TOPIC_PREFIX
            ),
        }
    }
}

/// The line saying Kafka's variable is set but not used, in a build without the `kafka`
/// feature (which would otherwise run the story elsewhere without a word).
fn kafka_ignored() -> Option<String> {
    if cfg!(feature = "kafka") {
        return None;
    }
    var(KAFKA_BROKERS_VAR).map(|_| {
        format!(
            "note: {KAFKA_BROKERS_VAR} is set, but this example was built without its `kafka` \
             feature, so the events do not go to Kafka; run `cargo run -p example-bank \
             --features kafka` to use Kafka"
        )
    })
}

/// Opens the event store and runs the story on it.
async fn with_store(
    events_at: EventsAt,
    balances: impl BalanceTarget + Clone,
    memos: TantivyTarget,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match events_at {
        EventsAt::Postgres(url) => {
            // PostgreSQL's store keeps the timers too, in the same schema.
            let store = fresh_store(&url, SCHEMA).await?;
            example_bank::run(store.clone(), store, balances, memos, out).await?;
        }
        #[cfg(feature = "kafka")]
        EventsAt::Kafka(brokers) => {
            let store =
                example_bank::kafka::fresh_store(&brokers, example_bank::KAFKA_TOPIC_PREFIX)
                    .await?;
            let timers = InMemoryTimerStore::new();
            example_bank::run(store, timers, balances, memos, out).await?;
        }
        EventsAt::Memory => {
            let (store, timers) = (InMemoryEventStore::new(), InMemoryTimerStore::new());
            example_bank::run(store, timers, balances, memos, out).await?;
        }
    }
    Ok(())
}

/// The value of the environment variable `name`, unless it is unset or empty.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}
