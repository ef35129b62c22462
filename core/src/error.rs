//! The error every store and the command executor return.

use std::fmt;
use std::time::Duration;

use crate::event::RecordedEvent;
use crate::names::{EventType, NameRule, ProjectionName, StreamId};
use crate::position::Position;
use crate::projection::SlotId;
use crate::shown::Shown;
use crate::store::StoreIdentity;
use crate::version::{ExpectedVersion, Version};

/// A boxed error from another crate (serde_json, a database driver), kept as a source so its
/// type never becomes part of foldline's API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with foldline's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error` and its sources, outermost first, with `separator` between them: the one-line
/// form (`": "`) foldline writes into logs, status reports and dead letters, or a CLI's
/// `caused by:` lines.
///
/// ```
/// let error = foldline::Error::InvalidCheckpoint { value: "x".into() };
/// assert_eq!(foldline::error_chain(&error, ": "), "invalid checkpoint `x`");
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static), separator: &str) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

/// What went wrong in a store, a codec or the command executor.
///
/// Match on the helpers ([`Error::is_conflict`], [`Error::is_transient`],
/// [`Error::is_invalid_input`], [`Error::is_decode`], [`Error::is_corrupt`]) rather than on
/// variants: new variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream was not at the version the append expected.
    #[error("version conflict on stream `{stream}`: expected {expected}, found version {actual}")]
    Conflict {
        /// The stream appended to.
        stream: StreamId,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked.
        actual: Version,
    },

    /// A name (stream id, event type, projection, schema, idempotency key) broke its rules.
    /// The message shows the value [escaped and cut short](Shown), and names the rule: for a
    /// character that is not allowed, which one and where: ``invalid stream id `acct\nx`:
    /// contains `\n` (U+000A) at byte 4, which is not allowed``.
    #[error("invalid {kind} `{}`: {reason}", Shown::new(.value))]
    InvalidName {
        /// Which kind of name.
        kind: NameKind,
        /// The rejected value, whole.
        value: String,
        /// Which rule it broke.
        reason: NameRule,
    },

    /// Bytes or text that should hold a checkpoint or position do not. The message shows the
    /// text [escaped and cut short](Shown).
    #[error("invalid checkpoint `{}`", Shown::new(.value))]
    InvalidCheckpoint {
        /// The rejected text, whole.
        value: String,
    },

    /// An event's encoded payload and metadata exceed the store's limit. Nothing was written.
    #[error(
        "event `{event_type}` for stream `{stream}` is {size} bytes, over the limit of {limit}"
    )]
    EventTooLarge {
        /// The stream appended to.
        stream: StreamId,
        /// The oversize event's type.
        event_type: EventType,
        /// Its size in bytes (payload plus metadata).
        size: usize,
        /// The store's limit in bytes.
        limit: usize,
    },

    /// One append carried more events than the store accepts at once. Nothing was written.
    #[error("append to stream `{stream}` carries {count} events, over the limit of {limit}")]
    TooManyEvents {
        /// The stream appended to.
        stream: StreamId,
        /// How many events the append carried.
        count: usize,
        /// The store's limit.
        limit: usize,
    },

    /// An event's payload, or its metadata, is not in a form the store can keep (e.g. not JSON
    /// that PostgreSQL's `jsonb` accepts). Only this append fails: nothing of it was written,
    /// and appends sent at the same moment are not affected. The source says what is wrong and
    /// where.
    #[error(
        "event `{event_type}` for stream `{stream}` has a payload or metadata the store cannot keep"
    )]
    InvalidPayload {
        /// The stream appended to.
        stream: StreamId,
        /// The event's type.
        event_type: EventType,
        /// Why the payload was refused.
        #[source]
        source: BoxError,
    },

    /// A stored event has a type the reading code does not know.
    #[error(
        "unknown event type `{event_type}` (schema version {schema_version}) at {stream}@{version}"
    )]
    UnknownEventType {
        /// The stream the event belongs to.
        stream: StreamId,
        /// Its version in that stream.
        version: Version,
        /// The unknown type name.
        event_type: EventType,
        /// Its schema version.
        schema_version: u32,
    },

    /// A stored event's payload could not be decoded (or upcast) into the current type.
    #[error("failed to decode event `{event_type}` v{schema_version} at {stream}@{version}")]
    Decode {
        /// The stream the event belongs to.
        stream: StreamId,
        /// Its version in that stream.
        version: Version,
        /// The event's type name.
        event_type: EventType,
        /// The event's schema version.
        schema_version: u32,
        /// What the codec or upcaster said.
        #[source]
        source: BoxError,
    },

    /// An event or snapshot could not be encoded.
    #[error("failed to encode {what}")]
    Encode {
        /// What was being encoded (`event `Deposited``, `snapshot of account-1`).
        what: String,
        /// What the codec said.
        #[source]
        source: BoxError,
    },

    /// Waiting (for a position, a lease, a service) took longer than allowed.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
    },

    /// The store or subscription was shut down.
    #[error("the {what} is closed")]
    Closed {
        /// What is closed.
        what: &'static str,
    },

    /// The task deciding an aggregate's queued commands ended before answering this one: the
    /// aggregate's `handle` or `apply` panicked on one of them, or the runtime is shutting
    /// down. The command's events may or may not have been appended; give commands an
    /// idempotency key to execute them again safely.
    #[error(
        "the task deciding the commands of stream `{stream}` ended before answering this one \
         (a panic in the aggregate, or the runtime shutting down); it may or may not have been \
         appended"
    )]
    CommandAbandoned {
        /// The aggregate's stream.
        stream: StreamId,
    },

    /// A projection's handler kept failing on one event, and the projector's policy is to stop.
    #[error(transparent)]
    PoisonEvent(Box<PoisonEvent>),

    /// A newer version of the projection is active in the target than the one this code builds.
    #[error(
        "projection `{projection}` is at version {active} in the target, newer than this \
         code's version {running}; deploy the newer code or rebuild"
    )]
    ProjectionSuperseded {
        /// The projection.
        projection: ProjectionName,
        /// The version this code builds.
        running: u32,
        /// The version of the active slot.
        active: u32,
    },

    /// An operator action needs a slot a running projector holds.
    #[error(
        "slot {slot} of projection `{projection}` is held by a running projector; pause the \
         projection first"
    )]
    ProjectionBusy {
        /// The projection.
        projection: ProjectionName,
        /// The slot.
        slot: SlotId,
    },

    /// A projection slot that does not exist (dropped, or never created).
    #[error("projection `{projection}` has no slot {slot}")]
    SlotNotFound {
        /// The projection.
        projection: ProjectionName,
        /// The slot asked for.
        slot: SlotId,
    },

    /// The active slot of a projection cannot be dropped; activate another one first.
    #[error("slot {slot} of projection `{projection}` is active and cannot be dropped")]
    SlotActive {
        /// The projection.
        projection: ProjectionName,
        /// The slot.
        slot: SlotId,
    },

    /// The backing service failed (connection lost, query failed, broker unavailable).
    #[error(transparent)]
    Backend(#[from] BackendError),

    /// A projection slot was built from another store than the one it is used with: its
    /// checkpoint means nothing in this store's feed (another schema, database or cluster, a
    /// restored backup). Nothing was read or written; rebuild the projection from this store.
    #[error(
        "slot {slot} of projection `{projection}` was built from store {}, not from store \
         {current} it is used with: its checkpoint means nothing there; rebuild the projection \
         from this store (`foldline rebuild {projection}`)",
        recorded.as_ref().map_or("(unrecorded: built before foldline recorded stores)", StoreIdentity::as_str)
    )]
    StoreMismatch {
        /// The projection.
        projection: ProjectionName,
        /// Its slot.
        slot: SlotId,
        /// The store the slot records (`None`: a slot from before stores were recorded).
        recorded: Option<StoreIdentity>,
        /// The store it is used with.
        current: StoreIdentity,
    },

    /// A stored event the store could not read whole (see
    /// [`UnreadableEvent`](crate::UnreadableEvent)): corrupt data at that position, not an
    /// outage. Retrying reads it the same way; repair or discard the row, or let a projection
    /// park it ([`PoisonPolicy::DeadLetter`](crate::PoisonPolicy::DeadLetter)).
    #[error("the stored event {event_id} at position {position} cannot be read: {reason}")]
    UnreadableEvent {
        /// The event's id.
        event_id: uuid::Uuid,
        /// Its place in the feed.
        position: Position,
        /// What could not be read, and why.
        reason: String,
    },

    /// A stream's stored events skip a version: an event was deleted (or never written) in the
    /// middle of the stream. Loading refuses to fold such a stream, so no command decides on
    /// it and nothing is appended on top of the gap. The data needs repair; retrying reads the
    /// same gap.
    #[error(
        "stream `{stream}` is missing version {expected}: the next event stored is version \
         {found}"
    )]
    StreamGap {
        /// The stream.
        stream: StreamId,
        /// The version that should come next, and is missing.
        expected: Version,
        /// The version read in its place.
        found: Version,
    },

    /// A partitioned store's topic no longer has the partitions the store was created with:
    /// a stream's partition is its id's hash modulo the count, so streams would move and
    /// their order and versions break. The store refuses to start; nothing was read or written.
    #[error(
        "topic `{topic}` has {found} partitions, but the store was created with {created}: \
         streams would map to other partitions; restore the topic or start a new store"
    )]
    PartitionCountChanged {
        /// The topic.
        topic: String,
        /// The count the store was created with.
        created: u32,
        /// The count the topic has now.
        found: u32,
    },

    /// A store opened without creating it (an operator's tool, a reader that must not create
    /// what a typo names) does not exist there. Nothing was created.
    #[error(
        "no store at {store}: check the name and address, or open it once from the application          that creates it"
    )]
    StoreNotFound {
        /// Where the store was looked for.
        store: String,
    },
}

