//! Input a store must refuse: oversize events, too many events, invalid names. Refused input
//! writes nothing.

use super::fixture::{EVENT_TYPE, Fixture, request};
use crate::error::{Error, NameKind};
use crate::event::NewEvent;
use crate::names::{EventType, IdempotencyKey, StreamId};
use crate::store::{EventStore, StoreLimits};
use crate::version::{ExpectedVersion, Version};

/// A store refuses an append holding one event over its size limit among valid ones with
/// [`Error::EventTooLarge`], and one with more events than its count limit with
/// [`Error::TooManyEvents`]: both `is_invalid_input()`, neither writes anything (the stream
/// stays at its version, its events unchanged, and accepts the next valid append). Names that
/// break their rules cannot be built at all ([`Error::InvalidName`]).
///
/// For a store with the default [`StoreLimits`] or lower ones; see
/// [`invalid_input_writes_nothing_with`] for others.
pub async fn invalid_input_writes_nothing<S: EventStore + Clone>(store: S) {
    check_invalid_input(store, StoreLimits::default(), false).await;
}

/// [`invalid_input_writes_nothing`] for a store enforcing exactly `limits`: the errors must
/// name these limits.
pub async fn invalid_input_writes_nothing_with<S: EventStore + Clone>(
    store: S,
    limits: StoreLimits,
) {
    check_invalid_input(store, limits, true).await;
}

/// With `exact` the errors must name exactly `limits`; without it the store's limits may be
/// lower.
async fn check_invalid_input<S: EventStore>(store: S, limits: StoreLimits, exact: bool) {
    let fx = Fixture::new("invalid_input_writes_nothing");
    check_invalid_names(&fx);

    let stream = fx.stream("s");
    let written = fx.write_stream(&store, &stream, Version::ZERO, &[2]).await;
    let limit_ok = |limit: usize, configured: usize| {
        if exact {
            limit == configured
        } else {
            limit <= configured
        }
    };

    // Padding a JSON string keeps the payload valid JSON, for stores that keep JSON natively.
    let padding = "x".repeat(limits.max_event_bytes);
    let payload = serde_json::json!({ "padding": padding })
        .to_string()
        .into_bytes();
    let huge = NewEvent::new(EVENT_TYPE, 1, payload);
    let size = huge.encoded_len();
    let events = vec![fx.event("before"), huge, fx.event("after")];
    let result = store
        .append(request(&stream, ExpectedVersion::Any, events))
        .await;
    match &result {
        Err(
            error @ Error::EventTooLarge {
                stream: s,
                event_type,
                size: reported,
                limit,
            },
        ) => fx.check(
            *s == stream
                && *event_type == EVENT_TYPE
                && *reported == size
                && limit_ok(*limit, limits.max_event_bytes)
                && *limit < size
                && error.is_invalid_input(),
            || {
                format!(
                    "an event of {size} bytes over the limit {} should be refused with \
                     EventTooLarge naming `{stream}`, its type, size and the limit, got {error:?}",
                    limits.max_event_bytes
                )
            },
        ),
        other => fx.fail(format_args!(
            "an event of {size} bytes (limit {}) should be refused with Error::EventTooLarge, \
             got {other:?}",
            limits.max_event_bytes
        )),
    }

    let count = limits.max_events_per_append + 1;
    let many: Vec<NewEvent> = (0..count)
        .map(|_| NewEvent::new(EVENT_TYPE, 1, b"{}".to_vec()))
        .collect();
    let result = store
        .append(request(&stream, ExpectedVersion::Any, many))
        .await;
    match &result {
        Err(
            error @ Error::TooManyEvents {
                stream: s,
                count: reported,
                limit,
            },
        ) => fx.check(
            *s == stream
                && *reported == count
                && limit_ok(*limit, limits.max_events_per_append)
                && error.is_invalid_input(),
            || {
                format!(
                    "an append of {count} events should be refused with TooManyEvents naming \
                     `{stream}`, the count and the limit, got {error:?}"
                )
            },
        ),
        other => fx.fail(format_args!(
            "an append of {count} events (limit {}) should be refused with \
             Error::TooManyEvents, got {other:?}",
            limits.max_events_per_append
        )),
    }

    fx.check_stream(&store, &stream, &written, "after refused appends")
        .await;
    let next = fx
        .write_stream(&store, &stream, Version::new(2), &[1])
        .await;
    fx.check(next.len() == 1, || {
        "the stream should accept appends after refusals".into()
    });
}

/// Names that break their rules are refused when built, with a typed error.
#[track_caller]
fn check_invalid_names(fx: &Fixture) {
    let cases: [(NameKind, &str, Result<(), Error>); 5] = [
        (
            NameKind::StreamId,
            "bad id",
            StreamId::new("bad id").map(drop),
        ),
        (NameKind::StreamId, "", StreamId::new("").map(drop)),
        (NameKind::StreamId, "a{b}", StreamId::new("a{b}").map(drop)),
        (NameKind::EventType, "1st", EventType::new("1st").map(drop)),
        (
            NameKind::IdempotencyKey,
            "key\n",
            IdempotencyKey::new("key\n").map(drop),
        ),
    ];
    for (kind, value, result) in cases {
        match &result {
            Err(
                error @ Error::InvalidName {
                    kind: k, value: v, ..
                },
            ) if *k == kind && v == value && error.is_invalid_input() => {}
            other => fx.fail(format_args!(
                "building a {kind} from {value:?} should fail with Error::InvalidName naming \
                 the kind and value, got {other:?}"
            )),
        }
    }
}
