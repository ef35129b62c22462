use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::UnreadableEvent;
use crate::error::{Error, Result};
use crate::names::{EventType, StreamId};
use crate::position::Position;
use crate::version::Version;

/// Who and what caused an event: carried with it through every store.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventMetadata {
    /// Ties together everything that happened for one request or workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The message (command or event) that directly caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The command whose decision produced this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<Uuid>,
    /// Application metadata (user id, tenant, client ip...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, serde_json::Value>,
}

impl EventMetadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the command id.
    #[must_use]
    pub fn with_command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// Adds one entry of application metadata.
    #[must_use]
    pub fn with_user(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.user.insert(key.into(), value.into());
        self
    }

    /// The encoded size in bytes, counted against a store's event size limit.
    pub fn encoded_len(&self) -> usize {
        if *self == EventMetadata::default() {
            return 2; // "{}"
        }
        serde_json::to_vec(self).map_or(0, |v| v.len())
    }
}

/// An event ready to append: encoded, but not yet given a version or position.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewEvent {
    /// Unique id (UUID v7, so ids sort by creation time).
    pub event_id: Uuid,
    /// The stable type name.
    pub event_type: EventType,
    /// The payload's schema version.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Correlation, causation, command id and application metadata.
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// A new event with a fresh UUID v7 and empty metadata.
    pub fn new(event_type: EventType, schema_version: u32, payload: Vec<u8>) -> Self {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version,
            payload,
            metadata: EventMetadata::default(),
        }
    }

    /// An event with a known id and metadata, as read back from storage. For store
    /// implementations: unlike [`NewEvent::new`] it generates no id (which costs a system call
    /// per event on a long read).
    pub fn from_parts(
        event_id: Uuid,
        event_type: EventType,
        schema_version: u32,
        payload: Vec<u8>,
        metadata: EventMetadata,
    ) -> Self {
        NewEvent {
            event_id,
            event_type,
            schema_version,
            payload,
            metadata,
        }
    }

    /// Replaces the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Replaces the event id (to make an append deterministic in tests or imports).
    #[must_use]
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// The bytes this event counts against a store's size limit: payload plus metadata.
    pub fn encoded_len(&self) -> usize {
        self.payload.len() + self.metadata.encoded_len()
    }
}

/// An event as a store recorded it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordedEvent {
    /// Unique id (UUID v7).
    pub event_id: Uuid,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version in that stream (the first event is version 1).
    pub stream_version: Version,
    /// Its place in the store's global feed.
    pub position: Position,
    /// The stable type name.
    pub event_type: EventType,
    /// The payload's schema version as written.
    pub schema_version: u32,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Correlation, causation, command id and application metadata.
    pub metadata: EventMetadata,
    /// When the store recorded it.
    pub recorded_at: SystemTime,
    /// Set when the store could not read the event whole: what was wrong, and the stored
    /// values. The fields it could not read hold placeholders.
    pub unreadable: Option<Box<UnreadableEvent>>,
}

impl RecordedEvent {
    /// Records `event` at `stream_version` and `position`, now. For store implementations.
    pub fn from_new(
        event: NewEvent,
        stream_id: StreamId,
        stream_version: Version,
        position: Position,
        recorded_at: SystemTime,
    ) -> Self {
        RecordedEvent {
            event_id: event.event_id,
            stream_id,
            stream_version,
            position,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: event.metadata,
            recorded_at,
            unreadable: None,
        }
    }

    /// The same event, marked as not read whole (for store implementations).
    #[must_use]
    pub fn with_unreadable(mut self, unreadable: UnreadableEvent) -> Self {
        self.unreadable = Some(Box::new(unreadable));
        self
    }

    /// `Ok` unless the store could not read this event whole.
    ///
    /// # Errors
    ///
    /// [`Error::UnreadableEvent`] naming its id, position and what was wrong.
    // Called for every event a projector handles or `decode` reads, from generic code in other
    // crates: inlined there, a readable event costs one test of `unreadable`, and the error is
    // built out of line.
    #[inline]
    pub fn check_readable(&self) -> Result<()> {
        match &self.unreadable {
            None => Ok(()),
            Some(unreadable) => Err(self.unreadable_error(unreadable)),
        }
    }

    #[cold]
    fn unreadable_error(&self, unreadable: &UnreadableEvent) -> Error {
        Error::UnreadableEvent {
            event_id: self.event_id,
            position: self.position,
            reason: unreadable.reason.clone(),
        }
    }
}
