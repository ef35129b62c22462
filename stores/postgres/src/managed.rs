//! The operator's view of the store ([`ManagedStore`]): where it is, its streams, the
//! transactions holding the feed back, its migrations.

use std::time::Duration;

use foldline::{DriverErrors, Error, FeedHolder, ManagedStore, StreamId, Version};

use crate::error::Postgres;
use crate::migrate;
use crate::rows::to_u64;
use crate::sql::quoted;
use crate::store::PgEventStore;

/// Sessions with a transaction id, oldest first: each holds the visibility horizon, and so
/// the feed, where it is.
const HOLDERS: &str = "SELECT pid, backend_xid::text, \
        greatest(extract(epoch FROM clock_timestamp() - xact_start), 0)::float8, \
        state, query, application_name \
    FROM pg_stat_activity \
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
    ORDER BY xact_start";

impl ManagedStore for PgEventStore {
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
    ) -> Result<Vec<(StreamId, Version)>, Error> {
        let context = "listing streams";
        let sql = format!(
            "SELECT stream_id, version FROM {}.streams \
             WHERE $1::text IS NULL OR stream_id > $1 ORDER BY stream_id LIMIT $2",
            quoted(self.schema())
        );
        let client = self.client(context).await?;
        let after = after.map(StreamId::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&sql, &[&after, &limit])
            .await
            .map_err(|e| Postgres::error(context, e))?;
        rows.iter()
            .map(|row| {
                Ok((
                    StreamId::new(row.get::<_, String>(0))?,
                    Version::new(to_u64(row.get(1))),
                ))
            })
            .collect()
    }

    /// The transactions holding the global feed back, oldest first.
    ///
    /// The feed only shows events of transactions older than every transaction still running
    /// with a transaction id, anywhere in the database. A transaction left open (an idle
    /// `BEGIN` in a console, a stuck batch job) therefore stops every subscriber until it
    /// ends; this names it: process id, transaction id, age, state, its last query and the
    /// client's application name.
    async fn feed_holders(&self) -> Result<Vec<FeedHolder>, Error> {
        let context = "listing the transactions that hold the feed back";
        let client = self.client(context).await?;
        let rows = client
            .query(HOLDERS, &[])
            .await
            .map_err(|e| Postgres::error(context, e))?;
        Ok(rows
            .iter()
            .map(|row| {
                let age = row.get::<_, Option<f64>>(2).unwrap_or(0.0).max(0.0);
                FeedHolder::new(Duration::from_secs_f64(age))
                    .with_pid(row.get(0))
                    .with_xid(row.get::<_, Option<String>>(1).and_then(|x| x.parse().ok()))
                    .with_state(row.get(3))
                    .with_query(row.get(4))
                    .with_application_name(row.get(5))
            })
            .collect())
    }

    /// As [`PgEventStore::migrate`], with the applied versions as text.
    async fn migrate(&self) -> Result<Vec<String>, Error> {
        let report = migrate::migrate(self).await?;
        Ok(report.applied.iter().map(ToString::to_string).collect())
    }

    /// The versions of the migrations `migrate` would apply, in order; empty when the schema
    /// is current. Changes nothing: a schema (or its `schema_migrations` table) that does not
    /// exist yet has every migration pending and is not created.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] when the server fails, or when the schema holds a migration that
    /// differs from this release's or is newer than it knows (as `migrate` would).
    async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        let pending = migrate::pending(self).await?;
        Ok(pending.iter().map(ToString::to_string).collect())
    }
}
