//! Rows of the events and idempotency-key tables, turned into foldline's types.

use foldline::{
    AppendResult, DriverErrors, Error, EventMetadata, EventType, Position, RecordedEvent, StreamId,
    UnreadableEvent, Version,
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
///
/// A row written around the store (raw SQL, a restore from elsewhere) may break foldline's
/// rules: an invalid stream id or type, metadata that is not foldline's, a schema version out
/// of range. It is returned in its place, marked [`UnreadableEvent`] with placeholders and the
/// stored values, so that readers of the feed neither stop for good nor skip it.
pub(crate) fn recorded_event(row: &Row) -> Result<RecordedEvent, Error> {
    let global: i64 = row.get(0);
    let stream: &str = row.get(2);
    let version: i64 = row.get(3);
    let event_type: &str = row.get(5);
    let schema_version: i64 = row.get(6);
    let metadata: &str = row.get(8);
    let mut reasons = Vec::new();
    let stream_id = StreamId::new(stream).unwrap_or_else(|e| {
        reasons.push(e.to_string());
        UnreadableEvent::STREAM
    });
    let typed = EventType::new(event_type).unwrap_or_else(|e| {
        reasons.push(e.to_string());
        UnreadableEvent::TYPE
    });
    let parsed_metadata: EventMetadata = serde_json::from_str(metadata).unwrap_or_else(|e| {
        reasons.push(format!("malformed metadata: {e}"));
        EventMetadata::default()
    });
    let schema = u32::try_from(schema_version).unwrap_or_else(|e| {
        reasons.push(format!("schema version {schema_version} out of range: {e}"));
        0
    });
    let payload: String = row.get(7);
    let event = RecordedEvent::from_new(
        foldline::NewEvent::from_parts(
            row.get(4),
            typed,
            schema,
            payload.into_bytes(),
            parsed_metadata,
        ),
        stream_id,
        Version::new(to_u64(version)),
        position(row.get(1), global),
        row.get(9),
    );
    if reasons.is_empty() {
        return Ok(event);
    }
    let raw = [
        ("stream_id", stream.to_owned()),
        ("event_type", event_type.to_owned()),
        ("schema_version", schema_version.to_string()),
        ("metadata", metadata.to_owned()),
    ]
    .map(|(column, value)| (column.to_owned(), value))
    .into();
    Ok(event.with_unreadable(UnreadableEvent::new(reasons.join("; "), raw)))
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
