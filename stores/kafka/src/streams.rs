//! Reading one stream on any instance (not only the owner of its partition).
//!
//! On the instance owning the stream's partition, the writer's index says where the stream's
//! events are: a stream it does not know (or one read past its head) is answered without
//! reading anything, and a read scans only from the stream's first event to its last,
//! filtering by key (its cost grows with what the partition received during the stream's
//! life, not with the whole partition). Elsewhere, a read scans the whole partition: fine for
//! inspection and for streams loaded from a cached executor or a snapshot.

use foldline::{Error, RecordedEvent, StreamId, Version};
use rdkafka::message::Message;

use crate::records;
use crate::scan::{Visit, scan};
use crate::store::KafkaEventStore;
use crate::topics::blocking;

pub(crate) async fn read_stream(
    store: &KafkaEventStore,
    stream: &StreamId,
    from: Version,
    limit: usize,
) -> Result<Vec<RecordedEvent>, Error> {
    let partition = store.partition_of(stream);
    let (start, end) = match store.writers().known_stream(partition, stream) {
        // The owner knows no such stream, or none past `from`: nothing to read.
        Some(None) => return Ok(Vec::new()),
        Some(Some(entry)) if entry.version < from => return Ok(Vec::new()),
        Some(Some(entry)) => (entry.first_offset.unwrap_or(0), entry.last_offset),
        None => (0, None),
    };
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let stream = stream.clone();
    blocking(move || {
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(events);
        }
        scan(&options, &topic, partition, start, |message| {
            if end.is_some_and(|end| message.offset() > end) {
                return Ok(Visit::Stop);
            }
            if message.key() != Some(stream.as_str().as_bytes()) {
                return Ok(Visit::More);
            }
            let event = records::recorded_event(message);
            if event.stream_version >= from {
                events.push(event);
            }
            Ok(if events.len() >= limit {
                Visit::Stop
            } else {
                Visit::More
            })
        })?;
        Ok(events)
    })
    .await
}
