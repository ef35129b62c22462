//! foldline: CQRS and event sourcing for Rust.
//!
//! You describe your domain as **aggregates** that decide on **commands** and record **domain
//! events**; an [`EventStore`] keeps the events in append-only streams with a global feed;
//! projections fold that feed into read models. This crate holds the domain model, the store
//! contracts, command execution and an in-memory store; backends live in their own crates
//! (`foldline-postgres`, `foldline-kafka`, `foldline-redis`, `foldline-tantivy`).
//!
//! # Quick start
//!
//! ```
//! use foldline::{Aggregate, Command, CommandExecutor, DomainEvent, InMemoryEventStore};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
//! enum AccountEvent {
//!     Opened { owner: String },
//!     #[foldline(version = 2, upcast(v1 = DepositedV1))]
//!     Deposited { cents: u64 },
//! }
//!
//! /// How `Deposited` looked before amounts were kept in cents.
//! #[derive(Deserialize)]
//! struct DepositedV1 { amount: u64 }
//! impl From<DepositedV1> for AccountEvent {
//!     fn from(old: DepositedV1) -> Self { AccountEvent::Deposited { cents: old.amount * 100 } }
//! }
//!
//! #[derive(Debug, Command)]
//! enum AccountCommand {
//!     Open { #[foldline(id)] account: String, owner: String },
//!     Deposit { #[foldline(id)] account: String, cents: u64 },
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! enum AccountError {
//!     #[error("the account is already open")]
//!     AlreadyOpen,
//!     #[error("the account is not open")]
//!     NotOpen,
//! }
//!
//! #[derive(Debug, Default, Aggregate)]
//! #[foldline(id = String, command = AccountCommand, event = AccountEvent, error = AccountError)]
//! struct Account { open: bool, balance: u64 }
//!
//! impl Account {
//!     fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
//!         match command {
//!             AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
//!             AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
//!             AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
//!             AccountCommand::Deposit { cents, .. } => Ok(vec![AccountEvent::Deposited { cents: *cents }]),
//!         }
//!     }
//!
//!     fn apply(&mut self, event: &AccountEvent) {
//!         match event {
//!             AccountEvent::Opened { .. } => self.open = true,
//!             AccountEvent::Deposited { cents } => self.balance += cents,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let bank = CommandExecutor::new(InMemoryEventStore::new());
//! bank.execute::<Account>(AccountCommand::Open { account: "a1".into(), owner: "Ada".into() }).await?;
//! bank.execute::<Account>(AccountCommand::Deposit { account: "a1".into(), cents: 250 }).await?;
//! let account = bank.load::<Account>(&"a1".to_string()).await?;
//! assert_eq!(account.state.balance, 250);
//! assert_eq!(account.version.get(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Concepts
//!
//! - [`DomainEvent`]: a stable type name and schema version per variant; payloads through a
//!   [`Codec`] (JSON by default); older versions upcast on read through typed converters.
//! - [`Aggregate`] + [`Command`]: pure, synchronous decisions; the derive fills in the rest.
//! - [`EventStore`]: `append` with an [`ExpectedVersion`] and optional [`IdempotencyKey`],
//!   `read_stream`, `read_all` / `subscribe` over the global feed from a [`Checkpoint`], `head`.
//! - [`Projection`] + [`Projector`]: read models folded from the feed into a
//!   [`ProjectionTarget`] (Redis, Tantivy, memory), exactly once in effect, with blue/green
//!   rebuilds; see [`guide::projections`].
//! - [`ProcessManager`]: a business process across aggregates (a transfer, an order) as
//!   pure decisions: an [`Input`] (a correlated event, a refused command, a timeout) in,
//!   [`Action`]s out (send a command, schedule or cancel a timeout, complete, fail), with the
//!   rules every runner applies in [`Instance`] and deterministic command keys
//!   ([`command_key`]); [`StoredInstance`] records each decision in the instance's stream
//!   before it is carried out and recognizes a redelivered input; [`TimerStore`] keeps
//!   timeouts until due (in memory:
//!   [`InMemoryTimerStore`]; PostgreSQL: `foldline-postgres`); [`ProcessRunner`] hands
//!   correlated events and due timers to their instances and carries the recorded decisions
//!   out through a [`CommandDispatcher`], exactly once in effect; on the projector runtime
//!   as a [`ProcessProjection`] read into a [`ProcessTarget`] (checkpoint, lease, pause,
//!   status as for any projection), with [`ProcessRunner::run_timers`] beside it firing
//!   due timers.
//! - [`CommandExecutor`]: load (snapshot + later events), decide, append; retries the decision
//!   on a version conflict with jittered backoff; optionally keeps recently written aggregates
//!   in memory ([`with_cache`](CommandExecutor::with_cache)) so the next command skips the read.
//! - [`Error`]: what went wrong, asked through helpers ([`Error::is_conflict`],
//!   [`Error::is_transient`], [`Error::is_invalid_input`], [`Error::is_decode`],
//!   [`Error::is_corrupt`]). A stream whose stored versions skip one (a row deleted by hand)
//!   is [`Error::StreamGap`] on load, never folded. A message shows a value from outside (a
//!   refused name, a checkpoint's text) through [`Shown`]: control characters escaped and cut
//!   short, so it stays one short line.
//! - For backend crates: [`DriverErrors`] maps a driver's errors to [`BackendError`]s the same
//!   way in every backend, and [`redact_url`] hides passwords in the URLs they print.
//!
//! # Feature flags
//!
//! - `derive` (default): `#[derive(DomainEvent, Command, Aggregate, ProcessManager)]`.
//! - `testing`: the store conformance suite (`testing::conformance`) and the given/when/then
//!   kits for aggregates (`testing::AggregateTest`) and process managers
//!   (`testing::ProcessTest`).
//!
//! # Examples
//!
//! `examples/example-bank` in the repository: accounts, transfers, a conflict retried, a read
//! model folded from the global feed. Run it with `cargo run -p example-bank`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod aggregate;
mod backend;
mod codec;
mod command;
mod error;
mod event;
mod names;
mod position;
mod process;
mod projection;
mod shown;
mod store;
mod version;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

/// Guides: how the parts fit together, longer than one item's docs.
pub mod guide {
    #[doc = include_str!("docs/projections.md")]
    pub mod projections {}

    #[doc = include_str!("docs/processes.md")]
    pub mod processes {}
}

pub use aggregate::{Aggregate, AggregateId, Command};
pub use backend::{DriverErrors, redact_url};
pub use codec::{Codec, JsonCodec};
pub use command::{
    CommandError, CommandExecutor, CommandOptions, CommandOutcome, DEFAULT_CACHE_CAPACITY, Loaded,
    RetryPolicy,
};
pub use error::{
    BackendError, BackendErrorKind, BoxError, Error, NameKind, PoisonEvent, Result, error_chain,
};
pub use event::{
    DecodeError, DomainEvent, EventMetadata, NewEvent, RecordedEvent, UnreadableEvent,
};
pub use names::{EventType, IdempotencyKey, NameRule, ProjectionName, SchemaName, StreamId};
pub use position::{Checkpoint, Position};
pub use process::{
    Action, ActionIds, ActionReport, CommandDispatcher, CommandFate, DECIDED, Decision,
    DecisionReport, Dispatched, Handled, InMemoryTimerStore, Input, Instance, InstanceReport,
    Outcome, ProcessInputs, ProcessManager, ProcessProjection, ProcessRunner, ProcessStatus,
    ProcessTarget, RecordedDecision, Retried, StoredInstance, TimeoutFate, Timer, TimerStore,
    command_key, instance_stream,
};
pub use projection::{
    AnyEvent, Commit, CommitOutcome, DeadLetter, Envelope, FeedEvent, InMemoryTarget, MemoryModel,
    NewSlot, PoisonPolicy, Projection, ProjectionControl, ProjectionOverview, ProjectionTarget,
    ProjectionTargetExt, Projector, ProjectorHandle, ProjectorHeartbeat, ProjectorOptions,
    ProjectorProgress, ProjectorState, RebuildMode, SlotId, SlotInfo, SlotState,
};
pub use shown::Shown;
pub use store::{
    AppendRequest, AppendResult, EventBatch, EventStore, EventStoreExt, FeedHolder, FeedHolderKind,
    HeldFeed, InMemoryEventStore, ManagedStore, NoSnapshots, Snapshot, SnapshotStore,
    StoreIdentity, StoreLimits, Subscription,
};
pub use version::{ExpectedVersion, Version};

#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use foldline_macros::{Aggregate, Command, DomainEvent, ProcessManager};

/// Not public API: what the derives' generated code refers to. May change in any release.
#[doc(hidden)]
pub mod __private {
    pub use serde;

    pub use crate::aggregate::{Aggregate, Command};
    pub use crate::codec::Codec;
    pub use crate::error::BoxError;
    pub use crate::event::{DecodeError, DomainEvent};
    pub use crate::names::EventType;
    pub use crate::process::{Action, Input, ProcessManager};
    pub use crate::projection::Envelope;

    pub use ::core::convert::From;
    pub use ::core::option::Option::{self, None, Some};
    pub use ::core::result::Result::{self, Err, Ok};
    pub use ::std::boxed::Box;
    pub use ::std::string::String;
    pub use ::std::vec::Vec;
}
