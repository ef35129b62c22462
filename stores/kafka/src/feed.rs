//! The global feed: every partition of the events topic, committed records only. A checkpoint
//! holds one position per partition (`<partition>:<offset>:0`, the last offset consumed), so
//! order is per partition, hence per stream, and not across partitions.

use std::collections::HashSet;
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
    blocking(move || read_blocking(&options, &topic, partitions, &after, limit)).await
}

fn read_blocking(
    options: &KafkaStoreOptions,
    topic: &str,
    partitions: u32,
    after: &Checkpoint,
    limit: usize,
) -> Result<EventBatch, Error> {
    let context = || format!("reading the feed of `{topic}`");
    let consumer = committed_consumer(options, context())?;
    let mut assignment = TopicPartitionList::new();
    let mut open: HashSet<i32> = HashSet::new();
    for partition in 0..partitions {
        let number = i32::try_from(partition).unwrap_or(i32::MAX);
        let (low, high) = consumer
            .fetch_watermarks(topic, number, options.timeout)
            .map_err(|e| Kafka::error(context(), e))?;
        let from = resume_offset(after, partition).max(low);
        if from < high {
            assignment
                .add_partition_offset(topic, number, Offset::Offset(from))
                .map_err(|e| Kafka::error(context(), e))?;
            open.insert(number);
        }
    }
    let mut checkpoint = after.clone();
    let mut events = Vec::new();
    if open.is_empty() {
        return Ok(EventBatch::new(events, checkpoint));
    }
    consumer
        .assign(&assignment)
        .map_err(|e| Kafka::error(context(), e))?;
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
                // Everything up to the last stable offset is consumed: the checkpoint covers
                // it, transaction markers included, so a reader there is at the head.
                if let Some(next) = position_of(&consumer, topic, partition)
                    && next > 0
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
    Ok(EventBatch::new(events, checkpoint))
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
