//! Checks on the global feed as a reader sees it, batch by batch, shared by the `read_all` and
//! `subscribe` cases.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use uuid::Uuid;

use super::fixture::{Fixture, WAIT, request};
use crate::event::{NewEvent, RecordedEvent};
use crate::names::StreamId;
use crate::position::Checkpoint;
use crate::store::{EventBatch, EventStore, Subscription};
use crate::version::{ExpectedVersion, Version};

/// What a case wrote: per stream, the event ids in version order.
#[derive(Default)]
pub(super) struct Written {
    streams: BTreeMap<StreamId, Vec<Uuid>>,
}

impl Written {
    pub(super) fn record(&mut self, stream: &StreamId, ids: impl IntoIterator<Item = Uuid>) {
        self.streams.entry(stream.clone()).or_default().extend(ids);
    }

    pub(super) fn merge(&mut self, other: Written) {
        for (stream, ids) in other.streams {
            self.record(&stream, ids);
        }
    }

    /// Written in the order `events` arrived (per stream, which is all order means here).
    pub(super) fn from_events(events: &[RecordedEvent]) -> Self {
        let mut written = Written::default();
        for event in events {
            written.record(&event.stream_id, [event.event_id]);
        }
        written
    }

    pub(super) fn len(&self) -> usize {
        self.streams.values().map(Vec::len).sum()
    }
}

/// One reader's pass over the feed from a checkpoint. Every batch is checked as it arrives:
///
/// - at most `limit` events;
/// - its checkpoint covers every event in it and never moves back;
/// - each event lies strictly after every earlier event of its partition, and after the
///   checkpoint the pass started from (so nothing is delivered twice or out of order);
/// - the case's own events arrive once each, in version order per stream.
pub(super) struct FeedCheck<'f> {
    fx: &'f Fixture,
    reader: &'static str,
    limit: Option<usize>,
    checkpoint: Checkpoint,
    seen: Checkpoint,
    own: Vec<RecordedEvent>,
    ids: HashSet<Uuid>,
    last_version: BTreeMap<StreamId, Version>,
    batches: usize,
}

impl<'f> FeedCheck<'f> {
    pub(super) fn new(
        fx: &'f Fixture,
        reader: &'static str,
        after: Checkpoint,
        limit: Option<usize>,
    ) -> Self {
        FeedCheck {
            fx,
            reader,
            limit,
            seen: after.clone(),
            checkpoint: after,
            own: Vec::new(),
            ids: HashSet::new(),
            last_version: BTreeMap::new(),
            batches: 0,
        }
    }

    /// The checkpoint of the last batch taken.
    pub(super) fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The case's own events taken so far, in the order they arrived.
    pub(super) fn own(&self) -> &[RecordedEvent] {
        &self.own
    }

    /// Checks one batch and takes it in.
    #[track_caller]
    pub(super) fn take(&mut self, batch: &EventBatch) {
        let (fx, reader) = (self.fx, self.reader);
        self.batches += 1;
        let n = self.batches;
        if let Some(limit) = self.limit {
            fx.check(batch.events.len() <= limit, || {
                format!(
                    "{reader} batch {n} holds {} events, over the limit {limit}",
                    batch.events.len()
                )
            });
        }
        fx.check(batch.checkpoint.covers_checkpoint(&self.checkpoint), || {
            format!(
                "{reader} batch {n}: checkpoint moved back from {} to {}",
                self.checkpoint, batch.checkpoint
            )
        });
        for event in &batch.events {
            fx.check(!self.seen.covers(&event.position), || {
                format!(
                    "{reader} batch {n}: event {} of `{}` at {} is not after the reader's \
                     position {} (delivered twice or out of order)",
                    event.event_id, event.stream_id, event.position, self.seen
                )
            });
            self.seen.advance(event.position);
            fx.check(batch.checkpoint.covers(&event.position), || {
                format!(
                    "{reader} batch {n}: checkpoint {} does not cover its event at {}",
                    batch.checkpoint, event.position
                )
            });
            if !fx.owns(&event.stream_id) {
                continue;
            }
            fx.check(self.ids.insert(event.event_id), || {
                format!(
                    "{reader} batch {n}: event {} ({:?} of `{}`) delivered twice",
                    event.event_id, event.stream_version, event.stream_id
                )
            });
            let last = self
                .last_version
                .entry(event.stream_id.clone())
                .or_insert(Version::ZERO);
            fx.check(event.stream_version > *last, || {
                format!(
                    "{reader} batch {n}: `{}` {:?} arrived after {:?}",
                    event.stream_id, event.stream_version, last
                )
            });
            *last = event.stream_version;
            self.own.push(event.clone());
        }
        self.checkpoint = batch.checkpoint.clone();
    }

