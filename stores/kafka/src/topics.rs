//! The store's topics: their names, creating them, and the record that fixes what the store
//! was created with (`<prefix>.meta`).
//!
//! `<prefix>.meta` has one partition and is never compacted or expired. Its first record,
//! written once when the store is created, holds the store's id and the events topic's
//! partition count. *First* wins: two instances creating the same store at once may both
//! write one, and both then read the same first record.

use std::time::Duration;

use foldline::{DriverErrors, Error, Shown};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::records;
use crate::scan::{Visit, scan};

/// The names of a store's topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicNames {
    /// The events, keyed by stream id.
    pub(crate) events: String,
    /// What the store was created with (see the module docs).
    pub(crate) meta: String,
    /// Each stream's version after each append, in the stream's partition; compacted.
    pub(crate) heads: String,
    /// The result of each append with an idempotency key, in its stream's partition;
    /// compacted.
    pub(crate) keys: String,
    /// Aggregate snapshots, keyed by stream id, in the stream's partition; compacted.
    pub(crate) snapshots: String,
}

impl TopicNames {
    pub(crate) fn new(prefix: &str) -> Self {
        TopicNames {
            events: format!("{prefix}.events"),
            meta: format!("{prefix}.meta"),
            heads: format!("{prefix}.heads"),
            keys: format!("{prefix}.keys"),
            snapshots: format!("{prefix}.snapshots"),
        }
    }

    /// Every topic, for deleting them.
    pub(crate) fn all(&self) -> [&str; 5] {
        [
            &self.events,
            &self.meta,
            &self.heads,
            &self.keys,
            &self.snapshots,
        ]
    }
}

/// The first record of `<prefix>.meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoreMeta {
    /// Drawn when the store was created: topics deleted and created again are another store.
    pub(crate) store_id: Uuid,
    /// The events topic's partition count at creation.
    pub(crate) partitions: u32,
    /// When the store was created, in milliseconds since the Unix epoch.
    pub(crate) created_at_ms: u64,
}

/// The record key of the meta record.
const META_KEY: &str = "store";

/// Creates the store's topics where missing, records what the store is created with (once),
/// and checks that the events topic still has the partitions it was created with.
pub(crate) async fn open(
    options: &KafkaStoreOptions,
    names: &TopicNames,
) -> Result<(StoreMeta, String), Error> {
    let admin = admin_client(options)?;
    if options.create_topics {
        create_missing(&admin, options, names).await?;
    } else if !all_exist(options, names).await? {
        return Err(not_found(options));
    }
    await_leaders(options, &names.all()[..4]).await?;
    let meta = match read_meta(options, names).await? {
        Some(meta) => meta,
        None if !options.create_topics => return Err(not_found(options)),
        None => {
            write_meta(options, names).await?;
            read_meta(options, names).await?.ok_or_else(|| {
                Kafka::corrupt(
                    format!(
                        "reading topic `{}` back after writing the store's record",
                        names.meta
                    ),
                    None,
                )
            })?
        }
    };
    // After the store's record: a store created before snapshots existed gets its snapshots
    // topic with the partition count it was created with, whatever the options say now.
    create_snapshots(&admin, options, names, meta.partitions).await?;
    await_leaders(options, &[names.snapshots.as_str()]).await?;
    let (counts, cluster) = describe(options, names).await?;
    for (topic, found) in counts {
        if found != meta.partitions {
            return Err(Error::PartitionCountChanged {
                topic,
                created: meta.partitions,
                found,
            });
        }
    }
    Ok((meta, cluster))
}

/// Whether every topic of the store exists.
async fn all_exist(options: &KafkaStoreOptions, names: &TopicNames) -> Result<bool, Error> {
    let config = client_config(options);
    let wanted: Vec<String> = names.all().iter().map(|t| (*t).to_owned()).collect();
    let timeout = options.timeout;
    blocking(move || {
        let context = || format!("looking for topics {wanted:?}");
        let consumer = config
            .create()
            .map(ShortConsumer::new)
            .map_err(|e| Kafka::error(context(), e))?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Kafka::error(context(), e))?;
        Ok(wanted
            .iter()
            .all(|topic| metadata.topics().iter().any(|t| t.name() == topic)))
    })
    .await
}

/// The store of `options` is not there, and may not be created.
fn not_found(options: &KafkaStoreOptions) -> Error {
    Error::StoreNotFound {
        store: format!(
            "topics `{}.*` on Apache Kafka at {}",
            options.topic_prefix,
            Shown::new(&options.brokers)
        ),
    }
}

