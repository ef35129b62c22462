//! PostgreSQL event store for [foldline]: a gap-free global feed, group commit,
//! snapshots and idempotency keys, in a schema you name.
//!
//! # Quick start
//!
//! ```no_run
//! use foldline::{CommandExecutor, EventStore, SchemaName};
//! use foldline_postgres::{PgEventStore, PgStoreOptions};
//!
//! # #[tokio::main]
//! # async fn main() -> foldline::Result<()> {
//! let options = PgStoreOptions::from_url("postgres://postgres@127.0.0.1:5432/postgres")?
//!     .with_schema(SchemaName::new("bank")?);
//! let store = PgEventStore::connect(options).await?;
//! store.migrate().await?; // creates `bank.events`, `bank.streams`, ... once
//! let commands = CommandExecutor::new(store.clone()).with_snapshots(store.clone());
//! let head = store.head().await?;
//! # let _ = (commands, head);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - **Tables** (in the schema): `events` (global `position` identity, the writing
//!   transaction's `xid8`, stream id and version, event id, type, schema version, `jsonb`
//!   payload and metadata, `recorded_at`; unique `(stream_id, stream_version)` and `event_id`;
//!   index `(xid, position)`), `streams` (current version per stream), `snapshots`,
//!   `idempotency_keys`, `schema_migrations`. [`PgEventStore::migrate`] creates and upgrades
//!   them under an advisory lock.
//! - **Appends** go through one writer task per store instance, which coalesces concurrent
//!   appends into one transaction (group commit) with a multi-row insert; each append is
//!   checked on its own, in arrival order, so a version conflict fails only that append.
//!   Versions are checked under a per-stream advisory lock, and the unique constraint is the
//!   last guard; an idempotency key is stored in the same transaction as its events.
//! - **The global feed** ([`read_all`](foldline::EventStore::read_all),
//!   [`subscribe`](foldline::EventStore::subscribe)) is ordered by `(xid, position)` and shows
//!   only transactions below the visibility horizon, so a reader never skips an event that
//!   commits late and never sees one that rolls back. A transaction with a transaction id,
//!   held open anywhere on the server (any database) or prepared for a two-phase commit and
//!   never finished, holds the feed back until it ends: events committed meanwhile wait,
//!   outside the feed and its head, so outside every projection's lag.
//!   [`ManagedStore::feed_held_back`](foldline::ManagedStore::feed_held_back) names the
//!   holders (sessions by pid, prepared transactions by gid), counts the committed events
//!   waiting behind them and says for how long the feed has been held; `foldline status` shows
//!   it and `status --check --max-held-seconds` fails on it.
//!   Subscribers are woken by LISTEN/NOTIFY and poll as a fallback. Positions are
//!   `0:<xid>:<position>`.
//! - **Payloads** must be JSON (they are stored as `jsonb`, which normalises whitespace and key
//!   order); anything else is refused with [`Error::InvalidPayload`](foldline::Error::InvalidPayload)
//!   before it is queued. Snapshots are bytes (`bytea`), any codec.
//! - **Errors** are `foldline::Error`s; failures of the server are
//!   [`Error::Backend`](foldline::Error::Backend) with the driver's error as the source,
//!   [`is_transient`](foldline::Error::is_transient) for lost connections and shutdowns. An
//!   append whose commit was interrupted may or may not have been written: retry it with an
//!   idempotency key to be sure.
//!
//! # Feature flags
//!
//! - `testing`: [`PgTestSchema`], a fresh migrated schema per test.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod error;
mod feed;
mod hash;
mod managed;
mod migrate;
mod options;
mod rows;
mod snapshot;
mod sql;
mod store;
#[cfg(feature = "testing")]
mod testing;
mod writer;

pub use migrate::PgMigrationReport;
pub use options::{DEFAULT_URL, ENV_URL, PgStoreOptions};
pub use store::PgEventStore;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::PgTestSchema;
