//! What operators need from a store beyond [`EventStore`]: where it is, its streams, what holds
//! its feed back, its migrations. The admin CLI (`foldline-admin`) works on any store through
//! this contract, so it depends on no backend.

use std::future::Future;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::EventStore;
use crate::error::Result;
use crate::names::StreamId;
use crate::version::Version;

/// A store an operator inspects and maintains: the part of a store's API the admin CLI needs
/// besides [`EventStore`] (which already gives the feed's [`head`](EventStore::head)).
///
/// Implemented by every store: [`InMemoryEventStore`](crate::InMemoryEventStore),
/// `foldline_postgres::PgEventStore`.
///
/// ```
/// use foldline::{InMemoryEventStore, ManagedStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let store = InMemoryEventStore::new();
/// assert_eq!(store.describe(), "the in-memory store");
/// assert!(store.streams(None, 100).await?.is_empty());
/// assert!(store.feed_holders().await?.is_empty()); // nothing ever holds a memory feed back
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a store foldline's admin can manage",
    note = "stores: `foldline::InMemoryEventStore`, `foldline_postgres::PgEventStore`"
)]
pub trait ManagedStore: EventStore {
    /// Where the store is, for people: the service, its address with any password redacted,
    /// and the schema or topic (`PostgreSQL at postgres://…, schema bank`).
    fn describe(&self) -> String;

    /// Up to `limit` streams after `after` (from the first when `None`), ordered by id, each
    /// with its current version.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(StreamId, Version)>>> + Send;

    /// What holds the global feed back right now, oldest first: committed events behind it
    /// are not delivered until it ends. Empty for stores whose feed nothing can hold back.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn feed_holders(&self) -> impl Future<Output = Result<Vec<FeedHolder>>> + Send;

    /// Applies the store's pending migrations and returns their names, in the order applied
    /// (empty when the store is current or has no migrations).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails or refuses a migration.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a migration the store received may still be applied (PostgreSQL
    /// applies each in one transaction, so it is applied whole or not at all). Call it again:
    /// migrations already applied are skipped.
    fn migrate(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The migrations [`migrate`](ManagedStore::migrate) would apply, in order, without
    /// applying or creating anything (empty when current, or for stores without migrations).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn pending_migrations(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// Something holding a store's global feed back: while it lasts, events committed after it
/// started are not delivered to readers of the feed (they are not lost: they arrive once it
/// ends). PostgreSQL: a transaction open below the visibility horizon.
///
/// The fields a store cannot fill are `None`. Serialized (`foldline status --json`) with
/// `age` as `age_seconds`, to the millisecond.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FeedHolder {
    /// The process running it, where there is one (PostgreSQL: the server process, which
    /// `pg_terminate_backend(pid)` ends).
    pub pid: Option<i32>,
    /// Its transaction id, where it has a numeric one (PostgreSQL: its xid).
    pub xid: Option<u64>,
    /// How long it has held the feed back.
    #[serde(rename = "age_seconds", serialize_with = "seconds_to_the_millisecond")]
    pub age: Duration,
    /// What it is doing, in the store's words (PostgreSQL: `active`, `idle in transaction`).
    pub state: Option<String>,
    /// What it ran last (PostgreSQL: its last query).
    pub query: Option<String>,
    /// The client that opened it (PostgreSQL: the session's application name).
    pub application_name: Option<String>,
}

impl FeedHolder {
    /// A holder of the feed for `age`, with nothing else known yet.
    pub fn new(age: Duration) -> Self {
        FeedHolder {
            pid: None,
            xid: None,
            age,
            state: None,
            query: None,
            application_name: None,
        }
    }

    /// The same holder, run by process `pid`.
    #[must_use]
    pub fn with_pid(mut self, pid: i32) -> Self {
        self.pid = Some(pid);
        self
    }

    /// The same holder, with transaction id `xid`.
    #[must_use]
    pub fn with_xid(mut self, xid: Option<u64>) -> Self {
        self.xid = xid;
        self
    }

    /// The same holder, in state `state`.
    #[must_use]
    pub fn with_state(mut self, state: Option<String>) -> Self {
        self.state = state;
        self
    }

    /// The same holder, whose last query was `query`.
    #[must_use]
    pub fn with_query(mut self, query: Option<String>) -> Self {
        self.query = query;
        self
    }

    /// The same holder, opened by client `name`.
    #[must_use]
    pub fn with_application_name(mut self, name: Option<String>) -> Self {
        self.application_name = name;
        self
    }
}

fn seconds_to_the_millisecond<S: Serializer>(
    age: &Duration,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_f64((age.as_secs_f64() * 1000.0).round() / 1000.0)
}
