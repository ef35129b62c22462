//! The example's story on real services: PostgreSQL (`FOLDLINE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) for the events and the transfers' timers,
//! each test in a schema of its own, and Redis
//! (`FOLDLINE_REDIS_URL`, default `redis://127.0.0.1:6379/`), each test under a key prefix of
//! its own; the memo index in a temporary directory. With a service unreachable these tests
//! fail with a message saying how to start it; they never skip.

use example_bank::domain::{AccountId, dollars};
use example_bank::projections::balances::BalanceTarget;
use example_bank::projections::memos::Leg;
use example_bank::targets::{fresh_memo_index, fresh_redis};
use example_bank::transfer::Transfer;
use foldline::{
    Checkpoint, EventStore, InMemoryEventStore, InMemoryTarget, InMemoryTimerStore, ProcessManager,
    TimerStore,
};
use foldline_postgres::PgTestSchema;
use foldline_redis::RedisKeyspace;
use foldline_redis::RedisTestPrefix;

/// Balances in cents, `i64` as the read model keeps them.
fn cents(amount: u64) -> Option<i64> {
    i64::try_from(dollars(amount)).ok()
}

fn redis_url() -> String {
    std::env::var(foldline_redis::ENV_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| foldline_redis::DEFAULT_URL.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_on_postgres_and_redis() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let store = schema.store().clone();
    let redis = RedisTestPrefix::create().await?;
    let dir = tempfile::tempdir()?;
    let memos = fresh_memo_index(dir.path()).await?;
    let mut out = Vec::new();
    let end = example_bank::run(
        store.clone(),
        store.clone(),
        redis.target().clone(),
        memos,
        &mut out,
    )
    .await?;
    let out = String::from_utf8(out)?;

    assert_eq!(end.balance("alice"), cents(430), "{out}");
    assert_eq!(end.balance("bob"), cents(270), "{out}");
    assert_eq!(end.balance("carol"), cents(905), "{out}");
    assert_eq!(end.balance("dave"), cents(0), "{out}");
    assert_eq!(end.accounts.len(), 4, "{out}");
    let ended: Vec<_> = end.transfers.iter().map(|t| t.status.name()).collect();
    assert_eq!(
        ended,
        ["completed", "completed", "failed", "failed"],
        "{out}"
    );
    // The timers were PostgreSQL's, and every one is gone with its transfer.
    assert!(store.next_due(Transfer::NAME).await?.is_none(), "{out}");
    assert!(
        end.checkpoint.covers_checkpoint(&store.head().await?),
        "caught up to the head"
    );
    let found: Vec<_> = end
        .memo_hits
        .iter()
        .map(|hit| (hit.transfer.as_str(), hit.leg, hit.account.as_str()))
        .collect();
    assert_eq!(
        found,
        [("T-1001", Leg::Out, "alice"), ("T-1001", Leg::In, "bob")],
        "{out}"
    );
    assert!(
        out.contains("from projection `balances` (Redis hashes)"),
        "{out}"
    );
    assert!(
        out.contains("    bob    Bob       $270.00  v8, 4 transfer leg(s)"),
        "{out}"
    );
    assert!(
        out.contains("failed: the deposit was refused (the account is closed); $50.00 refunded"),
        "{out}"
    );
    assert!(out.contains("the store's head did not move"), "{out}");
    assert!(
        out.contains("    T-1001  out  alice     $200.00  \"March rent\""),
        "{out}"
    );

    assert!(out.contains("replayed: nothing appended"), "{out}");
    assert!(out.contains("refused: insufficient funds"), "{out}");
    // The rendezvous store forces the conflict on PostgreSQL too, whether both appends reach
    // the group-commit writer in one batch or in two.
    assert!(
        out.contains("attempts 2: its first append conflicted"),
        "{out}"
    );
    assert!(
        out.contains("snapshot of account-alice saved at v5"),
        "{out}"
    );
    assert!(out.contains("snapshot at v5 + 1 later event(s)"), "{out}");
    assert!(out.contains("upcast on read"), "{out}");

    // The balances are in Redis, under the test's prefix.
    let view = redis.target().view();
    assert_eq!(view.balance(&AccountId::new("carol")).await?, cents(905));
    assert!(!redis.keys().await?.is_empty());
    Ok(())
}

/// What `main` does with `FOLDLINE_POSTGRES_URL` set: the schema is emptied before the story.
#[tokio::test]
async fn fresh_store_starts_from_an_empty_schema() -> anyhow::Result<()> {
    let url = std::env::var(foldline_postgres::ENV_URL)
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| foldline_postgres::DEFAULT_URL.to_owned());
    let name = format!("example_bank_test_{}", std::process::id());
    let dir = tempfile::tempdir()?;

    let first = example_bank::postgres::fresh_store(&url, &name).await?;
    example_bank::run(
        first.clone(),
        first.clone(),
        InMemoryTarget::<RedisKeyspace>::new(),
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert!(!first.head().await?.is_start(), "the story wrote events");
    drop(first);

    let second = example_bank::postgres::fresh_store(&url, &name).await?;
    assert_eq!(
        second.head().await?,
        Checkpoint::START,
        "the schema was emptied"
    );
    // And the story runs again on it.
    let end = example_bank::run(
        second.clone(),
        second.clone(),
        InMemoryTarget::<RedisKeyspace>::new(),
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.balance("carol"), cents(905));
    drop(second);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await?;
    drop(client);
    driver.await??;
    Ok(())
}

/// What `main` does with `FOLDLINE_REDIS_URL` set: the keys under its prefix are deleted
/// before the story. (On the test's own prefix, whose keys are deleted when the test ends.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_redis_starts_from_an_empty_prefix() -> anyhow::Result<()> {
    let test = RedisTestPrefix::create().await?;
    let dir = tempfile::tempdir()?;

    let first = fresh_redis(&redis_url(), test.prefix()).await?;
    example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTimerStore::new(),
        first,
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert!(!test.keys().await?.is_empty(), "the story wrote keys");

    let second = fresh_redis(&redis_url(), test.prefix()).await?;
    assert_eq!(
        test.keys().await?,
        Vec::<String>::new(),
        "the keys were deleted"
    );
    // And the story runs again on it, from an empty read model: no balance counted twice.
    let end = example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTimerStore::new(),
        second,
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.balance("carol"), cents(905));
    Ok(())
}
