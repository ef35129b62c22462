//! Appends and their expected versions: `Any`, `NoStream`, `Exact(n)`, empty appends, and
//! concurrent writers racing for the same version.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::fixture::{Fixture, request};
use crate::error::Error;
use crate::event::NewEvent;
use crate::store::{AppendResult, EventStore};
use crate::version::{ExpectedVersion, Version};

/// `ExpectedVersion::Any` creates a stream and extends an existing one; the events read back
/// exactly as written (ids, types, schema versions, payloads, metadata), with versions 1..=n
/// and increasing positions; `AppendResult.position` is the position of the last event.
pub async fn append_any_creates_and_extends<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("append_any_creates_and_extends");
    let stream = fx.stream("s");
    let mut written = fx.events("first", 3);
    let first = store
        .append(request(&stream, ExpectedVersion::Any, written.clone()))
        .await;
    let first = fx.check_appended(first, &stream, Version::ZERO, 3, "Any on a new stream");
    let more = fx.events("second", 2);
    let second = store
        .append(request(&stream, ExpectedVersion::Any, more.clone()))
        .await;
    let second = fx.check_appended(second, &stream, Version::new(3), 2, "Any on a stream at v3");
    written.extend(more);

    let recorded = fx
        .check_stream(&store, &stream, &written, "reading back Any appends")
        .await;
    for (result, last) in [(&first, &recorded[2]), (&second, &recorded[4])] {
        fx.check(result.position == Some(last.position), || {
            format!(
                "AppendResult.position {:?} should be the position of the append's last event, \
                 {}",
                result.position, last.position
            )
        });
    }
    fx.check(
        first.first_version() == Version::new(1) && second.event_count() == 2,
        || format!("AppendResult helpers disagree with the append: {first:?}, {second:?}"),
    );
}

/// `ExpectedVersion::NoStream` creates a new stream; on an existing stream it is a conflict
/// naming the stream, `NoStream` and the actual version, and writes nothing.
pub async fn append_no_stream<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("append_no_stream");
    let stream = fx.stream("s");
    let written = fx.events("e", 2);
    let result = store
        .append(request(&stream, ExpectedVersion::NoStream, written.clone()))
        .await;
    fx.check_appended(
        result,
        &stream,
        Version::ZERO,
        2,
        "NoStream on a new stream",
    );

    let result = store
        .append(request(
            &stream,
            ExpectedVersion::NoStream,
            fx.events("x", 1),
        ))
        .await;
    fx.check_conflict(
        result,
        &stream,
        ExpectedVersion::NoStream,
        Version::new(2),
        "NoStream on a stream at v2",
    );
    fx.check_stream(&store, &stream, &written, "after a NoStream conflict")
        .await;
}

/// `ExpectedVersion::Exact(n)` appends when the stream is at `n` (`Exact(0)` on a new stream
/// too); any other `n`, lower or higher, and `n > 0` on an absent stream, is a conflict naming
/// the stream, `Exact(n)` and the actual version, and writes nothing.
pub async fn append_exact<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("append_exact");
    let stream = fx.stream("s");
    let mut written = fx.events("a", 1);
    let result = store
        .append(request(
            &stream,
            ExpectedVersion::Exact(Version::ZERO),
            written.clone(),
        ))
        .await;
    fx.check_appended(
        result,
        &stream,
        Version::ZERO,
        1,
        "Exact(0) on a new stream",
    );
    let more = fx.events("b", 3);
    let result = store
        .append(request(
            &stream,
            ExpectedVersion::Exact(Version::new(1)),
            more.clone(),
        ))
        .await;
    fx.check_appended(
        result,
        &stream,
        Version::new(1),
        3,
        "Exact(1) on a stream at v1",
    );
    written.extend(more);

    for wrong in [0, 1, 3, 5, 100] {
        let expected = ExpectedVersion::Exact(Version::new(wrong));
        let result = store
            .append(request(&stream, expected, fx.events("wrong", 2)))
            .await;
        fx.check_conflict(
            result,
            &stream,
            expected,
            Version::new(4),
            format_args!("Exact({wrong}) on a stream at v4"),
        );
    }
    fx.check_stream(&store, &stream, &written, "after Exact conflicts")
        .await;

    let absent = fx.stream("absent");
    let expected = ExpectedVersion::Exact(Version::new(5));
    let result = store
        .append(request(&absent, expected, fx.events("x", 1)))
        .await;
    fx.check_conflict(
        result,
        &absent,
        expected,
        Version::ZERO,
        "Exact(5) on an absent stream",
    );
    fx.check_stream(&store, &absent, &[], "after a conflict on an absent stream")
        .await;
}

