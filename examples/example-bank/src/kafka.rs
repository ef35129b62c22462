//! Running the story on Apache Kafka (feature `kafka`): a store under a topic prefix of its
//! own, its topics deleted first.

use std::time::{Duration, Instant};

use anyhow::Context;
use foldline_kafka::{ENV_BROKERS, KafkaEventStore, KafkaStoreOptions};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long the brokers may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Deletes every topic of the store under `prefix` on the brokers at `brokers` (the story
/// needs an empty store, as the PostgreSQL path drops its schema), then opens the store
/// afresh: its topics created, 4 partitions.
///
/// # Errors
///
/// The brokers unreachable (the message says how to start one), an invalid prefix, or
/// topics that cannot be deleted.
pub async fn fresh_store(brokers: &str, prefix: &str) -> anyhow::Result<KafkaEventStore> {
    let options = KafkaStoreOptions::from_brokers(brokers)
        .with_topic_prefix(prefix)?
        .with_partitions(4);
    delete_topics(brokers, prefix).await.with_context(|| {
        format!(
            "cannot delete the topics of `{prefix}` on Kafka at {brokers}: start a broker with \
             `scripts/kafka.sh start`, or point {ENV_BROKERS} at a running one"
        )
    })?;
    Ok(KafkaEventStore::connect(options).await?)
}

/// Deletes every topic named `<prefix>.*` on the brokers at `brokers`, and waits until the
/// brokers no longer list them (a topic deleted is gone a moment after the call returns: one
/// created again meanwhile would fail).
///
/// # Errors
///
/// The brokers unreachable, or a topic they refuse to delete.
pub async fn delete_topics(brokers: &str, prefix: &str) -> anyhow::Result<()> {
    let topics = store_topics(brokers, prefix).await?;
    if topics.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for result in admin.delete_topics(&names, &options).await? {
        if let Err((topic, code)) = result {
            anyhow::bail!("deleting topic {topic}: {code}");
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    while !store_topics(brokers, prefix).await?.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the topics of `{prefix}` were still listed {TIMEOUT:?} after their deletion"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The topics named `<prefix>.*` on the brokers at `brokers`.
async fn store_topics(brokers: &str, prefix: &str) -> anyhow::Result<Vec<String>> {
    let config = client_config(brokers);
    let start = format!("{prefix}.");
    // Metadata requests block: off the async runtime.
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|name| name.starts_with(&start))
            .collect())
    })
    .await?
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("log_level", "3");
    config
}
