//! The projection target conformance suite: the [`ProjectionTarget`] contract as executable
//! checks.
//!
//! Every target — in-memory, Redis, Tantivy, yours — must pass every case here. The cases use
//! only the [`ProjectionTarget`] trait plus a [`TargetProbe`], which writes and reads one
//! counter, and name their projections `conf_` and a random suffix, so they can run against a
//! shared, long-lived service next to other tests and concurrently with each other. A failure
//! panics with a message naming the case and what the target did wrong.
//!
//! # What a target must do
//!
//! | case | checks |
//! |------|--------|
//! | [`slots_create_and_resume`] | no slots at first; `Resume` makes a building slot at `START` and returns it again; other versions and `Fresh` make higher slots; `Resume` takes the newest building slot, never an active one; `slots` ordered by number |
//! | [`concurrent_resume_gets_one_slot`] | 8 tasks `Resume` one version at once: all get the same slot, and only one exists |
//! | [`activate_switches_slots`] | activating A then B: A retired, B active, one active; a missing slot is `SlotNotFound`; both slots' data readable until A is dropped |
//! | [`commit_is_conditional`] | writes and a multi-partition checkpoint stored together; a stale `expected` is `Moved { actual: Some(stored) }` and stores nothing (writes, checkpoint, dead letters); a missing slot is `Moved { actual: None }` and is not created |
//! | [`concurrent_commits_one_wins`] | 8 tasks commit from one checkpoint: one `Committed`, the rest `Moved` to its checkpoint; only its writes stored |
//! | [`drop_slot_deletes_everything`] | the active slot is `SlotActive`; a retired or building slot loses its listing, checkpoint, data and dead letters, and refuses commits; a missing slot is fine; numbers are never reused |
//! | [`clear_slot_empties_in_place`] | data, dead letters gone, checkpoint `START`, number, version and state kept, other slots untouched; a missing slot is `SlotNotFound` |
//! | [`slots_record_their_store`] | a slot lists the store it was created for; `Resume` for another store makes a new slot; clearing for another store records it |
//! | [`lease_has_one_owner`] | one owner at a time; renewing extends; expiry hands over; only the holder releases; one lease per slot |
//! | [`dead_letters_park_and_unpark`] | parked in commits, listed in the order parked with every field; no duplicates; `unpark` removes exactly its ids, and only in an accepted commit; per slot |
//! | [`control_flags_per_projection`] | not paused by default; `paused` set and cleared reads back; per projection |
//! | [`status_last_report_wins`] | none at first; a report reads back with every field; the last report wins; per projection |
//! | [`projections_are_isolated`] | two projections never see each other's slots, checkpoints, data, dead letters, activations or clears |
//!
//! Times a target stores (a dead letter's `parked_at`, a status report's `at`) may come back up
//! to a second off, for targets that keep coarser time. The lease case sleeps past a 300 ms
//! lease twice, so it takes about a second.
//!
//! The cases need a Tokio runtime; they spawn tasks, so use the multi-threaded one to get real
//! parallelism.
//!
//! # Running it
//!
//! All cases, each on a target from `make`:
//!
//! ```
//! use foldline::InMemoryTarget;
//! use foldline::testing::{KeyValueModel, target_conformance};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! # async fn main() {
//! target_conformance::run_all(async || InMemoryTarget::<KeyValueModel>::new()).await;
//! # }
//! ```
//!
//! A target's test file usually runs one test per case instead, with
//! [`projection_target_conformance_tests!`](crate::projection_target_conformance_tests), so a
//! failure names the case in the test report and cases run in parallel. A target other than
//! [`InMemoryTarget`] implements [`TargetProbe`] in its test crate.

mod commit;
mod control;
mod dead_letters;
mod fixture;
mod isolation;
mod lease;
mod slots;
mod stores;

pub use commit::{commit_is_conditional, concurrent_commits_one_wins};
pub use control::{control_flags_per_projection, status_last_report_wins};
pub use dead_letters::dead_letters_park_and_unpark;
pub use isolation::projections_are_isolated;
pub use lease::lease_has_one_owner;
pub use slots::{
    activate_switches_slots, clear_slot_empties_in_place, concurrent_resume_gets_one_slot,
    drop_slot_deletes_everything, slots_create_and_resume,
};
pub use stores::slots_record_their_store;

use std::future::Future;

use super::{KeyValueModel, KeyValueWrites};
use crate::error::Result;
use crate::names::ProjectionName;
use crate::projection::{InMemoryTarget, ProjectionTarget, SlotId};

