//! Runs the example's story end to end with no services: the in-memory event store, balances
//! in `InMemoryTarget<RedisKeyspace>`, the memo index in a temporary directory. Checks what it
//! printed and what the read models hold.

use example_bank::domain::{AccountId, dollars};
use example_bank::projections::balances::BalanceTarget;
use example_bank::projections::memos::{Leg, TransferMemos, search};
use example_bank::targets::fresh_memo_index;
use foldline::{EventStore, InMemoryEventStore, InMemoryTarget, Projection};
use foldline_redis::RedisKeyspace;

/// Balances in cents, `i64` as the read model keeps them.
fn cents(amount: u64) -> Option<i64> {
    i64::try_from(dollars(amount)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_ends_with_the_expected_read_models() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let balances = InMemoryTarget::<RedisKeyspace>::new();
    let dir = tempfile::tempdir()?;
    let memos = fresh_memo_index(dir.path()).await?;
    let mut out = Vec::new();
    let end = example_bank::run(store.clone(), balances.clone(), memos, &mut out).await?;
    let out = String::from_utf8(out)?;

    assert_eq!(end.balance("alice"), cents(400), "{out}");
    assert_eq!(end.balance("bob"), cents(170), "{out}");
    assert_eq!(end.balance("carol"), cents(905), "{out}");
    assert_eq!(end.accounts.len(), 3, "{out}");
    // 14 events: the redelivered deposit leg and the refused overdraft wrote nothing.
    assert_eq!(store.len(), 14);
    assert_eq!(end.checkpoint, store.head().await?, "caught up to the head");

    // The search for "rent" finds both legs of T-1001, and not T-1002 ("Concert tickets").
    let found: Vec<_> = end
        .memo_hits
        .iter()
        .map(|hit| {
            (
                hit.transfer.as_str(),
                hit.leg,
                hit.account.as_str(),
                hit.cents,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("T-1001", Leg::Out, "alice", dollars(200)),
            ("T-1001", Leg::In, "bob", dollars(200)),
        ],
        "{out}"
    );

    // What it printed came from the read models.
    assert!(
        out.contains("    alice  Alice     $400.00  v6, 1 transfer leg(s)"),
        "{out}"
    );
    assert!(
        out.contains("    bob    Bob       $170.00  v3, 2 transfer leg(s)"),
        "{out}"
    );
    assert!(
        out.contains("    carol  Carol     $905.00  v5, 1 transfer leg(s)"),
        "{out}"
    );
    assert!(
        out.contains("    T-1001  out  alice     $200.00  \"March rent\""),
        "{out}"
    );
    assert!(
        out.contains("    T-1001  in   bob       $200.00  \"March rent\""),
        "{out}"
    );
    assert!(!out.contains("T-1002  "), "{out}");

    assert!(out.contains("replayed: nothing appended"), "{out}");
    assert!(out.contains("refused: insufficient funds"), "{out}");
    assert!(
        out.contains("attempts 2: its first append conflicted"),
        "{out}"
    );
    assert!(
        out.contains("snapshot of account-alice saved at v5"),
        "{out}"
    );
    assert!(out.contains("snapshot at v5 + 1 later event(s)"), "{out}");

    // The read model stays readable after the projectors stopped.
    let view = balances.view();
    assert_eq!(view.balance(&AccountId::new("bob")).await?, cents(170));
    assert_eq!(view.balance(&AccountId::new("dave")).await?, None);
    Ok(())
}

#[tokio::test]
async fn the_story_runs_on_a_current_thread_runtime_too() -> anyhow::Result<()> {
    // The conflict is forced by the rendezvous store, not by thread timing, and the
    // projectors' tasks run whenever the story waits.
    let dir = tempfile::tempdir()?;
    let end = example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTarget::<RedisKeyspace>::new(),
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.balance("carol"), cents(905));
    assert_eq!(end.memo_hits.len(), 2);
    Ok(())
}

/// What `main` does with `FOLDLINE_TANTIVY_DIR` set: the memo index of an earlier run is
/// deleted, nothing else in the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_memo_index_starts_from_an_empty_index() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "not the example's")?;
    let memos = fresh_memo_index(dir.path()).await?;
    let searcher = memos.searcher(&TransferMemos::NAME);
    example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTarget::<RedisKeyspace>::new(),
        memos,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(search(&searcher, "rent").await?.len(), 2);

    let memos = fresh_memo_index(dir.path()).await?;
    assert!(
        search(&searcher, "rent").await?.is_empty(),
        "the index was deleted"
    );
    assert!(other.exists(), "only the index was deleted");
    // And the story runs again on it.
    let end = example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTarget::<RedisKeyspace>::new(),
        memos,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.memo_hits.len(), 2);
    Ok(())
}
