//! The operator's view of the store ([`ManagedStore`]): where it is, its streams, the
//! transactions holding the feed back and the events waiting behind them, its migrations.

use std::time::Duration;

use foldline::{
    DriverErrors, Error, FeedHolder, HeldFeed, ManagedStore, RecordedEvent, StreamId, Version,
};
use uuid::Uuid;

use crate::error::Postgres;
use crate::migrate;
use crate::rows::{recorded_event, to_u64};
use crate::sql::{EVENT_COLUMNS, quoted};
use crate::store::PgEventStore;

/// What holds the visibility horizon, and so the feed, where it is, oldest first: sessions
/// with a transaction id, and prepared transactions (which no session runs: they hold the
/// horizon until someone commits or rolls them back by their gid), in every database of the
/// server.
///
/// Both views give 32-bit xids; each is widened to the `xid8` the feed's positions carry,
/// from the snapshot's `xmax` (one past the newest finished xid; asking assigns no xid to this
/// query). Every running xid is within 2^31 of it, above or below: the difference of the low
/// 32 bits, read as a signed 32-bit number, is the difference of the full xids.
const HOLDERS: &str = "WITH next AS ( \
        SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax \
    ), holders AS ( \
        SELECT 'session' AS kind, pid, backend_xid AS xid, xact_start AS since, state, query, \
            application_name, usename::text AS owner, datname::text AS database, NULL::text AS gid \
        FROM pg_stat_activity \
        WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
        UNION ALL \
        SELECT 'prepared', NULL, transaction, prepared, NULL, NULL, NULL, owner::text, \
            database::text, gid \
        FROM pg_prepared_xacts \
    ) \
    SELECT h.kind, h.pid, \
        next.xmax - ((((next.xmax % 4294967296) - h.xid::text::bigint + 2147483648) \
            % 4294967296 + 4294967296) % 4294967296 - 2147483648), \
        greatest(extract(epoch FROM clock_timestamp() - h.since), 0)::float8, \
        h.state, h.query, h.application_name, h.owner, h.database, h.gid \
    FROM holders AS h, next \
    ORDER BY h.since";

/// The committed events of `schema` that wait behind the horizon: at or above it, so not in
/// the feed yet, and visible to this statement, so committed.
fn waiting_sql(schema: &str) -> String {
    format!(
        "SELECT count(*) FROM {schema}.events AS e \
         WHERE e.xid >= pg_snapshot_xmin(pg_current_snapshot())"
    )
}

/// The events of a business transaction: those whose metadata's correlation id is `$1` (found
/// through migration 5's index on that expression) and the event whose id is `$2` (through the
/// unique index on `event_id`), in feed order. Committed events only, whether or not the feed
/// shows them yet (a transaction holding the feed back does not hide them here).
///
/// The matches are gathered first (`MATERIALIZED`), then ordered (`xid` is the transaction id
/// as a `bigint` there, in the same order): given the `ORDER BY` and a small `LIMIT` together,
/// the planner may rather walk the whole feed in order and filter it.
fn correlated_sql(schema: &str) -> String {
    format!(
        "WITH found AS MATERIALIZED ( \
             SELECT {EVENT_COLUMNS} FROM {schema}.events \
             WHERE metadata ->> 'correlation_id' = $1 OR event_id = $2 \
         ) \
         SELECT * FROM found ORDER BY xid, position LIMIT $3"
    )
}

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

    /// The transactions holding the global feed back, oldest first, and how many of this
    /// schema's committed events wait behind them.
    ///
    /// The feed only shows events of transactions older than every transaction that still
    /// holds a transaction id, anywhere on the server: open in a session, or prepared for a
    /// two-phase commit. A transaction left open (an idle `BEGIN` in a console, a stuck batch
    /// job) or prepared and forgotten (an orphan of a crashed transaction manager) therefore
    /// stops every subscriber until it ends. This names each: process id (sessions) or gid
    /// (prepared transactions), transaction id, age, state, last query, application name,
    /// role and database. The events committed after the oldest of them count as waiting:
    /// they are neither in the feed nor in its head.
    async fn feed_held_back(&self) -> Result<HeldFeed, Error> {
        let context = "listing the transactions that hold the feed back";
        let client = self.client(context).await?;
        let rows = client
            .query(HOLDERS, &[])
            .await
            .map_err(|e| Postgres::error(context, e))?;
        let holders = rows
            .iter()
            .map(|row| {
                let age = row.get::<_, Option<f64>>(3).unwrap_or(0.0).max(0.0);
                let age = Duration::from_secs_f64(age);
                let holder = match row.get::<_, Option<String>>(9) {
                    Some(gid) if row.get::<_, &str>(0) == "prepared" => {
                        FeedHolder::prepared(gid, age)
                    }
                    _ => FeedHolder::new(age),
                };
                let holder = match row.get::<_, Option<i32>>(1) {
                    Some(pid) => holder.with_pid(pid),
                    None => holder,
                };
                holder
                    .with_xid(row.get::<_, Option<i64>>(2).map(to_u64))
                    .with_state(row.get(4))
                    .with_query(row.get(5))
                    .with_application_name(row.get(6))
                    .with_owner(row.get(7))
                    .with_database(row.get(8))
            })
            .collect();
        let context = "counting the events that wait behind the feed's holders";
        let waiting: i64 = client
            .query_one(&waiting_sql(&quoted(self.schema())), &[])
            .await
            .map_err(|e| Postgres::error(context, e))?
            .get(0);
        Ok(HeldFeed::new(holders, to_u64(waiting)))
    }

    /// The events of business transaction `id`, looked up by index (migration 5 adds the one
    /// on the metadata's correlation id) rather than by reading the feed; in feed order
    /// (`(xid, position)`). Events committed behind a transaction that holds the feed back are
    /// found too.
    async fn correlated_events(&self, id: Uuid, limit: usize) -> Result<Vec<RecordedEvent>, Error> {
        let context = format!("reading the events of correlation {id}");
        let client = self.client(&context).await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                &correlated_sql(&quoted(self.schema())),
                &[&id.to_string(), &id, &limit],
            )
            .await
            .map_err(|e| Postgres::error(&context, e))?;
        rows.iter().map(recorded_event).collect()
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