impl Error {
    /// Whether this is an optimistic-concurrency conflict: reload and decide again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// Whether trying the same operation again later may succeed (connection loss, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Backend(e) => e.is_transient(),
            _ => false,
        }
    }

    /// Whether the caller's input was rejected (bad name, oversize event): retrying the same
    /// input will fail the same way, and nothing was written.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. }
                | Error::InvalidCheckpoint { .. }
                | Error::EventTooLarge { .. }
                | Error::TooManyEvents { .. }
                | Error::InvalidPayload { .. }
        )
    }

    /// Whether a stored event could not be turned into the current event type.
    pub fn is_decode(&self) -> bool {
        matches!(
            self,
            Error::Decode { .. } | Error::UnknownEventType { .. } | Error::UnreadableEvent { .. }
        )
    }

    /// Whether stored data is damaged: a stream with a [gap](Error::StreamGap), or a backend
    /// that found data not in the shape it keeps ([`BackendErrorKind::Corrupt`]). Retrying
    /// fails the same way until the data is repaired; nothing was written.
    pub fn is_corrupt(&self) -> bool {
        match self {
            Error::StreamGap { .. } => true,
            Error::Backend(e) => e.kind() == BackendErrorKind::Corrupt,
            _ => false,
        }
    }
}

/// The event a projection's handler kept failing on ([`Error::PoisonEvent`]); its
/// [`source`](std::error::Error::source) is the handler's last error.
#[derive(Debug, thiserror::Error)]
#[error(
    "projection `{projection}` failed on event `{event_type}` of stream `{stream}` \
     (version {version}, position {position}) after {attempts} attempts"
)]
#[non_exhaustive]
pub struct PoisonEvent {
    /// The projection.
    pub projection: ProjectionName,
    /// The event's stream.
    pub stream: StreamId,
    /// The event's version in its stream.
    pub version: Version,
    /// The event's place in the global feed.
    pub position: Position,
    /// The event's type.
    pub event_type: EventType,
    /// How many times the handler was tried.
    pub attempts: u32,
    /// The handler's last error.
    #[source]
    pub source: BoxError,
}

