//! The global feed: every partition of the events topic, committed records only. A checkpoint
//! holds one position per partition (`<partition>:<offset>:0`, the last offset consumed), so
//! order is per partition, hence per stream, and not across partitions.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foldline::{Checkpoint, DriverErrors, Error, EventBatch, Position, Subscription};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::records;
use crate::store::KafkaEventStore;
use crate::topics::{blocking, client_config, committed_consumer};

/// How many events one read of a subscription asks for.
const SUBSCRIPTION_BATCH: usize = 1000;

/// How often a subscription reads again when nothing told it of a new commit (a commit of
/// another instance).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The offset to resume `partition` from after `after`.
fn resume_offset(after: &Checkpoint, partition: u32) -> i64 {
    after.get(partition).map_or(0, |p| {
        i64::try_from(p.major())
            .unwrap_or(i64::MAX)
            .saturating_add(1)
    })
}

/// Checks that `after` is a checkpoint of a store with `partitions` partitions.
fn check_checkpoint(after: &Checkpoint, partitions: u32) -> Result<(), Error> {
    if after
        .positions()
        .iter()
        .any(|p| p.partition() >= partitions || p.minor() != 0)
    {
        return Err(Error::InvalidCheckpoint {
            value: after.to_string(),
        });
    }
    Ok(())
}

pub(crate) async fn read_all(
    store: &KafkaEventStore,
    after: &Checkpoint,
    limit: usize,
) -> Result<EventBatch, Error> {
    let partitions = store.partitions();
    check_checkpoint(after, partitions)?;
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let after = after.clone();
    let readers = store.feed_readers();
    blocking(move || read_blocking(&options, &topic, partitions, &after, limit, &readers)).await
}

fn read_blocking(
    options: &KafkaStoreOptions,
    topic: &str,
    partitions: u32,
    after: &Checkpoint,
    limit: usize,
    readers: &FeedReaders,
) -> Result<EventBatch, Error> {
    let context = || format!("reading the feed of `{topic}`");
    let (consumer, fresh) = match readers.take(after) {
        Some(consumer) => (consumer, false),
        None => (committed_consumer(options, context())?, true),
    };
    // Where each partition ends now: a `read_committed` consumer's high watermark is the last
    // stable offset. A partition is read until its end-of-partition event comes at or past it.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut open: HashSet<i32> = HashSet::new();
    let mut assignment = TopicPartitionList::new();
    // A reader going on asks for every partition's end in one request; a new one also needs
    // each partition's first offset (a request per partition), to start no earlier.
    let latest = if fresh {
        None
    } else {
        stable_ends(&consumer, topic, partitions, options.timeout)
    };
    for partition in 0..partitions {
        let number = i32::try_from(partition).unwrap_or(i32::MAX);
        let (low, stable) = match latest.as_ref().and_then(|l| l.get(&number)) {
            Some(stable) => (0, *stable),
            None => consumer
                .fetch_watermarks(topic, number, options.timeout)
                .map_err(|e| Kafka::error(context(), e))?,
        };
        let from = resume_offset(after, partition).max(low);
        if fresh {
            // Every partition, so that the reader can go on with any of them next time.
            assignment
                .add_partition_offset(topic, number, Offset::Offset(from))
                .map_err(|e| Kafka::error(context(), e))?;
        }
        ends.insert(number, stable);
        if from < stable {
            open.insert(number);
        }
    }
    if fresh {
        consumer
            .assign(&assignment)
            .map_err(|e| Kafka::error(context(), e))?;
    }
    let mut checkpoint = after.clone();
    let mut events = Vec::new();
    let mut quiet = std::time::Instant::now();
    while !open.is_empty() && events.len() < limit {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if quiet.elapsed() > options.timeout {
                    return Err(Kafka::error(
                        context(),
                        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                quiet = std::time::Instant::now();
                let next = position_of(&consumer, topic, partition);
                // An end reached before this read's (a reused reader's event, queued when
                // the partition ended earlier) says nothing about now.
                let reached = ends.get(&partition).copied();
                if next.is_none_or(|next| reached.is_none_or(|end| next < end)) {
                    continue;
                }
                // Everything up to the last stable offset is consumed: the checkpoint covers
                // it, transaction markers included, so a reader there is at the head.
                if let Some(next) = next
                    && next > 0
                    && open.contains(&partition)
                {
                    checkpoint.advance(Position::new(
                        u32::try_from(partition).unwrap_or(0),
                        u64::try_from(next - 1).unwrap_or(0),
                        0,
                    ));
                }
                open.remove(&partition);
            }
            Some(Err(e)) => return Err(Kafka::error(context(), e)),
            Some(Ok(message)) => {
                quiet = std::time::Instant::now();
                let event = records::recorded_event(&message);
                checkpoint.advance(event.position);
                events.push(event);
            }
        }
    }
    // The reader stands exactly at the checkpoint returned: the next page from it goes on.
    readers.put(checkpoint.clone(), consumer);
    Ok(EventBatch::new(events, checkpoint))
}

/// Each partition's last stable offset (`read_committed`: the end a reader can reach), asked
/// for all partitions in one request (a `ListOffsets` for the latest offsets); `None` when
/// that fails, and the caller asks partition by partition.
fn stable_ends(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Option<HashMap<i32, i64>> {
    let mut latest = TopicPartitionList::new();
    for partition in 0..i32::try_from(partitions).ok()? {
        // The timestamp -1 asks for the latest offset.
        latest
            .add_partition_offset(topic, partition, Offset::End)
            .ok()?;
    }
    let found = consumer.offsets_for_times(latest, timeout).ok()?;
    let mut ends = HashMap::new();
    for element in found.elements() {
        if element.error().is_err() {
            return None;
        }
        match element.offset() {
            Offset::Offset(end) => ends.insert(element.partition(), end),
            _ => return None,
        };
    }
    (ends.len() == partitions as usize).then_some(ends)
}

/// Consumers of the feed kept between reads, each standing at the checkpoint the last page it
/// read ended at. A reader of the feed (a projector, a subscription) asks for the page after
/// the one it just got: the consumer that read it goes on, without a new connection, a new
/// assignment and refetching what it had fetched ahead.
#[derive(Default)]
pub(crate) struct FeedReaders {
    idle: Mutex<Vec<(Checkpoint, BaseConsumer)>>,
}

/// Readers kept: about one per live reader of the feed in a process.
const READERS_KEPT: usize = 8;

impl std::fmt::Debug for FeedReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("FeedReaders").field("idle", &idle).finish()
    }
}

