//! The example's story on PostgreSQL (`FOLDLINE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), each test in a schema of its own. With
//! PostgreSQL unreachable these tests fail with a message saying how to start it; they never
//! skip.

use example_bank::domain::{AccountId, dollars};
use example_bank::read_model::Balances;
use foldline::{Checkpoint, EventStore};
use foldline_postgres::testing::TestSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_on_postgres() -> anyhow::Result<()> {
    let schema = TestSchema::create().await?;
    let store = schema.store().clone();
    let mut out = Vec::new();
    let balances = example_bank::run(store.clone(), &mut out).await?;
    let out = String::from_utf8(out)?;

    let balance = |id: &str| balances.balance(&AccountId::new(id));
    assert_eq!(balance("alice"), Some(dollars(400)), "{out}");
    assert_eq!(balance("bob"), Some(dollars(200)), "{out}");
    assert_eq!(balance("carol"), Some(dollars(875)), "{out}");
    assert_eq!(balances.accounts().count(), 3);
    // 12 events: the redelivered deposit leg and the refused overdraft wrote nothing.
    assert_eq!(balances.events_seen(), 12, "{out}");
    let mut again = Balances::new();
    assert_eq!(
        again.catch_up(&store).await?,
        12,
        "a second read of the feed"
    );
    assert_eq!(again.checkpoint(), balances.checkpoint());
    assert_eq!(
        store.head().await?,
        *balances.checkpoint(),
        "caught up to the head"
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
    Ok(())
}

/// What `main` does with `FOLDLINE_POSTGRES_URL` set: the schema is emptied before the story.
#[tokio::test]
async fn fresh_store_starts_from_an_empty_schema() -> anyhow::Result<()> {
    let url = std::env::var("FOLDLINE_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| foldline_postgres::DEFAULT_URL.to_owned());
    let name = format!("example_bank_test_{}", std::process::id());

    let first = example_bank::postgres::fresh_store(&url, &name).await?;
    example_bank::run(first.clone(), &mut std::io::sink()).await?;
    assert!(!first.head().await?.is_start(), "the story wrote events");
    drop(first);

    let second = example_bank::postgres::fresh_store(&url, &name).await?;
    assert_eq!(
        second.head().await?,
        Checkpoint::START,
        "the schema was emptied"
    );
    // And the story runs again on it.
    let balances = example_bank::run(second.clone(), &mut std::io::sink()).await?;
    assert_eq!(balances.events_seen(), 12);
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
