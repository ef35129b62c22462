//! The PostgreSQL store passes the whole conformance suite, one test per case, each in a fresh
//! schema of its own.

use foldline::StoreLimits;
use foldline::testing::conformance;
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_tests::pg::test_schema;

foldline::event_store_conformance_tests!(schema = test_schema().await => schema.store().clone());
foldline::snapshot_store_conformance_tests!(schema = test_schema().await => schema.store().clone());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_input_with_custom_limits() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let limits = StoreLimits::default()
        .with_max_event_bytes(4 * 1024)
        .with_max_events_per_append(50);
    let options = PgStoreOptions::from_url(schema.url())?
        .with_schema(schema.name().clone())
        .with_limits(limits);
    let store = PgEventStore::connect(options).await?;
    conformance::invalid_input_writes_nothing_with(store, limits).await;
    Ok(())
}

/// The cases also pass one after another in one shared schema, as they would in a shared
/// database: they isolate themselves by stream name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_cases_in_one_shared_schema() {
    let schema = test_schema().await;
    let store = schema.store().clone();
    conformance::run_all(async || store.clone()).await;
    conformance::run_snapshot_cases(async || store.clone()).await;
}
