//! `KafkaEventStore`: a store's topics on a Kafka cluster, opened and checked.

use std::sync::Arc;

use foldline::{Error, StoreIdentity, StreamId};

use crate::options::KafkaStoreOptions;
use crate::partitioner;
use crate::topics::{self, StoreMeta, TopicNames};

/// An event store on Apache Kafka: the topics `<prefix>.events` (keyed by stream id) and
/// `<prefix>.meta` on the brokers of its [`KafkaStoreOptions`]. Cheap to clone.
///
/// This release opens the store (creating its topics on first use), fixes its partition
/// count and identity, and refuses a topic whose partition count has changed; appending and
/// reading come next (see the crate documentation).
#[derive(Clone, Debug)]
pub struct KafkaEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    options: KafkaStoreOptions,
    names: TopicNames,
    meta: StoreMeta,
    identity: StoreIdentity,
}

impl KafkaEventStore {
    /// Connects to the brokers in `options` and opens the store: creates its topics where
    /// missing (the events topic with the options' partition count, never compacted or
    /// expired), records the store's id and partition count on first use, and checks them on
    /// every later one.
    ///
    /// # Errors
    ///
    /// A transient [`Error::Backend`] when the brokers cannot be reached;
    /// [`Error::PartitionCountChanged`] when the events topic's partition count differs from
    /// the one the store was created with.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: topics and the store's record, once created, are found by the next call.
    pub async fn connect(options: KafkaStoreOptions) -> Result<Self, Error> {
        let names = TopicNames::new(&options.topic_prefix);
        let (meta, cluster) = topics::open(&options, &names).await?;
        let identity = StoreIdentity::new(format!(
            "kafka:{cluster}/{}/{}",
            options.topic_prefix, meta.store_id
        ));
        Ok(KafkaEventStore {
            inner: Arc::new(Inner {
                options,
                names,
                meta,
                identity,
            }),
        })
    }

    /// Which store this is: `kafka:<cluster id>/<topic prefix>/<store id>`, where the store id
    /// is drawn when the store's topics are created, so topics deleted and created again are
    /// another store.
    pub fn store_identity(&self) -> &StoreIdentity {
        &self.inner.identity
    }

    /// The events topic's partition count, fixed when the store was created.
    pub fn partitions(&self) -> u32 {
        self.inner.meta.partitions
    }

    /// The events topic's name (`<prefix>.events`).
    pub fn events_topic(&self) -> &str {
        &self.inner.names.events
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &KafkaStoreOptions {
        &self.inner.options
    }

    /// The partition `stream` lives in: Kafka's default partitioner for the stream id as
    /// record key (murmur2), so any Kafka client puts the stream's records there too.
    pub fn partition_of(&self, stream: &StreamId) -> u32 {
        partitioner::partition_of(stream, self.inner.meta.partitions)
    }

    #[cfg(feature = "testing")]
    pub(crate) fn topic_names(&self) -> &TopicNames {
        &self.inner.names
    }
}
