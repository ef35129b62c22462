//! Runs the example's story end to end on the in-memory store and checks where it ends up.

use example_bank::domain::{AccountId, dollars};
use foldline::InMemoryEventStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_ends_with_the_expected_balances() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let mut out = Vec::new();
    let balances = example_bank::run(store.clone(), &mut out).await?;
    let out = String::from_utf8(out)?;

    let balance = |id: &str| balances.balance(&AccountId::new(id));
    assert_eq!(balance("alice"), Some(dollars(400)), "{out}");
    assert_eq!(balance("bob"), Some(dollars(200)), "{out}");
    assert_eq!(balance("carol"), Some(dollars(875)), "{out}");
    assert_eq!(balances.accounts().count(), 3);
    // 12 events: the redelivered deposit leg and the refused overdraft wrote nothing.
    assert_eq!(store.len(), 12);
    assert_eq!(balances.events_seen(), 12);

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
    Ok(())
}

#[tokio::test]
async fn the_story_runs_on_a_current_thread_runtime_too() -> anyhow::Result<()> {
    // The conflict is forced by the rendezvous store, not by thread timing.
    let balances = example_bank::run(InMemoryEventStore::new(), &mut std::io::sink()).await?;
    assert_eq!(
        balances.balance(&AccountId::new("carol")),
        Some(dollars(875))
    );
    Ok(())
}
