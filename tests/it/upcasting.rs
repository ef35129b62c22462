//! Old payloads, committed under `tests/fixtures/upcasting/` as older releases wrote them,
//! decode into today's events; bad stored data is a typed error that loses nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use foldline::{
    AppendRequest, Checkpoint, CommandExecutor, DecodeError, DomainEvent, Error, EventStore,
    EventType, ExpectedVersion, InMemoryEventStore, JsonCodec, NewEvent, RecordedEvent, StreamId,
    Version,
};
use foldline_tests::{Account, AccountEvent};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

/// One committed old payload and what it must decode to.
#[derive(Deserialize)]
pub(crate) struct Case {
    /// The fixture file holding the payload.
    pub(crate) payload: String,
    /// The stored type name.
    pub(crate) event_type: String,
    /// The stored schema version.
    pub(crate) schema_version: u32,
    /// The current event it decodes to.
    pub(crate) expected: AccountEvent,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upcasting")
}

/// Every fixture case, with its payload bytes.
pub(crate) fn cases() -> Vec<(Case, Vec<u8>)> {
    let manifest = std::fs::read(fixtures().join("cases.json")).unwrap();
    let manifest: Manifest = serde_json::from_slice(&manifest).unwrap();
    manifest
        .cases
        .into_iter()
        .map(|case| {
            let payload = std::fs::read(fixtures().join(&case.payload)).unwrap();
            (case, payload)
        })
        .collect()
}

fn current_version(event_type: &str) -> u32 {
    AccountEvent::TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .unwrap_or_else(|| panic!("`{event_type}` is not a type of AccountEvent"))
        .1
}

pub(crate) fn raw(event_type: &str, schema_version: u32, payload: &[u8]) -> NewEvent {
    NewEvent::new(
        EventType::new(event_type).unwrap(),
        schema_version,
        payload.to_vec(),
    )
}

#[test]
fn every_fixture_is_a_case() {
    let cases = cases();
    let listed: BTreeSet<String> = cases.iter().map(|(c, _)| c.payload.clone()).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "cases.json")
        .collect();
    assert_eq!(listed, on_disk, "fixtures and cases.json disagree");
    // The chain is exercised from every version an older release wrote.
    let versions: BTreeSet<u32> = cases
        .iter()
        .filter(|(c, _)| c.event_type == "account.deposited")
        .map(|(c, _)| c.schema_version)
        .collect();
    assert_eq!(
        versions,
        (1..=current_version("account.deposited")).collect()
    );
}

#[test]
fn fixtures_decode_to_the_current_shape() {
    for (case, payload) in cases() {
        let decoded =
            AccountEvent::decode(&JsonCodec, &case.event_type, case.schema_version, &payload);
        match decoded {
            Ok(event) => assert_eq!(event, case.expected, "{}", case.payload),
            Err(e) => panic!("{} does not decode: {e:?}", case.payload),
        }
    }
}

#[test]
fn current_events_encode_as_committed() {
    for (case, payload) in cases() {
        if case.schema_version != current_version(&case.event_type) {
            continue;
        }
        let event = &case.expected;
        assert_eq!(event.event_type(), case.event_type.as_str());
        assert_eq!(event.schema_version(), case.schema_version);
        let encoded = event.encode(&JsonCodec).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&encoded).unwrap(),
            serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
            "the current encoding of {event:?} changed from the committed {}: bump its version \
             and add an upcaster instead",
            case.payload
        );
    }
}

#[tokio::test]
async fn stored_old_events_load_through_the_store() -> anyhow::Result<()> {
    old_events_load(InMemoryEventStore::new()).await
}

/// Every fixture appended as stored by an older release reads back in its stored shape and
/// decodes (and loads) as the current event.
pub(crate) async fn old_events_load<S: EventStore + Clone>(store: S) -> anyhow::Result<()> {
    let stream = StreamId::new("account-legacy")?;
    let cases = cases();
    let events = cases
        .iter()
        .map(|(c, payload)| raw(&c.event_type, c.schema_version, payload))
        .collect();
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            events,
        ))
        .await?;

    check_old_events_load(&store, &stream, &cases).await
}

