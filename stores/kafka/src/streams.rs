//! Reading one stream on any instance (not only the owner of its partition): a scan of the
//! stream's partition.
//!
//! A stream read scans its whole partition of the events topic, filtering by key: its cost
//! grows with the partition, not the stream. Fine for inspection and for streams loaded from
//! a cached executor or a snapshot; an offset index per stream is the next step.

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
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let stream = stream.clone();
    blocking(move || {
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(events);
        }
        scan(&options, &topic, partition, 0, |message| {
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
