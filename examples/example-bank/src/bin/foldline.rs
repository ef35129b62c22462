// The `foldline` admin CLI for the bank example: `status`, `rebuild`, `reset`, `pause`/`resume`,
// `streams`/`events`/`tail`, `dead-letters`, `migrate` on the example's projections, `balances`
// (Redis) and `transfer_memos` (Tantivy), and `processes`/`trace` on its `transfer` process
// manager (whose checkpoint is kept beside `balances`). Run the story on real services first,
// then look:
//
//   export FOLDLINE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres
//   export FOLDLINE_REDIS_URL=redis://127.0.0.1:6379/
//   export FOLDLINE_TANTIVY_DIR=/tmp/example-bank
//   cargo run -p example-bank
//   cargo run -p example-bank --bin foldline -- status --schema example_bank
//   cargo run -p example-bank --bin foldline -- rebuild balances --schema example_bank
//   cargo run -p example-bank --bin foldline -- processes list --schema example_bank
//   cargo run -p example-bank --bin foldline -- processes show transfer-T-1003 --schema example_bank
//   cargo run -p example-bank --bin foldline -- --help
//
// On Apache Kafka (built with `--features kafka`): run the story with FOLDLINE_KAFKA_BROKERS set,
// then `cargo run -p example-bank --features kafka --bin foldline -- status` with it still set.
//
// Where it looks (flags, or the FOLDLINE_* variables; `--help` lists them):
// - the events: PostgreSQL at --postgres-url / FOLDLINE_POSTGRES_URL, schema --schema /
//   FOLDLINE_POSTGRES_SCHEMA (the story writes schema `example_bank`; the default is `foldline`);
//   or, when --kafka-brokers / FOLDLINE_KAFKA_BROKERS is given (feature `kafka`), Apache Kafka
//   under topic prefix --kafka-topic-prefix / FOLDLINE_KAFKA_TOPIC_PREFIX (default
//   `example_bank`, the story's);
// - `balances`: Redis at --redis-url / FOLDLINE_REDIS_URL (default redis://127.0.0.1:6379/),
//   key prefix --redis-prefix / FOLDLINE_REDIS_PREFIX (default `example_bank`, the story's);
// - `transfer_memos`: the Tantivy index under --tantivy-dir / FOLDLINE_TANTIVY_DIR, default
//   `<temporary directory>/example-bank` (e.g. /tmp/example-bank): where the story keeps it
//   when run with FOLDLINE_TANTIVY_DIR=/tmp/example-bank. (Without FOLDLINE_TANTIVY_DIR the
//   story's index lives in a temporary directory deleted at its end, so there is nothing to
//   look at; `status` then shows `transfer_memos` without a slot.)
// The projectors are built exactly as the story builds them (default options), so a rebuild
// or a dead-letter retry from here runs the same handlers.

//! The `foldline` operator CLI, built for the bank example's projections.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use example_bank::projections::balances::Balances;
use example_bank::projections::memos::{self, TransferMemos};
use example_bank::targets::REDIS_PREFIX;
use example_bank::transfer::{AccountDispatcher, Transfer};
use foldline::{
    BoxError, CommandExecutor, ManagedStore, ProcessProjection, ProcessRunner, ProcessTarget,
    Projector, TimerStore,
};
use foldline_admin::Admin;
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_redis::{RedisTarget, RedisTargetOptions};

/// Where the example's store and targets are: flags, or the `FOLDLINE_*` variables. Passwords
/// in URLs are never printed (help shows no variable values).
#[derive(Clone, Debug, Args)]
struct Connections {
    /// The PostgreSQL event store.
    #[arg(
        long,
        global = true,
        env = "FOLDLINE_POSTGRES_URL",
        hide_env_values = true,
        default_value = foldline_postgres::DEFAULT_URL
    )]
    postgres_url: String,

    /// The store's schema.
    #[arg(
        long,
        global = true,
        env = "FOLDLINE_POSTGRES_SCHEMA",
        default_value = "foldline"
    )]
    schema: String,

    /// Apache Kafka's brokers (`host:port`, comma-separated): when given, the event store is
    /// the Kafka store under `--kafka-topic-prefix` instead of PostgreSQL (a binary built with
    /// the `kafka` feature).
    #[arg(long, global = true, env = "FOLDLINE_KAFKA_BROKERS")]
    kafka_brokers: Option<String>,

    /// The Kafka store's topic prefix.
    #[arg(
        long,
        global = true,
        env = "FOLDLINE_KAFKA_TOPIC_PREFIX",
        default_value = example_bank::KAFKA_TOPIC_PREFIX
    )]
    kafka_topic_prefix: String,

    /// Redis, for the `balances` projection.
    #[arg(
        long,
        global = true,
        env = "FOLDLINE_REDIS_URL",
        hide_env_values = true
    )]
    redis_url: Option<String>,

    /// The key prefix of the Redis projections.
    #[arg(long, global = true, env = "FOLDLINE_REDIS_PREFIX")]
    redis_prefix: Option<String>,

    /// The directory of the Tantivy indexes (`transfer_memos`).
    #[arg(long, global = true, env = "FOLDLINE_TANTIVY_DIR")]
    tantivy_dir: Option<PathBuf>,
}

