//! Two instances of one Kafka store writing one stream: the later writer of a partition fences
//! the earlier (its `transactional.id` is the partition's own). The fenced instance's append
//! fails as a retryable `NotOwner` naming the partition, what it produced is aborted and never
//! read, and the stream's versions never diverge.

use foldline::{
    AppendRequest, BackendErrorKind, Checkpoint, Error, EventStore, EventType, ExpectedVersion,
    NewEvent, StreamId, Version,
};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_writer_fails_and_its_records_are_never_read() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let first = test.store().clone();
    let second = KafkaEventStore::connect(first.options().clone()).await?;
    let stream = StreamId::new("account-zombie")?;
    let partition = first.partition_of(&stream);

    let (e1, e2, e3) = (event(), event(), event());
    let (id1, id2, id3): (Uuid, Uuid, Uuid) = (e1.event_id, e2.event_id, e3.event_id);
    first
        .append(append(&stream, ExpectedVersion::NoStream, e1))
        .await?;
    // The second instance takes the partition: it fences the first, and its barrier knows
    // the stream is at version 1.
    let taken = second
        .append(append(&stream, ExpectedVersion::Exact(Version::new(1)), e2))
        .await?;
    assert_eq!(taken.current_version, Version::new(2));

    // The first still believes the stream is at 1: its append is produced, then fenced.
    let fenced = first
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
    // Until it takes the partition back, it refuses at once.
    let again = first
        .append(append(&stream, ExpectedVersion::Any, event()))
        .await
        .expect_err("the partition is the other instance's");
    assert!(is_not_owner(&again), "{again:?}");

    // Both instances read the same stream: the aborted append is nowhere.
    for store in [&first, &second] {
        let read = store.read_stream(&stream, Version::new(1), 100).await?;
        let ids: Vec<(Uuid, u64)> = read
            .iter()
            .map(|e| (e.event_id, e.stream_version.get()))
            .collect();
        assert_eq!(ids, [(id1, 1), (id2, 2)]);
    }
    let feed = first.read_all(&Checkpoint::START, 100).await?;
    let ids: Vec<Uuid> = feed.events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        [id1, id2],
        "the feed holds no record of the fenced append"
    );
    assert!(!ids.contains(&id3));

    // The new owner goes on from version 2.
    let next = second
        .append(append(
            &stream,
            ExpectedVersion::Exact(Version::new(2)),
            event(),
        ))
        .await?;
    assert_eq!(next.current_version, Version::new(3));
    Ok(())
}
