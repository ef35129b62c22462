//! Dead letters: events a projection could not handle, parked so the rest of the feed goes on.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{RecordedEvent, UnreadableEvent};
use crate::names::{EventType, StreamId};
use crate::position::Position;
use crate::version::Version;

/// An event a projection could not handle, parked so the rest of the feed goes on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The event's id: the key to retry or discard it by.
    pub event_id: Uuid,
    /// Its place in the global feed.
    pub position: Position,
    /// Its stream.
    pub stream_id: StreamId,
    /// Its version in the stream.
    pub stream_version: Version,
    /// Its type.
    pub event_type: EventType,
    /// The handler's last error, with its sources, as text.
    pub error: String,
    /// How many times the handler was tried.
    pub attempts: u32,
    /// When it was parked.
    pub parked_at: SystemTime,
    /// For an event the store could not read whole: what was wrong and its stored values
    /// (the fields above then hold placeholders where the row could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<Box<UnreadableEvent>>,
}

impl DeadLetter {
    /// A dead letter for `event`, which failed `attempts` times, last with `error`.
    pub fn new(event: &RecordedEvent, error: String, attempts: u32) -> Self {
        DeadLetter {
            event_id: event.event_id,
            position: event.position,
            stream_id: event.stream_id.clone(),
            stream_version: event.stream_version,
            event_type: event.event_type.clone(),
            error,
            attempts,
            parked_at: SystemTime::now(),
            unreadable: event.unreadable.clone(),
        }
    }
}
