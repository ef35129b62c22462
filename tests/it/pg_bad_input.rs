//! Bad input on PostgreSQL: damaged or unknown stored events, oversize events, invalid names.
//! Each is a typed error, and nothing is written or lost. Payloads `jsonb` refuses are in
//! `pg_payloads.rs`.

use foldline::{
    AppendRequest, Checkpoint, CommandExecutor, CommandOptions, DecodeError, Error, EventStore,
    EventStoreExt, EventType, ExpectedVersion, IdempotencyKey, NameKind, NewEvent, Position,
    SchemaName, SnapshotStore, StreamId, Version,
};
use foldline_postgres::{PgEventStore, PgStoreOptions};
use foldline_tests::pg::{
    RawEvent, count_events, delete_event, insert_event, raw_client, table, test_schema,
};
use foldline_tests::{Account, AccountCommand as Cmd, SNAPSHOT_EVERY};

use crate::commands::{assert_gap, deposit_times, stream};
use crate::upcasting::decode_error;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("stored payloads are JSON")
}

/// A deposit's payload damaged in place (valid JSON, wrong shape) is `Error::Decode` naming the
/// stream, version, type and schema version; the damaged row still reads back, and a command
/// on that account fails the same way without writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_stored_payload_is_a_decode_error() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    // No cache: every command loads, which is what meets the damaged rows.
    let bank = CommandExecutor::new(store.clone()).with_cache(0);
    let client = raw_client().await;
    let update = format!(
        "UPDATE {} SET payload = $1::text::jsonb, schema_version = $2 \
         WHERE stream_id = $3 AND stream_version = 2",
        table(schema.name(), "events")
    );
    let cases = [
        ("current", 3_i64, r#"{"cents":"lots","memo":null}"#),
        ("v2", 2, r#"{"cents":5}"#),
        ("v1", 1, r#"{"amount":-12}"#),
    ];
    for (name, version, payload) in cases {
        let stream = stream(name);
        bank.execute::<Account>(Cmd::open(name, "ada")).await?;
        bank.execute::<Account>(Cmd::deposit(name, 100)).await?;
        let damaged = client
            .execute(&update, &[&payload, &version, &stream.as_str()])
            .await?;
        assert_eq!(damaged, 1, "{name}: the deposit row was not found");

        let error = bank.load::<Account>(&name.to_owned()).await.unwrap_err();
        let source = decode_error(
            &error,
            &stream,
            "account.deposited",
            u32::try_from(version)?,
        );
        assert!(
            matches!(source, DecodeError::Payload(_)),
            "{name}: {source:?}"
        );

        // Nothing lost: the damaged event reads back as stored.
        let recorded = store.read_stream(&stream, Version::new(2), 10).await?;
        assert_eq!(recorded.len(), 1, "{name}");
        assert_eq!(json(&recorded[0].payload), json(payload.as_bytes()));
        assert_eq!(i64::from(recorded[0].schema_version), version);

        // A command on the account cannot decide on a state it cannot load, and writes nothing.
        let refused = bank
            .execute::<Account>(Cmd::deposit(name, 1))
            .await
            .unwrap_err();
        let store_error = refused
            .store_error()
            .expect("a store error, not a rejection");
        assert!(
            matches!(store_error, Error::Decode { .. }),
            "{name}: {store_error:?}"
        );
        assert_eq!(
            count_events(&client, schema.name(), stream.as_str()).await?,
            2
        );
    }
    Ok(())
}

/// A row deleted from the middle of a stream (by hand, around the store) leaves a gap: `load`
/// (the executor's and `EventStoreExt`'s) and `execute` fail with `Error::StreamGap` naming the
/// stream and the missing version, and the command appends nothing on top of the gap. A
/// redelivered idempotent command whose event was the one deleted is refused the same way,
/// rather than answered with the next event as if it were its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_event_is_a_stream_gap() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    // No cache: every command loads, which is what meets the damaged rows.
    let bank = CommandExecutor::new(store.clone()).with_cache(0);
    let client = raw_client().await;
    let stream = stream("gap");
    let keyed = CommandOptions::new().with_idempotency_key(IdempotencyKey::new("gap-deposit")?);
    bank.execute::<Account>(Cmd::open("gap", "ada")).await?;
    bank.execute_with::<Account>(Cmd::deposit("gap", 100), keyed.clone())
        .await?;
    bank.execute::<Account>(Cmd::deposit("gap", 5)).await?;
    let deleted = delete_event(&client, schema.name(), stream.as_str(), 2).await?;
    assert_eq!(deleted, 1, "the deposit row was not found");

    let error = bank.load::<Account>(&"gap".to_owned()).await.unwrap_err();
    assert_gap(&error, &stream, 2, 3);
    let error = store.load::<Account>(&"gap".to_owned()).await.unwrap_err();
    assert_gap(&error, &stream, 2, 3);

    let refused = bank
        .execute::<Account>(Cmd::deposit("gap", 1))
        .await
        .unwrap_err();
    let error = refused
        .store_error()
        .expect("a store error, not a rejection");
    assert_gap(error, &stream, 2, 3);
    assert!(!refused.is_transient());
    let replay = bank
        .execute_with::<Account>(Cmd::deposit("gap", 100), keyed)
        .await
        .unwrap_err();
    let error = replay
        .store_error()
        .expect("a store error, not a rejection");
    assert_gap(error, &stream, 2, 3);
    assert_eq!(
        count_events(&client, schema.name(), stream.as_str()).await?,
        2,
        "a command appended on top of the gap"
    );
    Ok(())
}

/// With snapshots, the events after the snapshot must follow it: a row deleted right after the
/// snapshot's version, or further on, is `Error::StreamGap`, and nothing is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_event_after_a_snapshot_is_a_stream_gap() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    // No cache: every command loads, which is what meets the damaged rows.
    let bank = CommandExecutor::new(store.clone())
        .with_cache(0)
        .with_snapshots(store.clone());
    let client = raw_client().await;
    // The first event after the snapshot, and one further on.
    for deleted in [SNAPSHOT_EVERY + 1, SNAPSHOT_EVERY + 3] {
        let name = format!("snap-gap-{deleted}");
        let stream = stream(&name);
        bank.execute::<Account>(Cmd::open(&name, "ada")).await?;
        deposit_times(&bank, &name, SNAPSHOT_EVERY + 3).await?;
        let snapshot = store.load_snapshot(&stream).await?.expect("a snapshot");
        assert_eq!(snapshot.version, Version::new(SNAPSHOT_EVERY));
        let version = i64::try_from(deleted)?;
        assert_eq!(
            delete_event(&client, schema.name(), stream.as_str(), version).await?,
            1
        );

        let error = bank.load::<Account>(&name).await.unwrap_err();
        assert_gap(&error, &stream, deleted, deleted + 1);
        let refused = bank
            .execute::<Account>(Cmd::deposit(&name, 1))
            .await
            .unwrap_err();
        let error = refused
            .store_error()
            .expect("a store error, not a rejection");
        assert_gap(error, &stream, deleted, deleted + 1);
        assert_eq!(
            count_events(&client, schema.name(), stream.as_str()).await?,
            i64::try_from(SNAPSHOT_EVERY + 3)?,
            "a command appended on top of the gap"
        );
    }
    Ok(())
}

