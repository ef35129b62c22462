//! Idempotency keys: a redelivered append writes nothing and returns the first result.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::fixture::{Fixture, request};
use crate::names::{IdempotencyKey, StreamId};
use crate::store::{AppendResult, EventStore};
use crate::version::{ExpectedVersion, Version};

fn key(fx: &Fixture, stream: &StreamId, name: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("{stream}-{name}"))
        .unwrap_or_else(|e| fx.fail(format_args!("test idempotency key is invalid: {e}")))
}

/// Whether two results describe the same append, whatever their `replayed` flags say.
fn same_append(a: &AppendResult, b: &AppendResult) -> bool {
    a.stream_id == b.stream_id
        && a.previous_version == b.previous_version
        && a.current_version == b.current_version
        && a.position == b.position
}

/// A second append with a used key — other events, an expected version that would now
/// conflict, even another stream (keys are global to the store) — writes nothing and returns
/// the first append's result with `replayed = true`; `find_idempotent` returns that result
/// too, and `None` for a key never used.
pub async fn idempotent_append_replays<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("idempotent_append_replays");
    let stream = fx.stream("s");
    let key = key(&fx, &stream, "k");
    let written = fx.events("first", 2);
    let first = store
        .append(
            request(&stream, ExpectedVersion::NoStream, written.clone())
                .with_idempotency_key(key.clone()),
        )
        .await;
    let first = fx.check_appended(first, &stream, Version::ZERO, 2, "the first keyed append");

    let other = fx.stream("other");
    for (target, what) in [(&stream, "the same stream"), (&other, "another stream")] {
        let again = store
            .append(
                request(target, ExpectedVersion::NoStream, fx.events("again", 3))
                    .with_idempotency_key(key.clone()),
            )
            .await;
        let again = fx.ok(again, format_args!("repeating a keyed append on {what}"));
        fx.check(again.replayed && same_append(&again, &first), || {
            format!(
                "repeating a keyed append on {what} should return the first result {first:?} \
                 marked replayed, got {again:?}"
            )
        });
    }
    fx.check_stream(&store, &stream, &written, "after replayed appends")
        .await;
    fx.check_stream(&store, &other, &[], "after a replayed append naming it")
        .await;

    let found = fx.ok(store.find_idempotent(&key).await, "finding a used key");
    fx.check(
        found.as_ref().is_some_and(|f| same_append(f, &first)),
        || format!("find_idempotent should return the first result {first:?}, got {found:?}"),
    );
    let unused = self::key(&fx, &stream, "never-used");
    let found = fx.ok(
        store.find_idempotent(&unused).await,
        "finding an unused key",
    );
    fx.check(found.is_none(), || {
        format!("find_idempotent of a key never used should be None, got {found:?}")
    });
}

/// An append that fails (a version conflict) does not use up its key: the key stays unknown,
/// and a later append with it is performed, not replayed.
pub async fn failed_append_does_not_use_key<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("failed_append_does_not_use_key");
    let stream = fx.stream("s");
    let key = key(&fx, &stream, "k");
    let mut written = fx.events("setup", 1);
    let result = store
        .append(request(&stream, ExpectedVersion::NoStream, written.clone()))
        .await;
    fx.check_appended(result, &stream, Version::ZERO, 1, "creating the stream");

    let result = store
        .append(
            request(&stream, ExpectedVersion::NoStream, fx.events("x", 1))
                .with_idempotency_key(key.clone()),
        )
        .await;
    fx.check_conflict(
        result,
        &stream,
        ExpectedVersion::NoStream,
        Version::new(1),
        "a keyed append with a wrong expected version",
    );
    let found = fx.ok(store.find_idempotent(&key).await, "finding the key");
    fx.check(found.is_none(), || {
        format!("a conflicting append must not record its idempotency key, found {found:?}")
    });

    let events = fx.events("retry", 1);
    let result = store
        .append(
            request(
                &stream,
                ExpectedVersion::Exact(Version::new(1)),
                events.clone(),
            )
            .with_idempotency_key(key),
        )
        .await;
    fx.check_appended(
        result,
        &stream,
        Version::new(1),
        1,
        "the keyed append after its conflict",
    );
    written.extend(events);
    fx.check_stream(&store, &stream, &written, "after the retried keyed append")
        .await;
}

/// Appends sharing one key.
const SAME_KEY_APPENDS: usize = 16;

/// 16 tasks append at once with the same key (and `ExpectedVersion::Any`,
/// so only the key stops them): exactly one writes; every other returns that one's result
/// marked replayed; the stream holds only the writer's events.
pub async fn concurrent_idempotent_appends_write_once<S: EventStore + Clone>(store: S) {
    let fx = Fixture::new("concurrent_idempotent_appends_write_once");
    let stream = fx.stream("s");
    let key = key(&fx, &stream, "k");
    let barrier = Arc::new(Barrier::new(SAME_KEY_APPENDS));
    let mut tasks = Vec::with_capacity(SAME_KEY_APPENDS);
    for i in 0..SAME_KEY_APPENDS {
        let events = fx.events(&format!("t{i}"), 2);
        let (store, stream, key, barrier) =
            (store.clone(), stream.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let request =
                request(&stream, ExpectedVersion::Any, events.clone()).with_idempotency_key(key);
            barrier.wait().await;
            (events, store.append(request).await)
        }));
    }
    let mut writes = Vec::new();
    let mut results = Vec::new();
    for task in tasks {
        let (events, result) = task
            .await
            .unwrap_or_else(|e| fx.fail(format_args!("an appending task panicked: {e}")));
        let result = fx.ok(result, "appending with a shared key");
        if !result.replayed {
            writes.push(events);
        }
        results.push(result);
    }
    fx.check(writes.len() == 1, || {
        format!(
            "{} of {SAME_KEY_APPENDS} appends with one key wrote, exactly one should",
            writes.len()
        )
    });
    let Some(first) = results.iter().find(|r| !r.replayed) else {
        fx.fail("no append with the shared key wrote");
    };
    fx.check_appended(
        Ok(first.clone()),
        &stream,
        Version::ZERO,
        2,
        "the append that wrote",
    );
    fx.check(results.iter().all(|r| same_append(r, first)), || {
        format!("every append with one key should return the same result, got {results:?}")
    });
    fx.check_stream(&store, &stream, &writes[0], "after appends sharing a key")
        .await;
}
