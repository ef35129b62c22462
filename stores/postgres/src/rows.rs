//! Rows of the events and idempotency-key tables, turned into foldline's types.

use foldline::{
    AppendResult, DriverErrors, Error, EventMetadata, EventType, Position, RecordedEvent, Shown,
    StreamId, Version,
};
use tokio_postgres::Row;

use crate::error::Postgres;

/// A stored (non-negative) `bigint` as `u64`.
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A `u64` as a `bigint` parameter (versions and xids stay far below `i64::MAX`).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The feed position of an event: xid and global position.
pub(crate) fn position(xid: i64, position: i64) -> Position {
    Position::new(0, to_u64(xid), to_u64(position))
}

/// A row selected with [`EVENT_COLUMNS`](crate::sql::EVENT_COLUMNS).
pub(crate) fn recorded_event(row: &Row) -> Result<RecordedEvent, Error> {
    let global: i64 = row.get(0);
    let stream: String = row.get(2);
    let version: i64 = row.get(3);
    // A row written around the store (raw SQL) may break the rules; name where it is.
    let bad = |what: &str, detail: &dyn std::fmt::Display| {
        Postgres::corrupt(
            format!(
                "reading the event at position {global} ({}@{version}): {what}: {detail}",
                Shown::new(&stream)
            ),
            None,
        )
    };
    let stream_id = StreamId::new(stream.clone()).map_err(|e| bad("invalid stream id", &e))?;
    let event_type =
        EventType::new(row.get::<_, String>(5)).map_err(|e| bad("invalid event type", &e))?;
    let metadata: EventMetadata =
        serde_json::from_str(row.get::<_, &str>(8)).map_err(|e| bad("malformed metadata", &e))?;
    let schema_version =
        u32::try_from(row.get::<_, i64>(6)).map_err(|e| bad("schema version out of range", &e))?;
    let payload: String = row.get(7);
    Ok(RecordedEvent::from_new(
        foldline::NewEvent::from_parts(
            row.get(4),
            event_type,
            schema_version,
            payload.into_bytes(),
            metadata,
        ),
        stream_id,
        Version::new(to_u64(version)),
        position(row.get(1), global),
        row.get(9),
    ))
}

/// A row of `key, stream_id, previous_version, current_version, last_xid, last_position`.
pub(crate) fn append_result(row: &Row) -> Result<AppendResult, Error> {
    let stream: String = row.get(1);
    let stream_id = StreamId::new(stream).map_err(|e| {
        Postgres::corrupt(format!("reading an idempotency key's stream: {e}"), None)
    })?;
    let xid: Option<i64> = row.get(4);
    let last: Option<i64> = row.get(5);
    let result = AppendResult::new(
        stream_id,
        Version::new(to_u64(row.get(2))),
        Version::new(to_u64(row.get(3))),
        xid.zip(last).map(|(x, p)| position(x, p)),
    );
    Ok(result.into_replayed())
}
