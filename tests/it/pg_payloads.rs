//! Payloads PostgreSQL's `jsonb` refuses, appended beside valid ones in one group commit: the
//! store refuses each bad one with `Error::InvalidPayload` before it is queued, stores what it
//! accepts exactly as `jsonb` would, and never fails a valid neighbour.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use foldline::{
    AppendRequest, AppendResult, BackendErrorKind, Error, EventMetadata, EventStore, EventType,
    ExpectedVersion, NewEvent, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::{count_events, raw_client, table, test_schema};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;

/// An event of type `test.Raw` with `payload`.
fn raw(payload: &[u8]) -> NewEvent {
    NewEvent::new(
        EventType::new("test.Raw").expect("a valid event type"),
        1,
        payload.to_vec(),
    )
}

/// Appends `event` alone to `stream`, once `barrier` lets it go.
fn spawn_append(
    store: &PgEventStore,
    barrier: &Arc<Barrier>,
    stream: StreamId,
    event: NewEvent,
) -> JoinHandle<Result<AppendResult, Error>> {
    let (store, barrier) = (store.clone(), barrier.clone());
    tokio::spawn(async move {
        barrier.wait().await;
        store
            .append(AppendRequest::new(
                stream,
                ExpectedVersion::NoStream,
                vec![event],
            ))
            .await
    })
}

/// `count` valid appends, to streams `{prefix}-0`, `{prefix}-1`, …, each once `barrier` lets
/// it go.
fn spawn_valid(
    store: &PgEventStore,
    barrier: &Arc<Barrier>,
    prefix: &str,
    count: usize,
) -> Vec<JoinHandle<Result<AppendResult, Error>>> {
    (0..count)
        .map(|g| {
            let stream = StreamId::new(format!("{prefix}-{g}")).expect("a valid stream id");
            spawn_append(store, barrier, stream, raw(br#"{"valid":[1,"x"]}"#))
        })
        .collect()
}

/// The results of valid appends, or which of them failed and why.
async fn all_written(
    tasks: Vec<JoinHandle<Result<AppendResult, Error>>>,
) -> Result<Vec<AppendResult>, String> {
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    for (g, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(Ok(appended)) => written.push(appended),
            Ok(Err(error)) => failed.push(format!("{g}: {}", foldline::error_chain(&error, ": "))),
            Err(panicked) => failed.push(format!("{g}: {panicked}")),
        }
    }
    if failed.is_empty() {
        Ok(written)
    } else {
        Err(format!(
            "{} of {} valid appends failed beside the bad one: {failed:?}",
            failed.len(),
            failed.len() + written.len()
        ))
    }
}

/// Appends a `bad()` event at the same moment as 20 valid appends, so that group commit puts them in one
/// transaction, a few rounds over: the bad one is `Error::InvalidPayload` and writes nothing; all
/// 20 valid ones are written.
async fn fails_alone_with_invalid_payload(bad: impl Fn() -> NewEvent) -> anyhow::Result<()> {
    const GOOD: usize = 20;
    const ROUNDS: usize = 4;
    let schema = test_schema().await;
    let store = schema.store().clone();
    let client = raw_client().await;
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(GOOD + 1));
        let good = spawn_valid(&store, &barrier, &format!("good-{round}"), GOOD);
        let bad_stream = StreamId::new(format!("bad-{round}"))?;
        let refused = spawn_append(&store, &barrier, bad_stream.clone(), bad()).await?;
        match &refused {
            Err(error @ Error::InvalidPayload { stream, .. }) => {
                assert_eq!(stream, &bad_stream);
                assert!(error.is_invalid_input() && !error.is_transient());
            }
            other => panic!("round {round}: expected Error::InvalidPayload, got {other:?}"),
        }
        if let Err(failed) = all_written(good).await {
            panic!("round {round}: {failed}");
        }
        assert_eq!(
            count_events(&client, schema.name(), bad_stream.as_str()).await?,
            0
        );
    }
    Ok(())
}

/// The review's case: `{"a":"\xff"}`, invalid UTF-8 inside a JSON string.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_utf8_in_a_string_fails_only_its_own_append() -> anyhow::Result<()> {
    fails_alone_with_invalid_payload(|| raw(b"{\"a\":\"\xff\"}")).await
}

/// Text that is not JSON, cut short or not, and JSON holding `\u0000`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_that_are_not_jsonb_fail_only_their_own_append() -> anyhow::Result<()> {
    for bad in [
        &b"not json"[..],
        br#"{"unterminated":"#,
        br#"{"nul":"\u0000"}"#,
    ] {
        fails_alone_with_invalid_payload(|| raw(bad)).await?;
    }
    Ok(())
}

