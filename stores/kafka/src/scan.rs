//! Reading one partition of a topic to its end, committed records only: what a new owner
//! reads to rebuild its index, and what a stream read scans.

use std::time::{Duration, Instant};

use foldline::{BackendErrorKind, DriverErrors, Error};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::topics::{ShortConsumer, client_config, committed_consumer};
use crate::writer::TRANSACTION_TIMEOUT;

/// What a [`scan`]'s visitor says after a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Go on to the next record.
    More,
    /// Enough: stop here.
    Stop,
}

/// Calls `visit` with every committed record of `topic`'s `partition` from offset `from` to
/// the partition's end as of now (its last stable offset: an open transaction ends the scan
/// before its records). Blocking: run it off the async runtime.
pub(crate) fn scan(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    scan_to(options, topic, partition, from, None, visit)
}

/// As [`scan`], but through offset `through`, a record known to be committed: a commit is
/// answered before its markers are written, so the last stable offset may still be below it;
/// the scan waits (up to the options' timeout) until it is past. What a stream read scans,
/// so that a read after an answered append sees it.
pub(crate) fn scan_through(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    through: i64,
    visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    scan_to(options, topic, partition, from, Some(through), visit)
}

/// As [`scan`], but past every record written before the call: it first waits until the
/// partition's last stable offset reaches its high watermark as of the call (every transaction
/// open then is decided: committed, aborted, or timed out within the writers'
/// `transaction.timeout.ms` if their writer died), so a record whose commit was already on its
/// way is never missed. What an answer that must hold *every* committed record (an
/// idempotency key's first use) reads.
pub(crate) fn scan_decided(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    wait_decided(options, topic, partition)?;
    scan_to(options, topic, partition, from, None, visit)
}

/// Waits until `partition`'s last stable offset (a `read_committed` consumer's high
/// watermark) reaches its high watermark (a `read_uncommitted` one's) as of now.
pub(crate) fn wait_decided(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
) -> Result<(), Error> {
    let context =
        || format!("waiting for the open transactions of partition {partition} of topic `{topic}`");
    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
    let uncommitted = client_config(options)
        .set("isolation.level", "read_uncommitted")
        .set("group.id", "foldline")
        .create()
        .map(ShortConsumer::new)
        .map_err(|e| Kafka::error(context(), e))?;
    let committed = committed_consumer(options, context())?;
    let (_, high) = watermarks(&uncommitted, options, topic, partition)
        .map_err(|e| Kafka::error(context(), e))?;
    let deadline = Instant::now() + options.timeout + TRANSACTION_TIMEOUT;
    loop {
        let (_, stable) = watermarks(&committed, options, topic, partition)
            .map_err(|e| Kafka::error(context(), e))?;
        if stable >= high {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Kafka::error(
                context(),
                KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `partition`'s watermarks as `consumer` sees them. A partition just created may still be
/// moving to its leader, or not yet be in the metadata of the broker asked (a cluster just
/// started, a topic just created): unavailability and an unknown partition are retried until
/// the options' timeout.
fn watermarks(
    consumer: &BaseConsumer,
    options: &KafkaStoreOptions,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    let deadline = Instant::now() + options.timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, options.timeout) {
            Ok(marks) => return Ok(marks),
            Err(e)
                if (Kafka::classify(&e) == BackendErrorKind::Unavailable
                    || matches!(
                        e.rdkafka_error_code(),
                        Some(RDKafkaErrorCode::UnknownPartition)
                            | Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                    ))
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `partition`'s low watermark and last stable offset (a `read_committed` consumer's high
/// watermark), once the last stable offset is past `through`, a record known to be committed:
/// a commit is answered before its markers are written, so the last stable offset may still
/// be below it for a moment. Waits up to the options' timeout, then fails as a
/// [`Timeout`](BackendErrorKind::Timeout) naming the offset. `consumer` reads `read_committed`.
pub(crate) fn stable_watermarks(
    consumer: &BaseConsumer,
    options: &KafkaStoreOptions,
    topic: &str,
    partition: i32,
    through: Option<i64>,
    context: impl Fn() -> String,
) -> Result<(i64, i64), Error> {
    let deadline = Instant::now() + options.timeout;
    loop {
        let (low, stable) = watermarks(consumer, options, topic, partition)
            .map_err(|e| Kafka::error(context(), e))?;
        if through.is_none_or(|through| stable > through) {
            return Ok((low, stable));
        }
        if Instant::now() > deadline {
            return Err(Kafka::failure(
                BackendErrorKind::Timeout,
                format!(
                    "{}: offset {} is committed, but the partition's last stable offset stayed \
                     at {stable} for {:?} (the commit's markers did not arrive)",
                    context(),
                    through.unwrap_or_default(),
                    options.timeout
                ),
                None,
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn scan_to(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    through: Option<i64>,
    mut visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    let context = || format!("reading partition {partition} of topic `{topic}`");
    let consumer = committed_consumer(options, context())?;
    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
    let (low, high) = stable_watermarks(&consumer, options, topic, partition, through, context)?;
    if high <= low.max(from) {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(from.max(low)))
        .map_err(|e| Kafka::error(context(), e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| Kafka::error(context(), e))?;
    // Without news for this long, the partition's leader is gone: fail as a timeout.
    let mut quiet_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if quiet_since.elapsed() > options.timeout {
                    return Err(Kafka::error(
                        context(),
                        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
            Some(Err(e)) => return Err(Kafka::error(context(), e)),
            Some(Ok(message)) => {
                quiet_since = Instant::now();
                if visit(&message)? == Visit::Stop {
                    return Ok(());
                }
            }
        }
    }
}
