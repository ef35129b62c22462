//! Aggregates decide on commands and fold events; commands say which aggregate they are for.

use std::fmt;

use crate::codec::Codec;
use crate::error::BoxError;
use crate::event::DomainEvent;

/// A consistency boundary: it decides what happens in answer to a command
/// ([`handle`](Aggregate::handle)) and folds what happened into its state
/// ([`apply`](Aggregate::apply)).
///
/// Deciding is pure and synchronous: no I/O, no clock, no randomness; a decision that needs a
/// service gets its answer passed in through the command. That keeps aggregates testable with
/// `foldline::testing::AggregateTest` and lets the executor re-run a decision after a version
/// conflict.
///
/// Usually derived: `#[derive(Aggregate)]` fills in the name, the associated types and the
/// snapshot policy, and forwards to inherent `handle` and `apply` methods you write.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline aggregate",
    note = "derive it with `#[derive(foldline::Aggregate)]` and `#[foldline(id = .., command = .., event = .., error = ..)]`"
)]
pub trait Aggregate: Default + Send + Sync + Sized + 'static {
    /// The aggregate's name; its streams are named `"{NAME}-{id}"`.
    const NAME: &'static str;

    /// Take a snapshot every this many events (`None`: never).
    const SNAPSHOT_EVERY: Option<u64> = None;

    /// The version of the snapshot's shape; bump it when the state's fields change, and old
    /// snapshots are ignored instead of failing to decode.
    const SNAPSHOT_VERSION: u32 = 1;

    /// The aggregate's identity.
    type Id: AggregateId;

    /// What it can be asked to do.
    type Command: Command<Id = Self::Id>;

    /// What it records as having happened.
    type Event: DomainEvent;

    /// Why it refuses a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decides which events a command causes, or refuses it.
    ///
    /// # Errors
    ///
    /// The aggregate's own error when it refuses the command.
    fn handle(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Folds one event into the state. Must not fail: the event already happened.
    fn apply(&mut self, event: &Self::Event);

    /// Encodes the state for a snapshot; `Ok(None)` when this aggregate takes no snapshots.
    /// The derive implements it (with serde) when `snapshot(every = N)` is given.
    ///
    /// # Errors
    ///
    /// Whatever the codec reports.
    fn encode_snapshot<C: Codec>(&self, codec: &C) -> Result<Option<Vec<u8>>, BoxError> {
        let _ = codec;
        Ok(None)
    }

    /// Decodes a state encoded by [`encode_snapshot`](Aggregate::encode_snapshot); `Ok(None)`
    /// when this aggregate takes no snapshots.
    ///
    /// # Errors
    ///
    /// Whatever the codec reports.
    fn decode_snapshot<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Option<Self>, BoxError> {
        let _ = (codec, bytes);
        Ok(None)
    }
}

/// An aggregate's identity: rendered into its stream id with [`Display`](fmt::Display).
pub trait AggregateId: fmt::Display + fmt::Debug + Clone + Send + Sync + 'static {}

impl<T: fmt::Display + fmt::Debug + Clone + Send + Sync + 'static> AggregateId for T {}

/// A request to one aggregate instance; it knows which one. Derived with `#[derive(Command)]`
/// and a `#[foldline(id)]` field on each variant.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline command",
    note = "derive it with `#[derive(foldline::Command)]` and mark the aggregate id field with `#[foldline(id)]`"
)]
pub trait Command: Send + Sync + 'static {
    /// The id type of the aggregate the command is for.
    type Id: AggregateId;

    /// Which aggregate instance the command is for.
    fn aggregate_id(&self) -> &Self::Id;

    /// The command's name, for tracing and errors (`"Deposit"`).
    fn command_name(&self) -> &'static str;
}