/// `stream` (aggregate `legacy` of `Account`) holds the fixture `cases` in order: each reads
/// back with its stored type and version and decodes to the current event, and the account
/// loads from them.
pub(crate) async fn check_old_events_load<S: EventStore + Clone>(
    store: &S,
    stream: &StreamId,
    cases: &[(Case, Vec<u8>)],
) -> anyhow::Result<()> {
    let recorded = store.read_stream(stream, Version::new(1), 100).await?;
    assert_eq!(recorded.len(), cases.len());
    for (record, (case, _)) in recorded.iter().zip(cases) {
        assert_eq!(
            (record.event_type.as_str(), record.schema_version),
            (case.event_type.as_str(), case.schema_version),
            "{} is not stored as written",
            case.payload
        );
        let event: AccountEvent = record.decode(&JsonCodec)?;
        assert_eq!(event, case.expected, "{}", case.payload);
    }

    let account = CommandExecutor::new(store.clone())
        .load::<Account>(&"legacy".to_owned())
        .await?;
    let deposits: Vec<u64> = cases
        .iter()
        .filter_map(|(c, _)| match c.expected {
            AccountEvent::Deposited { cents, .. } => Some(cents),
            _ => None,
        })
        .collect();
    assert_eq!(account.state.balance, deposits.iter().sum::<u64>());
    assert_eq!(account.state.deposits, deposits.len() as u64);
    assert_eq!(account.state.owner.as_deref(), Some("ada"));
    assert!(account.state.frozen);
    Ok(())
}

/// Appends an `Opened` event and then `bad` to `account-<name>`; returns the stream and the
/// stored bad event.
async fn store_bad_event(
    store: &InMemoryEventStore,
    name: &str,
    bad: NewEvent,
) -> (StreamId, RecordedEvent) {
    let stream = StreamId::new(format!("account-{name}")).unwrap();
    let opened = raw("Opened", 1, br#"{"owner":"ada"}"#);
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![opened, bad.clone()],
        ))
        .await
        .unwrap();
    let recorded = store
        .read_stream(&stream, Version::new(2), 1)
        .await
        .unwrap();
    let stored = recorded
        .into_iter()
        .next()
        .expect("the bad event is stored");
    // Nothing lost: the raw event reads back byte for byte, from the stream and the feed.
    assert_eq!(
        (&stored.event_id, &stored.payload),
        (&bad.event_id, &bad.payload)
    );
    let feed = store.read_all(&Checkpoint::START, 1_000).await.unwrap();
    assert!(feed.events.iter().any(|e| e.event_id == bad.event_id));
    (stream, stored)
}