/// An append without events writes nothing, has no position, and returns the stream's
/// current version (on an existing stream and on an absent one, which stays absent).
pub async fn empty_append_writes_nothing<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("empty_append_writes_nothing");
    let stream = fx.stream("s");
    let written = fx.events("e", 3);
    let result = store
        .append(request(&stream, ExpectedVersion::NoStream, written.clone()))
        .await;
    fx.check_appended(result, &stream, Version::ZERO, 3, "creating the stream");

    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exact(Version::new(3)),
    ] {
        let result = store.append(request(&stream, expected, Vec::new())).await;
        fx.check_appended(
            result,
            &stream,
            Version::new(3),
            0,
            format_args!("an empty append ({expected:?}) to a stream at v3"),
        );
    }
    fx.check_stream(&store, &stream, &written, "after empty appends")
        .await;

    let absent = fx.stream("absent");
    let result = store
        .append(request(&absent, ExpectedVersion::Any, Vec::new()))
        .await;
    fx.check_appended(
        result,
        &absent,
        Version::ZERO,
        0,
        "an empty append to an absent stream",
    );
    fx.check_stream(
        &store,
        &absent,
        &[],
        "after an empty append to an absent stream",
    )
    .await;
}

/// Tasks racing to append to one stream.
const RACERS: usize = 16;
/// Versions raced for, one after the other.
const ROUNDS: u64 = 6;

/// 16 tasks append `Exact(v)` to one stream at the same moment, for several versions
/// in turn: each time exactly one wins, every other gets a conflict naming `Exact(v)` and the
/// winner's version, and in the end the stream holds exactly the winners' events, 1..=k.
pub async fn concurrent_appends_conflict<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("concurrent_appends_conflict");
    let stream = fx.stream("contended");
    let mut winners: Vec<NewEvent> = Vec::new();
    let mut version = Version::ZERO;
    for round in 0..ROUNDS {
        // Rounds alternate between one- and two-event appends.
        let per_append = 1 + usize::from(round % 2 == 1);
        let barrier = Arc::new(Barrier::new(RACERS));
        let mut tasks = Vec::with_capacity(RACERS);
        for racer in 0..RACERS {
            let events = fx.events(&format!("r{round}-t{racer}"), per_append);
            let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let request = request(&stream, ExpectedVersion::Exact(version), events.clone());
                (events, store.append(request).await)
            }));
        }
        let mut won: Vec<(Vec<NewEvent>, AppendResult)> = Vec::new();
        for task in tasks {
            let (events, result) = task
                .await
                .unwrap_or_else(|e| fx.fail(format_args!("an appending task panicked: {e}")));
            match result {
                Ok(result) => won.push((events, result)),
                Err(Error::Conflict {
                    stream: s,
                    expected,
                    actual,
                }) => fx.check(
                    s == stream
                        && expected == ExpectedVersion::Exact(version)
                        && actual == version.add(per_append as u64),
                    || {
                        format!(
                            "round {round}: a losing append's conflict should name `{stream}`, \
                             Exact({version:?}) and the winner's version, got stream `{s}`, \
                             {expected:?}, {actual:?}"
                        )
                    },
                ),
                Err(other) => fx.fail(format_args!(
                    "round {round}: a losing append should fail with Error::Conflict, got \
                     {other:?}"
                )),
            }
        }
        fx.check(won.len() == 1, || {
            format!(
                "round {round}: {} of {RACERS} appends expecting {version:?} succeeded, \
                 exactly one should",
                won.len()
            )
        });
        let Some((events, result)) = won.pop() else {
            fx.fail(format_args!("round {round}: no append won"));
        };
        fx.check_appended(
            Ok(result),
            &stream,
            version,
            per_append,
            format_args!("round {round}: the winning append"),
        );
        version = version.add(per_append as u64);
        winners.extend(events);
    }
    fx.check_stream(&store, &stream, &winners, "after the races")
        .await;
}
