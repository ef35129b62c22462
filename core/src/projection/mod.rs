//! Projections: fold the global feed into read models, exactly once in effect.
//!
//! A [`Projection`] is plain code: a name, a version and a handler that turns one event into
//! writes (`Self::Writes`, a value you can inspect in a unit test). A [`ProjectionTarget`]
//! (Redis, Tantivy, [`InMemoryTarget`]) stores those writes *together with* the checkpoint
//! they lead to, in one atomic commit that only succeeds if the checkpoint is still the one
//! the batch started from. The [`Projector`] runtime connects the two: it reads the feed in
//! batches, applies the handler, commits, then follows the store live.
//!
//! # Slots, versions and blue/green rebuilds
//!
//! A target keeps each build of a projection in its own *slot* (a key prefix, an index
//! directory), numbered 1, 2, 3… and tagged with the projection version that built it. One
//! slot is *active*: readers resolve it through an alias. Bumping [`Projection::VERSION`]
//! makes the projector build a new slot beside the active one, which keeps serving reads;
//! once the new slot has caught up with the store, the alias switches atomically and the old
//! slot is dropped. An interrupted build resumes from its own checkpoint.
//!
//! # Exactly once in effect
//!
//! - every commit carries the batch's writes and its new checkpoint, atomically, and is
//!   refused if the stored checkpoint moved since the batch started ([`CommitOutcome::Moved`]);
//! - events at or below the stored checkpoint are skipped, so a replay after a crash is
//!   harmless;
//! - a lease per slot keeps a second instance idle while the first one runs (the conditional
//!   commit is what makes that safe; the lease only avoids wasted work).

mod envelope;
mod projector;
mod target;

pub use envelope::{AnyEvent, Envelope, FeedEvent};
pub use projector::{
    PoisonPolicy, ProjectionOverview, Projector, ProjectorHandle, ProjectorOptions,
    ProjectorProgress, RebuildMode,
};
pub use target::{
    Commit, CommitOutcome, DeadLetter, InMemoryTarget, MemoryModel, NewSlot, ProjectionControl,
    ProjectionTarget, ProjectionTargetExt, ProjectorHeartbeat, ProjectorState, SlotId, SlotInfo,
    SlotState,
};

use crate::error::BoxError;
use crate::names::ProjectionName;

/// A read model built from the global feed: a name, a version, and a handler that turns one
/// event into writes for a [`ProjectionTarget`].
///
/// Handlers are pure: they see the event and add writes, they do no I/O. That is what lets
/// the runtime retry, skip and replay them, and what makes them testable without the target:
///
/// ```
/// use foldline::{DomainEvent, Envelope, Projection, ProjectionName};
/// use serde::{Deserialize, Serialize};
/// use std::collections::BTreeMap;
///
/// #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
/// enum AccountEvent { Deposited { cents: u64 } }
///
/// /// Balance per account, as a map of increments.
/// struct Balances;
///
/// impl Projection for Balances {
///     const NAME: ProjectionName = ProjectionName::from_static("balances");
///     type Event = AccountEvent;
///     type Writes = BTreeMap<String, i64>;
///
///     fn handle(&self, event: Envelope<'_, AccountEvent>, writes: &mut Self::Writes)
///         -> Result<(), foldline::BoxError>
///     {
///         let AccountEvent::Deposited { cents } = event.event;
///         *writes.entry(event.recorded.stream_id.to_string()).or_default() += i64::try_from(cents)?;
///         Ok(())
///     }
/// }
///
/// // A unit test of the handler: no store, no target.
/// use foldline::{JsonCodec, NewEvent, Position, RecordedEvent, StreamId, Version};
/// let event = AccountEvent::Deposited { cents: 250 };
/// let new = NewEvent::encode(&event, &JsonCodec)?;
/// let recorded = RecordedEvent::from_new(
///     new, StreamId::new("account-1")?, Version::new(1), Position::new(0, 0, 1),
///     std::time::SystemTime::now(),
/// );
/// let mut writes = BTreeMap::new();
/// Balances.handle(Envelope::new(event, &recorded), &mut writes)?;
/// assert_eq!(writes["account-1"], 250);
/// # Ok::<(), foldline::BoxError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline projection",
    note = "implement `foldline::Projection`: a NAME, the Event it reads, its Writes and `handle`"
)]
pub trait Projection: Send + Sync + 'static {
    /// The projection's name: its key prefix, index directory and admin name.
    const NAME: ProjectionName;

    /// The projection's version. Bumping it rebuilds the read model into a new slot, blue/green.
    const VERSION: u32 = 1;

    /// The events it reads: a [`DomainEvent`](crate::DomainEvent) type (events of other types
    /// in the feed are skipped) or [`AnyEvent`] for every event, undecoded (read it from
    /// [`Envelope::recorded`]).
    type Event: FeedEvent;

    /// What the handler produces: the target's batch of writes (`RedisWrites`, `TantivyWrites`).
    type Writes: Default + Send + 'static;

    /// Adds the writes `event` causes to `writes`, the batch being built.
    ///
    /// # Errors
    ///
    /// Any error makes the event a *poison* event: the projector retries it with backoff, then
    /// stops or dead-letters it ([`PoisonPolicy`]). When it fails, whatever it added to
    /// `writes` is discarded.
    fn handle(
        &self,
        event: Envelope<'_, Self::Event>,
        writes: &mut Self::Writes,
    ) -> Result<(), BoxError>;

    /// Called once the projector has caught up with the store (after a start or rebuild).
    fn on_caught_up(&self) {}
}
