//! The projection target contract: where a projection's read model lives, and everything the
//! projector runtime keeps beside it.
//!
//! - [`ProjectionTarget`] and [`Commit`]: the contract (this file);
//! - `slot.rs`: builds of a projection ([`SlotInfo`], [`SlotState`], [`NewSlot`]);
//! - `dead_letter.rs`: events parked after failing ([`DeadLetter`]);
//! - `status.rs`: operator flags and what projectors record about themselves;
//! - `ext.rs`: [`ProjectionTargetExt`], conveniences every target gets;
//! - `memory.rs`: [`InMemoryTarget`], the contract kept in memory.

mod dead_letter;
mod ext;
mod memory;
mod slot;
mod status;

pub use dead_letter::DeadLetter;
pub use ext::ProjectionTargetExt;
pub use memory::{InMemoryTarget, MemoryModel};
pub use slot::{NewSlot, SlotId, SlotInfo, SlotState};
pub use status::{ProjectionControl, ProjectorHeartbeat, ProjectorState};

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use crate::error::Result;
use crate::names::ProjectionName;
use crate::position::Checkpoint;
use crate::store::StoreIdentity;

/// Where a projection's read model lives (Redis, a Tantivy index, memory), and everything the
/// projector runtime keeps beside it: checkpoints, slots, leases, dead letters, control flags.
///
/// The contract every target keeps (checked by its own tests against the real service):
///
/// - **Atomic, conditional commits.** [`commit`](ProjectionTarget::commit) stores the writes,
///   the new checkpoint and the dead-letter changes all at once or not at all, and only if the
///   slot's checkpoint still equals [`Commit::expected`]; otherwise nothing is written and it
///   returns [`CommitOutcome::Moved`]. A crash at any point leaves writes and checkpoint in
///   agreement.
/// - **Slots.** Each build of a projection has its own slot; slot numbers only grow. At most
///   one slot per projection is active, and [`activate`](ProjectionTarget::activate) switches
///   it atomically: a reader resolves either the old slot or the new one, never a mix.
///   Dropping a slot deletes its checkpoint *first*, so a projector still writing to it gets
///   [`CommitOutcome::Moved`] instead of leaving stray writes.
/// - **Stores.** Each slot records the [`StoreIdentity`] of the store it is built from
///   ([`create_slot`](ProjectionTarget::create_slot), [`clear_slot`](ProjectionTarget::clear_slot)),
///   and [`slots`](ProjectionTarget::slots) returns it.
/// - **Leases.** At most one owner holds a slot's lease until it expires or is released.
///
/// All methods take the projection's name; those about one build also take its slot number.
///
/// # Cancel safety
///
/// The reads (`slots`, `checkpoint`, `dead_letters`, `control`, `heartbeat`) are cancel safe.
/// A write dropped before it returns may or may not have happened (a Redis script already
/// sent, a Tantivy commit already running on the blocking pool). That is safe for the
/// projector: it starts again from what the target has stored, and every commit is
/// conditional on the checkpoint it started from, so a commit that landed unseen makes the
/// next one come back [`CommitOutcome::Moved`] instead of applying the writes twice.
pub trait ProjectionTarget: Send + Sync + 'static {
    /// The batch of writes a projection's handler builds for this target.
    type Writes: Default + Send + 'static;

    /// Every slot of `projection`, ordered by slot number (empty for an unknown projection).
    fn slots(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Vec<SlotInfo>>> + Send;

    /// A slot to build `version` of `projection` from `store` into: with [`NewSlot::Resume`],
    /// the newest slot in state [`SlotState::Building`] of that version built from `store` if
    /// there is one; otherwise (and always with [`NewSlot::Fresh`]) a new, empty slot numbered
    /// above every earlier one, in state `Building`, with checkpoint [`Checkpoint::START`],
    /// recording `store` ([`SlotInfo::store`]). Atomic: two projectors asking at once for
    /// `Resume` get the same slot.
    fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> impl Future<Output = Result<SlotInfo>> + Send;

    /// Makes `slot` the one readers see, atomically; the previously active slot becomes
    /// [`SlotState::Retired`] (drop it with [`drop_slot`](ProjectionTarget::drop_slot)).
    ///
    /// # Errors
    ///
    /// [`Error::SlotNotFound`](crate::Error::SlotNotFound) when the slot does not exist.
    fn activate(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes everything of `slot` (checkpoint first, then data, dead letters, lease). Dropping
    /// a slot that does not exist does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::SlotActive`](crate::Error::SlotActive) for the active slot.
    fn drop_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Empties `slot` in place (data, dead letters; checkpoint back to
    /// [`Checkpoint::START`]), keeping its number, version and state, and records that it is
    /// now built from `store`: an in-place rebuild.
    ///
    /// # Errors
    ///
    /// [`Error::SlotNotFound`](crate::Error::SlotNotFound) when the slot does not exist.
    fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The checkpoint stored with `slot`'s read model; `None` when the slot does not exist.
    fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// Stores `commit` in `slot` atomically if the slot's checkpoint is `commit.expected`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped, the commit may still land. Read the slot's
    /// [`checkpoint`](ProjectionTarget::checkpoint) to learn whether it did (it equals
    /// `commit.checkpoint` then), and build the next commit from what is stored.
    fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<Self::Writes>,
    ) -> impl Future<Output = Result<CommitOutcome>> + Send;

    /// Takes or renews `slot`'s lease for `owner` until `ttl` from now. `Ok(false)` when
    /// another owner holds an unexpired lease.
    fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Gives `slot`'s lease up if `owner` holds it.
    fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The events parked in `slot`'s dead-letter list, oldest first.
    fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> impl Future<Output = Result<Vec<DeadLetter>>> + Send;

    /// The operator's flags for `projection` (all slots).
    fn control(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<ProjectionControl>> + Send;

    /// Replaces the operator's flags for `projection`.
    fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records what a projector of `projection` is doing, now (last writer wins).
    fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        heartbeat: &ProjectorHeartbeat,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The last heartbeat a projector of `projection` recorded, if any.
    fn heartbeat(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Option<ProjectorHeartbeat>>> + Send;
}

/// One commit of a projector: writes, the checkpoint they lead to, dead-letter changes.
#[derive(Debug)]
#[non_exhaustive]
pub struct Commit<W> {
    /// The checkpoint the slot must still have; otherwise nothing is written.
    pub expected: Checkpoint,
    /// The slot's checkpoint after this commit.
    pub checkpoint: Checkpoint,
    /// The read model's changes.
    pub writes: W,
    /// Events to add to the dead-letter list.
    pub park: Vec<DeadLetter>,
    /// Dead letters to remove (by [`DeadLetter::event_id`]): retried or discarded.
    pub unpark: Vec<Uuid>,
}

impl<W> Commit<W> {
    /// A commit of `writes` moving the checkpoint from `expected` to `checkpoint`.
    pub fn new(expected: Checkpoint, checkpoint: Checkpoint, writes: W) -> Self {
        Commit {
            expected,
            checkpoint,
            writes,
            park: Vec::new(),
            unpark: Vec::new(),
        }
    }

    /// Also parks `letters` in the dead-letter list.
    pub fn with_park(mut self, letters: Vec<DeadLetter>) -> Self {
        self.park = letters;
        self
    }

    /// Also removes the dead letters of these events.
    pub fn with_unpark(mut self, event_ids: Vec<Uuid>) -> Self {
        self.unpark = event_ids;
        self
    }
}

/// What a [`ProjectionTarget::commit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitOutcome {
    /// Everything was stored.
    Committed,
    /// Nothing was stored: the slot's checkpoint was `actual` (`None`: the slot is gone), not
    /// the expected one. Another instance wrote, or an operator reset or dropped the slot.
    Moved {
        /// The checkpoint found.
        actual: Option<Checkpoint>,
    },
}
