//! What operators need from a store beyond [`EventStore`]: where it is, its streams, what holds
//! its feed back and how much waits behind it, the events of one business transaction, its
//! migrations. The admin CLI (`foldline-admin`) works on any store through this contract, so
//! it depends on no backend.

use std::future::Future;
use std::time::Duration;

use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::EventStore;
use crate::error::Result;
use crate::event::RecordedEvent;
use crate::names::StreamId;
use crate::position::Checkpoint;
use crate::version::Version;

/// How many events [`ManagedStore::correlated_events`]'s default reads of the feed at a time.
const SCAN_PAGE: usize = 1_000;

/// A store an operator inspects and maintains: the part of a store's API the admin CLI needs
/// besides [`EventStore`] (which already gives the feed's [`head`](EventStore::head)).
///
/// Implemented by every store: [`InMemoryEventStore`](crate::InMemoryEventStore),
/// `foldline_postgres::PgEventStore`, `foldline_kafka::KafkaEventStore`.
///
/// ```
/// use foldline::{InMemoryEventStore, ManagedStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let store = InMemoryEventStore::new();
/// assert_eq!(store.describe(), "the in-memory store");
/// assert!(store.streams(None, 100).await?.is_empty());
/// let held = store.feed_held_back().await?; // nothing ever holds a memory feed back
/// assert!(!held.is_held() && held.holders.is_empty() && held.waiting_events == 0);
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a store foldline's admin can manage",
    note = "stores: `foldline::InMemoryEventStore`, `foldline_postgres::PgEventStore`, \
            `foldline_kafka::KafkaEventStore`"
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

    /// Whether the global feed is held back right now, and by what: the holders, oldest first
    /// (open transactions, prepared transactions, …), how many committed events wait behind
    /// them, and for how long the oldest has held the feed. Events waiting are not delivered to
    /// readers of the feed, nor counted in its [`head`](EventStore::head) (so not in any
    /// projection's lag), until the holders before them end. Nothing held
    /// ([`HeldFeed::default`]) for stores whose feed nothing can hold back.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn feed_held_back(&self) -> impl Future<Output = Result<HeldFeed>> + Send;

    /// What holds the global feed back right now, oldest first: the
    /// [`holders`](HeldFeed::holders) of [`feed_held_back`](ManagedStore::feed_held_back).
    /// Empty for stores whose feed nothing can hold back.
    ///
    /// # Errors
    ///
    /// As [`feed_held_back`](ManagedStore::feed_held_back).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn feed_holders(&self) -> impl Future<Output = Result<Vec<FeedHolder>>> + Send {
        async move { Ok(self.feed_held_back().await?.holders) }
    }

    /// The events of the business transaction `id` names, in feed order, at most `limit`: those
    /// whose metadata's [correlation id](crate::EventMetadata::correlation_id) is `id`, and the
    /// event whose id is `id` (the one that began it, which often carries no correlation id of
    /// its own: what it caused takes its id as their correlation). Asked with the id of an event
    /// that has a correlation of its own, it returns that event alone (and whatever names it as
    /// its correlation): ask again with its correlation id for the rest. `foldline trace`
    /// builds its causal tree from these.
    ///
    /// The default reads the whole global feed ([`read_all`](EventStore::read_all)) and keeps
    /// what matches: right for every store, and as slow as the feed is long. A store that can
    /// look events up by correlation id overrides it (PostgreSQL: an index on the metadata's
    /// correlation id). Only events the feed delivers are found by the default (an event
    /// waiting behind a [holder](ManagedStore::feed_held_back) is not, yet).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn correlated_events(
        &self,
        id: Uuid,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>>> + Send {
        async move {
            let mut found = Vec::new();
            let mut after = Checkpoint::START;
            while found.len() < limit {
                let batch = self.read_all(&after, SCAN_PAGE).await?;
                if batch.events.is_empty() {
                    break;
                }
                found.extend(batch.events.into_iter().filter(|event| {
                    event.event_id == id || event.metadata.correlation_id == Some(id)
                }));
                after = batch.checkpoint;
            }
            found.truncate(limit);
            Ok(found)
        }
    }

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

