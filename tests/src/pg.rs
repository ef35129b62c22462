//! PostgreSQL for the integration tests: a fresh schema per test, and raw connections for what
//! the store must cope with but never does itself (rows written by an older release, payloads
//! damaged in place, transactions left open by someone else).
//!
//! Every test runs in its own schema ([`test_schema`]); raw SQL names that schema's tables
//! through [`table`], so tests never see each other's rows.

use foldline::SchemaName;
pub use foldline_postgres::PgTestSchema;
use foldline_postgres::{DEFAULT_URL, ENV_URL};
use tokio_postgres::{Client, GenericClient, NoTls};

/// The server the tests use: [`ENV_URL`] (`FOLDLINE_POSTGRES_URL`), or [`DEFAULT_URL`].
pub fn url() -> String {
    std::env::var(ENV_URL).unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A fresh, migrated schema with a connected store, dropped when the value is dropped.
///
/// # Panics
///
/// When PostgreSQL is unreachable or the schema cannot be set up, with the whole error chain
/// (which says how to start PostgreSQL). A test never passes by skipping.
pub async fn test_schema() -> PgTestSchema {
    match PgTestSchema::create().await {
        Ok(schema) => schema,
        Err(error) => panic!(
            "cannot set up a test schema: {}",
            foldline::error_chain(&error, ": ")
        ),
    }
}

/// A raw connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not connect to PostgreSQL at {url}; start PostgreSQL with `scripts/postgres.sh start` \
     (or point {ENV_URL} at one)"
)]
pub struct ConnectError {
    url: String,
    #[source]
    source: tokio_postgres::Error,
}

/// A raw connection of its own (not from any store's pool) to `url`; its connection task runs
/// on the current runtime until the client is dropped.
///
/// # Errors
///
/// [`ConnectError`] when PostgreSQL does not answer.
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| ConnectError {
            url: url.to_owned(),
            source,
        })?;
    tokio::spawn(async move {
        // Errors end the connection; the client's next call reports them.
        let _ = connection.await;
    });
    Ok(client)
}

/// A raw connection to the test server ([`url`]).
///
/// # Panics
///
/// When PostgreSQL does not answer, saying how to start it.
pub async fn raw_client() -> Client {
    match connect(&url()).await {
        Ok(client) => client,
        Err(error) => panic!("{}", foldline::error_chain(&error, ": ")),
    }
}

/// `"schema".name`: a table of the store in `schema`, quoted as the store quotes it (a valid
/// schema name may be an SQL keyword).
pub fn table(schema: &SchemaName, name: &str) -> String {
    format!("\"{schema}\".{name}")
}

/// An event row written with raw SQL, as an older release (or a careless operator) would.
#[derive(Clone, Debug)]
pub struct RawEvent {
    /// The stream.
    pub stream_id: String,
    /// Its version in the stream.
    pub stream_version: i64,
    /// The event id.
    pub event_id: uuid::Uuid,
    /// The type name.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: i32,
    /// The payload, as JSON text.
    pub payload: String,
}

impl RawEvent {
    /// Event `event_type` v`schema_version` at `stream_id`@`stream_version`, with a fresh id.
    pub fn new(
        stream_id: &str,
        stream_version: i64,
        event_type: &str,
        schema_version: i32,
        payload: &str,
    ) -> Self {
        RawEvent {
            stream_id: stream_id.to_owned(),
            stream_version,
            event_id: uuid::Uuid::now_v7(),
            event_type: event_type.to_owned(),
            schema_version,
            payload: payload.to_owned(),
        }
    }
}

/// Where a raw insert landed: the writing transaction and the row's global position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPosition {
    /// The writing transaction's id (`xid8`).
    pub xid: u64,
    /// The row's `position`.
    pub position: u64,
}

/// Inserts `event` into `schema`'s events table and moves the stream's row in the streams
/// table to its version, inside whatever transaction `client` is in.
///
/// # Errors
///
/// What PostgreSQL says (a duplicate version, a payload that is not JSON).
pub async fn insert_event(
    client: &impl GenericClient,
    schema: &SchemaName,
    event: &RawEvent,
) -> Result<RawPosition, tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {} (stream_id, stream_version, event_id, event_type, schema_version, \
         payload, metadata, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, '{{}}'::jsonb, now()) \
         RETURNING xid::text, position",
        table(schema, "events")
    );
    let row = client
        .query_one(
            &sql,
            &[
                &event.stream_id,
                &event.stream_version,
                &event.event_id,
                &event.event_type,
                &i64::from(event.schema_version),
                &event.payload,
            ],
        )
        .await?;
    let sql = format!(
        "INSERT INTO {} (stream_id, version) VALUES ($1, $2) \
         ON CONFLICT (stream_id) DO UPDATE SET version = GREATEST(EXCLUDED.version, {0}.version)",
        table(schema, "streams")
    );
    client
        .execute(&sql, &[&event.stream_id, &event.stream_version])
        .await?;
    let xid: String = row.get(0);
    let position: i64 = row.get(1);
    Ok(RawPosition {
        xid: xid.parse().expect("xid8 renders as a number"),
        position: u64::try_from(position).expect("positions are positive"),
    })
}

/// The id of the transaction `client` is in, assigning one if it has none yet: from here on
/// the transaction holds the feed's visibility horizon back until it ends.
///
/// # Errors
///
/// What PostgreSQL says.
pub async fn take_xid(client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await?;
    let xid: String = row.get(0);
    Ok(xid.parse().expect("xid8 renders as a number"))
}

/// The backend process id of `client`'s connection.
///
/// # Errors
///
/// What PostgreSQL says.
pub async fn backend_pid(client: &impl GenericClient) -> Result<i32, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// Deletes version `version` of `stream` from `schema`'s events table, as a careless operator
/// would (the streams table still says the stream is at its last version), and returns how
/// many rows went.
///
/// # Errors
///
/// What PostgreSQL says.
pub async fn delete_event(
    client: &impl GenericClient,
    schema: &SchemaName,
    stream: &str,
    version: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "DELETE FROM {} WHERE stream_id = $1 AND stream_version = $2",
        table(schema, "events")
    );
    client.execute(&sql, &[&stream, &version]).await
}

/// How many rows `schema`'s events table holds for `stream`.
///
/// # Errors
///
/// What PostgreSQL says.
pub async fn count_events(
    client: &impl GenericClient,
    schema: &SchemaName,
    stream: &str,
) -> Result<i64, tokio_postgres::Error> {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE stream_id = $1",
        table(schema, "events")
    );
    Ok(client.query_one(&sql, &[&stream]).await?.get(0))
}
