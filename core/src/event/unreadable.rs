//! Stored events a store could not read whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{EventType, StreamId};

/// What a store could not read of a stored event: a row written around the store (raw SQL, a
/// restore from elsewhere) whose stream id or type breaks foldline's rules, or whose metadata
/// is not what foldline writes.
///
/// The store still returns the event, in its place in the feed, as a
/// [`RecordedEvent`](crate::RecordedEvent) with [`unreadable`](crate::RecordedEvent::unreadable)
/// set, so readers neither stop nor skip it: the fields it could not read hold placeholders
/// ([`UnreadableEvent::STREAM`], [`UnreadableEvent::TYPE`], empty metadata, schema version 0),
/// and this says what was wrong and keeps the stored values as text. Decoding it
/// ([`RecordedEvent::decode`](crate::RecordedEvent::decode)) is
/// [`Error::UnreadableEvent`](crate::Error::UnreadableEvent); a projector treats it as a poison
/// event (stopped, or parked with these raw values under
/// [`PoisonPolicy::DeadLetter`](crate::PoisonPolicy::DeadLetter)), and the admin's inspection
/// commands show it as undecodable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnreadableEvent {
    /// What could not be read, and why (`invalid stream id: …`), one reason per field.
    pub reason: String,
    /// The stored values of the fields, as text, by column name (`stream_id`, `event_type`,
    /// `schema_version`, `metadata`): what an operator needs to repair or discard the row.
    pub raw: BTreeMap<String, String>,
}

impl UnreadableEvent {
    /// The stream id an unreadable event carries when its own cannot be read.
    pub const STREAM: StreamId = StreamId::from_static("foldline.unreadable");

    /// The event type an unreadable event carries when its own cannot be read.
    pub const TYPE: EventType = EventType::from_static("foldline.unreadable");

    /// An event unreadable for `reason`, with its stored values `raw` (for store
    /// implementations).
    pub fn new(reason: impl Into<String>, raw: BTreeMap<String, String>) -> Self {
        UnreadableEvent {
            reason: reason.into(),
            raw,
        }
    }
}
