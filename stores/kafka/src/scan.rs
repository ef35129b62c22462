//! Reading one partition of a topic to its end, committed records only: what a new owner
//! reads to rebuild its index, and what a stream read scans.

use std::time::{Duration, Instant};

use foldline::{BackendErrorKind, DriverErrors, Error};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::topics::committed_consumer;
use crate::writer::TRANSACTION_TIMEOUT;

/// What a [`scan`]'s visitor says after a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visit {
    /// Go on to the next record.
    More,
    /// Enough: stop here.
    Stop,
}

/// Where a scan ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The partition's last stable offset now: an open transaction ends the scan before its
    /// records.
    Stable,
    /// Past every record written before the scan began: it waits for the transactions open
    /// then to be decided (committed, aborted, or timed out).
    Decided,
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
    scan_to(options, topic, partition, from, End::Stable, visit)
}

/// As [`scan`], but past every record written before the call: transactions open when it
/// starts are waited for (they end within the writers' `transaction.timeout.ms` if their
/// writer died), so a record whose commit was already on its way is never missed. What an
/// answer that must hold *every* committed record (an idempotency key's first use) reads.
pub(crate) fn scan_decided(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    scan_to(options, topic, partition, from, End::Decided, visit)
}

fn scan_to(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    from: i64,
    end: End,
    mut visit: impl FnMut(&BorrowedMessage<'_>) -> Result<Visit, Error>,
) -> Result<(), Error> {
    let context = || format!("reading partition {partition} of topic `{topic}`");
    let consumer = committed_consumer(options, context())?;
    let partition = i32::try_from(partition).unwrap_or(i32::MAX);
    // A partition just created may still be moving to its leader: retry until the timeout.
    let deadline = Instant::now() + options.timeout;
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, partition, options.timeout) {
            Ok(marks) => break marks,
            Err(e)
                if Kafka::classify(&e) == BackendErrorKind::Unavailable
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(Kafka::error(context(), e)),
        }
    };
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
    // Without news for this long, the partition's leader is gone: fail as a timeout. Waiting
    // for open transactions, allow for the writers' transaction timeout too.
    let patience = match end {
        End::Stable => options.timeout,
        End::Decided => options.timeout + TRANSACTION_TIMEOUT,
    };
    let mut quiet_since = Instant::now();
    let mut at_stable_end = false;
    loop {
        let decided = || {
            consumer.position().ok().and_then(|positions| {
                match positions.find_partition(topic, partition)?.offset() {
                    Offset::Offset(next) => Some(next >= high),
                    _ => None,
                }
            }) == Some(true)
        };
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if at_stable_end && decided() {
                    return Ok(());
                }
                if quiet_since.elapsed() > patience {
                    return Err(Kafka::error(
                        context(),
                        KafkaError::MessageConsumption(RDKafkaErrorCode::OperationTimedOut),
                    ));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                if end == End::Stable || decided() {
                    return Ok(());
                }
                // Transactions are still open below the high watermark seen at the start.
                at_stable_end = true;
            }
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