impl FeedReaders {
    /// The reader standing at `at`, if one is idle.
    fn take(&self, at: &Checkpoint) -> Option<BaseConsumer> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let found = idle.iter().position(|(checkpoint, _)| checkpoint == at)?;
        Some(idle.remove(found).1)
    }

    /// Keeps `consumer`, standing at `at`; the oldest idle one goes when too many are kept.
    fn put(&self, at: Checkpoint, consumer: BaseConsumer) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() >= READERS_KEPT {
            idle.remove(0);
        }
        idle.push((at, consumer));
    }
}

/// The consumer's next offset in `partition`.
fn position_of(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(next) => Some(next),
        _ => None,
    }
}

/// The checkpoint just after the last committed record of each partition.
pub(crate) async fn head(store: &KafkaEventStore) -> Result<Checkpoint, Error> {
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let partitions = store.partitions();
    blocking(move || {
        let context = || format!("reading the head of `{topic}`");
        // `read_committed`: the watermark asked for is the last stable offset.
        let consumer: BaseConsumer = client_config(&options)
            .set("isolation.level", "read_committed")
            .set("group.id", "foldline-feed")
            .create()
            .map_err(|e| Kafka::error(context(), e))?;
        let mut head = Checkpoint::START;
        for partition in 0..partitions {
            let number = i32::try_from(partition).unwrap_or(i32::MAX);
            let (_, stable) = consumer
                .fetch_watermarks(&topic, number, options.timeout)
                .map_err(|e| Kafka::error(context(), e))?;
            if stable > 0 {
                head.advance(Position::new(
                    partition,
                    u64::try_from(stable - 1).unwrap_or(0),
                    0,
                ));
            }
        }
        Ok(head)
    })
    .await
}

pub(crate) async fn subscribe(
    store: &KafkaEventStore,
    after: Checkpoint,
) -> Result<Subscription, Error> {
    check_checkpoint(&after, store.partitions())?;
    Ok(Subscription::polling_read_all(
        store,
        after,
        SUBSCRIPTION_BATCH,
        store.commits(),
        POLL_INTERVAL,
    ))
}