pub(crate) fn admin_client(
    options: &KafkaStoreOptions,
) -> Result<AdminClient<DefaultClientContext>, Error> {
    client_config(options)
        .create()
        .map_err(|e| Kafka::error("creating an admin client", e))
}

/// The settings every client of the store shares.
pub(crate) fn client_config(options: &KafkaStoreOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("socket.timeout.ms", millis(options.timeout))
        .set("log_level", "3");
    config
}

/// A consumer of committed records only, assigned partitions by hand (never subscribed: no
/// group offsets are committed; checkpoints live in projection targets). `context` names what
/// it is for, in the error when it cannot be created.
pub(crate) fn committed_consumer(
    options: &KafkaStoreOptions,
    context: impl Into<String>,
) -> Result<ShortConsumer, Error> {
    client_config(options)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // Every read here stops at the partition's end: a fetch that finds nothing new must
        // come back at once, not after the default 500 ms wait for more data (which made
        // each stream read, barrier and feed page pay half a second).
        .set("fetch.wait.max.ms", "10")
        .set("group.id", "foldline")
        .create()
        .map(ShortConsumer::new)
        .map_err(|e| Kafka::error(context, e))
}

/// A consumer for short reads, closed on a thread of its own when dropped: closing a
/// librdkafka client takes about 100 ms (its threads time out their system calls), which every
/// stream read, head and barrier paid on top of its own ~15 ms.
pub(crate) struct ShortConsumer(Option<BaseConsumer>);

impl ShortConsumer {
    pub(crate) fn new(consumer: BaseConsumer) -> Self {
        ShortConsumer(Some(consumer))
    }
}

impl std::ops::Deref for ShortConsumer {
    type Target = BaseConsumer;

    fn deref(&self) -> &BaseConsumer {
        self.0
            .as_ref()
            .expect("a consumer is only taken out when dropped")
    }
}

