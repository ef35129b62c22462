use crate::event::{NewEvent, RecordedEvent};
use crate::names::{IdempotencyKey, StreamId};
use crate::position::{Checkpoint, Position};
use crate::version::{ExpectedVersion, Version};

/// One append: events for one stream, the version they expect, and an optional idempotency key.
///
/// ```
/// use foldline::{AppendRequest, EventType, ExpectedVersion, IdempotencyKey, NewEvent, StreamId};
/// let event = NewEvent::new(EventType::new("Opened")?, 1, br#"{"owner":"ada"}"#.to_vec());
/// let request = AppendRequest::new(StreamId::new("account-1")?, ExpectedVersion::NoStream, vec![event])
///     .with_idempotency_key(IdempotencyKey::new("open-account-1")?);
/// assert_eq!(request.events().len(), 1);
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AppendRequest {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    idempotency_key: Option<IdempotencyKey>,
}

impl AppendRequest {
    /// Events for `stream`, expecting it to be at `expected`.
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        AppendRequest {
            stream,
            expected,
            events,
            idempotency_key: None,
        }
    }

    /// Makes the append idempotent: a second append with the same key writes nothing and
    /// returns the first one's result. Keys are global to the store, not per stream.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// The stream appended to.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The expected version.
    pub fn expected(&self) -> ExpectedVersion {
        self.expected
    }

    /// The events, in the order they will get versions.
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    /// The idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&IdempotencyKey> {
        self.idempotency_key.as_ref()
    }

    /// Takes the request apart (for store implementations).
    pub fn into_parts(
        self,
    ) -> (
        StreamId,
        ExpectedVersion,
        Vec<NewEvent>,
        Option<IdempotencyKey>,
    ) {
        (
            self.stream,
            self.expected,
            self.events,
            self.idempotency_key,
        )
    }
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AppendResult {
    /// The stream appended to.
    pub stream_id: StreamId,
    /// The stream's version before the append.
    pub previous_version: Version,
    /// The stream's version after the append (the last appended event's version).
    pub current_version: Version,
    /// The global-feed position of the last appended event; `None` when the append carried no
    /// events. Pass it to a projection's `wait_for` to read your own write.
    pub position: Option<Position>,
    /// `true` when an earlier append with the same idempotency key is being returned and
    /// nothing was written now.
    pub replayed: bool,
}

impl AppendResult {
    /// The result of a fresh (not replayed) append. For store implementations.
    pub fn new(
        stream_id: StreamId,
        previous_version: Version,
        current_version: Version,
        position: Option<Position>,
    ) -> Self {
        AppendResult {
            stream_id,
            previous_version,
            current_version,
            position,
            replayed: false,
        }
    }

    /// The version of the first event this append wrote (meaningless when it wrote none).
    pub fn first_version(&self) -> Version {
        self.previous_version.next()
    }

    /// How many events the append wrote.
    pub fn event_count(&self) -> u64 {
        self.current_version.get() - self.previous_version.get()
    }

    /// The same result, marked as a replay of an earlier append.
    #[must_use]
    pub fn into_replayed(mut self) -> Self {
        self.replayed = true;
        self
    }
}

/// Events read from the global feed, and the checkpoint to continue from.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EventBatch {
    /// The events, in store order.
    pub events: Vec<RecordedEvent>,
    /// Covers every event in `events` (and everything before); pass it to the next read.
    pub checkpoint: Checkpoint,
}

impl EventBatch {
    /// A batch of `events` ending at `checkpoint`.
    pub fn new(events: Vec<RecordedEvent>, checkpoint: Checkpoint) -> Self {
        EventBatch { events, checkpoint }
    }

    /// Whether the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}