    /// Checks the case's own events that arrived are exactly `expected`, per stream in order.
    #[track_caller]
    pub(super) fn finish(&self, expected: &Written) {
        let mut got: BTreeMap<StreamId, Vec<Uuid>> = BTreeMap::new();
        for event in &self.own {
            got.entry(event.stream_id.clone())
                .or_default()
                .push(event.event_id);
        }
        for (stream, ids) in &expected.streams {
            let read = got.remove(stream).unwrap_or_default();
            self.fx.check(read == *ids, || {
                let missing: Vec<_> = ids.iter().filter(|id| !read.contains(id)).collect();
                format!(
                    "{}: events of `{stream}` differ from those written (in version order): \
                     expected {} events, got {}; missing {missing:?}; got order {read:?}, \
                     expected {ids:?}",
                    self.reader,
                    ids.len(),
                    read.len()
                )
            });
        }
        if let Some((stream, ids)) = got.into_iter().next() {
            self.fx.fail(format_args!(
                "{}: delivered {} unexpected events of `{stream}`: {ids:?}",
                self.reader,
                ids.len()
            ));
        }
    }

    fn reached(&self, until: Until) -> bool {
        match until {
            Until::Count(count) => self.own.len() >= count,
            Until::Event(id) => self.ids.contains(&id),
        }
    }

    /// Reads the feed with `read_all`, in batches of the check's limit, until `until`.
    pub(super) async fn read_all_until<S: EventStore>(&mut self, store: &S, until: Until) {
        let limit = self.limit.unwrap_or(100);
        while !self.reached(until) {
            let fx = self.fx;
            let after = self.checkpoint.clone();
            let seen = self.own.len();
            let batch = fx
                .eventually(
                    format_args!("read_all after {after} to return {until} ({seen} seen)"),
                    || async {
                        let batch = fx.ok(
                            store.read_all(&after, limit).await,
                            format_args!("reading the feed after {after}"),
                        );
                        (!batch.is_empty()).then_some(batch)
                    },
                )
                .await;
            self.take(&batch);
        }
        if let Until::Event(_) = until {
            // The marker is in one partition of a partitioned store: read on until nothing
            // is left, so every partition is drained (and any duplicate has had its chance).
            loop {
                let after = self.checkpoint.clone();
                let batch = self.fx.ok(
                    store.read_all(&after, limit).await,
                    format_args!("reading the feed after {after}"),
                );
                if batch.is_empty() {
                    break;
                }
                self.take(&batch);
            }
        }
    }

    /// Takes batches from `subscription` until `until`.
    pub(super) async fn follow_until<S: EventStore>(
        &mut self,
        store: &S,
        subscription: &mut Subscription,
        until: Until,
    ) {
        while !self.reached(until) {
            let seen = self.own.len();
            let batch = subscription.next_timeout(WAIT).await;
            let batch = self.fx.ok(
                batch,
                format_args!("waiting on the subscription for {until} ({seen} seen)"),
            );
            self.take(&batch);
        }
        if let Until::Event(_) = until {
            // The marker orders only its own partition of a partitioned store: go on until
            // the reader has reached the head as of now, which covers everything written
            // before the marker, in every partition.
            let head = self.fx.ok(store.head().await, "reading the head");
            while !self.checkpoint.covers_checkpoint(&head) {
                let batch = subscription.next_timeout(WAIT).await;
                let batch = self.fx.ok(
                    batch,
                    format_args!(
                        "waiting on the subscription to reach the head {head} after {until} \
                         (at {})",
                        self.checkpoint
                    ),
                );
                self.take(&batch);
            }
        }
    }
}

