//! Who may write a partition of a Kafka store: the instance the writers' group assigns it to.
//! Two instances split the partitions and each refuses the other's with a retryable `NotOwner`
//! naming the partition and its owner; an instance leaving hands its partitions back. A writer
//! fenced by another (a new owner it has not heard of yet) fails, and what it produced is
//! never read.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use foldline::{
    AppendRequest, BackendErrorKind, Checkpoint, Error, EventStore, EventType, ExpectedVersion,
    NewEvent, StreamId, Version,
};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use uuid::Uuid;

fn event() -> NewEvent {
    NewEvent::new(EventType::from_static("noted"), 1, b"{}".to_vec())
}

fn append(stream: &StreamId, expected: ExpectedVersion, event: NewEvent) -> AppendRequest {
    AppendRequest::new(stream.clone(), expected, vec![event])
}

fn is_not_owner(error: &Error) -> bool {
    matches!(error, Error::Backend(e) if e.kind() == BackendErrorKind::NotOwner)
}

/// One stream id in each partition of `store`.
fn stream_per_partition(store: &KafkaEventStore) -> anyhow::Result<BTreeMap<u32, StreamId>> {
    let mut streams = BTreeMap::new();
    for n in 0.. {
        let stream = StreamId::new(format!("account-{n}"))?;
        streams.entry(store.partition_of(&stream)).or_insert(stream);
        if streams.len() == store.partitions() as usize {
            break;
        }
    }
    Ok(streams)
}

/// Which of `stores` accepts an append to each stream right now (`None`: none or several);
/// every refusal must be `NotOwner`. The accepted events' ids are pushed to `written`.
async fn owners(
    stores: &[&KafkaEventStore],
    streams: &BTreeMap<u32, StreamId>,
    written: &mut BTreeMap<StreamId, Vec<Uuid>>,
) -> anyhow::Result<BTreeMap<u32, Option<usize>>> {
    let mut owners = BTreeMap::new();
    for (partition, stream) in streams {
        let mut accepted = Vec::new();
        for (n, store) in stores.iter().enumerate() {
            let event = event();
            let id = event.event_id;
            match store
                .append(append(stream, ExpectedVersion::Any, event))
                .await
            {
                Ok(_) => {
                    accepted.push(n);
                    written.entry(stream.clone()).or_default().push(id);
                }
                Err(error) if is_not_owner(&error) => {
                    let message = foldline::error_chain(&error, ": ");
                    assert!(
                        message.contains(&format!("partition {partition} ")),
                        "{message}"
                    );
                }
                Err(error) => return Err(error.into()),
            }
        }
        owners.insert(*partition, (accepted.len() == 1).then(|| accepted[0]));
    }
    Ok(owners)
}

