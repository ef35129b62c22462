//! What the admin needs from a store beyond [`EventStore`]: listing streams, naming what
//! holds the feed back, applying migrations.

use std::future::Future;
use std::time::Duration;

use foldline::{EventStore, InMemoryEventStore, StreamId, Version};
use foldline_postgres::PgEventStore;
use serde::Serialize;

/// A transaction holding the global feed back (PostgreSQL: an open transaction with an xid).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FeedHolder {
    /// The server process (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// Its transaction id.
    pub xid: Option<u64>,
    /// How long it has been open, in seconds.
    pub age_seconds: f64,
    /// `active`, `idle in transaction`, …
    pub state: Option<String>,
    /// Its last query.
    pub query: Option<String>,
    /// The client's application name.
    pub application_name: Option<String>,
}

/// A store the admin can inspect. Implemented for [`PgEventStore`] and
/// [`InMemoryEventStore`].
pub trait AdminStore: EventStore + Clone {
    /// Where the store is, for humans (passwords redacted).
    fn describe(&self) -> String;

    /// Up to `limit` streams after `after`, ordered by id, with their versions.
    fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> impl Future<Output = foldline::Result<Vec<(StreamId, Version)>>> + Send;

    /// Transactions holding the feed back, oldest first (none for stores without a horizon).
    fn feed_holders(&self) -> impl Future<Output = foldline::Result<Vec<FeedHolder>>> + Send;

    /// Applies pending migrations and returns the versions applied (empty when current).
    fn migrate(&self) -> impl Future<Output = foldline::Result<Vec<String>>> + Send;

    /// The migrations [`migrate`](AdminStore::migrate) would apply, in order, without applying
    /// or creating anything (empty when current, or for stores without migrations).
    fn pending_migrations(&self) -> impl Future<Output = foldline::Result<Vec<String>>> + Send;
}

impl AdminStore for PgEventStore {
    fn describe(&self) -> String {
        format!(
            "PostgreSQL at {}, schema {}",
            self.options().redacted_url(),
            self.schema()
        )
    }

    async fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> foldline::Result<Vec<(StreamId, Version)>> {
        PgEventStore::streams(self, after, limit).await
    }

    async fn feed_holders(&self) -> foldline::Result<Vec<FeedHolder>> {
        Ok(PgEventStore::feed_holders(self)
            .await?
            .into_iter()
            .map(|h| FeedHolder {
                pid: h.pid,
                xid: h.xid,
                // Milliseconds, as `status` rounds lag_seconds.
                age_seconds: (h.age.as_secs_f64() * 1000.0).round() / 1000.0,
                state: h.state,
                query: h.query,
                application_name: h.application_name,
            })
            .collect())
    }

    async fn migrate(&self) -> foldline::Result<Vec<String>> {
        let report = PgEventStore::migrate(self).await?;
        Ok(report.applied.iter().map(ToString::to_string).collect())
    }

    async fn pending_migrations(&self) -> foldline::Result<Vec<String>> {
        let pending = PgEventStore::pending_migrations(self).await?;
        Ok(pending.iter().map(ToString::to_string).collect())
    }
}

impl AdminStore for InMemoryEventStore {
    fn describe(&self) -> String {
        "the in-memory store".to_owned()
    }

    async fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> foldline::Result<Vec<(StreamId, Version)>> {
        Ok(InMemoryEventStore::streams(self, after, limit))
    }

    async fn feed_holders(&self) -> foldline::Result<Vec<FeedHolder>> {
        Ok(Vec::new())
    }

    async fn migrate(&self) -> foldline::Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn pending_migrations(&self) -> foldline::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Holders open at least this long are worth naming (shorter ones are ordinary appends).
pub(crate) const HOLDER_MIN_AGE: Duration = Duration::from_secs(1);
