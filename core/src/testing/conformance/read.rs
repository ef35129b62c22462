//! Reading: one stream by version range, the global feed in batches, and the feed's head.

use std::collections::HashMap;

use super::feed::{FeedCheck, Until, Written, mark, write_concurrently};
use super::fixture::{Fixture, is_after, request, same_payload};
use crate::position::Checkpoint;
use crate::store::EventStore;
use crate::version::{ExpectedVersion, Version};

/// `read_stream` returns the events of one stream with version `>= from`, at most `limit`, in
/// version order: an absent stream reads as empty; `from` past the end, or `limit` 0, reads
/// nothing; `from` 0 reads from the first event.
pub async fn read_stream_ranges<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("read_stream_ranges");
    let absent = fx.stream("absent");
    for from in [Version::ZERO, Version::new(1), Version::new(7)] {
        let read = fx.ok(
            store.read_stream(&absent, from, 10).await,
            "reading an absent stream",
        );
        fx.check(read.is_empty(), || {
            format!("an absent stream should read as empty from {from:?}, read {read:?}")
        });
    }

    let stream = fx.stream("s");
    let written = fx.events("e", 10);
    let mut version = Version::ZERO;
    for chunk in [&written[0..3], &written[3..6], &written[6..10]] {
        let result = store
            .append(request(
                &stream,
                ExpectedVersion::Exact(version),
                chunk.to_vec(),
            ))
            .await;
        version = fx
            .check_appended(result, &stream, version, chunk.len(), "writing the stream")
            .current_version;
    }

    // (from, limit) -> the slice of `written` expected.
    let cases: [(u64, usize, std::ops::Range<usize>); 8] = [
        (1, 100, 0..10),
        (0, 100, 0..10),
        (1, 10, 0..10),
        (4, 3, 3..6),
        (9, 5, 8..10),
        (10, 1, 9..10),
        (11, 5, 10..10),
        (1, 0, 0..0),
    ];
    for (from, limit, range) in cases {
        let read = fx.ok(
            store.read_stream(&stream, Version::new(from), limit).await,
            format_args!("reading from {from} with limit {limit}"),
        );
        fx.check_recorded(
            &read,
            &stream,
            Version::new(range.start as u64 + 1),
            &written[range],
            &format_args!("read_stream(from {from}, limit {limit})"),
        );
    }
}

/// Concurrent writers.
const WRITERS: usize = 8;
/// Appends per writer.
const APPENDS: usize = 24;
/// The small batch size the feed is read with.
const BATCH: usize = 7;

/// Events from many streams, appended concurrently, read back through `read_all` in batches
/// of 7: every event exactly once, per-stream versions in order, positions strictly
/// increasing per partition, each batch's checkpoint covering its events, events identical to
/// what `read_stream` returns; resuming from a checkpoint taken mid-way (through its byte form)
/// yields exactly the events after it.
pub async fn read_all_in_batches<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("read_all_in_batches");
    let start = fx.ok(store.head().await, "reading the head");
    let mut written = write_concurrently(&fx, &store, "w", WRITERS, APPENDS).await;
    let total = written.len();
    let done = mark(&fx, &store, &mut written).await;

    let mut pass = FeedCheck::new(&fx, "read_all", start, Some(BATCH));
    pass.read_all_until(&store, Until::Count(total / 2)).await;
    let mid = pass.checkpoint().clone();
    let before_mid = pass.own().len();
    pass.read_all_until(&store, done).await;
    pass.finish(&written);
    let late = mark(&fx, &store, &mut written).await;
    pass.read_all_until(&store, late).await;
    pass.finish(&written);

    let mut by_stream = HashMap::new();
    for event in pass.own() {
        if !by_stream.contains_key(&event.stream_id) {
            let stream = fx.read_whole_stream(&store, &event.stream_id).await;
            by_stream.insert(event.stream_id.clone(), stream);
        }
        let index = usize::try_from(event.stream_version.get() - 1).unwrap_or(usize::MAX);
        let same = by_stream[&event.stream_id].get(index);
        fx.check(
            same.is_some_and(|s| {
                s.event_id == event.event_id
                    && s.position == event.position
                    && s.event_type == event.event_type
                    && s.schema_version == event.schema_version
                    && s.metadata == event.metadata
                    && same_payload(&s.payload, &event.payload)
            }),
            || {
                format!(
                    "read_all returned {event:?}, but read_stream has {same:?} at \
                     `{}` {:?}",
                    event.stream_id, event.stream_version
                )
            },
        );
    }

    let stored = mid.to_bytes();
    let mid = fx.ok(
        Checkpoint::from_bytes(&stored),
        "parsing a checkpoint from its bytes",
    );
    let rest = &pass.own()[before_mid..];
    let mut resumed = FeedCheck::new(&fx, "read_all resumed mid-way", mid, Some(BATCH));
    resumed.read_all_until(&store, late).await;
    resumed.finish(&Written::from_events(rest));
}

/// `head()` is `START` exactly when the feed is empty; after an append it covers the append's
/// position (`AppendResult.position`), never moves back, and is never ahead of the feed
/// (reading after it returns none of the events appended before it was taken).
pub async fn head_tracks_appends<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("head_tracks_appends");
    let head = fx.ok(store.head().await, "reading the head");
    let first = fx.ok(
        store.read_all(&Checkpoint::START, 1).await,
        "reading the first event",
    );
    if first.is_empty() {
        fx.check(head.is_start(), || {
            format!("the head of an empty store should be START, got {head}")
        });
    }

    let stream = fx.stream("s");
    let mut previous_head = head;
    let mut previous_position = None;
    for round in 0..3u64 {
        let result = store
            .append(request(
                &stream,
                ExpectedVersion::Exact(Version::new(round * 2)),
                fx.events(&format!("r{round}"), 2),
            ))
            .await;
        let result = fx.check_appended(
            result,
            &stream,
            Version::new(round * 2),
            2,
            format_args!("append {round}"),
        );
        let Some(position) = result.position else {
            fx.fail("an append of two events returned no position");
        };
        if let Some(previous) = previous_position {
            fx.check(is_after(&position, &previous), || {
                format!("append {round} at {position} is not after the previous one at {previous}")
            });
        }
        fx.check(!previous_head.covers(&position), || {
            format!("head {previous_head} covered {position} before it was appended")
        });
        let head = fx
            .eventually(format_args!("head to cover {position}"), || async {
                let head = fx.ok(store.head().await, "reading the head");
                head.covers(&position).then_some(head)
            })
            .await;
        fx.check(head.covers_checkpoint(&previous_head), || {
            format!("head moved back from {previous_head} to {head}")
        });
        let after = fx.ok(
            store.read_all(&head, 100).await,
            format_args!("reading after the head {head}"),
        );
        let ours: Vec<_> = after
            .events
            .iter()
            .filter(|e| fx.owns(&e.stream_id))
            .collect();
        fx.check(ours.is_empty(), || {
            format!("reading after the head {head} returned events appended before it: {ours:?}")
        });
        previous_head = head;
        previous_position = Some(position);
    }
}