/// Metadata is `jsonb` too: a NUL in one of its strings (`\u0000` once encoded).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_jsonb_refuses_fails_only_its_own_append() -> anyhow::Result<()> {
    let metadata = EventMetadata::new().with_user("tenant", "a\0b");
    fails_alone_with_invalid_payload(|| raw(b"{}").with_metadata(metadata.clone())).await
}

/// A refusal only the server can make: an event id already stored (the unique constraint on
/// `event_id`), appended at the same moment as 20 valid appends. The server refuses the whole
/// group commit without saying which row; the writer halves it until the culprit is alone, so
/// the culprit fails with the server's error and every neighbour is written — in a few
/// transactions, not one per append.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_the_server_refuses_fails_only_its_own_append() -> anyhow::Result<()> {
    const GOOD: usize = 20;
    let schema = test_schema().await;
    // One transaction at a time, so that everything queued while the first one waits on the
    // lock below forms the next group commit.
    let store =
        PgEventStore::connect(schema.store().options().clone().with_max_in_flight(1)).await?;
    let client = raw_client().await;
    let blocker = StreamId::new("blocker")?;
    let stored = raw(b"{}");
    let taken_id = stored.event_id;
    store
        .append(AppendRequest::new(
            blocker.clone(),
            ExpectedVersion::NoStream,
            vec![stored],
        ))
        .await?;

    // Hold the blocker's row in `streams`: the next commit that moves it waits at its upsert.
    let streams = table(schema.name(), "streams");
    client.batch_execute("BEGIN").await?;
    client
        .execute(
            &format!("SELECT 1 FROM {streams} WHERE stream_id = $1 FOR UPDATE"),
            &[&blocker.as_str()],
        )
        .await?;
    let waiting = {
        let store = store.clone();
        let event = raw(b"{}");
        tokio::spawn(async move {
            store
                .append(AppendRequest::new(
                    blocker,
                    ExpectedVersion::Any,
                    vec![event],
                ))
                .await
        })
    };
    let observer = raw_client().await;
    // The writer's statement names the streams table, or (a batch of one append) the schema's
    // `append_one` function.
    let append_one = format!("\"{}\".append_one", schema.name());
    let waits = async {
        while observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' \
                   AND (position($1 in query) > 0 OR position($2 in query) > 0)",
                &[&streams, &append_one],
            )
            .await?
            .get::<_, i64>(0)
            == 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), waits)
        .await
        .map_err(|_| anyhow::anyhow!("the blocker's commit never waited for the row lock"))??;

    let barrier = Arc::new(Barrier::new(GOOD + 1));
    let good = spawn_valid(&store, &barrier, "good", GOOD);
    let culprit_stream = StreamId::new("culprit")?;
    let mut taken = raw(b"{}");
    taken.event_id = taken_id;
    let culprit = spawn_append(&store, &barrier, culprit_stream.clone(), taken);
    // Let every append reach the writer's queue behind the waiting commit, then let it go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.batch_execute("ROLLBACK").await?;
    waiting.await??;

    match culprit.await? {
        Err(Error::Backend(backend)) => {
            assert_eq!(backend.kind(), BackendErrorKind::Rejected);
            let driver = std::error::Error::source(&backend)
                .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
                .expect("the driver's error as the source");
            assert_eq!(driver.code(), Some(&SqlState::UNIQUE_VIOLATION), "{driver}");
        }
        other => panic!("expected the server's refusal, got {other:?}"),
    }
    let written = all_written(good)
        .await
        .unwrap_or_else(|failed| panic!("{failed}"));
    let transactions: HashSet<u64> = written
        .iter()
        .map(|appended| {
            let position = appended
                .position
                .expect("an append with events has a position");
            position.major()
        })
        .collect();
    // Halving 21 appends takes 5 rounds to isolate one; one per append would be 20.
    assert!(
        transactions.len() <= 10,
        "the {GOOD} valid appends took {} transactions",
        transactions.len()
    );
    assert_eq!(
        count_events(&client, schema.name(), culprit_stream.as_str()).await?,
        0
    );
    Ok(())
}

/// A payload to append, as bytes.
#[derive(Clone)]
struct Payload {
    bytes: Vec<u8>,
    /// Nested deeper than the store's check allows, which PostgreSQL may still accept.
    deep: bool,
}

impl Payload {
    fn new(bytes: Vec<u8>) -> Self {
        Payload { bytes, deep: false }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 160;
        let shown = &self.bytes[..self.bytes.len().min(SHOWN)];
        write!(f, "{} bytes: {:?}", self.bytes.len(), BStr(shown))?;
        if self.bytes.len() > SHOWN {
            f.write_str("…")
        } else {
            Ok(())
        }
    }
}

/// Bytes shown as text, with what is not UTF-8 as `\xNN`.
struct BStr<'a>(&'a [u8]);

