//! Settling a committed transaction: waiting until the brokers have written its markers in
//! every partition it wrote to, before the writer's producer begins another.
//!
//! A commit is acknowledged once the coordinator has logged its decision, before the markers
//! reach the partitions. A broker killed in between can lose them: Apache Kafka (4.4.0 seen)
//! skips the markers of a partition that has no leader while it sends them ("Couldn't find
//! leader endpoint … likely deleted … skipped", `TransactionMarkerChannelManager`), and a
//! restarted single node's partitions have none for a moment, when the controller fences the
//! node's previous incarnation. The transaction's records then stay undecided, and the next
//! transaction of the same producer decides them with its own outcome, partition by partition:
//! an event aborted in one partition while its head is committed in another (a version
//! missing from its stream), or the other way round (a version stored twice). So a writer
//! begins no transaction before its last one is settled — committed or aborted alike: an
//! abort's markers are lost the same way, and the next commit would then decide the aborted
//! records as committed — and one that does not settle in [`SETTLE_TIMEOUT`] makes it take the
//! partition again. The take's marks then decide the records the way the coordinator did
//! (`PartitionWriter::mark_partitions`): as the partitions where the markers did arrive show
//! it ([`SettleProbe::decision`]), or, where none did, as the writer was told (committed, or
//! aborted; an outcome it was not told is taken as aborted, as the append was answered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use foldline::DriverErrors;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::topics::{ShortConsumer, blocking, committed_consumer};

/// How long a committed transaction's markers may take before the writer stops waiting and
/// takes its partition again. A broker that answers writes them within milliseconds; this
/// long without them means a broker restarted (or lost them).
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest pause between two looks at a partition's last stable offset.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The last offset a transaction wrote in each partition it wrote to. A handful of partitions
/// (its events' and heads' partition, the keys' it used), recorded once per record: a list
/// searched in place, so a record allocates nothing unless its partition is new.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tails(Vec<(String, i32, i64)>);

impl Tails {
    pub(crate) fn record(&mut self, topic: &str, partition: i32, offset: i64) {
        match self
            .0
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some((_, _, last)) => *last = (*last).max(offset),
            None => self.0.push((topic.to_owned(), partition, offset)),
        }
    }
}

/// How a transaction ended, as its markers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Committed: its records are read.
    Commit,
    /// Aborted: its records are skipped.
    Abort,
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decision::Commit => "committed",
            Decision::Abort => "aborted",
        })
    }
}

/// Reads partitions' last stable offsets (the high watermark a `read_committed` consumer
/// sees), for one writer.
pub(crate) struct SettleProbe {
    consumer: ShortConsumer,
    request_timeout: Duration,
}

/// Why a transaction was not seen settled.
#[derive(Debug)]
pub(crate) enum Unsettled {
    /// `topic`'s `partition` still holds undecided records up to `last`.
    Open {
        topic: String,
        partition: i32,
        last: i64,
        stable: i64,
    },
    /// The brokers did not answer.
    Unreachable(KafkaError),
}

impl std::fmt::Display for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsettled::Open {
                topic,
                partition,
                last,
                stable,
            } => write!(
                f,
                "partition {partition} of `{topic}` is stable only to offset {stable}, below \
                 the transaction's last record at {last}"
            ),
            Unsettled::Unreachable(error) => {
                write!(f, "the brokers did not say where it is stable: {error}")
            }
        }
    }
}

impl SettleProbe {
    pub(crate) fn new(options: &KafkaStoreOptions) -> Result<Self, foldline::Error> {
        Ok(SettleProbe {
            consumer: committed_consumer(options, "creating a writer's settle probe")?,
            request_timeout: options.timeout.min(SETTLE_TIMEOUT),
        })
    }

