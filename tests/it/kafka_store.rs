//! The Kafka store's topics against a real broker (`FOLDLINE_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`; `scripts/kafka.sh start`): created once, never compacted or expired, the
//! store's identity and partition count fixed at creation, a changed partition count refused.

use std::time::Duration;

use foldline::{Error, NameKind};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions, KafkaTestTopics};
use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, OwnedResourceSpecifier, ResourceSpecifier,
};
use rdkafka::client::DefaultClientContext;

fn admin(options: &KafkaStoreOptions) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", options.brokers())
        .create()?)
}

/// The value of `key` in `topic`'s configuration, as the broker describes it.
async fn topic_config(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    key: &str,
) -> anyhow::Result<Option<String>> {
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?;
    let resource = described
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no description of {topic}"))?
        .map_err(|code| anyhow::anyhow!("describing {topic}: {code:?}"))?;
    anyhow::ensure!(
        resource.specifier == OwnedResourceSpecifier::Topic(topic.to_owned()),
        "{:?}",
        resource.specifier
    );
    Ok(resource.get(key).and_then(|entry| entry.value.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_creates_its_topics_once_and_keeps_its_identity() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    assert_eq!(store.partitions(), 4);
    let identity = store.store_identity().clone();
    assert!(identity.as_str().starts_with("kafka:"), "{identity}");
    assert!(
        identity.as_str().contains(store.options().topic_prefix()),
        "{identity}"
    );

    let admin = admin(store.options())?;
    let events = store.events_topic();
    for (key, value) in [
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
    ] {
        assert_eq!(
            topic_config(&admin, events, key).await?.as_deref(),
            Some(value),
            "{key} of {events}"
        );
    }

    // Opened again, with options asking for other partitions: the store as it was created.
    let again = KafkaEventStore::connect(store.options().clone().with_partitions(9)).await?;
    assert_eq!(again.partitions(), 4);
    assert_eq!(again.store_identity(), &identity);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_opened_at_once_agree_on_one_identity() -> anyhow::Result<()> {
    let prefix = format!("test_{}", uuid::Uuid::now_v7().simple());
    let options = KafkaStoreOptions::from_env()
        .with_topic_prefix(&prefix)?
        .with_partitions(3);
    let opening: Vec<_> = (0..4)
        .map(|_| tokio::spawn(KafkaEventStore::connect(options.clone())))
        .collect();
    let mut identities = Vec::new();
    for task in opening {
        identities.push(task.await??.store_identity().clone());
    }
    // Keeps the topics deleted at the end, through the test helper's drop.
    let _cleanup = KafkaTestTopics::create_with(|_| options.clone()).await?;
    assert!(
        identities.windows(2).all(|w| w[0] == w[1]),
        "{identities:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_partition_count_is_refused_naming_both_counts() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let admin = admin(store.options())?;
    let grown = admin
        .create_partitions(
            [&NewPartitions::new(store.events_topic(), 6)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");

    let error = KafkaEventStore::connect(store.options().clone())
        .await
        .expect_err("a store whose partition count changed must not open");
    match &error {
        Error::PartitionCountChanged {
            topic,
            created,
            found,
        } => {
            assert_eq!(
                (topic.as_str(), *created, *found),
                (store.events_topic(), 4, 6)
            );
        }
        other => panic!("expected PartitionCountChanged, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("6 partitions") && message.contains("created with 4"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_deleted_and_created_again_are_another_store() -> anyhow::Result<()> {
    let first = KafkaTestTopics::create().await?;
    let options = first.store().options().clone();
    let before = first.store().store_identity().clone();
    drop(first); // deletes the topics
    // Topic deletion completes asynchronously on the broker: retry until the new store opens.
    let mut again = None;
    for _ in 0..50 {
        match KafkaTestTopics::create_with(|_| options.clone()).await {
            Ok(store) => {
                again = Some(store);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let again = again.ok_or_else(|| anyhow::anyhow!("the store could not be created again"))?;
    assert_ne!(again.store().store_identity(), &before);
    Ok(())
}

#[test]
fn a_prefix_kafka_would_refuse_is_an_invalid_name() {
    for prefix in ["", "a b", "bank/events", "a:b", &"p".repeat(65)] {
        let error = KafkaStoreOptions::from_brokers("127.0.0.1:9092")
            .with_topic_prefix(prefix)
            .expect_err(prefix);
        assert!(
            matches!(
                error,
                Error::InvalidName {
                    kind: NameKind::KeyPrefix,
                    ..
                }
            ),
            "{error:?}"
        );
    }
}

/// The feed's pages come from consumers kept between reads. An open transaction (a raw
/// producer's, never the store's) ends every page before its records, whether the page comes
/// from a new consumer or from one going on, and the records appear once it commits; an aborted
/// transaction's marker is passed without a stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_opened_without_topic_creation_must_exist_and_nothing_is_created()
-> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let existing = test.store().options().clone().with_topic_creation(false);
    let reopened = KafkaEventStore::connect(existing.clone()).await?;
    assert_eq!(reopened.store_identity(), test.store().store_identity());

    let typo = format!("{}_typo", existing.topic_prefix());
    let missing = existing.with_topic_prefix(&typo)?;
    let error = KafkaEventStore::connect(missing.clone())
        .await
        .expect_err("no store under the mistyped prefix");
    assert!(
        matches!(&error, Error::StoreNotFound { store } if store.contains(&format!("`{typo}.*`"))),
        "{error:?}"
    );
    // Looked for, not created.
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", missing.brokers())
        .create()?;
    let metadata =
        rdkafka::consumer::Consumer::fetch_metadata(&consumer, None, Duration::from_secs(10))?;
    let created: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|name| name.starts_with(&format!("{typo}.")))
        .collect();
    assert!(created.is_empty(), "created: {created:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_pages_stop_before_an_open_transaction_and_pass_committed_and_aborted_ones()
-> anyhow::Result<()> {
    use foldline::{Checkpoint, EventStore, StreamId};
    use foldline_tests::tally::{append, counted};
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let stream = StreamId::new("account-open")?;
    append(store, stream.as_str(), &counted(3)).await?;

    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", store.options().brokers())
        .set(
            "transactional.id",
            format!("{}.raw", store.options().topic_prefix()),
        )
        .set("transaction.timeout.ms", "60000")
        .create()?;
    producer.init_transactions(Duration::from_secs(10))?;
    producer.begin_transaction()?;
    let partition = i32::try_from(store.partition_of(&stream))?;
    producer
        .send(
            BaseRecord::to(store.events_topic())
                .partition(partition)
                .key(stream.as_str())
                .payload("{}"),
        )
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;

    // A new consumer, then the same one going on: both stop before the open transaction,
    // promptly (a read waiting for the transaction would time out after 10 s).
    let started = std::time::Instant::now();
    let first = store.read_all(&Checkpoint::START, 2).await?;
    assert_eq!(first.events.len(), 2);
    let second = store.read_all(&first.checkpoint, 100).await?;
    assert_eq!(second.events.len(), 1);
    let third = store.read_all(&second.checkpoint, 100).await?;
    assert!(third.events.is_empty(), "{:?}", third.events);
    let fourth = store.read_all(&third.checkpoint, 100).await?;
    assert!(fourth.events.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Committed, its record is the next page's (read unreadable: it has no foldline headers).
    let committer = producer.clone();
    tokio::task::spawn_blocking(move || committer.commit_transaction(Duration::from_secs(10)))
        .await??;
    let page = next_events(store, &fourth.checkpoint).await?;
    assert_eq!(page.events.len(), 1);
    assert!(page.events[0].unreadable.is_some(), "{:?}", page.events[0]);

    // An aborted transaction leaves only its marker behind: a reader going on passes it
    // promptly with an empty page, and then reads the store's next event.
    let at_head = store.read_all(&page.checkpoint, 100).await?;
    assert!(at_head.events.is_empty());
    producer.begin_transaction()?;
    producer
        .send(
            BaseRecord::to(store.events_topic())
                .partition(partition)
                .key(stream.as_str())
                .payload("{}"),
        )
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;
    let aborter = producer.clone();
    tokio::task::spawn_blocking(move || aborter.abort_transaction(Duration::from_secs(10)))
        .await??;
    let started = std::time::Instant::now();
    let past_abort = store.read_all(&at_head.checkpoint, 100).await?;
    assert!(past_abort.events.is_empty(), "{:?}", past_abort.events);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    append(store, stream.as_str(), &counted(1)).await?;
    let page = next_events(store, &past_abort.checkpoint).await?;
    assert_eq!(page.events.len(), 1);
    assert!(page.events[0].unreadable.is_none());
    Ok(())
}

/// The first page after `after` that holds events, reading on for at most 10 s.
async fn next_events(
    store: &KafkaEventStore,
    after: &foldline::Checkpoint,
) -> anyhow::Result<foldline::EventBatch> {
    use foldline::EventStore;
    let mut after = after.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = store.read_all(&after, 100).await?;
        if !page.events.is_empty() {
            return Ok(page);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no event came within 10 s"
        );
        after = page.checkpoint;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