/// The directory of the Tantivy indexes when neither `--tantivy-dir` nor
/// `FOLDLINE_TANTIVY_DIR` says: `<temporary directory>/example-bank`.
fn default_tantivy_dir() -> PathBuf {
    std::env::temp_dir().join("example-bank")
}

#[tokio::main]
async fn main() -> ExitCode {
    #[cfg(feature = "kafka")]
    if on_kafka() {
        return foldline_admin::main(async |connections: Connections| -> Result<_, BoxError> {
            let brokers = connections.kafka_brokers.clone().unwrap_or_default();
            // An operator's tool never creates a store: a mistyped prefix is an error.
            let options = foldline_kafka::KafkaStoreOptions::from_brokers(brokers)
                .with_topic_prefix(&connections.kafka_topic_prefix)?
                .with_topic_creation(false);
            let store = foldline_kafka::KafkaEventStore::connect(options).await?;
            // The Kafka store keeps no timers: the story's were in memory, gone with it.
            admin(store, foldline::InMemoryTimerStore::new(), &connections)
        })
        .await;
    }
    foldline_admin::main(async |connections: Connections| -> Result<_, BoxError> {
        if connections.kafka_brokers.is_some() {
            return Err(format!(
                "--kafka-brokers (or {}) is set, but this binary was built without the \
                 `kafka` feature: run `cargo run -p example-bank --features kafka --bin \
                 foldline -- …` to use Kafka",
                example_bank::KAFKA_BROKERS_VAR
            )
            .into());
        }
        let options = PgStoreOptions::from_url(&connections.postgres_url)?
            .with_schema(connections.schema.parse()?);
        let store = PgEventStore::connect(options).await?;
        admin(store.clone(), store, &connections)
    })
    .await
}

/// Whether the command line (or the variables) names Kafka's brokers: the arguments parsed
/// once more here, because the store's type must be known before the admin parses them.
#[cfg(feature = "kafka")]
fn on_kafka() -> bool {
    use clap::Parser;
    foldline_admin::Cli::<Connections>::try_parse()
        .is_ok_and(|cli| cli.connections.kafka_brokers.is_some())
}

/// The admin of `store` with the example's projections, their targets where `connections`
/// says, and the `transfer` process manager with its timers in `timers`.
fn admin<S, T>(store: S, timers: T, connections: &Connections) -> Result<Admin<S>, BoxError>
where
    S: ManagedStore + Clone,
    T: TimerStore,
{
    let url = connections
        .redis_url
        .as_deref()
        .unwrap_or(foldline_redis::DEFAULT_URL);
    let prefix = connections.redis_prefix.as_deref().unwrap_or(REDIS_PREFIX);
    let redis_options = RedisTargetOptions::from_url(url)?.with_prefix(prefix)?;
    // Connected on first use: `streams`, `events`, `tail` and `migrate` work while Redis
    // is down, and `status` shows the other projections.
    let redis = RedisTarget::connect_lazy(redis_options)?;

    let tantivy_dir = connections
        .tantivy_dir
        .clone()
        .unwrap_or_else(default_tantivy_dir);
    let memo_index = memos::open_target(&tantivy_dir)?;

    // `processes retry` sends commands as the story's runner does.
    let accounts = AccountDispatcher::new(CommandExecutor::new(store.clone()));
    let transfers = Arc::new(ProcessRunner::<Transfer, _, _, _>::new(
        store.clone(),
        accounts,
        timers,
    ));
    let transfer_projector = Projector::new(
        store.clone(),
        ProcessProjection::<Transfer>::new(),
        ProcessTarget::new(transfers.clone(), redis.clone()),
    );

    Ok(Admin::new(store.clone())
        .with_projection(Projector::new(store.clone(), Balances, redis))
        .with_projection(Projector::new(store, TransferMemos::new(), memo_index))
        .with_projection(transfer_projector)
        .with_process(transfers))
}
