//! `KafkaEventStore`: a store's topics on a Kafka cluster, opened and checked.

use std::sync::{Arc, Mutex, PoisonError};

use foldline::{
    AppendRequest, AppendResult, Checkpoint, Error, EventBatch, EventStore, IdempotencyKey,
    RecordedEvent, StoreIdentity, StreamId, Subscription, Version,
};
use tokio::sync::watch;

use crate::feed::FeedReaders;
use crate::heads::HeadsCache;
use crate::options::KafkaStoreOptions;
use crate::partitioner;
use crate::snapshots::SnapshotProducer;
use crate::topics::{self, StoreMeta, TopicNames};
use crate::writer::Writers;
use crate::{feed, streams};

/// An event store on Apache Kafka: the topics `<prefix>.events` (keyed by stream id),
/// `<prefix>.heads`, `<prefix>.keys`, `<prefix>.snapshots` and `<prefix>.meta` on the brokers of its
/// [`KafkaStoreOptions`]. Cheap to clone: clones share the partitions' writers.
///
/// See the crate documentation for how it works and what is not there yet.
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
    writers: Arc<Writers>,
    /// Consumers of the feed kept between pages.
    readers: Arc<FeedReaders>,
    /// The streams' heads of the partitions this instance has read streams of without owning
    /// them (or listed).
    heads: Arc<HeadsCache>,
    /// Bumped after each commit of this instance's writers, so its subscribers read at once
    /// (others' commits are found by polling).
    commits: watch::Sender<u64>,
    /// The last event position of each partition this instance has answered an append with.
    /// A commit is answered before its markers are written, so the feed's end may be behind
    /// it for a moment: the feed and `head()` wait until it is not, so that what this
    /// instance wrote is in what it reads next.
    answered: Mutex<Checkpoint>,
    /// Saves snapshots, created on the first save.
    snapshots: SnapshotProducer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last clone is gone: leave the writers' group so the partitions move now, not
        // when the session expires, and stop the writers (their tasks hold the writers).
        self.writers.shutdown();
    }
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
    /// the one the store was created with; [`Error::StoreNotFound`] when the options turn
    /// topic creation off ([`KafkaStoreOptions::with_topic_creation`]) and the store's topics
    /// are not all there.
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
        let writers = Writers::new(options.clone(), names.clone(), meta.partitions);
        let (commits, _) = watch::channel(0);
        Ok(KafkaEventStore {
            inner: Arc::new(Inner {
                options,
                names,
                meta,
                identity,
                writers,
                readers: Arc::default(),
                heads: Arc::default(),
                commits,
                answered: Mutex::default(),
                snapshots: SnapshotProducer::default(),
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

    /// The feed's consumers kept between pages.
    pub(crate) fn feed_readers(&self) -> Arc<FeedReaders> {
        Arc::clone(&self.inner.readers)
    }

    /// This instance's writers (and what they know of their partitions' streams).
    pub(crate) fn writers(&self) -> &Writers {
        &self.inner.writers
    }

    /// The heads this instance has read of partitions it does not own.
    pub(crate) fn heads(&self) -> &Arc<HeadsCache> {
        &self.inner.heads
    }

    pub(crate) fn topic_names(&self) -> &TopicNames {
        &self.inner.names
    }

    pub(crate) fn snapshot_producer(&self) -> &SnapshotProducer {
        &self.inner.snapshots
    }

    /// A receiver of this instance's commit counter, for subscriptions.
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// See [`Inner::answered`].
    pub(crate) fn answered(&self) -> Checkpoint {
        self.inner
            .answered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl EventStore for KafkaEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, Error> {
        self.inner.options.limits.check(&request)?;
        let partition = self.partition_of(request.stream());
        let result = self.inner.writers.append(partition, request).await?;
        if let Some(position) = result.position {
            self.inner
                .answered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .advance(position);
        }
        if result.position.is_some() && !result.replayed {
            self.inner.commits.send_modify(|n| *n += 1);
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, Error> {
        streams::read_stream(self, stream, from, limit).await
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch, Error> {
        feed::read_all(self, after, limit).await
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription, Error> {
        feed::subscribe(self, after).await
    }

    async fn head(&self) -> Result<Checkpoint, Error> {
        feed::head(self).await
    }

    async fn identity(&self) -> Result<StoreIdentity, Error> {
        Ok(self.inner.identity.clone())
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>, Error> {
        self.inner.writers.keys().find(key).await
    }
}