/// What the suite needs beyond [`ProjectionTarget`]: a way to write and read a counter.
///
/// A target's test crate implements it for the target with a model of named counters (for
/// [`InMemoryTarget<KeyValueModel>`] it is implemented here). Where the target has an
/// inherent method named `read` too, as [`InMemoryTarget`] does, call this one as
/// `TargetProbe::read(&target, ..)`:
///
/// ```
/// use foldline::testing::target_conformance::TargetProbe;
/// use foldline::testing::{KeyValueModel, KeyValueWrites};
/// use foldline::{
///     Checkpoint, Commit, InMemoryTarget, NewSlot, ProjectionName, ProjectionTarget, StoreIdentity,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// type Target = InMemoryTarget<KeyValueModel>;
/// let target = Target::new();
/// let name = ProjectionName::new("probed")?;
/// let store = StoreIdentity::new("example");
/// let slot = target.create_slot(&name, 1, NewSlot::Resume, &store).await?.slot;
/// let mut writes = KeyValueWrites::default();
/// Target::put(&mut writes, "seen", 3);
/// target.commit(&name, slot, Commit::new(Checkpoint::START, Checkpoint::START, writes)).await?;
/// assert_eq!(TargetProbe::read(&target, &name, slot, "seen").await?, Some(3));
/// assert_eq!(TargetProbe::read(&target, &name, slot.next(), "seen").await?, None);
/// # Ok(())
/// # }
/// ```
pub trait TargetProbe: ProjectionTarget + Clone {
    /// Adds to `writes` a write that sets counter `key` to `value` (replacing any earlier value).
    fn put(writes: &mut Self::Writes, key: &str, value: u64);

    /// The value of counter `key` in `slot`'s read model; `None` when absent (or the slot is
    /// gone).
    fn read(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;
}

impl TargetProbe for InMemoryTarget<KeyValueModel> {
    fn put(writes: &mut KeyValueWrites, key: &str, value: u64) {
        writes.put(key, value);
    }

    async fn read(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> Result<Option<u64>> {
        Ok(self
            .read_slot(projection, slot, |model| model.get(key))
            .flatten())
    }
}

/// Runs every case, one after the other, each on a target from `make`.
///
/// # Panics
///
/// At the first case the target fails, naming the case and what went wrong.
pub async fn run_all<T, F>(make: F)
where
    T: TargetProbe,
    F: AsyncFn() -> T,
{
    slots_create_and_resume(make().await).await;
    concurrent_resume_gets_one_slot(make().await).await;
    activate_switches_slots(make().await).await;
    commit_is_conditional(make().await).await;
    concurrent_commits_one_wins(make().await).await;
    drop_slot_deletes_everything(make().await).await;
    clear_slot_empties_in_place(make().await).await;
    slots_record_their_store(make().await).await;
    lease_has_one_owner(make().await).await;
    dead_letters_park_and_unpark(make().await).await;
    control_flags_per_projection(make().await).await;
    status_last_report_wins(make().await).await;
    projections_are_isolated(make().await).await;
}

/// One `#[tokio::test]` per [`ProjectionTarget`] conformance case, for a target's test file,
/// so a failure names its case in the test report and the cases run in parallel. The list of
/// cases lives here, next to [`run_all`], so no target can fall behind when a case is added.
///
/// `guard = setup => target`: each test runs `let guard = setup;` (an `.await` is allowed),
/// then the case on `target`, which must implement [`TargetProbe`]; `guard` lives until the
/// test ends (a key prefix to delete, a temporary directory). The calling crate needs `tokio`
/// with the `macros` and `rt-multi-thread` features.
///
/// ```
/// // In a test file: the in-memory target, no guard needed. A target on disk writes something
/// // like `dir = tempfile::tempdir().unwrap() => MyTarget::open(dir.path()).unwrap()`.
/// foldline::projection_target_conformance_tests!(
///     target = foldline::InMemoryTarget::<foldline::testing::KeyValueModel>::new() => target
/// );
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! projection_target_conformance_tests {
    ($guard:pat = $setup:expr => $target:expr) => {
        $crate::__conformance_tests!(@in target_conformance; $guard = $setup => $target;
            slots_create_and_resume,
            concurrent_resume_gets_one_slot,
            activate_switches_slots,
            commit_is_conditional,
            concurrent_commits_one_wins,
            drop_slot_deletes_everything,
            clear_slot_empties_in_place,
            slots_record_their_store,
            lease_has_one_owner,
            dead_letters_park_and_unpark,
            control_flags_per_projection,
            status_last_report_wins,
            projections_are_isolated,
        );
    };
}
