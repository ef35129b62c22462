//! The event store conformance suite: the [`EventStore`] contract as executable checks.
//!
//! Every store — in-memory, PostgreSQL, Kafka, yours — must pass every case here. The cases
//! use only the [`EventStore`] trait (and [`SnapshotStore`] for the snapshot cases), write raw
//! [`NewEvent`](crate::NewEvent)s with JSON payloads, and name their streams with a unique
//! random suffix, so they can run against a shared, long-lived database next to other tests
//! and concurrently with each other. A failure panics with a message naming the case and what
//! the store did wrong.
//!
//! # What a store must do
//!
//! | case | checks |
//! |------|--------|
//! | [`append_any_creates_and_extends`] | `Any` on new and existing streams; events read back exactly as written; `AppendResult` fields |
//! | [`append_no_stream`] | `NoStream` creates; on an existing stream it conflicts and writes nothing |
//! | [`append_exact`] | `Exact(n)` right appends; wrong (lower, higher, on an absent stream) conflicts, naming stream, expected and actual, and writes nothing |
//! | [`empty_append_writes_nothing`] | an append without events returns the current version and no position |
//! | [`concurrent_appends_conflict`] | 16 tasks race for each of several versions: one winner each, the rest conflict; the stream ends contiguous |
//! | [`idempotent_append_replays`] | a used key replays the first result (`replayed = true`) and writes nothing; `find_idempotent` |
//! | [`failed_append_does_not_use_key`] | a conflicting keyed append leaves its key unused |
//! | [`concurrent_idempotent_appends_write_once`] | 16 tasks append with one key at once: exactly one writes |
//! | [`read_stream_ranges`] | `read_stream` from a version, with a limit, past the end, on an absent stream |
//! | [`read_all_in_batches`] | the feed read in batches of 7 after concurrent writes: every event once, in order per stream and partition; resuming mid-way |
//! | [`head_tracks_appends`] | `head()`: `START` on an empty store, covers every append's position, never ahead of the feed |
//! | [`subscribe_catches_up_then_follows`] | catch-up then live delivery, exactly once |
//! | [`subscribe_resumes_from_checkpoint`] | a subscription from a stored mid-way checkpoint delivers exactly the rest |
//! | [`subscribe_with_concurrent_writers`] | a live subscriber sees concurrent writers' events exactly once |
//! | [`invalid_input_writes_nothing`] | oversize events, too many events and invalid names are typed errors that write nothing |
//! | [`snapshot_absent_is_none`], [`snapshot_save_then_load`], [`snapshot_older_does_not_replace_newer`] | [`SnapshotStore`] |
//!
//! Properties of the global feed are checked with [`Checkpoint::covers`](crate::Checkpoint::covers)
//! only, so they hold for any store's notion of position: a reader's events lie strictly after
//! its checkpoint and after each other within a partition, and a batch's checkpoint covers its
//! events. Payloads are compared as JSON values, so a store may normalise JSON
//! (PostgreSQL's `jsonb` does). Where a store's feed may lag behind its commits (a visibility
//! horizon held back by another transaction), a case waits up to 30 seconds for an event to
//! show up before failing.
//!
//! The cases need a Tokio runtime; they spawn tasks, so use the multi-threaded one to get real
//! parallelism.
//!
//! # Running it
//!
//! All cases, each on a fresh store from `make`:
//!
//! ```
//! use foldline::InMemoryEventStore;
//! use foldline::testing::conformance;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! # async fn main() {
//! conformance::run_all(async || InMemoryEventStore::new()).await;
//! conformance::run_snapshot_cases(async || InMemoryEventStore::new()).await;
//! # }
//! ```
//!
//! A backend's test file usually runs one test per case instead, so a failure names the case
//! in the test report and cases run in parallel:
//!
//! ```no_run
//! # use foldline::InMemoryEventStore as PgEventStore;
//! # async fn connect_to_the_test_schema() -> PgEventStore { PgEventStore::new() }
//! use foldline::testing::conformance;
//!
//! // #[tokio::test(flavor = "multi_thread")]
//! async fn concurrent_appends_conflict() {
//!     conformance::concurrent_appends_conflict(connect_to_the_test_schema().await).await;
//! }
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() { concurrent_appends_conflict().await }
//! ```
//!
//! A store with custom [`StoreLimits`](crate::StoreLimits) larger than the defaults runs
//! [`invalid_input_writes_nothing_with`] with its limits.

mod append;
#[cfg(test)]
mod faults;
mod feed;
mod fixture;
mod idempotency;
mod limits;
mod read;
mod snapshot;
mod subscribe;

