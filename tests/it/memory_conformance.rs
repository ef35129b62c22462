//! The in-memory store passes the whole conformance suite, one test per case.

use foldline::testing::conformance;
use foldline::{InMemoryEventStore, StoreLimits};

foldline::event_store_conformance_tests!(store = InMemoryEventStore::new() => store);
foldline::snapshot_store_conformance_tests!(store = InMemoryEventStore::new() => store);
foldline::timer_store_conformance_tests!(store = foldline::InMemoryTimerStore::new() => store);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_input_with_custom_limits() {
    let limits = StoreLimits::default()
        .with_max_event_bytes(4 * 1024)
        .with_max_events_per_append(50);
    conformance::invalid_input_writes_nothing_with(InMemoryEventStore::with_limits(limits), limits)
        .await;
}

/// The cases also pass one after another on one shared store, as they would on a shared
/// database: they isolate themselves by stream name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_cases_on_one_shared_store() {
    let store = InMemoryEventStore::new();
    conformance::run_all(async || store.clone()).await;
    conformance::run_snapshot_cases(async || store.clone()).await;
    let timers = foldline::InMemoryTimerStore::new();
    foldline::testing::timers::run_all(async || timers.clone()).await;
}

/// `run_all` on a fresh store per case, on a single-threaded runtime.
#[tokio::test(flavor = "current_thread")]
async fn all_cases_on_fresh_stores_single_threaded() {
    conformance::run_all(async || InMemoryEventStore::new()).await;
    conformance::run_snapshot_cases(async || InMemoryEventStore::new()).await;
}
