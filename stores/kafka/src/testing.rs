//! Test support (feature `testing`): a store of its own per test.

use foldline::{BackendErrorKind, DriverErrors, Error, Shown};
use rdkafka::admin::AdminOptions;

use crate::error::Kafka;
use crate::options::{DEFAULT_BROKERS, ENV_BROKERS, KafkaStoreOptions};
use crate::store::KafkaEventStore;
use crate::topics;

/// A store under a fresh topic prefix `test_<random>` on the brokers at
/// [`ENV_BROKERS`](crate::ENV_BROKERS) (`FOLDLINE_KAFKA_BROKERS`, default
/// [`DEFAULT_BROKERS`](crate::DEFAULT_BROKERS)). Dropping it deletes the store's topics.
///
/// ```no_run
/// use foldline_kafka::KafkaTestTopics;
///
/// # #[tokio::main]
/// # async fn main() -> foldline::Result<()> {
/// let test = KafkaTestTopics::create().await?;
/// assert_eq!(test.store().partitions(), 4);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct KafkaTestTopics {
    store: KafkaEventStore,
}

impl KafkaTestTopics {
    /// Opens a store with 4 partitions under a fresh prefix.
    ///
    /// # Errors
    ///
    /// When the brokers cannot be reached, an error that says how to start one.
    pub async fn create() -> Result<Self, Error> {
        Self::create_with(|options| options).await
    }

    /// As [`create`](Self::create), with the options changed by `configure` first.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub async fn create_with(
        configure: impl FnOnce(KafkaStoreOptions) -> KafkaStoreOptions,
    ) -> Result<Self, Error> {
        let prefix = format!("test_{}", uuid::Uuid::now_v7().simple());
        let options = configure(
            KafkaStoreOptions::from_env()
                .with_topic_prefix(prefix)?
                .with_partitions(4),
        );
        let brokers = options.brokers().to_owned();
        let store = KafkaEventStore::connect(options)
            .await
            .map_err(|error| match error {
                Error::Backend(ref e) if e.is_transient() => Kafka::failure(
                    BackendErrorKind::Unavailable,
                    format!(
                        "connecting to Kafka at {} for a test: start a broker with \
                         `scripts/kafka.sh start` (or run the whole suite with \
                         `scripts/test.sh`), or point {ENV_BROKERS} at one (default \
                         {DEFAULT_BROKERS})",
                        Shown::new(&brokers)
                    ),
                    Some(Box::new(error)),
                ),
                other => other,
            })?;
        Ok(KafkaTestTopics { store })
    }

    /// The store.
    pub fn store(&self) -> &KafkaEventStore {
        &self.store
    }
}

impl Drop for KafkaTestTopics {
    fn drop(&mut self) {
        let options = self.store.options().clone();
        let names: Vec<String> = self
            .store
            .topic_names()
            .all()
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        // Drop runs inside the test's runtime, which must not be blocked on: a thread with its
        // own small runtime, waited for so the topics are gone when the test ends.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let admin = topics::admin_client(&options).ok()?;
                let topics: Vec<&str> = names.iter().map(String::as_str).collect();
                admin
                    .delete_topics(&topics, &AdminOptions::new())
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            tracing::warn!(prefix = %self.store.options().topic_prefix(), "could not delete a test store's topics");
        }
    }
}