/// Polls [`owners`] until `settled` holds of them, or fails after 60 s.
async fn owners_until(
    stores: &[&KafkaEventStore],
    streams: &BTreeMap<u32, StreamId>,
    written: &mut BTreeMap<StreamId, Vec<Uuid>>,
    settled: impl Fn(&BTreeMap<u32, Option<usize>>) -> bool,
) -> anyhow::Result<BTreeMap<u32, Option<usize>>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = owners(stores, streams, written).await?;
        if settled(&found) {
            return Ok(found);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the group did not settle within 60 s: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_group_splits_the_partitions_and_an_instance_leaving_hands_them_back()
-> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let first = test.store().clone();
    let streams = stream_per_partition(&first)?;
    let mut written = BTreeMap::new();

    // Alone, the first instance owns every partition.
    let alone = owners(&[&first], &streams, &mut written).await?;
    assert!(alone.values().all(|o| *o == Some(0)), "{alone:?}");

    // A second instance joins on its first append: the group splits the partitions, each
    // owned by exactly one instance; the other refuses it, naming the owner.
    let second = KafkaEventStore::connect(first.options().clone()).await?;
    let _ = second
        .append(append(
            &StreamId::new("join")?,
            ExpectedVersion::Any,
            event(),
        ))
        .await;
    let split = owners_until(&[&first, &second], &streams, &mut written, |found| {
        found.values().all(Option::is_some)
            && found.values().any(|o| *o == Some(0))
            && found.values().any(|o| *o == Some(1))
    })
    .await?;
    let (partition, stream) = streams
        .iter()
        .find(|(p, _)| split[*p] == Some(1))
        .expect("the second instance owns a partition");
    let refused = first
        .append(append(stream, ExpectedVersion::Any, event()))
        .await
        .expect_err("the partition is the second instance's");
    assert!(
        is_not_owner(&refused) && refused.is_transient(),
        "{refused:?}"
    );
    let message = foldline::error_chain(&refused, ": ");
    assert!(
        message.contains(&format!(
            "partition {partition} of `{}`",
            first.events_topic()
        )) && message.contains("writers' group")
            && message.contains(&format!(
                "client `foldline-writer-pid{}",
                std::process::id()
            )),
        "names the partition and its owner: {message}"
    );

    // The second leaves (dropped): the first owns everything again.
    drop(second);
    owners_until(&[&first], &streams, &mut written, |found| {
        found.values().all(|o| *o == Some(0))
    })
    .await?;

    // Every acknowledged append is in its stream exactly once, versions consecutive.
    for (stream, ids) in &written {
        let read = first.read_stream(stream, Version::new(1), 1000).await?;
        let read_ids: Vec<Uuid> = read.iter().map(|e| e.event_id).collect();
        let versions: Vec<u64> = read.iter().map(|e| e.stream_version.get()).collect();
        assert_eq!(&read_ids, ids, "{stream}");
        assert_eq!(versions, (1..=ids.len() as u64).collect::<Vec<_>>());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_writer_fails_and_its_records_are_never_read() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store().clone();
    let stream = StreamId::new("account-zombie")?;
    let partition = store.partition_of(&stream);

    let (e1, e3) = (event(), event());
    let (id1, id3) = (e1.event_id, e3.event_id);
    store
        .append(append(&stream, ExpectedVersion::NoStream, e1))
        .await?;

    // Another writer of the partition starts (a new owner this instance has not heard of):
    // `init_transactions` under the partition's `transactional.id` fences this instance's.
    let options = store.options().clone();
    let fencer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", options.brokers())
        .set(
            "transactional.id",
            format!("{}.writer.{partition}", options.topic_prefix()),
        )
        .create()?;
    tokio::task::spawn_blocking(move || {
        fencer.init_transactions(Duration::from_secs(30))?;
        Ok::<_, rdkafka::error::KafkaError>(fencer)
    })
    .await??;

    // The fenced instance's append is produced, then fails as fenced.
    let fenced = store
        .append(append(&stream, ExpectedVersion::Exact(Version::new(1)), e3))
        .await
        .expect_err("a fenced writer must not append");
    assert!(is_not_owner(&fenced), "{fenced:?}");
    assert!(fenced.is_transient(), "NotOwner is retryable: {fenced:?}");
    let message = foldline::error_chain(&fenced, ": ");
    assert!(
        message.contains(&format!("partition {partition}"))
            && message.contains("another writer took the partition"),
        "{message}"
    );
    assert_eq!(
        message.matches(&format!("partition {partition}")).count(),
        1,
        "said once: {message}"
    );
    // While the group still assigns it here, it is left to the fencer for 10 s: refused at once.
    let again = store
        .append(append(&stream, ExpectedVersion::Any, event()))
        .await
        .expect_err("the partition was taken");
    assert!(is_not_owner(&again), "{again:?}");

    // The aborted append is nowhere.
    let read = store.read_stream(&stream, Version::new(1), 100).await?;
    let ids: Vec<(Uuid, u64)> = read
        .iter()
        .map(|e| (e.event_id, e.stream_version.get()))
        .collect();
    assert_eq!(ids, [(id1, 1)]);
    let feed = store.read_all(&Checkpoint::START, 100).await?;
    let ids: Vec<Uuid> = feed.events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, [id1], "the feed holds no record of the fenced append");
    assert!(!ids.contains(&id3));

    // Then this instance takes the partition back, and goes on from version 1.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let next = store
        .append(append(
            &stream,
            ExpectedVersion::Exact(Version::new(1)),
            event(),
        ))
        .await?;
    assert_eq!(next.current_version, Version::new(2));
    Ok(())
}