/// Whether a store's global feed is held back, and by what
/// ([`ManagedStore::feed_held_back`]).
///
/// The feed is held back while something (a [`FeedHolder`]) could still commit events that
/// belong before those already committed after it started: readers stop before those, so they
/// wait, undelivered and not in the feed's [`head`](EventStore::head), until every holder
/// before them ends. They are not lost.
///
/// ```
/// use std::time::Duration;
/// use foldline::{FeedHolder, HeldFeed};
///
/// let nothing = HeldFeed::default();
/// assert!(!nothing.is_held() && nothing.held_for.is_none());
///
/// let held = HeldFeed::new(
///     vec![
///         FeedHolder::new(Duration::from_secs(90)).with_pid(8832),
///         FeedHolder::prepared("tx-42", Duration::from_secs(5)),
///     ],
///     51,
/// );
/// assert!(held.is_held());
/// assert_eq!(held.held_for, Some(Duration::from_secs(90)));
/// assert_eq!(held.waiting_events, 51);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct HeldFeed {
    /// What holds the feed back, oldest first; empty when nothing does (or when the store
    /// cannot see the holders, while [`waiting_events`](HeldFeed::waiting_events) still counts
    /// the events behind them).
    pub holders: Vec<FeedHolder>,
    /// How many committed events wait behind the holders: not delivered to any reader of the
    /// feed yet, and not in its head. Only the store's own events count (PostgreSQL: the rows
    /// of the store's schema), whoever holds the feed. Apache Kafka gives an upper bound: the
    /// records between each partition's last stable offset and its high watermark, which also
    /// counts the open transactions' own records, aborted ones and transaction markers.
    pub waiting_events: u64,
    /// How long the feed has been held back: the age of the oldest holder; `None` when
    /// nothing holds it.
    pub held_for: Option<Duration>,
}

impl HeldFeed {
    /// The feed held back by `holders` (in any order: they are sorted oldest first), with
    /// `waiting_events` committed events behind them; held for as long as the oldest holder
    /// has lasted.
    pub fn new(mut holders: Vec<FeedHolder>, waiting_events: u64) -> Self {
        holders.sort_by_key(|h| std::cmp::Reverse(h.age));
        let held_for = holders.first().map(|oldest| oldest.age);
        HeldFeed {
            holders,
            waiting_events,
            held_for,
        }
    }

    /// Whether anything holds the feed back: a holder, or committed events waiting (behind
    /// holders the store could not name).
    pub fn is_held(&self) -> bool {
        self.held_for.is_some() || self.waiting_events > 0
    }
}

/// Something holding a store's global feed back: while it lasts, events committed after it
/// started are not delivered to readers of the feed (they are not lost: they arrive once it
/// ends). PostgreSQL: a transaction with a transaction id, open or prepared, below the
/// visibility horizon. Apache Kafka: a transaction open on a partition of the events topic,
/// keeping the partition's last stable offset below its high watermark.
///
/// The fields a store cannot fill are `None`. Serialized (`foldline status --json`) with
/// `kind` in snake case and `age` as `age_seconds`, to the millisecond; the partition fields
/// (`topic`, `partition`, `stable_offset`, `high_watermark`) only where they are known.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FeedHolder {
    /// What it is: a session's transaction, or a prepared transaction no session runs.
    pub kind: FeedHolderKind,
    /// The process running it, where there is one (PostgreSQL: the server process, which
    /// `pg_terminate_backend(pid)` ends). `None` for a prepared transaction.
    pub pid: Option<i32>,
    /// Its transaction id, where it has a numeric one (PostgreSQL: its xid).
    pub xid: Option<u64>,
    /// How long it has held the feed back (PostgreSQL: since its transaction began; for a
    /// prepared transaction, since it was prepared, which is the most that is known).
    #[serde(rename = "age_seconds", serialize_with = "seconds_to_the_millisecond")]
    pub age: Duration,
    /// What it is doing, in the store's words (PostgreSQL: `active`, `idle in transaction`).
    pub state: Option<String>,
    /// What it ran last (PostgreSQL: its last query).
    pub query: Option<String>,
    /// The client that opened it (PostgreSQL: the session's application name).
    pub application_name: Option<String>,
    /// The global identifier of a prepared transaction, which ends it
    /// (PostgreSQL: `COMMIT PREPARED 'gid'` or `ROLLBACK PREPARED 'gid'`).
    pub gid: Option<String>,
    /// The user it runs as (PostgreSQL: the session's or the prepared transaction's role).
    pub owner: Option<String>,
    /// The database it runs in (PostgreSQL: a transaction in any database of the server holds
    /// the feed back).
    pub database: Option<String>,
    /// The topic whose partition it holds (Kafka: the store's events topic).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The partition it holds (Kafka).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Where it holds the partition's readers (Kafka: the last stable offset, the offset of
    /// its first record): `read_committed` readers stop before this offset until it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_offset: Option<u64>,
    /// The end of the partition (Kafka: its high watermark, one past its last record), so
    /// `high_watermark - stable_offset` records wait behind it, its own among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
}

