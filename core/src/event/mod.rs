//! Domain events: what an aggregate decided happened, and the envelope a store records it in.

mod record;
mod unreadable;

pub use record::{EventMetadata, NewEvent, RecordedEvent};
pub use unreadable::UnreadableEvent;

use crate::codec::Codec;
use crate::error::BoxError;
use crate::names::EventType;
use crate::shown::Shown;

/// A domain event type: usually an enum with one variant per kind of event, derived with
/// `#[derive(DomainEvent)]`.
///
/// Every variant has a stable [type name](DomainEvent::event_type) (stored with the event, so
/// renaming the Rust variant never breaks old data) and a [schema
/// version](DomainEvent::schema_version) that grows when its payload's shape changes; older
/// payloads are upcast on read.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline domain event",
    note = "derive it with `#[derive(foldline::DomainEvent)]` on an enum of events"
)]
pub trait DomainEvent: Sized + Send + Sync + 'static {
    /// Every type name this event type writes, with its current schema version.
    const TYPES: &'static [(&'static str, u32)];

    /// The stable type name of this event's variant.
    fn event_type(&self) -> EventType;

    /// The current schema version of this event's variant.
    fn schema_version(&self) -> u32;

    /// Encodes this event's payload (without the type name, which travels beside it).
    ///
    /// # Errors
    ///
    /// Whatever the codec reports.
    fn encode<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, BoxError>;

    /// Decodes a payload stored as `event_type` at `schema_version`, upcasting older versions.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownType`] for a type name this type does not have,
    /// [`DecodeError::UnsupportedVersion`] for a version with no upcaster, and
    /// [`DecodeError::Payload`] when the codec or an upcaster fails.
    fn decode<C: Codec>(
        codec: &C,
        event_type: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, DecodeError>;
}

/// Why [`DomainEvent::decode`] failed; stores wrap it into [`Error`](crate::Error) with the
/// event's stream and version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The type name is not one of [`DomainEvent::TYPES`].
    #[error("unknown event type `{}`", Shown::new(.event_type))]
    UnknownType {
        /// The unknown type name.
        event_type: String,
    },
    /// The type is known but this schema version has neither a decoder nor an upcaster.
    #[error(
        "event `{}` has no upcaster from schema version {version} (current is {current})",
        Shown::new(.event_type)
    )]
    UnsupportedVersion {
        /// The event's type name.
        event_type: String,
        /// The stored schema version.
        version: u32,
        /// The version this code writes.
        current: u32,
    },
    /// The codec rejected the payload.
    #[error("malformed payload")]
    Payload(#[source] BoxError),
}

impl NewEvent {
    /// Encodes a domain event for an append: its type name, current schema version and
    /// payload (`codec`'s encoding), with empty metadata and a fresh event id.
    ///
    /// ```
    /// use foldline::{DomainEvent, JsonCodec, NewEvent};
    /// # #[derive(Debug, serde::Serialize, serde::Deserialize, DomainEvent)]
    /// # enum AccountEvent { Deposited { cents: u64 } }
    /// let new = NewEvent::encode(&AccountEvent::Deposited { cents: 250 }, &JsonCodec)?;
    /// assert_eq!(new.event_type.as_str(), "Deposited");
    /// assert_eq!(new.payload, br#"{"cents":250}"#);
    /// # Ok::<(), foldline::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) naming the event type, with the codec's error.
    pub fn encode<E: DomainEvent, C: Codec>(event: &E, codec: &C) -> crate::Result<NewEvent> {
        let event_type = event.event_type();
        let payload = event.encode(codec).map_err(|source| crate::Error::Encode {
            what: format!("event `{event_type}`"),
            source,
        })?;
        Ok(NewEvent::new(event_type, event.schema_version(), payload))
    }
}

impl RecordedEvent {
    /// Decodes this event's payload into `E`, upcasting older schema versions.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownEventType`](crate::Error::UnknownEventType) or
    /// [`Error::Decode`](crate::Error::Decode), both naming this event's stream and version.
    pub fn decode<E: DomainEvent, C: Codec>(&self, codec: &C) -> crate::Result<E> {
        self.check_readable()?;
        E::decode(
            codec,
            self.event_type.as_str(),
            self.schema_version,
            &self.payload,
        )
        .map_err(|error| match error {
            DecodeError::UnknownType { .. } => crate::Error::UnknownEventType {
                stream: self.stream_id.clone(),
                version: self.stream_version,
                event_type: self.event_type.clone(),
                schema_version: self.schema_version,
            },
            other => crate::Error::Decode {
                stream: self.stream_id.clone(),
                version: self.stream_version,
                event_type: self.event_type.clone(),
                schema_version: self.schema_version,
                source: Box::new(other),
            },
        })
    }
}