impl Drop for ShortConsumer {
    fn drop(&mut self) {
        if let Some(consumer) = self.0.take() {
            // Should the thread not start, the closure (and the consumer) is dropped here.
            let _ = std::thread::Builder::new()
                .name("foldline-kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().max(1).to_string()
}

async fn create_missing(
    admin: &AdminClient<DefaultClientContext>,
    options: &KafkaStoreOptions,
    names: &TopicNames,
) -> Result<(), Error> {
    // -1: the brokers' `default.replication.factor`.
    let factor = options.replication_factor.map_or(-1, i32::from);
    let partitions = i32::try_from(options.partitions).unwrap_or(i32::MAX);
    // Never compacted, never expired: the events are the store.
    let kept = [
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
    ];
    let mut events = NewTopic::new(&names.events, partitions, TopicReplication::Fixed(factor));
    let mut meta = NewTopic::new(&names.meta, 1, TopicReplication::Fixed(factor));
    for (key, value) in kept {
        events = events.set(key, value);
        meta = meta.set(key, value);
    }
    let heads = compacted(NewTopic::new(
        &names.heads,
        partitions,
        TopicReplication::Fixed(factor),
    ));
    let keys = compacted(NewTopic::new(
        &names.keys,
        partitions,
        TopicReplication::Fixed(factor),
    ));
    create_all(admin, options, [&events, &meta, &heads, &keys]).await
}

/// `topic`, compacted: the side topics keep the last record per key (a stream's head, a key's
/// first result, a stream's snapshot). Small segments and an eager cleaner keep what a reader
/// scans close to one record per stream (the active segment is never compacted).
fn compacted(mut topic: NewTopic<'_>) -> NewTopic<'_> {
    for (key, value) in [
        ("cleanup.policy", "compact"),
        ("segment.ms", "600000"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("delete.retention.ms", "86400000"),
    ] {
        topic = topic.set(key, value);
    }
    topic
}

/// Creates `<prefix>.snapshots` where missing, with the store's partition count (a stream's
/// snapshots share its partition number).
async fn create_snapshots(
    admin: &AdminClient<DefaultClientContext>,
    options: &KafkaStoreOptions,
    names: &TopicNames,
    partitions: u32,
) -> Result<(), Error> {
    let factor = options.replication_factor.map_or(-1, i32::from);
    let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
    let snapshots = compacted(NewTopic::new(
        &names.snapshots,
        partitions,
        TopicReplication::Fixed(factor),
    ));
    create_all(admin, options, [&snapshots]).await
}

/// Creates `topics`; those that exist already are left as they are.
async fn create_all<'a>(
    admin: &AdminClient<DefaultClientContext>,
    options: &KafkaStoreOptions,
    topics: impl IntoIterator<Item = &'a NewTopic<'a>>,
) -> Result<(), Error> {
    let context = || format!("creating the topics of store `{}`", options.topic_prefix);
    let admin_options = AdminOptions::new().operation_timeout(Some(options.timeout));
    let results = admin
        .create_topics(topics, &admin_options)
        .await
        .map_err(|e| Kafka::error(context(), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Kafka::error(
                    format!("{}: topic `{}`", context(), Shown::new(&topic)),
                    KafkaError::AdminOp(code),
                ));
            }
        }
    }
    Ok(())
}

/// Waits until every partition of the store's topics has a leader: a topic just created is
/// unknown to the brokers' metadata for a moment, and reads of it fail meanwhile.
async fn await_leaders(options: &KafkaStoreOptions, topics: &[&str]) -> Result<(), Error> {
    let config = client_config(options);
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    let timeout = options.timeout;
    blocking(move || {
        let context = || format!("waiting for the partitions of {topics:?} to have leaders");
        let consumer = config
            .create()
            .map(ShortConsumer::new)
            .map_err(|e| Kafka::error(context(), e))?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let metadata = consumer
                .fetch_metadata(None, timeout)
                .map_err(|e| Kafka::error(context(), e))?;
            let ready = topics.iter().all(|name| {
                metadata.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0)
                })
            });
            if ready {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Kafka::error(
                    context(),
                    KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
}

/// The first record of the meta topic, read committed; `None` when there is none yet.
async fn read_meta(
    options: &KafkaStoreOptions,
    names: &TopicNames,
) -> Result<Option<StoreMeta>, Error> {
    let (options, topic) = (options.clone(), names.meta.clone());
    blocking(move || {
        let mut meta = None;
        scan(&options, &topic, 0, 0, |message| {
            if message.key() != Some(META_KEY.as_bytes()) {
                return Ok(Visit::More);
            }
            let first =
                serde_json::from_slice(message.payload().unwrap_or_default()).map_err(|e| {
                    Kafka::corrupt(
                        format!(
                            "reading topic `{topic}`: the record at offset {}",
                            message.offset()
                        ),
                        Some(Box::new(e)),
                    )
                })?;
            meta = Some(first);
            Ok(Visit::Stop)
        })?;
        Ok(meta)
    })
    .await
}

async fn write_meta(options: &KafkaStoreOptions, names: &TopicNames) -> Result<(), Error> {
    let context = || format!("recording the creation of store `{}`", options.topic_prefix);
    let meta = StoreMeta {
        store_id: Uuid::now_v7(),
        partitions: options.partitions,
        created_at_ms: u64::try_from(records::now_millis()).unwrap_or(0),
    };
    let payload = serde_json::to_vec(&meta).map_err(|e| Error::Encode {
        what: "the store's record".to_owned(),
        source: Box::new(e),
    })?;
    let producer: FutureProducer = client_config(options)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", millis(options.timeout))
        .create()
        .map_err(|e| Kafka::error(context(), e))?;
    producer
        .send(
            FutureRecord::to(&names.meta)
                .key(META_KEY)
                .payload(&payload),
            options.timeout,
        )
        .await
        .map_err(|(e, _)| Kafka::error(context(), e))?;
    Ok(())
}

/// The partition counts of the partitioned topics (events, heads, keys, snapshots: they must
/// agree, a stream's records sharing its partition number in each), and the cluster's id.
async fn describe(
    options: &KafkaStoreOptions,
    names: &TopicNames,
) -> Result<(Vec<(String, u32)>, String), Error> {
    let config = client_config(options);
    let topics = [
        names.events.clone(),
        names.heads.clone(),
        names.keys.clone(),
        names.snapshots.clone(),
    ];
    let timeout = options.timeout;
    blocking(move || {
        let context = || format!("describing topics {topics:?}");
        let consumer = config
            .create()
            .map(ShortConsumer::new)
            .map_err(|e| Kafka::error(context(), e))?;
        let metadata = consumer
            .fetch_metadata(None, timeout)
            .map_err(|e| Kafka::error(context(), e))?;
        let counts = topics
            .iter()
            .map(|topic| {
                let count = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map_or(0, |t| t.partitions().len());
                (topic.clone(), u32::try_from(count).unwrap_or(u32::MAX))
            })
            .collect();
        let cluster = consumer
            .client()
            .fetch_cluster_id(timeout)
            .ok_or_else(|| Kafka::corrupt(format!("{}: the cluster has no id", context()), None))?;
        Ok((counts, cluster))
    })
    .await
}

/// Runs librdkafka's blocking calls (metadata, watermarks, polling) off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| Error::Closed {
            what: "Kafka metadata task",
        })?
}