/// What kind of thing a [`FeedHolder`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FeedHolderKind {
    /// A transaction a session (a connection, a process) has open: it ends when the session
    /// commits or rolls it back, or is terminated.
    Session,
    /// A prepared transaction (two-phase commit): no session runs it, so it lasts, across
    /// restarts of the server too, until someone commits or rolls it back by its
    /// [`gid`](FeedHolder::gid). An orphan of a crashed transaction manager holds the feed
    /// back for good.
    PreparedTransaction,
    /// A transaction open on one partition of a log (Apache Kafka): it keeps the partition's
    /// last stable offset at its first record until its producer commits or aborts it, a new
    /// producer with the same `transactional.id` fences it, or the broker aborts it once the
    /// producer's `transaction.timeout.ms` has passed. Readers of the partition cannot see
    /// who runs it; [`topic`](FeedHolder::topic), [`partition`](FeedHolder::partition) and
    /// [`stable_offset`](FeedHolder::stable_offset) say where it is.
    PartitionTransaction,
}

impl FeedHolder {
    /// A session's transaction holding the feed for `age`, with nothing else known yet.
    pub fn new(age: Duration) -> Self {
        FeedHolder {
            kind: FeedHolderKind::Session,
            pid: None,
            xid: None,
            age,
            state: None,
            query: None,
            application_name: None,
            gid: None,
            owner: None,
            database: None,
            topic: None,
            partition: None,
            stable_offset: None,
            high_watermark: None,
        }
    }

    /// A prepared transaction with global identifier `gid`, prepared `age` ago.
    pub fn prepared(gid: impl Into<String>, age: Duration) -> Self {
        FeedHolder {
            kind: FeedHolderKind::PreparedTransaction,
            gid: Some(gid.into()),
            ..FeedHolder::new(age)
        }
    }

    /// A transaction open on `partition` of `topic` for `age`, holding the partition's last
    /// stable offset at `stable_offset` while its high watermark is at `high_watermark`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use foldline::{FeedHolder, FeedHolderKind};
    ///
    /// let holder = FeedHolder::partition_transaction("bank.events", 3, 1200, 1251, Duration::from_secs(8));
    /// assert_eq!(holder.kind, FeedHolderKind::PartitionTransaction);
    /// assert_eq!(holder.partition, Some(3));
    /// assert_eq!((holder.stable_offset, holder.high_watermark), (Some(1200), Some(1251)));
    /// assert_eq!(holder.pid, None); // a reader of the partition cannot see who runs it
    /// ```
    pub fn partition_transaction(
        topic: impl Into<String>,
        partition: u32,
        stable_offset: u64,
        high_watermark: u64,
        age: Duration,
    ) -> Self {
        FeedHolder {
            kind: FeedHolderKind::PartitionTransaction,
            topic: Some(topic.into()),
            partition: Some(partition),
            stable_offset: Some(stable_offset),
            high_watermark: Some(high_watermark),
            ..FeedHolder::new(age)
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

    /// The same holder, running as user `owner`.
    #[must_use]
    pub fn with_owner(mut self, owner: Option<String>) -> Self {
        self.owner = owner;
        self
    }

    /// The same holder, in database `database`.
    #[must_use]
    pub fn with_database(mut self, database: Option<String>) -> Self {
        self.database = database;
        self
    }
}

fn seconds_to_the_millisecond<S: Serializer>(
    age: &Duration,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_f64((age.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::ManagedStore;
    use crate::event::{EventMetadata, NewEvent};
    use crate::names::{EventType, StreamId};
    use crate::store::{AppendRequest, EventStore, InMemoryEventStore};
    use crate::version::ExpectedVersion;

    #[tokio::test]
    async fn the_default_finds_a_correlation_and_the_event_that_began_it_in_feed_order() {
        let store = InMemoryEventStore::new();
        let begun = NewEvent::new(EventType::from_static("Begun"), 1, b"{}".to_vec());
        let root = begun.event_id;
        let caused = |correlation: Uuid| {
            NewEvent::new(EventType::from_static("Caused"), 1, b"{}".to_vec())
                .with_metadata(EventMetadata::new().with_correlation_id(correlation))
        };
        let (first, other, second) = (caused(root), caused(Uuid::now_v7()), caused(root));
        let expected = [root, first.event_id, second.event_id];
        for (stream, event) in [
            ("a-1", begun),
            ("b-1", first),
            ("a-1", other),
            ("c-1", second),
        ] {
            let stream = StreamId::new(stream).unwrap();
            let request = AppendRequest::new(stream, ExpectedVersion::Any, vec![event]);
            store.append(request).await.unwrap();
        }
        let ids = |events: Vec<crate::event::RecordedEvent>| {
            events.iter().map(|e| e.event_id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.correlated_events(root, 10).await.unwrap()),
            expected
        );
        assert_eq!(
            ids(store.correlated_events(root, 2).await.unwrap()),
            expected[..2]
        );
        let second = expected[2];
        assert_eq!(
            ids(store.correlated_events(second, 10).await.unwrap()),
            [second]
        );
        assert!(
            store
                .correlated_events(Uuid::now_v7(), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
