//! `<prefix>.heads` read back: each stream's head (its version, and where its events are in the
//! events topic), partition by partition.
//!
//! A writer rebuilds its index from it when it takes a partition ([`read_heads`]). Every
//! other reader of a store (an instance that does not own the partition: the admin CLI, a
//! projector, another service) keeps a [`HeadsCache`]: the heads of each partition it has
//! looked at, tailed from where the last look ended. A stream read on such an instance reads
//! only the heads added since its last read of that partition, then the stream's span of the
//! events topic, never the whole partition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use foldline::{DriverErrors, Error, StreamId, Version};
use rdkafka::message::Message;

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::records::StreamHead;
use crate::scan::{Visit, scan, wait_decided};
use crate::topics::blocking;

/// A stream's head: its version and the offsets of its first and last events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamEntry {
    pub(crate) version: Version,
    /// The offset of its first event, where known.
    pub(crate) first_offset: Option<i64>,
    /// The offset of its last event, where known.
    pub(crate) last_offset: Option<i64>,
}

impl StreamEntry {
    pub(crate) fn of(head: &StreamHead) -> Self {
        StreamEntry {
            version: Version::new(head.version),
            first_offset: head.first_offset,
            last_offset: head.last_offset,
        }
    }
}

/// Calls `each` with every committed head of `partition` of the heads topic `topic` from
/// offset `from` to the partition's end as of now, oldest first (a later head of a stream
/// supersedes an earlier one). Returns the offset to read from next time. Blocking.
pub(crate) fn read_heads(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    mut each: impl FnMut(StreamId, StreamEntry),
) -> Result<i64, Error> {
    let mut next = from;
    scan(options, topic, partition, from, |message| {
        next = message.offset() + 1;
        let (Some(key), Some(value)) = (message.key(), message.payload()) else {
            return Ok(Visit::More);
        };
        let stream = StreamId::new(String::from_utf8_lossy(key).into_owned())?;
        let head: StreamHead = serde_json::from_slice(value).map_err(|e| {
            Kafka::corrupt(
                format!(
                    "reading the head of `{stream}` at offset {} of partition {partition} of \
                     `{topic}`",
                    message.offset()
                ),
                Some(Box::new(e)),
            )
        })?;
        each(stream, StreamEntry::of(&head));
        Ok(Visit::More)
    })?;
    Ok(next)
}

/// The heads of the partitions this instance has looked at, each tailed on every look: a look
/// costs the heads committed since the last one. Holds one entry per stream of those
/// partitions (a few dozen bytes each).
#[derive(Debug, Default)]
pub(crate) struct HeadsCache {
    partitions: Mutex<HashMap<u32, Arc<Mutex<PartitionHeads>>>>,
}

#[derive(Debug, Default)]
struct PartitionHeads {
    /// Where the next look starts reading.
    next_offset: i64,
    streams: HashMap<StreamId, StreamEntry>,
}

impl HeadsCache {
    /// Brings `partition`'s heads up to every append committed before the call, then calls
    /// `f` with them.
    pub(crate) async fn look<R: Send + 'static>(
        self: &Arc<Self>,
        options: &KafkaStoreOptions,
        topic: &str,
        partition: u32,
        f: impl FnOnce(&HashMap<StreamId, StreamEntry>) -> R + Send + 'static,
    ) -> Result<R, Error> {
        let heads = Arc::clone(
            self.partitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(partition)
                .or_default(),
        );
        let (options, topic) = (options.clone(), topic.to_owned());
        blocking(move || {
            // Held across the read: a second look at the same partition waits for this one
            // and then reads only what came after it.
            let mut heads = heads.lock().unwrap_or_else(PoisonError::into_inner);
            let PartitionHeads {
                next_offset,
                streams,
            } = &mut *heads;
            // A commit is answered before its markers are written: without this wait, a head
            // committed just before the look could still be unreadable, and be missed.
            wait_decided(&options, &topic, partition)?;
            *next_offset = read_heads(&options, &topic, partition, *next_offset, |s, entry| {
                streams.insert(s, entry);
            })?;
            Ok(f(streams))
        })
        .await
    }
}
