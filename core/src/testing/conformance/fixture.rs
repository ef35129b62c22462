//! What every case shares: unique stream names, raw events, and assertions that name the case.

use std::fmt;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};
use crate::names::{EventType, StreamId};
use crate::position::{Checkpoint, Position};
use crate::store::{AppendRequest, AppendResult, EventStore};
use crate::version::{ExpectedVersion, Version};

/// How long a case waits for something the store should deliver (an event on the feed, a
/// batch from a subscription) before it fails. Generous: on a shared database another
/// transaction may hold the feed's visibility horizon back for a while.
pub(super) const WAIT: Duration = Duration::from_secs(30);

/// The type of every event the suite writes.
pub(super) const EVENT_TYPE: EventType = EventType::from_static("conformance.Tested");

/// One run of one case: its name (in every failure message) and a prefix that makes its
/// stream ids unique, so cases can share a store with each other and with other tests.
pub(super) struct Fixture {
    case: &'static str,
    prefix: String,
}

impl Fixture {
    pub(super) fn new(case: &'static str) -> Self {
        Fixture {
            case,
            prefix: format!("conformance-{case}-{}", Uuid::now_v7().simple()),
        }
    }

    /// A stream id no other case run uses.
    pub(super) fn stream(&self, name: &str) -> StreamId {
        StreamId::new(format!("{}-{name}", self.prefix))
            .unwrap_or_else(|e| self.fail(format_args!("test stream id is invalid: {e}")))
    }

    /// Whether `stream` was made by [`Fixture::stream`] of this run.
    pub(super) fn owns(&self, stream: &StreamId) -> bool {
        stream
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// A small JSON event labelled `label`, with metadata in every field.
    pub(super) fn event(&self, label: &str) -> NewEvent {
        let payload = serde_json::json!({ "case": self.case, "label": label });
        let metadata = EventMetadata::new()
            .with_correlation_id(Uuid::now_v7())
            .with_causation_id(Uuid::now_v7())
            .with_command_id(Uuid::now_v7())
            .with_user("label", label);
        NewEvent::new(EVENT_TYPE, 1, payload.to_string().into_bytes()).with_metadata(metadata)
    }

    /// `count` events labelled `label-0`, `label-1`...
    pub(super) fn events(&self, label: &str, count: usize) -> Vec<NewEvent> {
        (0..count)
            .map(|i| self.event(&format!("{label}-{i}")))
            .collect()
    }

    /// Fails the case.
    #[track_caller]
    pub(super) fn fail(&self, message: impl fmt::Display) -> ! {
        panic!("conformance case `{}` failed: {message}", self.case)
    }

    /// Fails the case with `message()` unless `condition` holds.
    #[track_caller]
    pub(super) fn check(&self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.fail(message());
        }
    }

    /// The value of a store call that must succeed.
    #[track_caller]
    pub(super) fn ok<T>(&self, result: Result<T>, doing: impl fmt::Display) -> T {
        result.unwrap_or_else(|e| self.fail(format_args!("store failed while {doing}: {e:?}")))
    }

    /// Appends events that must be accepted, and checks the result describes the append.
    #[track_caller]
    pub(super) fn check_appended(
        &self,
        result: Result<AppendResult>,
        stream: &StreamId,
        previous: Version,
        count: usize,
        doing: impl fmt::Display,
    ) -> AppendResult {
        let result = match result {
            Ok(result) => result,
            Err(e) => self.fail(format_args!("{doing}: expected success, got {e:?}")),
        };
        let count = count as u64;
        let expected_current = previous.add(count);
        self.check(
            result.stream_id == *stream
                && result.previous_version == previous
                && result.current_version == expected_current
                && !result.replayed
                && result.position.is_some() == (count > 0),
            || {
                format!(
                    "{doing}: expected stream `{stream}` to go from {previous:?} to \
                     {expected_current:?} (not replayed, position {}), got {result:?}",
                    if count > 0 { "set" } else { "none" }
                )
            },
        );
        result
    }

    /// Checks `result` is [`Error::Conflict`] naming `stream`, `expected` and `actual`.
    #[track_caller]
    pub(super) fn check_conflict(
        &self,
        result: Result<AppendResult>,
        stream: &StreamId,
        expected: ExpectedVersion,
        actual: Version,
        doing: impl fmt::Display,
    ) {
        match result {
            Err(Error::Conflict {
                stream: s,
                expected: e,
                actual: a,
            }) if s == *stream && e == expected && a == actual => {}
            Err(ref error @ Error::Conflict { .. }) => self.fail(format_args!(
                "{doing}: expected a conflict on `{stream}` naming expected {expected:?} and \
                 actual {actual:?}, got {error:?}"
            )),
            other => self.fail(format_args!(
                "{doing}: expected Error::Conflict (expected {expected:?}, actual {actual:?}), \
                 got {other:?}"
            )),
        }
        let conflict = Error::Conflict {
            stream: stream.clone(),
            expected,
            actual,
        };
        self.check(
            conflict.is_conflict() && !conflict.is_invalid_input(),
            || "Error::Conflict must answer is_conflict() and not is_invalid_input()".into(),
        );
    }

