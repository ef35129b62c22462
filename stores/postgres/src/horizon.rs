//! What holds the global feed back: transactions older than the visibility horizon's edge.

use std::time::Duration;

use foldline::{DriverErrors, Error};

use crate::error::Postgres;
use crate::store::PgEventStore;

/// A transaction that holds the global feed back (see [`PgEventStore::feed_holders`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FeedHolder {
    /// The server process running it (`pg_terminate_backend(pid)` ends it).
    pub pid: i32,
    /// Its transaction id, if it has one.
    pub xid: Option<u64>,
    /// How long the transaction has been open.
    pub age: Duration,
    /// `active`, `idle in transaction`, ...
    pub state: Option<String>,
    /// The last query it ran.
    pub query: Option<String>,
    /// The client's application name.
    pub application_name: Option<String>,
}

const HOLDERS: &str = "SELECT pid, backend_xid::text, \
        greatest(extract(epoch FROM clock_timestamp() - xact_start), 0)::float8, \
        state, query, application_name \
    FROM pg_stat_activity \
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
    ORDER BY xact_start";

pub(crate) async fn feed_holders(store: &PgEventStore) -> Result<Vec<FeedHolder>, Error> {
    let context = "listing the transactions that hold the feed back";
    let client = store.client(context).await?;
    let rows = client
        .query(HOLDERS, &[])
        .await
        .map_err(|e| Postgres::error(context, e))?;
    Ok(rows
        .iter()
        .map(|row| FeedHolder {
            pid: row.get(0),
            xid: row.get::<_, Option<String>>(1).and_then(|x| x.parse().ok()),
            age: Duration::from_secs_f64(row.get::<_, Option<f64>>(2).unwrap_or(0.0).max(0.0)),
            state: row.get(3),
            query: row.get(4),
            application_name: row.get(5),
        })
        .collect())
}
