//! The operator's view of the store ([`ManagedStore`]): where it is, its streams (from
//! `<prefix>.heads`), the transactions holding the feed back and the records waiting behind
//! them. Kafka stores have no migrations.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foldline::{
    DriverErrors, Error, FeedHolder, HeldFeed, ManagedStore, StreamId, Version, redact_url,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::store::KafkaEventStore;
use crate::topics::{blocking, client_config};

impl ManagedStore for KafkaEventStore {
    /// `Apache Kafka at <brokers>, topics <prefix>.*`, with any password in the brokers'
    /// addresses redacted.
    fn describe(&self) -> String {
        let brokers: Vec<String> = self
            .options()
            .brokers()
            .split(',')
            .map(|broker| redact_url(broker.trim()))
            .collect();
        format!(
            "Apache Kafka at {}, topics {}.*",
            brokers.join(","),
            self.options().topic_prefix()
        )
    }

    /// The streams and their versions as `<prefix>.heads` has them: every partition read to
    /// its end (`read_committed`, so only committed appends), the last head of each stream
    /// winning. The store keeps the heads it has read (see `read_stream`): the first call
    /// reads the whole topic, its cost growing with the store's streams (and the heads not
    /// compacted yet), later ones only the heads added since.
    async fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<(StreamId, Version)>, Error> {
        let mut heads: BTreeMap<StreamId, Version> = BTreeMap::new();
        for partition in 0..self.partitions() {
            let after = after.cloned();
            let listed = self
                .heads()
                .look(
                    self.options(),
                    &self.topic_names().heads,
                    partition,
                    move |streams| {
                        // Only what the page can hold: the `limit` first past `after`.
                        let mut page: Vec<(StreamId, Version)> = streams
                            .iter()
                            .filter(|(stream, _)| after.as_ref().is_none_or(|a| *stream > a))
                            .map(|(stream, entry)| (stream.clone(), entry.version))
                            .collect();
                        page.sort_unstable();
                        page.truncate(limit);
                        page
                    },
                )
                .await?;
            heads.extend(listed);
        }
        Ok(heads.into_iter().take(limit).collect())
    }

    /// Per partition of the events topic, the open transaction (if any) that keeps the
    /// partition's last stable offset (LSO) below its high watermark: `read_committed`
    /// readers (the feed, its head) stop at the LSO until that transaction ends. Each holder
    /// names the topic, the partition, the LSO and the high watermark
    /// ([`FeedHolder::partition_transaction`]); one per partition, the oldest open
    /// transaction there (those behind it do not show until it ends).
    ///
    /// - **Waiting events**: the records between each held partition's LSO and high watermark,
    ///   an upper bound: it also counts the open transactions' own records, aborted records
    ///   and transaction markers.
    /// - **Age** of a holder: how old the record at its LSO is (its producer's timestamp,
    ///   read `read_uncommitted`), which is when the transaction wrote its first record to
    ///   the partition. How long the LSO itself has stood still cannot be seen in one call;
    ///   a record without a timestamp gives an age of zero.
    ///
    /// The producer running the transaction cannot be seen by a reader: it ends when that
    /// producer commits or aborts, when a new producer with its `transactional.id` fences it
    /// (a writer of this store restarting takes its partition's id), or when the broker
    /// aborts it after the producer's `transaction.timeout.ms` (10 s for this store's
    /// writers).
    async fn feed_held_back(&self) -> Result<HeldFeed, Error> {
        let options = self.options().clone();
        let topic = self.events_topic().to_owned();
        let partitions = self.partitions();
        blocking(move || held_back(&options, &topic, partitions)).await
    }

    /// None: the store's topics are created as they are needed.
    async fn migrate(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// None: a Kafka store has no migrations.
    async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }
}

/// A consumer whose watermark queries answer with `isolation` (`read_committed`: the last
/// stable offset; `read_uncommitted`: the high watermark).
fn consumer(
    options: &KafkaStoreOptions,
    isolation: &str,
    context: &str,
) -> Result<BaseConsumer, Error> {
    client_config(options)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", "foldline-admin")
        .create()
        .map_err(|e| Kafka::error(context, e))
}

fn held_back(options: &KafkaStoreOptions, topic: &str, partitions: u32) -> Result<HeldFeed, Error> {
    let context = format!("looking for transactions holding the feed of `{topic}` back");
    let committed = consumer(options, "read_committed", &context)?;
    let uncommitted = consumer(options, "read_uncommitted", &context)?;
    // partition → (last stable offset, high watermark), where the first is below the second.
    let mut held: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for partition in 0..partitions {
        let number = i32::try_from(partition).unwrap_or(i32::MAX);
        // The stable offset first: both only grow, so the high watermark asked for after it
        // is never below it.
        let (_, stable) = committed
            .fetch_watermarks(topic, number, options.timeout)
            .map_err(|e| Kafka::error(context.clone(), e))?;
        let (_, high) = uncommitted
            .fetch_watermarks(topic, number, options.timeout)
            .map_err(|e| Kafka::error(context.clone(), e))?;
        if high > stable {
            held.insert(number, (stable, high));
        }
    }
    if held.is_empty() {
        return Ok(HeldFeed::default());
    }
    let started = first_record_times(options, &uncommitted, topic, &held, &context)?;
    let now = SystemTime::now();
    let mut waiting = 0u64;
    let holders = held
        .iter()
        .map(|(&partition, &(stable, high))| {
            waiting += u64::try_from(high - stable).unwrap_or(0);
            let age = started
                .get(&partition)
                .and_then(|at| now.duration_since(*at).ok())
                .unwrap_or_default();
            FeedHolder::partition_transaction(
                topic,
                u32::try_from(partition).unwrap_or(0),
                u64::try_from(stable).unwrap_or(0),
                u64::try_from(high).unwrap_or(0),
                age,
            )
        })
        .collect();
    Ok(HeldFeed::new(holders, waiting))
}

/// When the record at each held partition's last stable offset was produced (the first
/// record of the transaction holding it), read `read_uncommitted`. Partitions whose record
/// has no timestamp, or does not arrive within the options' timeout, are left out.
fn first_record_times(
    options: &KafkaStoreOptions,
    consumer: &BaseConsumer,
    topic: &str,
    held: &BTreeMap<i32, (i64, i64)>,
    context: &str,
) -> Result<HashMap<i32, SystemTime>, Error> {
    let mut assignment = TopicPartitionList::new();
    for (&partition, &(stable, _)) in held {
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(stable))
            .map_err(|e| Kafka::error(context.to_owned(), e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| Kafka::error(context.to_owned(), e))?;
    let mut times = HashMap::new();
    let mut pending = held.len();
    let deadline = Instant::now() + options.timeout;
    while pending > 0 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            // The transaction ended and its records were read past: nothing to time.
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Entry::Vacant(first) = times.entry(partition) {
                    first.insert(None);
                    pending -= 1;
                }
            }
            Some(Err(e)) => return Err(Kafka::error(context.to_owned(), e)),
            Some(Ok(message)) => {
                let at = message
                    .timestamp()
                    .to_millis()
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                // Only the first record read counts: the one at the stable offset.
                if let Entry::Vacant(first) = times.entry(message.partition()) {
                    first.insert(at);
                    pending -= 1;
                }
            }
        }
    }
    Ok(times
        .into_iter()
        .filter_map(|(partition, at)| Some((partition, at?)))
        .collect())
}
