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
//! begins no transaction before its last one is settled, and one that does not settle in
//! [`SETTLE_TIMEOUT`] makes it take the partition again: the take's marks decide the records
//! as committed in every partition (`PartitionWriter::mark_partitions`), which is what the
//! coordinator decided.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;

use crate::options::KafkaStoreOptions;
use crate::topics::{blocking, committed_consumer};

/// How long a committed transaction's markers may take before the writer stops waiting and
/// takes its partition again. A broker that answers writes them within milliseconds; this
/// long without them means a broker restarted (or lost them).
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest pause between two looks at a partition's last stable offset.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The last offset a transaction wrote in each partition it wrote to. A handful of partitions
/// (its events' and heads' partition, the keys' it used), recorded once per record: a list
/// searched in place, so a record allocates nothing unless its partition is new.
#[derive(Debug, Default)]
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

/// Reads partitions' last stable offsets (the high watermark a `read_committed` consumer
/// sees), for one writer.
pub(crate) struct SettleProbe {
    consumer: BaseConsumer,
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
