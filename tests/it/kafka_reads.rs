//! Reading streams of a Kafka store on an instance that owns none of its partitions (the
//! admin CLI, a projector, another service): the stream's head, from `<prefix>.heads`, says
//! where its events are, so a read covers the stream's span of the partition, not the whole
//! partition, and sees every append committed before it.

use std::time::Duration;

use foldline::{EventStore, ManagedStore, StreamId, Version};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
use foldline_tests::tally::{append, counted};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

/// Versions and amounts of `stream` as `store` reads it from `from`.
async fn read(
    store: &KafkaEventStore,
    stream: &StreamId,
    from: u64,
) -> anyhow::Result<Vec<(u64, String)>> {
    Ok(store
        .read_stream(stream, Version::new(from), 1000)
        .await?
        .into_iter()
        .map(|e| {
            (
                e.stream_version.get(),
                String::from_utf8_lossy(&e.payload).into_owned(),
            )
        })
        .collect())
}

/// Sends one record keyed by `stream` straight into its partition of the events topic, outside
/// any foldline append (no headers): a read that scanned the whole partition would return it.
fn foreign_record(store: &KafkaEventStore, stream: &StreamId) -> anyhow::Result<()> {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", store.options().brokers())
        .create()?;
    producer
        .send(
            BaseRecord::to(store.events_topic())
                .partition(i32::try_from(store.partition_of(stream))?)
                .key(stream.as_str())
                .payload("{\"foreign\":true}"),
        )
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_owning_nothing_reads_a_stream_within_its_span_and_sees_every_commit()
-> anyhow::Result<()> {
    let test = KafkaTestTopics::create_with(|options| options.with_partitions(1)).await?;
    let owner = test.store();
    let stream = StreamId::new("account-read")?;
    let other = StreamId::new("account-other")?;

    // Before the stream's first event and after its last: records with its key that no
    // foldline append wrote, and other streams' events in between.
    foreign_record(owner, &stream)?;
    append(owner, other.as_str(), &counted(5)).await?;
    append(owner, stream.as_str(), &counted(3)).await?;
    append(owner, other.as_str(), &counted(5)).await?;
    append(owner, stream.as_str(), &counted(2)).await?;
    foreign_record(owner, &stream)?;

    // A second instance that never appends: it owns nothing and reads through the heads.
    let reader = KafkaEventStore::connect(owner.options().clone()).await?;
    let expected = read(owner, &stream, 1).await?;
    assert_eq!(
        expected.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(read(&reader, &stream, 1).await?, expected);
    assert_eq!(read(&reader, &stream, 4).await?, expected[3..]);
    assert!(read(&reader, &stream, 6).await?.is_empty(), "past its head");
    assert!(
        read(&reader, &StreamId::new("account-none")?, 1)
            .await?
            .is_empty(),
        "a stream with no events"
    );

    // Later appends (and a stream created since) are seen by the next read: the heads are
    // tailed, not kept as first read.
    append(owner, stream.as_str(), &counted(1)).await?;
    let created = StreamId::new("account-new")?;
    append(owner, created.as_str(), &counted(2)).await?;
    let versions: Vec<u64> = read(&reader, &stream, 1)
        .await?
        .iter()
        .map(|(v, _)| *v)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(read(&reader, &created, 1).await?.len(), 2);

    // Listing streams goes through the same heads.
    let listed = reader.streams(None, 10).await?;
    let names: Vec<(String, u64)> = listed
        .iter()
        .map(|(s, v)| (s.to_string(), v.get()))
        .collect();
    assert_eq!(
        names,
        [
            ("account-new".to_owned(), 2),
            ("account-other".to_owned(), 10),
            ("account-read".to_owned(), 6),
        ]
    );
    let after = reader
        .streams(Some(&StreamId::new("account-new")?), 1)
        .await?;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0.as_str(), "account-other");
    Ok(())
}

/// Two appends racing for the same version, 40 times: whenever one conflicts, a read right
/// after the conflict sees the version the conflict names (the conflict is not answered
/// before the append it lost to is committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_a_conflict_sees_the_version_it_names() -> anyhow::Result<()> {
    use foldline::{AppendRequest, Error, EventType, ExpectedVersion, NewEvent};

    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let stream = StreamId::new("account-race")?;
    let event = || NewEvent::new(EventType::from_static("noted"), 1, b"{}".to_vec());
    let mut conflicts = 0;
    for round in 0..40_u64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(Version::new(round))
        };
        let racers = [0, 1].map(|_| {
            let (store, stream) = (store.clone(), stream.clone());
            let request = AppendRequest::new(stream.clone(), expected, vec![event()]);
            tokio::spawn(async move {
                match store.append(request).await {
                    Err(Error::Conflict { actual, .. }) => {
                        let read = store.read_stream(&stream, Version::new(1), 1000).await?;
                        let seen = read.last().map_or(0, |e| e.stream_version.get());
                        anyhow::ensure!(
                            seen >= actual.get(),
                            "a conflict at version {actual}, then a read up to {seen}"
                        );
                        Ok(true)
                    }
                    Err(other) => Err(other.into()),
                    Ok(_) => Ok(false),
                }
            })
        });
        let mut lost = 0;
        for racer in racers {
            lost += usize::from(racer.await??);
        }
        assert_eq!(lost, 1, "round {round}: exactly one of the two conflicts");
        conflicts += lost;
    }
    assert_eq!(conflicts, 40);
    Ok(())
}

/// A read right after an answered append sees it, on the instance owning the stream's
/// partition and on one owning nothing, 100 times: a commit is answered before its markers are
/// written, so a read that stopped at the partition's last stable offset as it found it could
/// miss the append it follows. On the appending instance, `head()` and the feed include it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_an_answered_append_sees_it() -> anyhow::Result<()> {
    use foldline::{AppendRequest, EventType, ExpectedVersion, NewEvent};

    let test = KafkaTestTopics::create_with(|options| options.with_partitions(1)).await?;
    let owner = test.store();
    let reader = KafkaEventStore::connect(owner.options().clone()).await?;
    let stream = StreamId::new("account-follow")?;
    let mut feed = foldline::Checkpoint::START;
    for version in 1..=100_u64 {
        let event = NewEvent::new(EventType::from_static("noted"), 1, b"{}".to_vec());
        let request = AppendRequest::new(stream.clone(), ExpectedVersion::Any, vec![event]);
        let written = owner.append(request).await?.position.expect("a position");
        let head = owner.head().await?;
        assert!(
            head.covers(&written),
            "the head {head} right after append {version} at {written}"
        );
        let batch = owner.read_all(&feed, 10).await?;
        let read: Vec<_> = batch
            .events
            .iter()
            .map(|e| e.stream_version.get())
            .collect();
        assert_eq!(read, [version], "the feed right after append {version}");
        feed = batch.checkpoint;
        for (who, store) in [("owner", owner), ("reader", &reader)] {
            let seen = store
                .read_stream(&stream, Version::new(version), 10)
                .await?
                .last()
                .map_or(0, |e| e.stream_version.get());
            assert_eq!(
                seen, version,
                "the {who}'s read right after append {version}"
            );
        }
    }
    Ok(())
}