impl PoisonEvent {
    /// `event`, which `projection`'s handler failed on `attempts` times, last with `source`.
    pub(crate) fn new(
        projection: ProjectionName,
        event: &RecordedEvent,
        attempts: u32,
        source: BoxError,
    ) -> Self {
        PoisonEvent {
            projection,
            stream: event.stream_id.clone(),
            version: event.stream_version,
            position: event.position,
            event_type: event.event_type.clone(),
            attempts,
            source,
        }
    }
}

/// Which kind of validated name an [`Error::InvalidName`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// [`StreamId`].
    StreamId,
    /// [`EventType`].
    EventType,
    /// [`ProjectionName`](crate::ProjectionName).
    ProjectionName,
    /// [`SchemaName`](crate::SchemaName).
    SchemaName,
    /// [`IdempotencyKey`](crate::IdempotencyKey).
    IdempotencyKey,
    /// A backend's namespace: a Redis key prefix, an index directory name, the prefix of a
    /// Kafka store's topics.
    KeyPrefix,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::StreamId => "stream id",
            NameKind::EventType => "event type",
            NameKind::ProjectionName => "projection name",
            NameKind::SchemaName => "schema name",
            NameKind::IdempotencyKey => "idempotency key",
            NameKind::KeyPrefix => "key prefix",
        })
    }
}

