//! The in-memory projection target passes the target conformance suite, one test per case.

use foldline::InMemoryTarget;
use foldline::testing::{KeyValueModel, target_conformance};

foldline::projection_target_conformance_tests!(
    target = InMemoryTarget::<KeyValueModel>::new() => target
);

/// The cases also pass one after another on one shared target, as they would on a shared
/// service: they isolate themselves by projection name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_cases_on_one_shared_target() {
    let target = InMemoryTarget::<KeyValueModel>::new();
    target_conformance::run_all(async || target.clone()).await;
}
