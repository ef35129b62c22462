//! The PostgreSQL store passes the whole conformance suite, one test per case, each in a fresh
//! schema of its own; and two instances of it append to the same streams exactly once.

use std::collections::BTreeMap;

use foldline::testing::conformance;
use foldline::{EventStore, StoreLimits, StreamId};
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_tests::keyed;
use foldline_tests::pg::test_schema;

foldline::event_store_conformance_tests!(schema = test_schema().await => schema.store().clone());
foldline::snapshot_store_conformance_tests!(schema = test_schema().await => schema.store().clone());
foldline::timer_store_conformance_tests!(schema = test_schema().await => schema.store().clone());

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
    foldline::testing::timers::run_all(async || store.clone()).await;
}

/// Two store instances (two group-commit writers, as two processes) append to the same five
/// streams with `ExpectedVersion::Any` and idempotency keys, each key sent twice, the second
/// time through the other instance: every batch's assumptions about its streams go stale under
/// the other writer. Every key is stored exactly once, at the version its first append was
/// acknowledged with, both sends answer the same, and every stream's versions run 1, 2, 3, …
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_appending_any_version_with_keys_interleave_exactly_once()
-> anyhow::Result<()> {
    const TASKS: usize = 8;
    const APPENDS: usize = 150;
    let schema = test_schema().await;
    let stores = [schema.store().clone(), schema.connect_another().await?];
    let streams: Vec<StreamId> = (0..5)
        .map(|i| StreamId::new(format!("shared-{i}")))
        .collect::<Result<_, _>>()?;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (first, second) = (stores[task % 2].clone(), stores[(task + 1) % 2].clone());
        let streams = streams.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = BTreeMap::new();
            for i in 0..APPENDS {
                let stream = &streams[fastrand::usize(..streams.len())];
                let key = format!("k{task}-{i}");
                let sent = first.append(keyed::keyed_append(stream, &key)?).await?;
                let again = second.append(keyed::keyed_append(stream, &key)?).await?;
                anyhow::ensure!(
                    again.current_version == sent.current_version
                        && again.stream_id == sent.stream_id
                        && again.position == sent.position,
                    "key {key}: first {sent:?}, again {again:?}"
                );
                acks.insert(key, (stream.to_string(), sent.current_version.get()));
            }
            anyhow::Ok(acks)
        }));
    }
    let mut acks = BTreeMap::new();
    for task in tasks {
        acks.extend(task.await??);
    }
    let stored = keyed::stored_keys(&stores[0], streams).await?;
    keyed::check_exactly_once(&acks, &stored)
}
