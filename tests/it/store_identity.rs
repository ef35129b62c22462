//! Checkpoints are bound to their store: a projector (or an operator's overview) pointed at
//! another PostgreSQL schema with the same Redis prefix or Tantivy directory is refused with
//! `Error::StoreMismatch` naming both stores, instead of resuming from the other store's
//! checkpoint; a rebuild or reset from the new store is the way out.

use foldline::{
    Error, EventStore, Projection, ProjectionTarget, Projector, RebuildMode, StoreIdentity,
};
use foldline_postgres::PgEventStore;
use foldline_tantivy::TantivyTestDir;
use foldline_tests::pg::test_schema;
use foldline_tests::redis::test_prefix;
use foldline_tests::tally::{self, RedisTally, TantivyTally, tantivy_schema};
use tantivy::collector::Count;
use tantivy::query::AllQuery;

/// Asserts `result` is a store mismatch naming `recorded` and `current`, and that its message
/// names both and points at `rebuild`.
fn assert_mismatch<T: std::fmt::Debug>(
    result: foldline::Result<T>,
    recorded: &StoreIdentity,
    current: &StoreIdentity,
) {
    let error = result.expect_err("a slot of another store must be refused");
    let message = error.to_string();
    match error {
        Error::StoreMismatch {
            recorded: Some(r),
            current: c,
            ..
        } => {
            assert_eq!((&r, &c), (recorded, current), "{message}");
        }
        other => panic!("expected a store mismatch, got {other:?}"),
    }
    for part in [
        recorded.as_str(),
        current.as_str(),
        "foldline rebuild tally",
    ] {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

async fn filled(events: u64) -> anyhow::Result<(foldline_postgres::PgTestSchema, PgEventStore)> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    tally::append(&store, "acct", &tally::counted(events)).await?;
    Ok((schema, store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slot_of_another_schema_is_refused_until_rebuilt() -> anyhow::Result<()> {
    let (_a, store_a) = filled(3).await?;
    let (_b, store_b) = filled(5).await?;
    let (id_a, id_b) = (store_a.identity().await?, store_b.identity().await?);
    assert_ne!(id_a, id_b, "two schemas are two stores");
    assert_eq!(id_a, store_a.clone().identity().await?);
    let prefix = test_prefix().await;
    let target = prefix.target().clone();

    Projector::new(store_a.clone(), RedisTally::<1>, target.clone())
        .catch_up()
        .await?;
    assert_eq!(tally::redis_events(&target).await?, Some(3));

    // Store B with A's read model: refused, the read model untouched.
    let on_b = Projector::new(store_b.clone(), RedisTally::<1>, target.clone());
    assert_mismatch(on_b.catch_up().await, &id_a, &id_b);
    assert_mismatch(on_b.overview().await, &id_a, &id_b);
    assert_eq!(tally::redis_events(&target).await?, Some(3));

    // A rebuild from B builds a slot of B's and switches to it.
    let rebuilt = on_b.rebuild(RebuildMode::BlueGreen, |_| {}).await?;
    assert_eq!(rebuilt.store.as_ref(), Some(&id_b));
    on_b.catch_up().await?;
    assert_eq!(tally::redis_events(&target).await?, Some(5));
    assert_eq!(on_b.overview().await?.lag_events, 0);

    // Now A is the stranger.
    let on_a = Projector::new(store_a, RedisTally::<1>, target.clone());
    assert_mismatch(on_a.catch_up().await, &id_b, &id_a);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_slot_of_another_schema_is_refused_until_reset() -> anyhow::Result<()> {
    let (_a, store_a) = filled(4).await?;
    let (_b, store_b) = filled(2).await?;
    let (id_a, id_b) = (store_a.identity().await?, store_b.identity().await?);
    let schema = tantivy_schema();
    let dir = TantivyTestDir::create(schema.clone(), "key")?;
    let target = dir.target().clone();
    let documents = async || -> anyhow::Result<usize> {
        Ok(target
            .searcher(&<TantivyTally>::NAME)
            .read(|_, searcher| searcher.search(&AllQuery, &Count))
            .await?
            .unwrap_or(0))
    };

    let tally = TantivyTally::<1>::new(&schema);
    Projector::new(store_a, tally.clone(), target.clone())
        .catch_up()
        .await?;
    assert_eq!(documents().await?, 4);

    let on_b = Projector::new(store_b, tally, target.clone());
    assert_mismatch(on_b.catch_up().await, &id_a, &id_b);
    assert_eq!(
        documents().await?,
        4,
        "nothing of B was applied on A's slot"
    );

    // An in-place rebuild (`reset`) records the new store with the emptied slot.
    let reset = on_b.reset().await?.expect("a slot is active");
    assert_eq!(reset.store.as_ref(), Some(&id_b));
    let slots = target.slots(&<TantivyTally>::NAME).await?;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].store.as_ref(), Some(&id_b));
    on_b.catch_up().await?;
    assert_eq!(documents().await?, 2);
    Ok(())
}

/// A schema dropped and created again under the same name is another store: its positions
/// start over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_schema_is_another_store() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let before = schema.store().identity().await?;
    let client = foldline_tests::pg::raw_client().await;
    let quoted = format!("\"{}\"", schema.name());
    client
        .batch_execute(&format!("DROP SCHEMA {quoted} CASCADE"))
        .await?;
    let store = PgEventStore::connect(schema.store().options().clone()).await?;
    store.migrate().await?;
    let after = store.identity().await?;
    assert_ne!(before, after);
    for part in ["postgres:", schema.name().as_str()] {
        assert!(after.as_str().contains(part), "{after}");
    }
    Ok(())
}
