//! Redis projection target for [foldline]: read models kept in Redis strings,
//! hashes, sets and sorted sets, committed together with their checkpoint in one Redis transaction,
//! so a replay is exactly once in effect.
//!
//! A projection's handler adds typed operations to a [`RedisWrites`] batch; [`RedisTarget`]
//! (a [`foldline::ProjectionTarget`]) commits each batch with the checkpoint it leads to;
//! applications read the active version through [`RedisReader`]. [`RedisKeyspace`] applies the
//! same batches in memory, so the projection runs in tests and examples without a server.
//!
//! # Quick start
//!
//! ```no_run
//! use foldline::{AnyEvent, BoxError, Envelope, Projection, ProjectionName};
//! use foldline_redis::{RedisTarget, RedisTargetOptions, RedisWrites};
//!
//! /// How many events of each type the store holds, and each stream's latest version.
//! struct EventCounts;
//!
//! impl Projection for EventCounts {
//!     const NAME: ProjectionName = ProjectionName::from_static("event_counts");
//!     type Event = AnyEvent;
//!     type Writes = RedisWrites;
//!
//!     fn handle(&self, event: Envelope<'_, AnyEvent>, writes: &mut RedisWrites)
//!         -> Result<(), BoxError>
//!     {
//!         let recorded = event.recorded;
//!         writes
//!             .hincr_by("by_type", recorded.event_type.as_str(), 1)
//!             .zadd("streams", recorded.stream_id.as_str(), recorded.stream_version.get() as f64);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> foldline::Result<()> {
//! let options = RedisTargetOptions::from_url("redis://127.0.0.1:6379/")?.with_prefix("bank")?;
//! let target = RedisTarget::connect(options).await?;
//! // Hand `target` to foldline's projector runtime with `EventCounts`; then read:
//! let reader = target.reader();
//! let deposits: Option<Option<i64>> = reader
//!     .read(&EventCounts::NAME, |mut conn, keys| async move {
//!         redis::cmd("HGET")
//!             .arg(keys.key("by_type"))
//!             .arg("account.deposited")
//!             .query_async(&mut conn)
//!             .await
//!     })
//!     .await?;
//! # let _ = deposits;
//! # Ok(())
//! # }
//! ```
//!
//! # Key layout
//!
//! Every key starts with the prefix (default `foldline`, see
//! [`RedisTargetOptions::with_prefix`]). Per projection:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>:<projection>:slots` | hash | slot number → `{"version":N,"state":"building"\|"active"\|"retired"}` |
//! | `<prefix>:<projection>:next_slot` | string | the last slot number handed out (`INCR`) |
//! | `<prefix>:<projection>:active` | string | the active slot's number: the alias readers resolve |
//! | `<prefix>:<projection>:control` | string | the operator's flags, JSON |
//! | `<prefix>:<projection>:status` | string | the last projector status, JSON |
//!
//! Per slot, all under the slot's hash tag `{<prefix>:<projection>:<slot>}` (one Redis Cluster
//! hash slot, so a commit only touches keys of one node):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{…}:d:<key>` | any | the projection's own key `<key>` ([`RedisSlotKeys::key`]) |
//! | `{…}:checkpoint` | string | the checkpoint (`start` for [`Checkpoint::START`](foldline::Checkpoint::START)); absent once the slot is dropped |
//! | `{…}:dead` | hash | parked events: event id → [`DeadLetter`](foldline::DeadLetter), JSON |
//! | `{…}:dead_order` | sorted set | event ids by the order they were parked in |
//! | `{…}:lease` | string with TTL | the lease holder |
//!
//! # Commits
//!
//! A commit is one `MULTI … EXEC` transaction on a connection the slot's commits have to
//! themselves, which `WATCH`es the slot's checkpoint: it runs every operation of the batch and
//! stores the new checkpoint, and `EXEC` refuses to run it when anything wrote the checkpoint
//! after it was last read (another projector's commit, a drop or a clear), so a stale commit
//! gets [`CommitOutcome::Moved`](foldline::CommitOutcome::Moved) with nothing written (`actual:
//! None` when the slot was dropped). The checkpoint is read again in the same round trip as
//! each `EXEC`, so a commit costs one round trip. A commit that parks or releases dead
//! letters runs a Lua script (`EVALSHA`) that does the same checks and writes. Redis runs a
//! transaction or a script alone, so no reader or other commit sees half of it. Each process
//! opens one such connection per slot it commits to.
//!
//! Redis cannot roll a transaction or a script back. An operation Redis refuses at that point (`HSET` on a key
//! holding a string: `WRONGTYPE`; `INCRBY` on text that is not an integer) changes nothing,
//! the others and the checkpoint are still stored, and the commit counts as committed: the
//! batch's events will not be replayed. Each refusal is logged with `tracing::error!` (op,
//! command, key, Redis' message) and counted in the metric
//! `foldline_redis_rejected_writes_total{projection}`. Such a refusal is a bug in the
//! projection (two kinds of values under one key); [`RedisKeyspace`] refuses the same
//! operations, so a unit test finds it first ([`RedisKeyspace::rejected`]).
//!
//! Dropping a slot deletes its checkpoint (and lease) first, in one step, so a projector still
//! writing to it gets `Moved { actual: None }`; then its other keys, in `SCAN` batches; then its
//! entry. Clearing a slot deletes its checkpoint the same way, then its keys (not the lease),
//! then stores the checkpoint `start` again; while it runs, commits to the slot return
//! `Moved { actual: None }`, and the lease stays with the clearer (another owner asking for it
//! is refused, as for any held lease).
//!
//! The management scripts (create, activate, drop) touch the projection's keys and a slot's
//! keys together: they assume one Redis primary, which is what this crate connects to.
//!
//! # Feature flags
//!
//! - `testing`: [`RedisTestPrefix`], a random key prefix per test with its keys deleted
//!   afterwards, and the target conformance suite's probe for [`RedisTarget`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
// Every fallible function returns `foldline::Error`, whose size is the core crate's to decide.
#![allow(clippy::result_large_err)]

