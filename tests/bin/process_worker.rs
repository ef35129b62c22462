//! A transfer process manager's runner in a process of its own, for the tests that kill it
//! (`kill -9`) at random moments while another competes for its lease: the transfers of
//! `foldline_tests::transfers` from a PostgreSQL schema, their checkpoint in Redis, their
//! timers in PostgreSQL. It follows the feed and fires due timers until killed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use foldline::{
    CommandExecutor, ProcessProjection, ProcessRunner, ProcessTarget, Projector, ProjectorOptions,
};
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_redis::{RedisTarget, RedisTargetOptions};
use foldline_tests::transfers::{Transfer, Wallets};

#[derive(clap::Parser)]
struct Args {
    /// PostgreSQL URL of the store.
    #[arg(long)]
    postgres_url: String,
    /// The store's schema.
    #[arg(long)]
    schema: String,
    /// Redis URL of the checkpoint.
    #[arg(long)]
    redis_url: String,
    /// Redis key prefix of the checkpoint.
    #[arg(long)]
    redis_prefix: String,
    /// Lease owner.
    #[arg(long)]
    owner: String,
    /// Lease time to live, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    lease_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let store_options =
        PgStoreOptions::from_url(&args.postgres_url)?.with_schema(args.schema.parse()?);
    let store = PgEventStore::connect(store_options).await?;
    let checkpoints = RedisTarget::connect(
        RedisTargetOptions::from_url(&args.redis_url)?.with_prefix(args.redis_prefix.clone())?,
    )
    .await
    .context("connecting to Redis")?;
    let wallets = Wallets::new(CommandExecutor::new(store.clone()));
    let runner = Arc::new(ProcessRunner::<Transfer, _, _, _>::new(
        store.clone(),
        wallets,
        store.clone(),
    ));
    let options = ProjectorOptions::new()
        .with_batch_size(20)
        .with_lease_ttl(Duration::from_millis(args.lease_ms))
        .with_idle_interval(Duration::from_millis(20))
        .with_owner(&args.owner);
    let projector = Projector::new(
        store,
        ProcessProjection::<Transfer>::new(),
        ProcessTarget::new(runner.clone(), checkpoints),
    )
    .with_options(options);
    // Timers are claimed for a lease too: a runner killed holding one leaves it to the
    // other runner when the lease ends.
    let timers = runner.run_timers(Duration::from_millis(100), Duration::from_secs(2));
    tokio::select! {
        feed = projector.run() => feed.context("following the feed")?,
        fired = timers => fired.context("firing timers")?,
    }
    Ok(())
}