/// A failure of the service behind a store or projection target. Opaque: ask it
/// [`kind`](BackendError::kind) or [`is_transient`](BackendError::is_transient), and walk
/// [`source`](std::error::Error::source) for the driver's own error.
#[derive(Debug, thiserror::Error)]
#[error("{backend} failed while {context}")]
pub struct BackendError {
    backend: &'static str,
    kind: BackendErrorKind,
    context: String,
    #[source]
    source: Option<BoxError>,
}

/// The broad kind of a [`BackendError`], which decides whether retrying makes sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The service could not be reached or the connection was lost: retry later.
    Unavailable,
    /// The service answered too slowly: retry later.
    Timeout,
    /// This instance lost the right to write (a fenced Kafka producer, a lost lease): another
    /// owner may accept the operation.
    NotOwner,
    /// The service rejected the operation; retrying the same request will fail again.
    Rejected,
    /// Stored data is not in the shape the code expects.
    Corrupt,
}

impl BackendError {
    /// Builds a backend error. `backend` names the service (`"postgres"`), `context` says what
    /// foldline was doing (`"appending to account-1"`). Backend crates build theirs through
    /// their [`DriverErrors`](crate::DriverErrors) implementation, which fills in `backend`.
    pub fn new(
        backend: &'static str,
        kind: BackendErrorKind,
        context: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        BackendError {
            backend,
            kind,
            context: context.into(),
            source,
        }
    }

    /// Which service failed.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The broad kind of failure.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Unavailable | BackendErrorKind::Timeout | BackendErrorKind::NotOwner
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_checkpoints_show_their_text_escaped_and_cut_short() {
        let text = format!("0:1:2\nerror: forged \u{1b}[2J{}", "9".repeat(10_240));
        let error = Error::InvalidCheckpoint {
            value: text.clone(),
        };
        let message = error.to_string();
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.len() < 120, "{} bytes: {message}", message.len());
        assert!(
            message.starts_with(r"invalid checkpoint `0:1:2\nerror: forged \u{1b}[2J999"),
            "{message}"
        );
        assert!(message.ends_with("…(10264 bytes)`"), "{message}");
        // The error keeps the whole text for whoever handles it.
        assert!(matches!(&error, Error::InvalidCheckpoint { value } if *value == text));
        let parsed = text.parse::<crate::Checkpoint>().unwrap_err().to_string();
        assert_eq!(parsed, message);
    }

    #[test]
    fn a_stream_gap_names_the_stream_and_the_missing_version_and_is_corrupt_data() {
        let error = Error::StreamGap {
            stream: StreamId::from_static("account-7"),
            expected: Version::new(2),
            found: Version::new(3),
        };
        assert_eq!(
            error.to_string(),
            "stream `account-7` is missing version 2: the next event stored is version 3"
        );
        assert!(error.is_corrupt());
        assert!(!error.is_transient() && !error.is_invalid_input());
        assert!(!error.is_conflict() && !error.is_decode());
        let corrupt = BackendError::new("test", BackendErrorKind::Corrupt, "reading", None);
        assert!(Error::Backend(corrupt).is_corrupt());
        let rejected = BackendError::new("test", BackendErrorKind::Rejected, "reading", None);
        assert!(!Error::Backend(rejected).is_corrupt());
    }
}
