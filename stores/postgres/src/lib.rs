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
//!   index `(xid, position)`, and one on the metadata's correlation id for `foldline trace`),
//!   `streams` (current version per stream), `snapshots`, `idempotency_keys`, `store` (an id
//!   drawn when the schema is created), `process_timers` (the timers of process managers:
//!   [`PgEventStore`] is a [`foldline::TimerStore`]; due ones are claimed with
//!   `FOR UPDATE SKIP LOCKED` for a lease), `schema_migrations`.
//!   [`PgEventStore::migrate`] creates and upgrades them under an advisory lock.
//! - **Identity**: [`EventStore::identity`](foldline::EventStore::identity) is
//!   `postgres:<system identifier>/<database>/<schema>/<store id>`. Projection slots record it,
//!   so a projector pointed at another server, database or schema (or at the same schema
//!   dropped and created again, or restored from a logical dump elsewhere) with the same Redis
//!   prefix or Tantivy directory is refused with
//!   [`Error::StoreMismatch`](foldline::Error::StoreMismatch) instead of resuming from a
//!   checkpoint that means nothing there. A physical backup restored in place (point-in-time
//!   recovery) keeps all four: rebuild projections after one.
//! - **Appends** go through one writer task per store instance, which coalesces concurrent
//!   appends into one transaction (group commit) with a multi-row insert; each append is
//!   checked on its own, in arrival order, so a version conflict fails only that append.
//!   Versions are checked under a per-stream advisory lock, and the unique constraint is the
//!   last guard; an idempotency key is stored in the same transaction as its events. An append
//!   never fails because of another one in its batch: should the server refuse the batch (an
//!   event id already stored, a value the check below missed), the writer commits each half on
//!   its own, and so on, until the culprit is alone.
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
//!   Subscribers are woken by LISTEN/NOTIFY (sent after commits by a task of the store,
//!   outside the appending transactions) and poll as a fallback. Positions are
//!   `0:<xid>:<position>`.
//! - **Payloads** must be JSON that PostgreSQL's `jsonb` accepts (it normalises whitespace and
//!   key order, and keeps the last of duplicate keys). That is stricter than JSON: valid UTF-8
//!   inside strings too, no `\u0000` escape, no unpaired surrogate escape (`\ud800`), numbers
//!   that `numeric` holds (not `1e131072` nor `1e-16384`), and, by this store's own bound, at
//!   most 128 nested arrays and objects. The same holds for the metadata, which is `jsonb` too
//!   (a NUL in one of its strings is refused). Anything else is refused with
//!   [`Error::InvalidPayload`](foldline::Error::InvalidPayload) before the append is queued, so
//!   it fails alone; the error's source says what is wrong and at which byte offset. Snapshots
//!   are bytes (`bytea`), any codec.
//! - **Errors** are `foldline::Error`s; failures of the server are
//!   [`Error::Backend`](foldline::Error::Backend) with the driver's error as the source,
//!   [`is_transient`](foldline::Error::is_transient) for lost connections and shutdowns. An
//!   append whose commit was interrupted may or may not have been written: retry it with an
//!   idempotency key to be sure.
//! - **Rows written around the store** (raw SQL, a restore from elsewhere) are bad data, not
//!   outages: a row whose stream id, event type, metadata or schema version foldline cannot
//!   read is returned in its place in the feed and in its stream, marked
//!   [`UnreadableEvent`](foldline::UnreadableEvent) with its stored values (projections stop on
//!   it or park it; loading its stream is
//!   [`Error::UnreadableEvent`](foldline::Error::UnreadableEvent)); a stream missing a version
//!   does not load ([`Error::StreamGap`](foldline::Error::StreamGap)).
//!
//! # Feature flags
//!
//! - `testing`: [`PgTestSchema`], a fresh migrated schema per test.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod error;
mod feed;
mod hash;
mod identity;
mod jsonb;
mod managed;
mod migrate;
mod options;
mod rows;
mod snapshot;
mod sql;
mod store;
#[cfg(feature = "testing")]
mod testing;
mod timers;
mod writer;

pub use migrate::PgMigrationReport;
pub use options::{DEFAULT_URL, ENV_URL, PgStoreOptions};
pub use store::PgEventStore;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::PgTestSchema;
