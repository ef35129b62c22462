//! The event store contract every backend implements, and what travels through it.

mod append;
mod ext;
mod identity;
mod limits;
mod managed;
mod memory;
mod snapshot;
mod subscription;

pub use append::{AppendRequest, AppendResult, EventBatch};
pub use ext::EventStoreExt;
pub use identity::StoreIdentity;
pub use limits::StoreLimits;
pub use managed::{FeedHolder, FeedHolderKind, HeldFeed, ManagedStore};
pub use memory::InMemoryEventStore;
pub use snapshot::{NoSnapshots, Snapshot, SnapshotStore};
pub use subscription::Subscription;

use std::future::Future;

use crate::error::Result;
use crate::event::RecordedEvent;
use crate::names::{IdempotencyKey, StreamId};
use crate::position::Checkpoint;
use crate::version::Version;

/// An append-only store of event streams with a global feed.
///
/// The contract, checked for every implementation by the conformance suite
/// (`foldline::testing::conformance`, feature `testing`):
///
/// - events of one stream are totally ordered by version, with no gaps, starting at 1;
/// - an append is all-or-nothing and checks its [`ExpectedVersion`](crate::ExpectedVersion)
///   atomically: of concurrent appends expecting the same version, exactly one succeeds, the
///   others fail with [`Error::Conflict`](crate::Error::Conflict);
/// - an append with an idempotency key that was already used writes nothing and returns the
///   first append's result;
/// - a reader of the global feed ([`read_all`](EventStore::read_all),
///   [`subscribe`](EventStore::subscribe)) resuming from a checkpoint sees every committed event
///   exactly once, in store order, never one that later disappears and never skipping one.
///
/// Implement it with `async fn`; the trait spells out `+ Send` so a non-`Send` implementation
/// is rejected at the impl, not in a user's `tokio::spawn`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline event store",
    note = "stores: `foldline::InMemoryEventStore`, `foldline_postgres::PgEventStore`, `foldline_kafka::KafkaEventStore`"
)]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `request.events` to `request.stream` if its version matches `request.expected`.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`](crate::Error::Conflict) when the version does not match;
    /// [`Error::EventTooLarge`](crate::Error::EventTooLarge) /
    /// [`Error::TooManyEvents`](crate::Error::TooManyEvents) for input over the store's limits
    /// (nothing is written); [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Once the store has received the append, dropping the future does not
    /// withdraw it: it may still commit (PostgreSQL: it sits in the group-commit writer's
    /// batch; Kafka: in the producer's transaction), and the caller never learns the outcome.
    /// To be sure, give the append an [`IdempotencyKey`] and send it again: a repeat with the
    /// same key writes nothing and returns the first append's result (or look it up with
    /// [`find_idempotent`](EventStore::find_idempotent)). Without a key, read the stream
    /// before deciding again, as on a version conflict.
    fn append(&self, request: AppendRequest) -> impl Future<Output = Result<AppendResult>> + Send;

    /// Reads up to `limit` events of `stream` with version `>= from`, in version order. A
    /// stream that does not exist reads as empty.
    ///
    /// The events are returned as stored. A stream damaged outside the store (a row deleted
    /// by hand) reads with its gap; loading an aggregate from it checks the versions and
    /// fails with [`Error::StreamGap`](crate::Error::StreamGap), so stores need not check.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads; call it again.
    fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send;

    /// Reads up to `limit` events of the global feed after `after`, in store order, and the
    /// checkpoint to pass next time. An empty batch means nothing committed is there yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCheckpoint`](crate::Error::InvalidCheckpoint) for a checkpoint of
    /// another store; [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads; call it again with the same checkpoint.
    fn read_all(
        &self,
        after: &Checkpoint,
        limit: usize,
    ) -> impl Future<Output = Result<EventBatch>> + Send;

    /// Follows the global feed from `after`: first the events already stored, then new ones as
    /// they are committed.
    ///
    /// # Errors
    ///
    /// As [`read_all`](EventStore::read_all).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it resolves leaves nothing behind. The
    /// subscription's own [`next`](Subscription::next) is cancel safe too.
    fn subscribe(&self, after: Checkpoint) -> impl Future<Output = Result<Subscription>> + Send;

    /// The checkpoint just after the newest committed event: a reader there is caught up.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn head(&self) -> impl Future<Output = Result<Checkpoint>> + Send;

    /// Which store this is: the same for every handle on the same feed, different for any
    /// other feed (another schema, database or cluster, a restored copy). Projection slots
    /// record it, so a checkpoint is never resumed against a feed it does not belong to.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails (a store may ask it
    /// once and keep the answer).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn identity(&self) -> impl Future<Output = Result<StoreIdentity>> + Send;

    /// The result of the append that first used `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn find_idempotent(
        &self,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<AppendResult>>> + Send;
}
