//! Command execution on PostgreSQL: heavy contention through the executor (with and without
//! the state cache), idempotent redelivery, snapshots, the cache's handling of other writers,
//! and upcasting behave exactly as on the in-memory store (the same checks run here, from
//! `commands` and `upcasting`).

use std::time::Instant;

use foldline::{CommandExecutor, StreamId};
use foldline_tests::pg::{RawEvent, insert_event, raw_client, test_schema};

use crate::commands::{
    cache_hit_skips_read, cache_no_op_rechecked, cache_refusal_rechecked, cache_stale_after_rival,
    contended_deposits, contended_deposits_cached, idempotent_redelivery,
    ignore_stale_or_corrupt_snapshots, load_from_snapshot, snapshot_every_n_events,
};
use crate::upcasting::{cases, check_old_events_load, old_events_load};

/// 16 tasks × 1000 deposits on 10 accounts from two store instances: versions contiguous, every
/// deposit stored once at the version its outcome reported, balances add up, and conflicts
/// were really retried (their count is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[allow(
    clippy::print_stderr,
    reason = "the conflict count is part of what this test reports"
)]
async fn contended_commands_lose_nothing() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    const TASKS: u64 = 16;
    const COMMANDS: u64 = 1_000;
    let schema = test_schema().await;
    let store = schema.store().clone();
    // Two processes: two executors (one alone decides in turn, no conflict) on two store
    // instances, whose group-commit writers each find the other's appends under their batches'
    // assumptions. Snapshots keep each load short: the streams grow to ~1600 events.
    let other = schema.connect_another().await?;
    let banks = [
        CommandExecutor::new(store.clone()).with_snapshots(store.clone()),
        CommandExecutor::new(other.clone()).with_snapshots(other),
    ];
    let started = Instant::now();
    let contention = contended_deposits(&banks, &ACCOUNTS, TASKS, COMMANDS, |_, _| {
        fastrand::usize(..ACCOUNTS.len())
    })
    .await?;
    let conflicts = contention.attempts - contention.commands;
    eprintln!(
        "pg contention: {} commands from {TASKS} tasks on {} streams in {:.1?}: {} decisions, \
         {conflicts} version conflicts retried ({:.1}% of commands)",
        contention.commands,
        ACCOUNTS.len(),
        started.elapsed(),
        contention.attempts,
        100.0 * conflicts as f64 / contention.commands as f64,
    );
    Ok(())
}

/// The same contention (16 tasks × 500 deposits on 10 accounts) through an executor with a
/// cache: nothing lost or doubled, and the cache ends up holding each account's stored state.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[allow(
    clippy::print_stderr,
    reason = "the conflict count is part of what this test reports"
)]
async fn contended_commands_lose_nothing_with_cache() -> anyhow::Result<()> {
    const ACCOUNTS: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    const TASKS: u64 = 16;
    const COMMANDS: u64 = 500;
    let schema = test_schema().await;
    let store = schema.store().clone();
    let started = Instant::now();
    let contention =
        contended_deposits_cached(store.clone(), store, &ACCOUNTS, TASKS, COMMANDS, |_, _| {
            fastrand::usize(..ACCOUNTS.len())
        })
        .await?;
    let conflicts = contention.attempts - contention.commands;
    eprintln!(
        "pg contention with cache: {} commands from {TASKS} tasks on {} streams in {:.1?}: \
         {} decisions, {conflicts} version conflicts retried",
        contention.commands,
        ACCOUNTS.len(),
        started.elapsed(),
        contention.attempts,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_hit_skips_the_read() -> anyhow::Result<()> {
    let schema = test_schema().await;
    cache_hit_skips_read(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_stale_after_another_writer() -> anyhow::Result<()> {
    let schema = test_schema().await;
    cache_stale_after_rival(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_refusal_decided_again() -> anyhow::Result<()> {
    let schema = test_schema().await;
    cache_refusal_rechecked(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cache_no_op_decided_again() -> anyhow::Result<()> {
    let schema = test_schema().await;
    cache_no_op_rechecked(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_key_appends_once() -> anyhow::Result<()> {
    let schema = test_schema().await;
    idempotent_redelivery(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_every_n_events() -> anyhow::Result<()> {
    let schema = test_schema().await;
    snapshot_every_n_events(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loading_starts_from_the_snapshot() -> anyhow::Result<()> {
    let schema = test_schema().await;
    load_from_snapshot(schema.store().clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_or_corrupt_snapshots_are_ignored() -> anyhow::Result<()> {
    let schema = test_schema().await;
    ignore_stale_or_corrupt_snapshots(schema.store().clone()).await
}

/// Old payloads appended through the store decode and load as on the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stored_old_events_load_through_the_store() -> anyhow::Result<()> {
    let schema = test_schema().await;
    old_events_load(schema.store().clone()).await
}

/// Rows an older release wrote, inserted with raw SQL (no store involved), decode through the
/// upcaster chain and load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_rows_written_by_sql_load_upcast() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let client = raw_client().await;
    let stream = StreamId::new("account-legacy")?;
    let cases = cases();
    for (version, (case, payload)) in (1..).zip(&cases) {
        let event = RawEvent::new(
            stream.as_str(),
            version,
            &case.event_type,
            i32::try_from(case.schema_version)?,
            std::str::from_utf8(payload)?,
        );
        insert_event(&client, schema.name(), &event).await?;
    }
    check_old_events_load(schema.store(), &stream, &cases).await
}
