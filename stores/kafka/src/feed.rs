//! The global feed: every partition of the events topic, committed records only. A checkpoint
//! holds one position per partition (`<partition>:<offset>:0`, the last offset consumed), so
//! order is per partition, hence per stream, and not across partitions.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foldline::{Checkpoint, DriverErrors, Error, EventBatch, Position, Subscription};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::records;
use crate::scan::stable_watermarks;
use crate::store::KafkaEventStore;
use crate::topics::{ShortConsumer, blocking, client_config, committed_consumer};

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
    let answered = store.answered();
    blocking(move || {
        read_blocking(
            &options, &topic, partitions, &after, limit, &readers, &answered,
        )
    })
    .await
}

/// The offset of the last event of `partition` this instance answered an append with.
fn answered_offset(answered: &Checkpoint, partition: i32) -> Option<i64> {
    let position = answered.get(partition.unsigned_abs())?;
    i64::try_from(position.major()).ok()
}

fn read_blocking(
    options: &KafkaStoreOptions,
    topic: &str,
    partitions: u32,
    after: &Checkpoint,
    limit: usize,
    readers: &FeedReaders,
    answered: &Checkpoint,
) -> Result<EventBatch, Error> {
    let context = || format!("reading the feed of `{topic}`");
    let (consumer, fresh) = match readers.take(after) {
        Some(consumer) => (consumer, false),
        None => (committed_consumer(options, context())?, true),
    };
    // Where each partition ends now: a `read_committed` consumer's high watermark is the last
    // stable offset. A partition is read until the reader's position in it reaches that end.
    // A new reader learns the ends first (with each partition's first offset, to start no
    // earlier); a reader going on only once it has nothing queued or meets a partition's end,
    // so a page filled from what it had fetched ahead costs no request at all. An end is never
    // before an event this instance answered an append with (`answered`).
    let all: HashSet<i32> = (0..partitions)
        .filter_map(|p| i32::try_from(p).ok())
        .collect();
    let mut ends: Option<HashMap<i32, i64>> = None;
    let mut open = all.clone();
    if fresh {
        let mut assignment = TopicPartitionList::new();
        let mut found = HashMap::new();
        for &number in &all {
            let through = answered_offset(answered, number);
            let (low, stable) =
                stable_watermarks(&consumer, options, topic, number, through, context)?;
            let from = resume_offset(after, number.unsigned_abs()).max(low);
            // Every partition, so that the reader can go on with any of them next time.
            assignment
                .add_partition_offset(topic, number, Offset::Offset(from))
                .map_err(|e| Kafka::error(context(), e))?;
            found.insert(number, stable);
        }
        consumer
            .assign(&assignment)
            .map_err(|e| Kafka::error(context(), e))?;
        open = still_open(&found, after);
        ends = Some(found);
    }
    let mut checkpoint = after.clone();
    let mut events = Vec::new();
    let mut quiet = std::time::Instant::now();
    while !open.is_empty() && events.len() < limit {
        let wait = Duration::from_millis(if ends.is_some() { 100 } else { 10 });
        let polled = consumer.poll(wait);
        if ends.is_none() && !matches!(polled, Some(Ok(_))) {
            let mut found =
                stable_ends(&consumer, topic, partitions, options.timeout).unwrap_or_default();
            for &number in &all {
                let through = answered_offset(answered, number);
                let known = found.get(&number).copied();
                if known.is_none_or(|end| through.is_some_and(|through| end <= through)) {
                    let (_, stable) =
                        stable_watermarks(&consumer, options, topic, number, through, context)?;
                    found.insert(number, stable);
                }
            }
            open = still_open(&found, &checkpoint);
            ends = Some(found);
        }
        let ends_now = ends.as_ref();
        // Whether the reader has consumed `partition` up to its end (transaction markers
        // included): the checkpoint then covers it all, so a reader there is at the head.
        let at_end = |partition: i32, checkpoint: &mut Checkpoint| -> bool {
            let next = position_of(&consumer, topic, partition);
            let end = ends_now.and_then(|e| e.get(&partition).copied());
            match (next, end) {
                (Some(next), Some(end)) if next >= end => {
                    if next > 0 {
                        checkpoint.advance(Position::new(
                            partition.unsigned_abs(),
                            u64::try_from(next - 1).unwrap_or(0),
                            0,
                        ));
                    }
                    true
                }
                _ => false,
            }
        };
        match polled {
            None => {
                // The end of a partition holding only transaction markers since the last read
                // may come with no event: the position says so.
                open.retain(|&partition| !at_end(partition, &mut checkpoint));
                if !open.is_empty() && quiet.elapsed() > options.timeout {
                    return Err(Kafka::error(
                        context(),
                        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                quiet = std::time::Instant::now();
                // An end reached before this read's (a reused reader's event, queued when
                // the partition ended earlier) says nothing about now: only the position does.
                if at_end(partition, &mut checkpoint) {
                    open.remove(&partition);
                }
            }
            Some(Err(e)) => return Err(Kafka::error(context(), e)),
            Some(Ok(message)) => {
                quiet = std::time::Instant::now();
                if records::is_marker(&message) {
                    // No event, but read: the checkpoint moves past it.
                    checkpoint.advance(Position::new(
                        message.partition().unsigned_abs(),
                        u64::try_from(message.offset()).unwrap_or(0),
                        0,
                    ));
                    continue;
                }
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

/// The partitions a reader at `checkpoint` has not read to their `ends` yet.
fn still_open(ends: &HashMap<i32, i64>, checkpoint: &Checkpoint) -> HashSet<i32> {
    ends.iter()
        .filter(|(partition, end)| resume_offset(checkpoint, partition.unsigned_abs()) < **end)
        .map(|(partition, _)| *partition)
        .collect()
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
    idle: Mutex<Vec<(Checkpoint, ShortConsumer)>>,
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
    fn take(&self, at: &Checkpoint) -> Option<ShortConsumer> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let found = idle.iter().position(|(checkpoint, _)| checkpoint == at)?;
        Some(idle.remove(found).1)
    }

    /// Keeps `consumer`, standing at `at`; the oldest idle one goes when too many are kept.
    fn put(&self, at: Checkpoint, consumer: ShortConsumer) {
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

/// The checkpoint just after the last committed record of each partition, never before an
/// event this instance answered an append with.
pub(crate) async fn head(store: &KafkaEventStore) -> Result<Checkpoint, Error> {
    let options = store.options().clone();
    let topic = store.events_topic().to_owned();
    let partitions = store.partitions();
    let answered = store.answered();
    blocking(move || {
        let context = || format!("reading the head of `{topic}`");
        // `read_committed`: the watermark asked for is the last stable offset.
        let consumer = client_config(&options)
            .set("isolation.level", "read_committed")
            .set("group.id", "foldline-feed")
            .create()
            .map(ShortConsumer::new)
            .map_err(|e| Kafka::error(context(), e))?;
        let mut head = Checkpoint::START;
        for partition in 0..partitions {
            let number = i32::try_from(partition).unwrap_or(i32::MAX);
            let through = answered_offset(&answered, number);
            let (_, stable) =
                stable_watermarks(&consumer, &options, &topic, number, through, context)?;
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