    /// Appends fresh events to `stream`, which is at `version`, in appends of `sizes` events
    /// each (expecting the exact version every time); returns the events written.
    pub(super) async fn write_stream<S: EventStore>(
        &self,
        store: &S,
        stream: &StreamId,
        mut version: Version,
        sizes: &[usize],
    ) -> Vec<NewEvent> {
        let mut written = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let events = self.events(&format!("{stream}-v{version}-{i}"), size);
            let result = store
                .append(request(
                    stream,
                    ExpectedVersion::Exact(version),
                    events.clone(),
                ))
                .await;
            version = self
                .check_appended(
                    result,
                    stream,
                    version,
                    size,
                    format_args!("writing `{stream}`"),
                )
                .current_version;
            written.extend(events);
        }
        written
    }

    /// Every event of `stream`, read in pages.
    pub(super) async fn read_whole_stream<S: EventStore>(
        &self,
        store: &S,
        stream: &StreamId,
    ) -> Vec<RecordedEvent> {
        const PAGE: usize = 100;
        let mut events: Vec<RecordedEvent> = Vec::new();
        loop {
            let from = Version::new(events.len() as u64 + 1);
            let page = self.ok(
                store.read_stream(stream, from, PAGE).await,
                format_args!("reading `{stream}` from {from:?}"),
            );
            let full = page.len() == PAGE;
            events.extend(page);
            if !full {
                return events;
            }
        }
    }

    /// Checks `stream` holds exactly `written`, in order, with versions 1..=n.
    pub(super) async fn check_stream<S: EventStore>(
        &self,
        store: &S,
        stream: &StreamId,
        written: &[NewEvent],
        doing: impl fmt::Display,
    ) -> Vec<RecordedEvent> {
        let recorded = self.read_whole_stream(store, stream).await;
        self.check_recorded(&recorded, stream, Version::new(1), written, &doing);
        recorded
    }

    /// Checks `recorded` are `written`, stored in `stream` from version `first` on.
    #[track_caller]
    pub(super) fn check_recorded(
        &self,
        recorded: &[RecordedEvent],
        stream: &StreamId,
        first: Version,
        written: &[NewEvent],
        doing: &dyn fmt::Display,
    ) {
        let ids = |events: &mut dyn Iterator<Item = Uuid>| events.collect::<Vec<_>>();
        self.check(recorded.len() == written.len(), || {
            format!(
                "{doing}: `{stream}` should hold {} events from {first:?}, read {}: \
                 written ids {:?}, read ids {:?}",
                written.len(),
                recorded.len(),
                ids(&mut written.iter().map(|e| e.event_id)),
                ids(&mut recorded.iter().map(|e| e.event_id)),
            )
        });
        let mut previous: Option<&RecordedEvent> = None;
        for (i, (r, w)) in recorded.iter().zip(written).enumerate() {
            let version = first.add(i as u64);
            self.check(
                r.stream_id == *stream
                    && r.stream_version == version
                    && r.event_id == w.event_id
                    && r.event_type == w.event_type
                    && r.schema_version == w.schema_version
                    && r.metadata == w.metadata
                    && same_payload(&r.payload, &w.payload),
                || {
                    format!(
                        "{doing}: event {i} of `{stream}` should be {w:?} at {version:?}, \
                         read {r:?}"
                    )
                },
            );
            if let Some(p) = previous {
                self.check(is_after(&r.position, &p.position), || {
                    format!(
                        "{doing}: in `{stream}`, {:?} at {} is not after {:?} at {}",
                        r.stream_version, r.position, p.stream_version, p.position
                    )
                });
            }
            previous = Some(r);
        }
    }

    /// Calls `read` until it returns `Some`, failing after [`WAIT`]. Only for stores whose
    /// feed may lag behind commits (a visibility horizon); there is no signal to wait on.
    pub(super) async fn eventually<T, F, Fut>(&self, what: impl fmt::Display, mut read: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = read().await {
                return value;
            }
            if Instant::now() >= deadline {
                self.fail(format_args!("gave up after {WAIT:?} waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether `later` comes strictly after `earlier` in the same partition of the feed.
pub(super) fn is_after(later: &Position, earlier: &Position) -> bool {
    let mut checkpoint = Checkpoint::START;
    checkpoint.advance(*earlier);
    later.partition() == earlier.partition() && !checkpoint.covers(later)
}

/// Payloads compare as JSON values when both are JSON (a store may normalise JSON, as
/// PostgreSQL's `jsonb` does), as bytes otherwise.
pub(super) fn same_payload(read: &[u8], written: &[u8]) -> bool {
    match (
        serde_json::from_slice::<serde_json::Value>(read),
        serde_json::from_slice::<serde_json::Value>(written),
    ) {
        (Ok(read), Ok(written)) => read == written,
        _ => read == written,
    }
}

/// An append request, for brevity in the cases.
pub(super) fn request(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendRequest {
    AppendRequest::new(stream.clone(), expected, events)
}
