//! Bad input on the Kafka store: an event over the limit is refused before anything is sent
//! (and one at the limit fits in a record the brokers take); a record produced straight into
//! the events topic that foldline cannot read is returned in its place, marked unreadable,
//! naming its partition and offset.

use foldline::{
    AppendRequest, Checkpoint, Error, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
    Version,
};
use foldline_kafka::{KafkaTestTopics, MAX_EVENT_BYTES};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn event_of(bytes: usize) -> NewEvent {
    // A JSON string of `bytes` bytes in all (metadata is empty: 2 bytes counted).
    let mut payload = vec![b'"'];
    payload.resize(bytes - 3, b'x');
    payload.push(b'"');
    NewEvent::new(EventType::from_static("sized"), 1, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_limit_is_refused_before_sending() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let stream = StreamId::new("account-big")?;

    let at_limit = event_of(MAX_EVENT_BYTES);
    assert_eq!(at_limit.encoded_len(), MAX_EVENT_BYTES);
    let stored = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![at_limit],
        ))
        .await?;
    assert_eq!(stored.current_version, Version::new(1));

    let over = event_of(MAX_EVENT_BYTES + 1);
    let error = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::Any,
            vec![over],
        ))
        .await
        .expect_err("an event over the limit");
    assert!(
        matches!(error, Error::EventTooLarge { size, limit, .. } if size == MAX_EVENT_BYTES + 1 && limit == MAX_EVENT_BYTES),
        "{error:?}"
    );
    let read = store.read_stream(&stream, Version::new(1), 10).await?;
    assert_eq!(read.len(), 1, "nothing of the refused append was written");
    assert_eq!(read[0].payload.len(), MAX_EVENT_BYTES - 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_produced_around_the_store_is_unreadable_in_its_place() -> anyhow::Result<()> {
    let test = KafkaTestTopics::create().await?;
    let store = test.store();
    let stream = StreamId::new("account-raw")?;
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![event_of(16)],
        ))
        .await?;
    // A record with the stream's key but none of foldline's headers, in the stream's partition.
    let partition = store.partition_of(&stream);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", store.options().brokers())
        .create()?;
    let delivered = producer
        .send(
            FutureRecord::to(store.events_topic())
                .partition(i32::try_from(partition)?)
                .key(stream.as_str())
                .payload("not foldline's"),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::Any,
            vec![event_of(16)],
        ))
        .await?;

    let feed = store.read_all(&Checkpoint::START, 100).await?;
    assert_eq!(feed.events.len(), 3, "{:?}", feed.events);
    let raw = &feed.events[1];
    let unreadable = raw.unreadable.as_ref().expect("the raw record is marked");
    assert!(
        unreadable.reason.contains(&format!(
            "partition {partition}, offset {}",
            delivered.offset
        )),
        "{}",
        unreadable.reason
    );
    assert!(
        unreadable.reason.contains("no `foldline.version` header"),
        "{}",
        unreadable.reason
    );
    assert_eq!(unreadable.raw["key"], stream.as_str());
    assert!(feed.events[0].unreadable.is_none() && feed.events[2].unreadable.is_none());
    // Decoding it is the typed error naming its position.
    match raw.check_readable() {
        Err(Error::UnreadableEvent { position, .. }) => assert_eq!(position, raw.position),
        other => panic!("expected UnreadableEvent, got {other:?}"),
    }
    Ok(())
}