impl fmt::Debug for BStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

fn bytes_of(pieces: &[&'static str]) -> impl Strategy<Value = Vec<u8>> + use<> {
    prop::sample::select(pieces.to_vec()).prop_map(|s| s.as_bytes().to_vec())
}

/// A piece of a JSON string's content: text, escapes, and now and then something `jsonb`
/// refuses (`\u0000`, a lone surrogate, bytes that are not UTF-8, a raw control character).
fn string_piece() -> impl Strategy<Value = Vec<u8>> {
    let bad: &[&'static [u8]] = &[
        br"\u0000",
        br"\ud800",
        br"\udc00",
        br"\ud800\u0041",
        br"\udc00\ud800",
        br"\ud800\ud800",
        br"\x",
        br"\u12",
        b"\xff",
        b"\xc3",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\x01",
        b"\n",
        b"\x00",
    ];
    prop_oneof![
        6 => "[a-z é😀\u{7f}\u{ffff}]{0,4}".prop_map(String::into_bytes),
        3 => bytes_of(&[
            r#"\""#, r"\\", r"\/", r"\b", r"\f", r"\n", r"\r", r"\t", r"\u0041", r"\u00E9",
            r"\ud83d\ude00", r"\uDBFF\uDFFF", r"\u001f", r"\u0001",
        ]),
        2 => prop::sample::select(bad.to_vec()).prop_map(<[u8]>::to_vec),
    ]
}

fn string() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(string_piece(), 0..4).prop_map(|pieces| {
        let mut string = vec![b'"'];
        string.extend(pieces.concat());
        string.push(b'"');
        string
    })
}

/// A number, often near one of `numeric`'s limits: 16 383 digits after the point, a first
/// digit at 10^131071, an exponent of ±1 073 741 823.
fn number() -> impl Strategy<Value = Vec<u8>> {
    let exponent = prop_oneof![
        2 => Just(None),
        2 => (-20_000_i64..140_000).prop_map(Some),
        3 => prop::sample::select(vec![
            -1, 0, 1, 16_382, 16_383, 16_384, -16_382, -16_383, -16_384, 131_068, 131_069,
            131_070, 131_071, 131_072, 1_000_000, -1_000_000, 1_073_741_822, 1_073_741_823,
            -1_073_741_822, -1_073_741_823, 2_147_483_648, 99_999_999_999_999_999,
        ])
        .prop_map(Some),
    ];
    let simple = (
        any::<bool>(),
        "0|[1-9][0-9]{0,5}",
        proptest::option::of("[0-9]{1,6}"),
        exponent,
        bytes_of(&["e", "E", "e+", "E0000"]),
    )
        .prop_map(|(negative, integer, fraction, exponent, marker)| {
            let mut number = String::new();
            if negative {
                number.push('-');
            }
            number.push_str(&integer);
            if let Some(fraction) = fraction {
                number.push('.');
                number.push_str(&fraction);
            }
            if let Some(exponent) = exponent {
                number.push_str(std::str::from_utf8(&marker).expect("ASCII"));
                if exponent < 0 && marker.ends_with(b"+") {
                    number.pop();
                }
                number.push_str(&exponent.to_string());
            }
            number.into_bytes()
        });
    // Long runs of digits: the limits without an exponent, or with a small one.
    let long = (
        prop_oneof![Just('0'), Just('1')],
        16_375_usize..16_390,
        131_065_usize..131_075,
        any::<bool>(),
        -12_i64..12,
    )
        .prop_map(|(digit, zeros, digits, after_point, exponent)| {
            let number = if after_point {
                format!("0.{}{digit}e{exponent}", "0".repeat(zeros))
            } else {
                format!("{digit}{}e{exponent}", "0".repeat(digits - 1))
            };
            number.into_bytes()
        });
    prop_oneof![12 => simple, 1 => long]
}

/// A JSON value (or something close to one).
fn value() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![bytes_of(&["null", "true", "false"]), number(), string(),];
    let separator = || bytes_of(&[",", ", ", " ,\n\t", "\r,"]);
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec((inner.clone(), separator()), 0..4).prop_map(|items| {
                let mut array = vec![b'['];
                for (i, (item, separator)) in items.iter().enumerate() {
                    if i > 0 {
                        array.extend(separator);
                    }
                    array.extend(item);
                }
                array.push(b']');
                array
            }),
            prop::collection::vec((string(), inner, separator()), 0..4).prop_map(|members| {
                let mut object = vec![b'{'];
                for (i, (name, value, separator)) in members.iter().enumerate() {
                    if i > 0 {
                        object.extend(separator);
                    }
                    object.extend(name);
                    object.extend(b" : ");
                    object.extend(value);
                }
                object.push(b'}');
                object
            }),
        ]
    })
}