/// A row of a type the code does not know (written by a newer release, say) is
/// `Error::UnknownEventType` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_stored_event_type_is_typed() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let bank = CommandExecutor::new(schema.store().clone());
    let client = raw_client().await;
    let stream = stream("closed");
    bank.execute::<Account>(Cmd::open("closed", "ada")).await?;
    let closed = RawEvent::new(
        stream.as_str(),
        2,
        "account.closed",
        1,
        r#"{"reason":"moved"}"#,
    );
    insert_event(&client, schema.name(), &closed).await?;

    let error = bank
        .load::<Account>(&"closed".to_owned())
        .await
        .unwrap_err();
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
    assert!(error.is_decode() && !error.is_transient());
    let recorded = schema
        .store()
        .read_stream(&stream, Version::new(2), 10)
        .await?;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].event_id, closed.event_id);
    Ok(())
}

/// An event over the size limit is `Error::EventTooLarge` naming it; the append it is part of
/// writes nothing (not even its valid events), and the stream takes the next append.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversize_event_writes_nothing() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let client = raw_client().await;
    let stream = StreamId::new("oversize")?;
    let kind = EventType::new("test.Padded")?;
    let small = || NewEvent::new(kind.clone(), 1, br#"{"small":true}"#.to_vec());
    let limit = foldline::StoreLimits::default().max_event_bytes;
    let padding = "x".repeat(limit);
    let huge = NewEvent::new(
        kind.clone(),
        1,
        serde_json::json!({ "padding": padding })
            .to_string()
            .into_bytes(),
    );
    let size = huge.encoded_len();
    let head = store.head().await?;

    let result = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::Any,
            vec![small(), huge],
        ))
        .await;
    match &result {
        Err(
            error @ Error::EventTooLarge {
                stream: s,
                event_type,
                size: reported,
                limit: reported_limit,
            },
        ) => {
            assert_eq!(
                (s, event_type, *reported, *reported_limit),
                (&stream, &kind, size, limit)
            );
            assert!(error.is_invalid_input() && !error.is_transient());
        }
        other => panic!("expected Error::EventTooLarge, got {other:?}"),
    }
    assert_eq!(
        count_events(&client, schema.name(), stream.as_str()).await?,
        0
    );
    assert!(
        store
            .read_stream(&stream, Version::new(1), 10)
            .await?
            .is_empty()
    );
    assert_eq!(store.head().await?, head);

    let appended = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![small()],
        ))
        .await?;
    assert_eq!(appended.current_version, Version::new(1));
    Ok(())
}