/// Checks `error` is `Error::Decode` naming `stream`@2, `event_type` and `schema_version`,
/// with a `DecodeError` as its source; returns that source.
pub(crate) fn decode_error<'e>(
    error: &'e Error,
    stream: &StreamId,
    event_type: &str,
    schema_version: u32,
) -> &'e DecodeError {
    match error {
        Error::Decode {
            stream: s,
            version,
            event_type: t,
            schema_version: v,
            source,
        } => {
            assert_eq!(
                (s, *version, t.as_str(), *v),
                (stream, Version::new(2), event_type, schema_version)
            );
            assert!(error.is_decode() && !error.is_invalid_input() && !error.is_transient());
            source
                .downcast_ref::<DecodeError>()
                .expect("the source is a DecodeError")
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_payload_is_a_decode_error() {
    let store = InMemoryEventStore::new();
    let cases = [
        ("current", 3, &br#"{"cents":"lots","memo":null}"#[..]),
        ("v2", 2, br#"{"cents":5}"#),
        ("v1", 1, br#"{"amount":"#),
    ];
    for (name, version, payload) in cases {
        let bad = raw("account.deposited", version, payload);
        let (stream, stored) = store_bad_event(&store, name, bad).await;
        let error = stored.decode::<AccountEvent, _>(&JsonCodec).unwrap_err();
        let source = decode_error(&error, &stream, "account.deposited", version);
        assert!(
            matches!(source, DecodeError::Payload(_)),
            "{name}: {source:?}"
        );
        // The codec's own error is kept in the chain, below the DecodeError.
        let cause = std::error::Error::source(source).expect("the codec's error");
        assert!(cause.is::<serde_json::Error>(), "{name}: {cause:?}");

        let loaded = CommandExecutor::new(store.clone())
            .load::<Account>(&name.to_owned())
            .await
            .unwrap_err();
        decode_error(&loaded, &stream, "account.deposited", version);
    }
}

#[tokio::test]
async fn unsupported_version_is_a_decode_error() {
    let store = InMemoryEventStore::new();
    for (name, version) in [("future", 4), ("zero", 0)] {
        let bad = raw("account.deposited", version, br#"{"cents":1,"memo":null}"#);
        let (stream, stored) = store_bad_event(&store, name, bad).await;
        let error = stored.decode::<AccountEvent, _>(&JsonCodec).unwrap_err();
        match decode_error(&error, &stream, "account.deposited", version) {
            DecodeError::UnsupportedVersion {
                event_type,
                version: v,
                current,
            } => assert_eq!(
                (event_type.as_str(), *v, *current),
                ("account.deposited", version, 3)
            ),
            other => panic!("expected UnsupportedVersion, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_event_type_is_typed() {
    let store = InMemoryEventStore::new();
    let bad = raw("account.closed", 1, br#"{"reason":"moved"}"#);
    let (stream, stored) = store_bad_event(&store, "closed", bad).await;
    let error = stored.decode::<AccountEvent, _>(&JsonCodec).unwrap_err();
    match &error {
        Error::UnknownEventType {
            stream: s,
            version,
            event_type,
            schema_version,
        } => assert_eq!(
            (s, *version, event_type.as_str(), *schema_version),
            (&stream, Version::new(2), "account.closed", 1)
        ),
        other => panic!("expected Error::UnknownEventType, got {other:?}"),
    }
    assert!(error.is_decode());
    let loaded = CommandExecutor::new(store.clone())
        .load::<Account>(&"closed".to_owned())
        .await
        .unwrap_err();
    assert!(
        matches!(loaded, Error::UnknownEventType { .. }),
        "{loaded:?}"
    );
}

proptest! {
    #[test]
    fn v1_dollars_become_cents(amount in 0..u64::MAX / 100) {
        let payload = serde_json::to_vec(&serde_json::json!({ "amount": amount })).unwrap();
        let event = AccountEvent::decode(&JsonCodec, "account.deposited", 1, &payload).unwrap();
        prop_assert_eq!(event, AccountEvent::Deposited { cents: amount * 100, memo: None });
    }

    #[test]
    fn v2_notes_become_memos(cents: u64, note in ".{0,20}") {
        let payload = serde_json::to_vec(&serde_json::json!({ "cents": cents, "note": note })).unwrap();
        let event = AccountEvent::decode(&JsonCodec, "account.deposited", 2, &payload).unwrap();
        let memo = (!note.is_empty()).then_some(note);
        prop_assert_eq!(event, AccountEvent::Deposited { cents, memo });
    }

    #[test]
    fn current_events_round_trip(cents: u64, memo in proptest::option::of(".{0,20}"), owner in ".{0,20}") {
        for event in [
            AccountEvent::Deposited { cents, memo: memo.clone() },
            AccountEvent::Withdrawn { cents },
            AccountEvent::Opened { owner: owner.clone() },
            AccountEvent::Frozen,
        ] {
            let payload = event.encode(&JsonCodec).unwrap();
            let decoded = AccountEvent::decode(
                &JsonCodec,
                event.event_type().as_str(),
                event.schema_version(),
                &payload,
            )
            .unwrap();
            prop_assert_eq!(decoded, event);
        }
    }
}
