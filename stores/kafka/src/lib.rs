//! Apache Kafka event store for [foldline] — under construction.
//!
//! The design (see `DESIGN.md`, "Apache Kafka"): one events topic keyed by stream id with a
//! partition count fixed at creation; one fenced transactional writer per partition, which
//! checks expected versions against an index of stream versions rebuilt when it takes the
//! partition; the global feed read `read_committed`, its checkpoint one offset per partition.
//!
//! **What works in this release:** [`KafkaEventStore::connect`] opens a store: it creates
//! its topics on first use (`<prefix>.events` with the configured partition count, never
//! compacted or expired; `<prefix>.meta`), records the store's id and partition count once,
//! and on every later start refuses an events topic whose partition count has changed
//! ([`Error::PartitionCountChanged`](foldline::Error::PartitionCountChanged)). The store's
//! identity, `kafka:<cluster id>/<prefix>/<store id>`, is what projection slots will record.
//! `KafkaEventStore` does not implement [`EventStore`](foldline::EventStore) yet: appends,
//! reads and the feed come next.
//!
//! # Quick start
//!
//! ```no_run
//! use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
//!
//! # #[tokio::main]
//! # async fn main() -> foldline::Result<()> {
//! let options = KafkaStoreOptions::from_brokers("127.0.0.1:9092")
//!     .with_topic_prefix("bank")?
//!     .with_partitions(16);
//! let store = KafkaEventStore::connect(options).await?; // creates bank.events, bank.meta once
//! assert_eq!(store.partitions(), 16);
//! println!("{}", store.store_identity());
//! # Ok(())
//! # }
//! ```
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
mod keys;
mod options;
mod partitioner;
mod records;
mod scan;
mod store;
mod streams;
#[cfg(feature = "testing")]
mod testing;
mod topics;
mod writer;

pub use options::{DEFAULT_BROKERS, DEFAULT_TOPIC_PREFIX, ENV_BROKERS, KafkaStoreOptions};
pub use store::KafkaEventStore;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::KafkaTestTopics;