/// Schema names that would need quoting, or smuggle SQL in, cannot even be built: the store
/// never sees them, and nothing of them reaches the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_schema_names_are_refused() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let client = raw_client().await;
    // A table the injection attempt below would drop if it ever reached SQL.
    let sentinel = table(schema.name(), "sentinel");
    client
        .batch_execute(&format!("CREATE TABLE {sentinel} (id int)"))
        .await?;
    let names = [
        format!("x; drop table {sentinel}"),
        format!("{}_x; drop table {sentinel}", schema.name()),
        "Upper".to_owned(),
        "quote\"d".to_owned(),
        "it's".to_owned(),
        "with space".to_owned(),
        "1digit".to_owned(),
        "a".repeat(64),
        String::new(),
    ];
    for name in &names {
        let error = SchemaName::new(name.clone()).unwrap_err();
        match &error {
            Error::InvalidName {
                kind: NameKind::SchemaName,
                value,
                ..
            } => assert_eq!(value, name),
            other => panic!("`{name}`: expected an invalid schema name, got {other:?}"),
        }
        assert!(error.is_invalid_input());
        // Configuration read from text is validated the same way.
        let quoted = serde_json::to_string(name)?;
        assert!(
            serde_json::from_str::<SchemaName>(&quoted).is_err(),
            "{name}"
        );
    }
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name::text = ANY($1::text[])",
            &[&names.to_vec()],
        )
        .await?
        .get(0);
    assert_eq!(found, 0, "a schema with an invalid name exists");
    let sentinel_exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'sentinel')",
            &[&schema.name().as_str()],
        )
        .await?
        .get(0);
    assert!(sentinel_exists);
    Ok(())
}

/// `SchemaName` promises an identifier that never needs quoting; an SQL keyword is spelled like
/// one but is not. Such a name is either refused when built or works as a schema like any other
/// (the store quotes it): never an SQL syntax error at migration time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyword_schema_name_is_refused_or_works() -> anyhow::Result<()> {
    const KEYWORD: &str = "select";
    let name = match SchemaName::new(KEYWORD) {
        Err(error) => {
            assert!(error.is_invalid_input(), "{error:?}");
            return Ok(());
        }
        Ok(name) => name,
    };
    let client = raw_client().await;
    let drop = format!("DROP SCHEMA IF EXISTS \"{KEYWORD}\" CASCADE");
    client.batch_execute(&drop).await?;
    let options = PgStoreOptions::from_url(&foldline_tests::pg::url())?.with_schema(name);
    let outcome: foldline::Result<()> = async {
        let store = PgEventStore::connect(options).await?;
        store.migrate().await?;
        let stream = StreamId::new("keyword")?;
        let event = NewEvent::new(EventType::new("test.Kept")?, 1, b"{}".to_vec());
        store
            .append(AppendRequest::new(
                stream.clone(),
                ExpectedVersion::NoStream,
                vec![event],
            ))
            .await?;
        assert_eq!(
            store.read_stream(&stream, Version::new(1), 10).await?.len(),
            1
        );
        Ok(())
    }
    .await;
    client.batch_execute(&drop).await?;
    if let Err(error) = outcome {
        panic!(
            "schema `{KEYWORD}` is a valid SchemaName but the store fails on it: {}",
            foldline::error_chain(&error, ": ")
        );
    }
    Ok(())
}