pub use append::{
    append_any_creates_and_extends, append_exact, append_no_stream, concurrent_appends_conflict,
    empty_append_writes_nothing,
};
pub use idempotency::{
    concurrent_idempotent_appends_write_once, failed_append_does_not_use_key,
    idempotent_append_replays,
};
pub use limits::{invalid_input_writes_nothing, invalid_input_writes_nothing_with};
pub use read::{head_tracks_appends, read_all_in_batches, read_stream_ranges};
pub use snapshot::{
    snapshot_absent_is_none, snapshot_older_does_not_replace_newer, snapshot_save_then_load,
};
pub use subscribe::{
    subscribe_catches_up_then_follows, subscribe_resumes_from_checkpoint,
    subscribe_with_concurrent_writers,
};

use crate::store::{EventStore, SnapshotStore};

/// Runs every [`EventStore`] case, one after the other, each on a fresh store from `make`.
///
/// # Panics
///
/// At the first case the store fails, naming the case and what went wrong.
pub async fn run_all<S, F>(make: F)
where
    S: EventStore + Clone,
    F: AsyncFn() -> S,
{
    append_any_creates_and_extends(make().await).await;
    append_no_stream(make().await).await;
    append_exact(make().await).await;
    empty_append_writes_nothing(make().await).await;
    concurrent_appends_conflict(make().await).await;
    idempotent_append_replays(make().await).await;
    failed_append_does_not_use_key(make().await).await;
    concurrent_idempotent_appends_write_once(make().await).await;
    read_stream_ranges(make().await).await;
    read_all_in_batches(make().await).await;
    head_tracks_appends(make().await).await;
    subscribe_catches_up_then_follows(make().await).await;
    subscribe_resumes_from_checkpoint(make().await).await;
    subscribe_with_concurrent_writers(make().await).await;
    invalid_input_writes_nothing(make().await).await;
}

/// Runs every [`SnapshotStore`] case, each on a fresh store from `make`.
///
/// # Panics
///
/// At the first case the store fails, naming the case and what went wrong.
pub async fn run_snapshot_cases<S, F>(make: F)
where
    S: SnapshotStore + Clone,
    F: AsyncFn() -> S,
{
    snapshot_absent_is_none(make().await).await;
    snapshot_save_then_load(make().await).await;
    snapshot_older_does_not_replace_newer(make().await).await;
}

/// One `#[tokio::test]` per [`EventStore`] conformance case, for a backend's test file, so a
/// failure names its case in the test report and the cases run in parallel. The list of cases
/// lives here, next to [`run_all`], so no backend can fall behind when a case is added.
///
/// `guard = setup => store`: each test runs `let guard = setup;` (an `.await` is allowed), then
/// the case on `store`; `guard` lives until the test ends (a test schema, a temporary topic).
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// ```
/// // In a test file: the in-memory store, no guard needed. A PostgreSQL backend writes
/// // `schema = PgTestSchema::create().await.unwrap() => schema.store().clone()`.
/// foldline::event_store_conformance_tests!(store = foldline::InMemoryEventStore::new() => store);
/// foldline::snapshot_store_conformance_tests!(store = foldline::InMemoryEventStore::new() => store);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! event_store_conformance_tests {
    ($guard:pat = $setup:expr => $store:expr) => {
        $crate::__conformance_tests!($guard = $setup => $store;
            append_any_creates_and_extends,
            append_no_stream,
            append_exact,
            empty_append_writes_nothing,
            concurrent_appends_conflict,
            idempotent_append_replays,
            failed_append_does_not_use_key,
            concurrent_idempotent_appends_write_once,
            read_stream_ranges,
            read_all_in_batches,
            head_tracks_appends,
            subscribe_catches_up_then_follows,
            subscribe_resumes_from_checkpoint,
            subscribe_with_concurrent_writers,
            invalid_input_writes_nothing,
        );
    };
}

/// One `#[tokio::test]` per [`SnapshotStore`] conformance case; used like
/// [`event_store_conformance_tests!`](crate::event_store_conformance_tests).
#[macro_export]
macro_rules! snapshot_store_conformance_tests {
    ($guard:pat = $setup:expr => $store:expr) => {
        $crate::__conformance_tests!($guard = $setup => $store;
            snapshot_absent_is_none,
            snapshot_save_then_load,
            snapshot_older_does_not_replace_newer,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    // The cases of suite `$suite` (a module of `foldline::testing`).
    (@in $suite:ident; $guard:pat = $setup:expr => $store:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let $guard = $setup;
                $crate::testing::$suite::$case($store).await;
            }
        )*
    };
    ($guard:pat = $setup:expr => $store:expr; $($case:ident),* $(,)?) => {
        $crate::__conformance_tests!(@in conformance; $guard = $setup => $store; $($case),*);
    };
}
