//! A projector in a process of its own, for the tests that kill it (`kill -9`) at random
//! points or run two at once: the tally projection from a PostgreSQL schema (or a Kafka store,
//! with `--kafka-brokers`) into Redis or a Tantivy directory. `--catch-up` applies everything up to the head and exits 0; without it,
//! it follows the feed until killed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use foldline::{EventStore, Projection, ProjectionTarget, Projector, ProjectorOptions};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_redis::{RedisTarget, RedisTargetOptions};
use foldline_tantivy::{TantivyTarget, TantivyTargetOptions};
use foldline_tests::tally::{RedisTally, TantivyTally, tantivy_schema};

#[derive(Parser)]
struct Args {
    /// PostgreSQL URL of the store.
    #[arg(long, required_unless_present = "kafka_brokers")]
    postgres_url: Option<String>,
    /// The store's schema.
    #[arg(long, required_unless_present = "kafka_brokers")]
    schema: Option<String>,
    /// Kafka brokers of the store (instead of PostgreSQL).
    #[arg(long)]
    kafka_brokers: Option<String>,
    /// The Kafka store's topic prefix.
    #[arg(long, requires = "kafka_brokers")]
    kafka_prefix: Option<String>,
    /// Where the read model goes.
    #[arg(long, value_enum)]
    target: Kind,
    /// Redis URL (`--target redis`).
    #[arg(long)]
    redis_url: Option<String>,
    /// Key prefix (`--target redis`).
    #[arg(long)]
    redis_prefix: Option<String>,
    /// Index root (`--target tantivy`).
    #[arg(long)]
    tantivy_root: Option<PathBuf>,
    /// Events per commit.
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Lease time to live, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    lease_ms: u64,
    /// Lease owner (default: host, pid, random).
    #[arg(long)]
    owner: Option<String>,
    /// Apply up to the head, then exit.
    #[arg(long)]
    catch_up: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Redis,
    Tantivy,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(brokers) = &args.kafka_brokers {
        let prefix = args.kafka_prefix.as_deref().context("--kafka-prefix")?;
        let store_options = KafkaStoreOptions::from_brokers(brokers).with_topic_prefix(prefix)?;
        let store = KafkaEventStore::connect(store_options).await?;
        return project(store, &args).await;
    }
    let url = args.postgres_url.as_deref().context("--postgres-url")?;
    let schema = args.schema.as_deref().context("--schema")?;
    let store_options = PgStoreOptions::from_url(url)?.with_schema(schema.parse()?);
    let store = PgEventStore::connect(store_options).await?;
    project(store, &args).await
}

/// Runs the tally projection from `store` into the target `args` name.
async fn project<S: EventStore>(store: S, args: &Args) -> anyhow::Result<()> {
    let mut options = ProjectorOptions::new()
        .with_batch_size(args.batch_size)
        .with_lease_ttl(Duration::from_millis(args.lease_ms))
        .with_idle_interval(Duration::from_millis(50));
    if let Some(owner) = &args.owner {
        options = options.with_owner(owner);
    }
    match args.target {
        Kind::Redis => {
            let url = args.redis_url.as_deref().context("--redis-url")?;
            let prefix = args.redis_prefix.clone().context("--redis-prefix")?;
            let target =
                RedisTarget::connect(RedisTargetOptions::from_url(url)?.with_prefix(prefix)?)
                    .await?;
            drive(store, RedisTally::<1>, target, options, args.catch_up).await
        }
        Kind::Tantivy => {
            let root = args.tantivy_root.clone().context("--tantivy-root")?;
            let schema = tantivy_schema();
            let projection = TantivyTally::<1>::new(&schema);
            let target = TantivyTarget::new(TantivyTargetOptions::new(root, schema, "key"))?;
            drive(store, projection, target, options, args.catch_up).await
        }
    }
}

async fn drive<S, P, T>(
    store: S,
    projection: P,
    target: T,
    options: ProjectorOptions,
    catch_up: bool,
) -> anyhow::Result<()>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
{
    let projector = Projector::new(store, projection, target).with_options(options);
    if catch_up {
        projector.catch_up().await?;
    } else {
        projector.run().await?;
    }
    Ok(())
}