/// Invalid stream ids are refused when built, and a command whose aggregate id makes an
/// invalid stream id fails with `Error::InvalidName` before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_stream_ids_are_refused() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let client = raw_client().await;
    for bad in ["has space", "quote'd", "brace{d}", "new\nline", ""] {
        let error = StreamId::new(bad).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidName {
                    kind: NameKind::StreamId,
                    ..
                }
            ),
            "`{bad}`: {error:?}"
        );
    }
    let bank = CommandExecutor::new(store.clone());
    let error = bank
        .execute::<Account>(Cmd::open("x'); drop table y; --", "ada"))
        .await
        .unwrap_err();
    let store_error = error.store_error().expect("a store error, not a rejection");
    assert!(
        matches!(
            store_error,
            Error::InvalidName {
                kind: NameKind::StreamId,
                ..
            }
        ),
        "{store_error:?}"
    );
    assert!(store_error.is_invalid_input());
    let rows: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {}", table(schema.name(), "events")),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(rows, 0);
    assert_eq!(store.head().await?, Checkpoint::START);
    Ok(())
}

/// A checkpoint of another store (Kafka's have several partitions) is refused by `read_all` and
/// `subscribe` with `Error::InvalidCheckpoint`, not read as something it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreign_checkpoint_is_refused() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let mut other_partition = Checkpoint::START;
    other_partition.advance(Position::new(3, 0, 17));
    let mut partitions = Checkpoint::START;
    partitions.advance(Position::new(0, 0, 17));
    partitions.advance(Position::new(1, 0, 4));
    for checkpoint in [other_partition, partitions] {
        let error = store.read_all(&checkpoint, 10).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidCheckpoint { .. }) && error.is_invalid_input(),
            "read_all from {checkpoint}: {error:?}"
        );
        let error = store.subscribe(checkpoint.clone()).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidCheckpoint { .. }),
            "subscribe from {checkpoint}: {error:?}"
        );
    }
    Ok(())
}

/// A schema version is a `u32`; PostgreSQL keeps it in an `integer`. One beyond `i32::MAX` must
/// either come back as written or be refused with a typed error that writes nothing — never be
/// stored as another number. The same for a snapshot's schema version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_versions_beyond_i32_are_kept_or_refused() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let client = raw_client().await;
    let huge = u32::MAX;

    let stream = StreamId::new("huge-version")?;
    let event = NewEvent::new(EventType::new("test.Future")?, huge, b"{}".to_vec());
    let appended = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![event],
        ))
        .await;
    match appended {
        Ok(_) => {
            let recorded = store.read_stream(&stream, Version::new(1), 10).await?;
            assert_eq!(
                recorded[0].schema_version, huge,
                "the event's schema version was stored as another number"
            );
        }
        Err(error) => {
            assert!(error.is_invalid_input(), "{error:?}");
            assert_eq!(
                count_events(&client, schema.name(), stream.as_str()).await?,
                0
            );
        }
    }

    let snapshot = foldline::Snapshot::new(stream.clone(), Version::new(1), huge, b"{}".to_vec());
    match foldline::SnapshotStore::save_snapshot(&store, snapshot).await {
        Ok(()) => {
            let loaded = foldline::SnapshotStore::load_snapshot(&store, &stream)
                .await?
                .expect("the saved snapshot");
            assert_eq!(
                loaded.schema_version, huge,
                "the snapshot's schema version was stored as another number"
            );
        }
        Err(error) => assert!(error.is_invalid_input(), "{error:?}"),
    }
    Ok(())
}