mod commit;
mod error;
mod keys;
mod keyspace;
mod options;
mod reader;
mod target;
#[cfg(feature = "testing")]
mod testing;
mod writes;

pub use error::RedisDriverError;
pub use keys::RedisSlotKeys;
pub use keyspace::RedisKeyspace;
pub use options::{DEFAULT_PREFIX, DEFAULT_URL, ENV_URL, RedisTargetOptions};
pub use reader::RedisReader;
pub use target::RedisTarget;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::RedisTestPrefix;
pub use writes::{RedisOp, RedisWrites};

/// The `redis` crate this one is built on, for commands of your own on
/// [`RedisReader::read`]'s and [`RedisTarget::connection`]'s connections.
pub use redis;

#[cfg(test)]
mod tests {
    use super::{
        RedisKeyspace, RedisOp, RedisReader, RedisSlotKeys, RedisTarget, RedisTargetOptions,
        RedisWrites,
    };

    fn send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<RedisTarget>();
        send_sync::<RedisReader>();
        send_sync::<RedisTargetOptions>();
        send_sync::<RedisWrites>();
        send_sync::<RedisOp>();
        send_sync::<RedisKeyspace>();
        send_sync::<RedisSlotKeys>();
    }

    #[allow(
        dead_code,
        reason = "compiled, never run: checks that the future is Send"
    )]
    fn read_future_is_send(reader: &RedisReader, projection: &foldline::ProjectionName) {
        fn send<T: Send>(_: &T) {}
        let read = reader.read(projection, |mut conn, keys| async move {
            redis::cmd("GET")
                .arg(keys.key("k"))
                .query_async::<Option<String>>(&mut conn)
                .await
        });
        send(&read);
    }
}
