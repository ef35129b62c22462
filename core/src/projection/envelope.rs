use std::ops::Deref;

use crate::codec::Codec;
use crate::error::Result;
use crate::event::{DomainEvent, RecordedEvent};

/// One event as a projection handler sees it: the decoded event, and the recorded event it
/// came from (stream, version, position, metadata, time).
#[derive(Debug)]
#[non_exhaustive]
pub struct Envelope<'a, E> {
    /// The decoded event.
    pub event: E,
    /// The event as stored.
    pub recorded: &'a RecordedEvent,
}

impl<'a, E> Envelope<'a, E> {
    /// Wraps a decoded event and the recorded event it came from (for tests of handlers).
    pub fn new(event: E, recorded: &'a RecordedEvent) -> Self {
        Envelope { event, recorded }
    }
}

impl<E> Deref for Envelope<'_, E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.event
    }
}

/// What a projection can read from the feed: any [`DomainEvent`] type, whose events are
/// decoded (and upcast) and whose unrelated events are skipped, or [`AnyEvent`] for every
/// event, undecoded.
pub trait FeedEvent: Sized + Send + 'static {
    /// Decodes `recorded`; `Ok(None)` when the projection does not read events of its type.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when the event has one of this type's names
    /// but its payload does not decode: a poison event.
    fn from_recorded<C: Codec>(recorded: &RecordedEvent, codec: &C) -> Result<Option<Self>>;
}

impl<E: DomainEvent> FeedEvent for E {
    fn from_recorded<C: Codec>(recorded: &RecordedEvent, codec: &C) -> Result<Option<Self>> {
        if !E::TYPES
            .iter()
            .any(|(name, _)| *name == recorded.event_type.as_str())
        {
            return Ok(None);
        }
        recorded.decode::<E, C>(codec).map(Some)
    }
}

/// Every event of the feed, undecoded: a projection with `type Event = AnyEvent` reads each
/// event from [`Envelope::recorded`] (type, stream, payload bytes), with nothing copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnyEvent;

impl FeedEvent for AnyEvent {
    fn from_recorded<C: Codec>(_recorded: &RecordedEvent, _codec: &C) -> Result<Option<Self>> {
        Ok(Some(AnyEvent))
    }
}