/// When a reader may stop.
#[derive(Clone, Copy, Debug)]
pub(super) enum Until {
    /// Once this many of the case's own events have arrived.
    Count(usize),
    /// Once this event has arrived: a marker written after everything the reader must see,
    /// so a store that loses an event fails at once (in `finish`) instead of timing out.
    Event(Uuid),
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::Count(count) => write!(f, "{count} of the case's events"),
            Until::Event(id) => write!(f, "marker event {id}"),
        }
    }
}

/// A marker event and when a reader may stop: once the marker (appended with
/// [`append_marker`] after everything a reader must see) arrived, and the feed is drained
/// (the marker orders only its own partition of a partitioned store), the reader has been
/// given every chance to deliver what came before it, and any duplicate of it.
pub(super) fn marker(fx: &Fixture) -> (NewEvent, Until) {
    let event = fx.event("marker");
    let until = Until::Event(event.event_id);
    (event, until)
}

/// Appends `marker` to the case's marker stream (`Any`) and records it in `written`.
pub(super) async fn append_marker<S: EventStore>(
    fx: &Fixture,
    store: &S,
    written: &mut Written,
    marker: NewEvent,
) {
    let stream = fx.stream("markers");
    let id = marker.event_id;
    let result = store
        .append(request(&stream, ExpectedVersion::Any, vec![marker]))
        .await;
    let result = fx.ok(result, "appending a marker event");
    fx.check(result.event_count() == 1 && !result.replayed, || {
        format!("appending one marker event returned {result:?}")
    });
    written.record(&stream, [id]);
}

/// Appends a fresh marker; returns when to stop reading.
pub(super) async fn mark<S: EventStore>(fx: &Fixture, store: &S, written: &mut Written) -> Until {
    let (event, until) = marker(fx);
    append_marker(fx, store, written, event).await;
    until
}

/// How many events [`write_concurrently`] writes.
pub(super) fn planned_events(writers: usize, appends: usize) -> usize {
    (0..writers)
        .flat_map(|writer| (0..appends).map(move |i| events_in_append(writer, i)))
        .sum()
}

fn events_in_append(writer: usize, append: usize) -> usize {
    1 + (writer + append) % 3
}

/// Has `writers` tasks append concurrently, each `appends` times, to streams of its own
/// (three each, one to three events per append, `Exact` versions); returns what they wrote.
pub(super) async fn write_concurrently<S: EventStore + Clone>(
    fx: &Fixture,
    store: &S,
    label: &str,
    writers: usize,
    appends: usize,
) -> Written {
    let mut tasks = Vec::with_capacity(writers);
    for writer in 0..writers {
        let streams: Vec<StreamId> = (0..3)
            .map(|s| fx.stream(&format!("{label}{writer}-s{s}")))
            .collect();
        let plan: Vec<(usize, Vec<NewEvent>)> = (0..appends)
            .map(|i| {
                let count = events_in_append(writer, i);
                (
                    i % streams.len(),
                    fx.events(&format!("{label}{writer}-a{i}"), count),
                )
            })
            .collect();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = vec![Version::ZERO; streams.len()];
            let mut written = Written::default();
            for (s, events) in plan {
                let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                let expected = ExpectedVersion::Exact(versions[s]);
                let result = store.append(request(&streams[s], expected, events)).await;
                match result {
                    Ok(result) => versions[s] = result.current_version,
                    Err(e) => return Err(format!("appending to `{}`: {e:?}", streams[s])),
                }
                written.record(&streams[s], ids);
            }
            Ok(written)
        }));
    }
    let mut written = Written::default();
    for task in tasks {
        match task.await {
            Ok(Ok(w)) => written.merge(w),
            Ok(Err(e)) => fx.fail(format_args!("a concurrent writer failed {e}")),
            Err(e) => fx.fail(format_args!("a concurrent writer panicked: {e}")),
        }
    }
    written
}
