//! Reading one stream on any instance (not only the owner of its partition).
//!
//! The stream's head says where its events are: on the instance owning the partition, the
//! writer's index has it; elsewhere, the store's [`HeadsCache`](crate::heads::HeadsCache),
//! brought up to date from `<prefix>.heads` first (the heads committed since this instance's
//! last look at the partition). A stream with no head (or one read past its head) is answered
//! without reading events, and a read scans only from the stream's first event to its last,
//! filtering by key: its cost grows with what the partition received during the stream's
//! life, not with the whole partition.

use foldline::{Error, RecordedEvent, StreamId, Version};
use rdkafka::message::{BorrowedMessage, Message};

use crate::records;
use crate::scan::{Visit, scan, scan_through};
use crate::store::KafkaEventStore;
use crate::topics::blocking;

pub(crate) async fn read_stream(
    store: &KafkaEventStore,
    stream: &StreamId,
    from: Version,
    limit: usize,
) -> Result<Vec<RecordedEvent>, Error> {
    let partition = store.partition_of(stream);
    let entry = match store.writers().known_stream(partition, stream) {
        Some(known) => known,
        None => {
            let wanted = stream.clone();
            store
                .heads()
                .look(
                    store.options(),
                    &store.topic_names().heads,
                    partition,
                    move |heads| heads.get(&wanted).copied(),
                )
                .await?
        }
    };
    let (start, end) = match entry {
        // No such stream, or none past `from`: nothing to read.
        None => return Ok(Vec::new()),
        Some(entry) if entry.version < from => return Ok(Vec::new()),
        Some(entry) => (entry.first_offset.unwrap_or(0), entry.last_offset),
    };
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let stream = stream.clone();
    blocking(move || {
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(events);
        }
        let visit = |message: &BorrowedMessage<'_>| {
            let last = end.is_some_and(|end| message.offset() >= end);
            if end.is_some_and(|end| message.offset() > end) {
                return Ok(Visit::Stop);
            }
            if message.key() == Some(stream.as_str().as_bytes()) {
                let event = records::recorded_event(message);
                if event.stream_version >= from {
                    events.push(event);
                }
            }
            // Stopping at the stream's last record spares waiting for the partition's end.
            Ok(if last || events.len() >= limit {
                Visit::Stop
            } else {
                Visit::More
            })
        };
        // The head names the stream's last record: the scan waits until it is readable (a
        // commit is answered before its markers arrive).
        match end {
            Some(end) => scan_through(&options, &topic, partition, start, end, visit)?,
            None => scan(&options, &topic, partition, start, visit)?,
        }
        Ok(events)
    })
    .await
}
