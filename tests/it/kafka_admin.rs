//! The Kafka store as the admin sees it ([`ManagedStore`]), against a real broker
//! (`FOLDLINE_KAFKA_BROKERS`, default `127.0.0.1:9092`; `scripts/kafka.sh start`): its streams
//! from the heads topic, a transaction left open on the events topic named as what holds the
//! feed back, `foldline status` on it (lag per partition, the open transaction), and its
//! snapshots (their conformance cases are in `kafka_conformance`).

use std::time::{Duration, Instant};

use foldline::testing::KeyValueModel;
use foldline::{
    EventStore, EventStoreExt, ExpectedVersion, FeedHolderKind, HeldFeed, InMemoryTarget,
    ManagedStore, Projector, Snapshot, SnapshotStore, StreamId, Version,
};
use foldline_admin::{Admin, Outcome};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
use foldline_tests::cli::Ran;
use foldline_tests::tally::{Tally, append, counted};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

/// A store under a fresh prefix; the test fails (never skips) when no broker answers.
async fn kafka_store() -> KafkaTestTopics {
    match KafkaTestTopics::create().await {
        Ok(topics) => topics,
        Err(error) => panic!(
            "cannot set up a Kafka test store: {}",
            foldline::error_chain(&error, ": ")
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_lists_streams_from_the_heads_topic_ordered_by_id() -> anyhow::Result<()> {
    let test = kafka_store().await;
    let store = test.store();
    assert!(store.streams(None, 100).await?.is_empty());
    // Streams spread over the partitions, some appended to more than once.
    for (stream, events) in [("c-3", 2), ("a-1", 1), ("e-5", 4), ("b-2", 3), ("d-4", 1)] {
        for _ in 0..events {
            append(store, stream, &counted(1)).await?;
        }
    }
    let version = |n| Version::new(n);
    let all = store.streams(None, 100).await?;
    let listed: Vec<(&str, Version)> = all.iter().map(|(s, v)| (s.as_str(), *v)).collect();
    assert_eq!(
        listed,
        [
            ("a-1", version(1)),
            ("b-2", version(3)),
            ("c-3", version(2)),
            ("d-4", version(1)),
            ("e-5", version(4)),
        ]
    );
    // Paged: after a stream, at most `limit`.
    let page = store.streams(Some(&StreamId::new("b-2")?), 2).await?;
    let names: Vec<&str> = page.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["c-3", "d-4"]);
    assert!(
        store
            .streams(Some(&StreamId::new("e-5")?), 10)
            .await?
            .is_empty()
    );

    let described = store.describe();
    assert!(
        described.starts_with("Apache Kafka at ")
            && described.ends_with(&format!(", topics {}.*", store.options().topic_prefix())),
        "{described}"
    );
    assert!(store.migrate().await?.is_empty());
    assert!(store.pending_migrations().await?.is_empty());
    Ok(())
}

/// A raw transactional producer (not the store's writer), as a stuck application would hold
/// one: a transaction begun on the store's events topic.
fn open_transaction(
    store: &KafkaEventStore,
) -> anyhow::Result<ThreadedProducer<rdkafka::producer::DefaultProducerContext>> {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", store.options().brokers())
        .set(
            "transactional.id",
            format!("{}.stuck", store.options().topic_prefix()),
        )
        // Long enough that the broker does not abort it during the test.
        .set("transaction.timeout.ms", "60000")
        .create()?;
    producer.init_transactions(Duration::from_secs(10))?;
    producer.begin_transaction()?;
    Ok(producer)
}

/// Polls `store` until `done` holds for its held-back feed, for at most 10 s.
async fn until(
    store: &KafkaEventStore,
    done: impl Fn(&HeldFeed) -> bool,
) -> anyhow::Result<HeldFeed> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = store.feed_held_back().await?;
        if done(&held) {
            return Ok(held);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "still not as expected after 10 s: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_admin_names_an_open_transaction_holding_the_feed_back() -> anyhow::Result<()> {
    let test = kafka_store().await;
    let store = test.store();
    let stream = StreamId::new("account-stuck")?;
    let partition = store.partition_of(&stream);
    append(store, stream.as_str(), &counted(2)).await?;
    // A commit is answered before its markers reach the partitions: wait for them.
    until(store, |held| !held.is_held()).await?;
    let head_before = store.head().await?;

    let producer = open_transaction(store)?;
    let number = i32::try_from(partition)?;
    producer
        .send(
            BaseRecord::to(store.events_topic())
                .partition(number)
                .key(stream.as_str())
                .payload("never committed"),
        )
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;
    // Old enough for `status` to name it (it leaves out holders younger than 1 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let held = until(store, HeldFeed::is_held).await?;
    assert_eq!(held.holders.len(), 1, "{held:?}");
    let holder = &held.holders[0];
    assert_eq!(
        holder.kind,
        FeedHolderKind::PartitionTransaction,
        "{holder:?}"
    );
    assert_eq!(holder.topic.as_deref(), Some(store.events_topic()));
    assert_eq!(holder.partition, Some(partition));
    let (stable, high) = (
        holder.stable_offset.expect("a stable offset"),
        holder.high_watermark.expect("a high watermark"),
    );
    assert!(stable < high, "{holder:?}");
    // The feed's head stops just before the stable offset: the open record is not in it.
    // (This partition's: the writers of the others may still be taking theirs, each adding
    // its marker.)
    assert_eq!(
        store.head().await?.get(partition),
        head_before.get(partition)
    );
    assert_eq!(
        head_before.get(partition).map(|p| p.major() + 1),
        Some(stable),
        "{head_before}"
    );
    assert!(held.waiting_events >= 1, "{held:?}");
    assert!(
        holder.age >= Duration::from_secs(1) && holder.age < Duration::from_secs(60),
        "the age of its first record: {holder:?}"
    );
    assert_eq!(held.held_for, Some(holder.age));

    // `foldline status` names it, in JSON and in the table.
    let admin = admin(store);
    let ran = run(&admin, &["status", "--json"]).await?;
    let feed = ran.one("feed");
    assert_eq!(feed["held_back"], true, "{}", ran.stdout);
    assert_eq!(feed["holders"], 1, "{}", ran.stdout);
    let line = ran.one("feed_holder");
    assert_eq!(line["kind"], "partition_transaction", "{line}");
    assert_eq!(line["partition"], partition, "{line}");
    assert_eq!(line["topic"], store.events_topic(), "{line}");
    assert_eq!(line["stable_offset"], stable, "{line}");
    let ran = run(&admin, &["status"]).await?;
    assert!(
        ran.stdout
            .contains("the feed is held back by open Kafka transactions"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .lines()
            .any(|l| l.starts_with(store.events_topic())
                && l.split_whitespace().nth(1) == Some(partition.to_string().as_str())),
        "{}",
        ran.stdout
    );

    producer.abort_transaction(Duration::from_secs(10))?;
    let released = until(store, |held| !held.is_held()).await?;
    assert!(released.holders.is_empty() && released.waiting_events == 0);
    assert_eq!(released.held_for, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_status_shows_the_lag_of_each_partition() -> anyhow::Result<()> {
    let test = kafka_store().await;
    let store = test.store();
    // Streams until at least two partitions have events.
    let mut partitions = std::collections::BTreeSet::new();
    for n in 0.. {
        let stream = format!("lagging-{n}");
        append(store, &stream, &counted(1)).await?;
        partitions.insert(store.partition_of(&StreamId::new(stream)?));
        if partitions.len() >= 2 {
            break;
        }
    }
    let head = store.head().await?;
    assert!(head.positions().len() >= 2, "{head}");

    let admin = admin(store);
    let ran = run(&admin, &["status", "--json"]).await?;
    let status = ran.one("projection_status");
    let lags = status["lag_by_partition"]
        .as_array()
        .unwrap_or_else(|| panic!("a lag per partition: {status}"));
    let by_partition: Vec<(u64, u64)> = lags
        .iter()
        .map(|l| {
            (
                l["partition"].as_u64().unwrap_or(u64::MAX),
                l["lag_events"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = head
        .positions()
        .iter()
        // Nothing applied: each partition's records up to its head, offsets from 0.
        .map(|p| (u64::from(p.partition()), p.major() + 1))
        .collect();
    assert_eq!(by_partition, expected, "{status}");
    assert_eq!(
        status["lag_events"].as_u64(),
        Some(expected.iter().map(|(_, lag)| lag).sum()),
        "{status}"
    );
    let ran = run(&admin, &["status"]).await?;
    assert!(
        ran.stdout.contains("tally lags by partition: "),
        "{}",
        ran.stdout
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_snapshots_load_on_another_instance_and_share_the_streams_partition()
-> anyhow::Result<()> {
    let test = kafka_store().await;
    let store = test.store();
    let stream = StreamId::new("account-snapshotted")?;
    store
        .append_events(stream.clone(), ExpectedVersion::NoStream, &counted(3))
        .await?;
    store
        .save_snapshot(Snapshot::new(
            stream.clone(),
            Version::new(3),
            1,
            b"{\"total\":6}".to_vec(),
        ))
        .await?;
    let other = KafkaEventStore::connect(store.options().clone()).await?;
    let loaded = other.load_snapshot(&stream).await?.expect("a snapshot");
    assert_eq!(loaded.version, Version::new(3));
    assert_eq!(loaded.payload, b"{\"total\":6}");
    // An empty state is a state too.
    store
        .save_snapshot(Snapshot::new(
            stream.clone(),
            Version::new(4),
            1,
            Vec::new(),
        ))
        .await?;
    let loaded = other.load_snapshot(&stream).await?.expect("a snapshot");
    assert_eq!((loaded.version, loaded.payload.len()), (Version::new(4), 0));
    Ok(())
}

/// The admin of `store` with the tally projection (kept in memory, never run) registered.
fn admin(store: &KafkaEventStore) -> Admin<KafkaEventStore> {
    let target = InMemoryTarget::<KeyValueModel>::new();
    Admin::new(store.clone()).with_projection(Projector::new(
        store.clone(),
        Tally::<1>::default(),
        target,
    ))
}

/// Runs `foldline <args>` on `admin` in-process, in JSON mode when `args` holds `--json`; a
/// command that ends other than `Ok` is an error.
async fn run(admin: &Admin<KafkaEventStore>, args: &[&str]) -> anyhow::Result<Ran> {
    let ran = foldline_tests::cli::run(admin, args).await?;
    anyhow::ensure!(ran.outcome == Outcome::Ok, "{:?}", ran.outcome);
    Ok(ran)
}
