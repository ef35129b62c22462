//! Runs the example's story end to end with no services: the in-memory event store and timer
//! store, balances in `InMemoryTarget<RedisKeyspace>`, the memo index in a temporary
//! directory. Checks what it printed, how the transfers ended and what the read models hold.

use example_bank::domain::{AccountId, dollars};
use example_bank::projections::balances::BalanceTarget;
use example_bank::projections::memos::{Leg, TransferMemos, search};
use example_bank::targets::fresh_memo_index;
use example_bank::transfer::Transfer;
use foldline::{
    EventStore, InMemoryEventStore, InMemoryTarget, InMemoryTimerStore, ProcessManager,
    ProcessStatus, Projection, TimerStore,
};
use foldline_redis::RedisKeyspace;

/// Balances in cents, `i64` as the read model keeps them.
fn cents(amount: u64) -> Option<i64> {
    i64::try_from(dollars(amount)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_ends_with_the_expected_read_models() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let timers = InMemoryTimerStore::new();
    let balances = InMemoryTarget::<RedisKeyspace>::new();
    let dir = tempfile::tempdir()?;
    let memos = fresh_memo_index(dir.path()).await?;
    let mut out = Vec::new();
    let end = example_bank::run(
        store.clone(),
        timers.clone(),
        balances.clone(),
        memos,
        &mut out,
    )
    .await?;
    let out = String::from_utf8(out)?;

    // T-1001 and T-1002 moved their money; T-1003 was refunded, T-1004 never withdrew.
    assert_eq!(end.balance("alice"), cents(430), "{out}");
    assert_eq!(end.balance("bob"), cents(270), "{out}");
    assert_eq!(end.balance("carol"), cents(905), "{out}");
    assert_eq!(end.balance("dave"), cents(0), "{out}");
    assert_eq!(end.accounts.len(), 4, "{out}");
    let total: i64 = end.accounts.iter().map(|a| a.cents).sum();
    assert_eq!(
        Some(total),
        cents(1_605),
        "what the accounts held before the transfers"
    );
    assert_eq!(
        end.transfers
            .iter()
            .map(|t| (t.id.as_str(), t.status.clone()))
            .collect::<Vec<_>>(),
        [
            ("T-1001", ProcessStatus::Completed),
            ("T-1002", ProcessStatus::Completed),
            (
                "T-1003",
                ProcessStatus::Failed {
                    reason: "the deposit was refused (the account is closed); $50.00 \
                             refunded to bob"
                        .into()
                }
            ),
            (
                "T-1004",
                ProcessStatus::Failed {
                    reason: "no approval within 1s; nothing was withdrawn".into()
                }
            ),
        ],
        "{out}"
    );
    let steps: Vec<usize> = end.transfers.iter().map(|t| t.steps.len()).collect();
    assert_eq!(steps, [3, 3, 4, 3], "{out}");
    // 38 events: 25 on the accounts (the redelivered deposit, the refused overdraft and the
    // late approval wrote nothing, nor did handing the transfers their inputs again), and
    // the transfers' 13 decisions.
    assert_eq!(store.len(), 38, "{out}");
    assert_eq!(end.checkpoint, store.head().await?, "caught up to the head");
    assert!(
        timers.next_due(Transfer::NAME).await?.is_none(),
        "finished transfers keep no timer"
    );

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

    // What it printed came from the read models and the transfers' streams.
    for line in [
        "    alice  Alice     $430.00  v8, 1 transfer leg(s)\n",
        "    bob    Bob       $270.00  v8, 4 transfer leg(s)\n",
        "    carol  Carol     $905.00  v7, 1 transfer leg(s)\n",
        "    dave   Dave        $0.00  v2, 0 transfer leg(s), closed\n",
        "      deposit refused by dave: the account is closed   -> undo at bob\n",
        "      timed out waiting for approval                   -> undo at carol\n",
        "      cancelled at carol, nothing withdrawn            -> fail\n",
        "    refused: transfer T-1004 was cancelled; nothing was recorded\n",
        "hold $1,605.00 together, as before the transfers: no money made or lost\n",
        "the store's head did not move",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
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
    assert_eq!(view.balance(&AccountId::new("bob")).await?, cents(270));
    assert_eq!(view.balance(&AccountId::new("erin")).await?, None);
    Ok(())
}

#[tokio::test]
async fn the_story_runs_on_a_current_thread_runtime_too() -> anyhow::Result<()> {
    // The conflict is forced by the rendezvous store, not by thread timing, and the
    // projectors' tasks run whenever the story waits.
    let dir = tempfile::tempdir()?;
    let end = example_bank::run(
        InMemoryEventStore::new(),
        InMemoryTimerStore::new(),
        InMemoryTarget::<RedisKeyspace>::new(),
        fresh_memo_index(dir.path()).await?,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.balance("carol"), cents(905));
    assert_eq!(end.memo_hits.len(), 2);
    assert_eq!(
        end.transfer("T-1004").map(|t| t.status.name()),
        Some("failed")
    );
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
        InMemoryTimerStore::new(),
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
        InMemoryTimerStore::new(),
        InMemoryTarget::<RedisKeyspace>::new(),
        memos,
        &mut std::io::sink(),
    )
    .await?;
    assert_eq!(end.memo_hits.len(), 2);
    Ok(())
}
