//! How an event is laid out in a Kafka record: the stream id as key, the payload as value,
//! everything else in headers (offsets have gaps, so the stream version travels with the
//! record); and the records of the side topics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foldline::{
    AppendResult, EventMetadata, EventType, NewEvent, Position, RecordedEvent, StreamId,
    UnreadableEvent, Version,
};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The stream version, as decimal text.
pub(crate) const VERSION: &str = "foldline.version";
/// The event id, as a UUID's text.
pub(crate) const EVENT_ID: &str = "foldline.event_id";
/// The event type.
pub(crate) const TYPE: &str = "foldline.type";
/// The payload's schema version, as decimal text.
pub(crate) const SCHEMA_VERSION: &str = "foldline.schema_version";
/// The event's metadata as JSON (left out when empty).
pub(crate) const METADATA: &str = "foldline.metadata";
/// The correlation id, also inside the metadata: for Kafka's own tools.
pub(crate) const CORRELATION_ID: &str = "foldline.correlation_id";
/// The causation id, also inside the metadata: for Kafka's own tools.
pub(crate) const CAUSATION_ID: &str = "foldline.causation_id";

/// The headers of `event` at `version`.
pub(crate) fn event_headers(event: &NewEvent, version: Version) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(6)
        .insert(text(VERSION, &version.get().to_string()))
        .insert(text(EVENT_ID, &event.event_id.to_string()))
        .insert(text(TYPE, event.event_type.as_str()))
        .insert(text(SCHEMA_VERSION, &event.schema_version.to_string()));
    if event.metadata != EventMetadata::default()
        && let Ok(json) = serde_json::to_string(&event.metadata)
    {
        headers = headers.insert(text(METADATA, &json));
    }
    if let Some(id) = event.metadata.correlation_id {
        headers = headers.insert(text(CORRELATION_ID, &id.to_string()));
    }
    if let Some(id) = event.metadata.causation_id {
        headers = headers.insert(text(CAUSATION_ID, &id.to_string()));
    }
    headers
}

fn text<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

/// Milliseconds since the Unix epoch, as record timestamps count them.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether `message` is a writer's marker (empty key, no value), which it commits to every
/// partition it writes to when it takes its partition (`PartitionWriter::mark_partitions`):
/// no event, no head, no key; every reader skips it.
pub(crate) fn is_marker(message: &BorrowedMessage<'_>) -> bool {
    message.key().is_some_and(<[u8]>::is_empty) && message.payload().is_none()
}

/// The event in an events-topic record. A record foldline cannot read whole (produced around
/// the store) is returned marked [`UnreadableEvent`], in its place, with what it holds.
pub(crate) fn recorded_event(message: &BorrowedMessage<'_>) -> RecordedEvent {
    let partition = u32::try_from(message.partition()).unwrap_or(0);
    let offset = u64::try_from(message.offset()).unwrap_or(0);
    let position = Position::new(partition, offset, 0);
    let recorded_at = message
        .timestamp()
        .to_millis()
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms));
    // Read out once: each lookup in the record's headers is a call into librdkafka.
    let headers: Vec<Header<'_, &[u8]>> = message
        .headers()
        .map(|headers| headers.iter().collect())
        .unwrap_or_default();
    let header = |name: &str| -> Option<String> {
        headers
            .iter()
            .rev()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    let mut reasons = Vec::new();
    let stream = key
        .clone()
        .ok_or_else(|| "the record has no key (stream id)".to_owned())
        .and_then(|k| StreamId::new(k).map_err(|e| e.to_string()))
        .unwrap_or_else(|reason| {
            reasons.push(reason);
            UnreadableEvent::STREAM
        });
    let event_type = header(TYPE)
        .ok_or_else(|| format!("no `{TYPE}` header"))
        .and_then(|t| EventType::new(t).map_err(|e| e.to_string()))
        .unwrap_or_else(|reason| {
            reasons.push(reason);
            UnreadableEvent::TYPE
        });
    let mut number = |name: &str| -> u64 {
        match header(name).map(|v| v.parse::<u64>()) {
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                reasons.push(format!("header `{name}`: {e}"));
                0
            }
            None => {
                reasons.push(format!("no `{name}` header"));
                0
            }
        }
    };
    let version = Version::new(number(VERSION));
    let schema_version = u32::try_from(number(SCHEMA_VERSION)).unwrap_or_else(|_| {
        reasons.push(format!("header `{SCHEMA_VERSION}` out of range"));
        0
    });
    let event_id = match header(EVENT_ID).map(|v| Uuid::parse_str(&v)) {
        Some(Ok(id)) => id,
        Some(Err(e)) => {
            reasons.push(format!("header `{EVENT_ID}`: {e}"));
            Uuid::nil()
        }
        None => {
            reasons.push(format!("no `{EVENT_ID}` header"));
            Uuid::nil()
        }
    };
    let metadata = match header(METADATA).map(|m| serde_json::from_str::<EventMetadata>(&m)) {
        None => EventMetadata::default(),
        Some(Ok(metadata)) => metadata,
        Some(Err(e)) => {
            reasons.push(format!("malformed metadata: {e}"));
            EventMetadata::default()
        }
    };
    let event = RecordedEvent::from_new(
        NewEvent::from_parts(
            event_id,
            event_type,
            schema_version,
            message.payload().unwrap_or_default().to_vec(),
            metadata,
        ),
        stream,
        version,
        position,
        recorded_at,
    );
    if reasons.is_empty() {
        return event;
    }
    let mut raw = std::collections::BTreeMap::new();
    raw.insert("partition".to_owned(), partition.to_string());
    raw.insert("offset".to_owned(), offset.to_string());
    if let Some(key) = key {
        raw.insert("key".to_owned(), key);
    }
    if let Some(headers) = message.headers() {
        for h in headers.iter() {
            raw.insert(
                format!("header {}", h.key),
                h.value
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
            );
        }
    }
    event.with_unreadable(UnreadableEvent::new(
        format!(
            "record at partition {partition}, offset {offset}: {}",
            reasons.join("; ")
        ),
        raw,
    ))
}

/// A record of `<prefix>.heads`: a stream's version after a committed append. Compacted: the
/// last one per stream is the stream's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamHead {
    pub(crate) version: u64,
    /// The offset of the stream's first event, where a read of the stream starts (absent in
    /// records written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first_offset: Option<i64>,
    /// The offset of the stream's last event, where a read of the stream ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_offset: Option<i64>,
}

/// A record of `<prefix>.keys`: the result of the append that first used an idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyedAppend {
    pub(crate) result: AppendResult,
}