    /// Waits, off the async runtime, until every partition of `tails` is stable past its last
    /// record, at most [`SETTLE_TIMEOUT`]; why not, as text for a log or an error.
    pub(crate) async fn settled(self: &Arc<Self>, tails: Tails) -> Result<(), String> {
        let probe = Arc::clone(self);
        match blocking(move || Ok(probe.wait(&tails, SETTLE_TIMEOUT))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(unsettled)) => Err(unsettled.to_string()),
            Err(error) => Err(foldline::error_chain(&error, ": ")),
        }
    }

    /// How the transaction that wrote `tails` ended, as the first partition found stable past
    /// its record shows it (the record read `read_committed`: there, or skipped); `None` when
    /// no partition is, within [`SETTLE_TIMEOUT`] (its markers lost everywhere). And the
    /// partitions that still hold its records undecided then (their markers lost): what the
    /// take's marks will decide. Waits off the async runtime.
    pub(crate) async fn decision(
        self: &Arc<Self>,
        tails: Tails,
        options: &KafkaStoreOptions,
    ) -> Result<(Option<Decision>, Vec<String>), foldline::Error> {
        let (probe, options) = (Arc::clone(self), options.clone());
        blocking(move || {
            let decision = probe.find_decision(&tails, &options)?;
            Ok((decision, probe.undecided(&tails)))
        })
        .await
    }

    /// The partitions of `tails` not stable past their record now, as `topic[partition]`.
    fn undecided(&self, tails: &Tails) -> Vec<String> {
        tails
            .0
            .iter()
            .filter(|(topic, partition, last)| {
                !matches!(
                    self.consumer
                        .fetch_watermarks(topic, *partition, self.request_timeout),
                    Ok((_, stable)) if stable > *last
                )
            })
            .map(|(topic, partition, _)| format!("{topic}[{partition}]"))
            .collect()
    }

    fn find_decision(
        &self,
        tails: &Tails,
        options: &KafkaStoreOptions,
    ) -> Result<Option<Decision>, foldline::Error> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        loop {
            for (topic, partition, last) in &tails.0 {
                if let Ok((_, stable)) =
                    self.consumer
                        .fetch_watermarks(topic, *partition, self.request_timeout)
                    && stable > *last
                {
                    return visible_at(options, topic, *partition, *last).map(Some);
                }
            }
            if Instant::now() + pause > deadline {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Blocks until every partition of `tails` is stable past its last record, or `timeout`
    /// passes.
    fn wait(&self, tails: &Tails, timeout: Duration) -> Result<(), Unsettled> {
        let deadline = Instant::now() + timeout;
        for (topic, partition, last) in &tails.0 {
            let last = *last;
            let mut pause = Duration::from_millis(1);
            loop {
                let unsettled =
                    match self
                        .consumer
                        .fetch_watermarks(topic, *partition, self.request_timeout)
                    {
                        Ok((_, stable)) if stable > last => break,
                        Ok((_, stable)) => Unsettled::Open {
                            topic: topic.clone(),
                            partition: *partition,
                            last,
                            stable,
                        },
                        Err(error) => Unsettled::Unreachable(error),
                    };
                if Instant::now() + pause > deadline {
                    return Err(unsettled);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
        Ok(())
    }
}

/// Whether the record at `offset` of `topic`'s `partition`, below its last stable offset, was
/// committed (a `read_committed` consumer reads it) or aborted (it skips it).
fn visible_at(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Decision, foldline::Error> {
    let context = || format!("reading offset {offset} of partition {partition} of `{topic}`");
    let consumer = committed_consumer(options, context())?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| Kafka::error(context(), e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| Kafka::error(context(), e))?;
    let deadline = Instant::now() + options.timeout;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.offset() == offset => return Ok(Decision::Commit),
            // Skipped past it, or to the partition's end without it: aborted.
            Some(Ok(_)) | Some(Err(KafkaError::PartitionEOF(_))) => return Ok(Decision::Abort),
            Some(Err(error)) => return Err(Kafka::error(context(), error)),
            None => {}
        }
    }
    Err(Kafka::error(
        context(),
        KafkaError::MessageConsumption(rdkafka::error::RDKafkaErrorCode::OperationTimedOut),
    ))
}
