//! Apache Kafka event store for [foldline]: one fenced transactional writer per partition,
//! optimistic concurrency per stream, a `read_committed` feed with a checkpoint per partition.
//!
//! # How it works
//!
//! - **Topics** (created on first use, `<prefix>` from the options): `<prefix>.events`, keyed
//!   by stream id, with the partition count fixed at creation, never compacted or expired;
//!   the stream version, event id, type, schema version, metadata, correlation and causation
//!   in record headers. `<prefix>.heads` (each stream's version) and `<prefix>.keys` (each
//!   idempotency key's first result), compacted, written in the same transaction as the
//!   events they describe. `<prefix>.meta` records the store's id and partition count once;
//!   a store refuses to open on topics whose partition count changed
//!   ([`Error::PartitionCountChanged`](foldline::Error::PartitionCountChanged)).
//!   `<prefix>.snapshots` (compacted) holds aggregate snapshots.
//! - **Partitions**: a stream's partition is Kafka's default partitioner for its id (murmur2,
//!   as Java's client computes it), so order is per stream (and per partition), never across
//!   partitions.
//! - **Ownership**: an instance writes only the partitions Kafka's consumer-group protocol
//!   assigns it in the store's writers' group, `<prefix>.writers` (`cooperative-sticky`: an
//!   instance joining or leaving moves only the partitions that must move). An instance joins
//!   on its first append, so readers (projectors, the admin CLI) never take partitions. An
//!   append to a partition another instance owns fails at once as a retryable
//!   [`BackendErrorKind::NotOwner`](foldline::BackendErrorKind::NotOwner) naming the partition
//!   and, where the group says, its owner (`client foldline-writer-pid<pid> at <host>`). A
//!   revoked partition takes no further append from the moment of revocation. An instance that
//!   goes silent (crashed, frozen) keeps its partitions until its session expires
//!   ([`with_session_timeout`](KafkaStoreOptions::with_session_timeout), 10 s); one restarted
//!   under a stable [`with_member_id`](KafkaStoreOptions::with_member_id) gets them back at once.
//! - **Appends** go through one writer per owned partition, started when the partition is
//!   assigned: a transactional producer whose `transactional.id` is the partition's own
//!   (`<prefix>.writer.<partition>`), so starting a writer fences every earlier writer of the
//!   partition (a zombie's appends fail, and its open transaction is aborted). A new writer
//!   then commits a *marker* (a record with an empty key and no value, which every reader
//!   skips) to its partition of `<prefix>.events` and `<prefix>.heads` and to every partition
//!   of `<prefix>.keys`, and, before accepting appends, reads the partition of
//!   `<prefix>.heads` to its end once every transaction open there is decided (the catch-up
//!   barrier: it grows with the partition's streams, not its events). The marker's commit
//!   decides, as committed, any record an earlier producer of the partition left undecided: a
//!   single Apache Kafka node restarted after a crash was seen to skip the markers of a commit
//!   it had acknowledged (its partitions had no leader for a moment), and the next transaction
//!   of that producer would have aborted them in one partition and committed them in another.
//!   So a writer begins no transaction before its last commit has *settled* (every partition
//!   it wrote stable past its records: the markers are written), and one that does not settle
//!   within 2 s makes it take the partition again, whose marker decides the records as the
//!   coordinator did. Appends waiting together
//!   share one transaction (group commit), each checked on its own against the index; the index
//!   changes only after the commit. A conflict with the index is answered at once; one with an
//!   earlier append of the same transaction only once that transaction is decided, so a read
//!   after a conflict sees the version it names. A transaction whose commit fails (the brokers
//!   gone mid-commit), or that cannot be aborted, leaves its outcome unknown: the writer takes
//!   the partition again (fencing, barrier, idempotency keys read again) rather than guess. A
//!   writer fenced while the group still assigns it the
//!   partition (by a process outside the group) refuses appends for 10 s, then takes it back.
//! - **Stream reads** ([`read_stream`](foldline::EventStore::read_stream)) work on every
//!   instance. The owner of the stream's partition answers from its writer's index (each
//!   stream's version and the offsets of its first and last event, carried in the heads
//!   records): a stream it does not know costs nothing, and a read scans only the span from the
//!   stream's first event to its last. Other instances keep the heads of the partitions they
//!   read, tailing `<prefix>.heads` from where their last read of that partition ended, and
//!   then read the same span: a read costs the heads committed since the last one plus the
//!   stream's span, never the whole partition. A read sees every append answered before it
//!   began: Apache Kafka answers a commit before its markers are written, so a read waits
//!   until the stream's last record is readable, and another instance's look at the heads
//!   waits for the transactions open on that heads partition when it starts.
//! - **Idempotency keys** are claimed per key before an append is queued, so a key reused on
//!   any stream writes nothing and returns the first result. A key is looked up only once
//!   the stream's partition writer has fenced the previous one (so a commit of a writer that
//!   died committing is decided), and a key's partition of `<prefix>.keys` is read once per
//!   instance past any transaction open at that moment: a retry after a crash finds the first
//!   append (tested by killing the owner 20 times mid-append). Claims are per instance: retry
//!   a key on the instance owning its stream.
//! - **The feed** ([`read_all`](foldline::EventStore::read_all),
//!   [`subscribe`](foldline::EventStore::subscribe)) reads `read_committed`: records of open or
//!   aborted transactions are never delivered. A checkpoint holds the last offset read per
//!   partition (`<partition>:<offset>:0`); [`head`](foldline::EventStore::head) is the last
//!   stable offset of each partition. On the instance that appended, the feed and `head()`
//!   include every append it has answered: where a partition's last stable offset is not yet
//!   past the last event this instance answered an append with (the commit's markers are on
//!   their way), they wait until it is (up to the options' timeout, then a typed `Timeout`).
//!   Only the store's fenced writers write the events topic, so nothing but those markers
//!   stands there; a producer outside the store holding a transaction open in a partition
//!   would make these reads wait for it, as it makes stream reads wait. Another instance sees
//!   those appends once their markers are written. The consumer that read a page is kept, standing at the
//!   checkpoint it returned, so a reader asking for the next page goes on without a new
//!   connection or assignment. Checkpoints live in projection targets, never in
//!   consumer-group offsets.
//! - **Identity**: `kafka:<cluster id>/<prefix>/<store id>`; projection slots record it.
//! - **Snapshots** ([`SnapshotStore`](foldline::SnapshotStore)): key = stream id, in the
//!   stream's partition of `<prefix>.snapshots`, saved by a plain idempotent produce outside
//!   the events' transactions (a lost snapshot only costs a longer load); loading scans that
//!   partition for the stream's newest snapshot, so its cost grows with the partition's
//!   snapshots since the cleaner last compacted it (about one per stream), not with events.
//! - **The admin's view** ([`ManagedStore`](foldline::ManagedStore), for `foldline-admin`):
//!   `describe` is `Apache Kafka at <brokers>, topics <prefix>.*`; `streams` lists the heads
//!   (read whole the first time, then tailed); `feed_held_back` names, per partition of the events topic, the
//!   open transaction keeping its last stable offset below the high watermark
//!   ([`FeedHolder::partition_transaction`](foldline::FeedHolder::partition_transaction)), with
//!   the records between the two as an upper bound of the events waiting; no migrations.
//!
//!   Operators' tools open the store with
//!   [`with_topic_creation(false)`](KafkaStoreOptions::with_topic_creation): a mistyped prefix
//!   is [`Error::StoreNotFound`](foldline::Error::StoreNotFound), not a new empty store.
//!
//! # Limits
//!
//! - Order is per partition: the feed interleaves partitions, and a checkpoint is a vector of
//!   offsets, one per partition.
//! - The partition count is fixed when the store is created; changing the topic's is refused.
//! - One writer per partition: appends to a partition go through the instance the group
//!   assigns it to, so a partition's append rate is one producer's (see the README's
//!   `kafka-append` figures); spread load with more partitions.
//! - Only the oldest open transaction of a partition shows as holding the feed back; those
//!   behind it show once it ends.
//! - Idempotency-key claims are per instance: retry a key on the instance owning its stream.
//!
//! # Quick start
//!
//! ```no_run
//! use foldline::CommandExecutor;
//! use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
//!
//! # #[tokio::main]
//! # async fn main() -> foldline::Result<()> {
//! let options = KafkaStoreOptions::from_brokers("127.0.0.1:9092")
//!     .with_topic_prefix("bank")?
//!     .with_partitions(16);
//! let store = KafkaEventStore::connect(options).await?; // creates bank.events, ... once
//! assert_eq!(store.partitions(), 16);
//! let commands = CommandExecutor::new(store.clone());
//! # let _ = commands;
//! # Ok(())
//! # }
//! ```
//!
//! # Metrics
//!
//! Histograms `foldline_kafka_transaction_appends` (appends per committed transaction) and
//! `foldline_kafka_transaction_seconds` (time to write and commit one), through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! # Building
//!
//! The crate uses rdkafka with librdkafka built from its bundled source (`cmake-build`):
//! it needs cmake, a C compiler and the curl headers (Debian's `libcurl4-openssl-dev`, which
//! librdkafka's sources include even when curl is off); `scripts/test.sh` installs them.
//!
//! # Feature flags
//!
//! - `testing`: [`KafkaTestTopics`], a store under a fresh topic prefix per test.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod error;
mod feed;
mod heads;
mod keys;
mod managed;
mod options;
mod ownership;
mod partitioner;
mod records;
mod scan;
mod settle;
mod snapshots;
mod store;
mod streams;
#[cfg(feature = "testing")]
mod testing;
mod topics;
mod writer;

pub use options::{
    DEFAULT_BROKERS, DEFAULT_TOPIC_PREFIX, ENV_BROKERS, KafkaStoreOptions, MAX_EVENT_BYTES,
};
pub use store::KafkaEventStore;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::KafkaTestTopics;