/// Payloads of every kind: JSON, JSON cut short or with a byte slipped in, garbage, and
/// nesting around the store's limit.
fn payload() -> impl Strategy<Value = Payload> {
    let padded = (
        bytes_of(&["", " ", "\n", "\x0c", "\x0b"]),
        value(),
        bytes_of(&["", " \r\n", "x"]),
    )
        .prop_map(|(before, value, after)| [before, value, after].concat());
    prop_oneof![
        10 => value().prop_map(Payload::new),
        2 => padded.prop_map(Payload::new),
        2 => (value(), any::<prop::sample::Index>())
            .prop_map(|(value, cut)| Payload::new(value[..cut.index(value.len() + 1)].to_vec())),
        2 => (value(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut value, at, byte)| {
            value.insert(at.index(value.len() + 1), byte);
            Payload::new(value)
        }),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Payload::new),
        1 => (120_usize..=136, any::<bool>()).prop_map(|(depth, objects)| {
            let (open, close) = if objects { (r#"{"a":"#, "}") } else { ("[", "]") };
            Payload {
                bytes: format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes(),
                deep: depth > 128,
            }
        }),
    ]
}

/// One case: `payload` appended at the same moment as valid appends, so that they share a
/// group commit. What the store accepts, PostgreSQL stores as it would on its own; what the
/// store refuses is `Error::InvalidPayload`, and PostgreSQL refuses it too (unless it is only
/// nested deeper than the store's limit); no valid neighbour fails.
async fn append_beside_valid_ones(
    store: &PgEventStore,
    client: &tokio_postgres::Client,
    case: usize,
    payload: &Payload,
) -> Result<(), TestCaseError> {
    const GOOD: usize = 4;
    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    let barrier = Arc::new(Barrier::new(GOOD + 1));
    let good = spawn_valid(store, &barrier, &format!("good-{case}"), GOOD);
    let stream = StreamId::new(format!("case-{case}")).expect("a valid stream id");
    let appended = spawn_append(store, &barrier, stream.clone(), raw(&payload.bytes))
        .await
        .map_err(|e| fail(&e))?;
    // What PostgreSQL makes of the same bytes on its own.
    let verdict = match client
        .query_one(
            "SELECT convert_from($1::bytea, 'UTF8')::jsonb::text",
            &[&payload.bytes],
        )
        .await
    {
        Ok(row) => Ok(row.get::<_, String>(0)),
        Err(error) if error.as_db_error().is_some() => Err(error),
        Err(error) => return Err(fail(&error)),
    };
    match (&appended, &verdict) {
        (Ok(_), Ok(stored_by_postgres)) => {
            let recorded = store
                .read_stream(&stream, foldline::Version::new(1), 10)
                .await
                .map_err(|e| fail(&e))?;
            prop_assert_eq!(recorded.len(), 1);
            prop_assert_eq!(
                std::str::from_utf8(&recorded[0].payload).ok(),
                Some(stored_by_postgres.as_str()),
                "stored differently from PostgreSQL's own jsonb"
            );
        }
        (Ok(_), Err(refused)) => {
            return Err(TestCaseError::fail(format!(
                "accepted, but PostgreSQL refuses it: {refused:?}"
            )));
        }
        (Err(Error::InvalidPayload { stream: s, .. }), Err(_)) => prop_assert_eq!(s, &stream),
        (Err(Error::InvalidPayload { .. }), Ok(_)) if payload.deep => {}
        (Err(error @ Error::InvalidPayload { .. }), Ok(stored_by_postgres)) => {
            return Err(TestCaseError::fail(format!(
                "refused ({}), but PostgreSQL accepts it as {stored_by_postgres:?}",
                foldline::error_chain(error, ": ")
            )));
        }
        (Err(error), _) => {
            return Err(TestCaseError::fail(format!(
                "expected Error::InvalidPayload, got {}",
                foldline::error_chain(error, ": ")
            )));
        }
    }
    all_written(good).await.map_err(TestCaseError::fail)?;
    Ok(())
}

/// Random payloads — valid JSON, `\u0000`, lone surrogates, bytes that are not UTF-8 inside
/// strings, numbers at and beyond `numeric`'s limits, garbage — each appended at the same
/// moment as valid ones. The store's check and PostgreSQL agree on every one, and no valid
/// neighbour ever fails.
#[test]
fn the_store_refuses_exactly_what_postgres_refuses_and_alone() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    let (schema, client) = runtime.block_on(async { (test_schema().await, raw_client().await) });
    let case = AtomicUsize::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&payload(), |payload| {
        let case = case.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(append_beside_valid_ones(
            schema.store(),
            &client,
            case,
            &payload,
        ))
    });
    if let Err(error) = outcome {
        panic!("{error}");
    }
}
