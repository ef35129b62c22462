//! Subscriptions: catch-up, then live, resumed from any checkpoint, exactly once.

use super::feed::{
    FeedCheck, Until, Written, append_marker, mark, marker, planned_events, write_concurrently,
};
use super::fixture::Fixture;
use crate::event::NewEvent;
use crate::names::StreamId;
use crate::position::Checkpoint;
use crate::store::EventStore;
use crate::version::Version;

fn ids(events: &[NewEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// Writes to `stream` (at `version`) and records it in `written`.
async fn write<S: EventStore>(
    fx: &Fixture,
    store: &S,
    written: &mut Written,
    stream: &StreamId,
    version: u64,
    sizes: &[usize],
) {
    let events = fx
        .write_stream(store, stream, Version::new(version), sizes)
        .await;
    written.record(stream, ids(&events));
}

/// A subscription from before the case's events first delivers those already stored
/// (catch-up), then events appended while it waits (live), each exactly once and in version
/// order per stream, with checkpoints that cover their batches.
pub async fn subscribe_catches_up_then_follows<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("subscribe_catches_up_then_follows");
    let (a, b, c) = (fx.stream("a"), fx.stream("b"), fx.stream("c"));
    let start = fx.ok(store.head().await, "reading the head");
    let mut written = Written::default();
    write(&fx, &store, &mut written, &a, 0, &[4, 4, 4]).await;
    write(&fx, &store, &mut written, &b, 0, &[5, 3]).await;
    let caught_up = mark(&fx, &store, &mut written).await;

    let mut subscription = fx.ok(store.subscribe(start.clone()).await, "subscribing");
    let mut check = FeedCheck::new(&fx, "subscription", start, None);
    check
        .follow_until(&store, &mut subscription, caught_up)
        .await;
    check.finish(&written);

    // Live: the subscriber is already waiting when these are appended.
    let (live_marker, live_done) = marker(&fx);
    let ((), ()) = tokio::join!(
        check.follow_until(&store, &mut subscription, live_done),
        async {
            write(&fx, &store, &mut written, &a, 12, &[2, 3, 5]).await;
            write(&fx, &store, &mut written, &c, 0, &[1, 4]).await;
            append_marker(&fx, &store, &mut written, live_marker).await;
        }
    );
    let last = mark(&fx, &store, &mut written).await;
    check.follow_until(&store, &mut subscription, last).await;
    check.finish(&written);
}

/// A subscription from a checkpoint taken mid-way through the case's events (stored as bytes
/// and parsed back, as a projection would) delivers exactly the events after it, then
/// follows live ones.
pub async fn subscribe_resumes_from_checkpoint<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("subscribe_resumes_from_checkpoint");
    let (a, b) = (fx.stream("a"), fx.stream("b"));
    let start = fx.ok(store.head().await, "reading the head");
    let mut written = Written::default();
    write(&fx, &store, &mut written, &a, 0, &[3, 3, 3, 3, 3]).await;
    write(&fx, &store, &mut written, &b, 0, &[5, 5, 5]).await;
    let total = written.len();
    let done = mark(&fx, &store, &mut written).await;

    let mut probe = FeedCheck::new(&fx, "read_all", start, Some(4));
    probe.read_all_until(&store, Until::Count(total / 2)).await;
    let mid = probe.checkpoint().to_bytes();
    let before_mid = probe.own().len();
    probe.read_all_until(&store, done).await;
    probe.finish(&written);
    let mut expected = Written::from_events(&probe.own()[before_mid..]);

    let mid = fx.ok(Checkpoint::from_bytes(&mid), "parsing a stored checkpoint");
    let mut subscription = fx.ok(
        store.subscribe(mid.clone()).await,
        format_args!("subscribing from {mid}"),
    );
    let mut check = FeedCheck::new(&fx, "subscription from a mid-way checkpoint", mid, None);
    // In a partitioned store the marker orders only its own partition: it may lie before
    // the mid-way checkpoint; then the reader stops at the count of events after it.
    let after_mid = &probe.own()[before_mid..];
    let until = match done {
        Until::Event(id) if !after_mid.iter().any(|e| e.event_id == id) => {
            Until::Count(after_mid.len())
        }
        _ => done,
    };
    check.follow_until(&store, &mut subscription, until).await;
    check.finish(&expected);

    let (live_marker, live_done) = marker(&fx);
    let ((), ()) = tokio::join!(
        check.follow_until(&store, &mut subscription, live_done),
        async {
            write(&fx, &store, &mut expected, &b, 15, &[2, 3]).await;
            append_marker(&fx, &store, &mut expected, live_marker).await;
        }
    );
    let last = mark(&fx, &store, &mut expected).await;
    check.follow_until(&store, &mut subscription, last).await;
    check.finish(&expected);
}

/// Concurrent writers.
const WRITERS: usize = 8;
/// Appends per writer.
const APPENDS: usize = 20;

/// A live subscriber while 8 tasks append concurrently to streams of their own sees
/// every event exactly once, in version order per stream.
pub async fn subscribe_with_concurrent_writers<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("subscribe_with_concurrent_writers");
    let start = fx.ok(store.head().await, "reading the head");
    let mut subscription = fx.ok(store.subscribe(start.clone()).await, "subscribing");
    let mut check = FeedCheck::new(&fx, "subscription", start, None);
    let (done_marker, done) = marker(&fx);
    let (written, ()) = tokio::join!(
        async {
            let mut written = write_concurrently(&fx, &store, "w", WRITERS, APPENDS).await;
            append_marker(&fx, &store, &mut written, done_marker).await;
            written
        },
        check.follow_until(&store, &mut subscription, done),
    );
    let total = planned_events(WRITERS, APPENDS) + 1;
    fx.check(written.len() == total, || {
        format!(
            "the writers wrote {} events, {total} were planned",
            written.len()
        )
    });
    check.finish(&written);
    let mut written = written;
    let last = mark(&fx, &store, &mut written).await;
    check.follow_until(&store, &mut subscription, last).await;
    check.finish(&written);
}
