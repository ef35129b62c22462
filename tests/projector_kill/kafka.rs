//! The Redis and Tantivy tallies fed from a Kafka store: the worker killed 20 times mid-work.
//! The read model must equal a fresh rebuild from the same topics and count every event once;
//! events of aborted transactions never reach it.

use std::process::{Command, Stdio};
use std::time::Duration;

use foldline::{Checkpoint, EventStore};
use foldline_kafka::{KafkaEventStore, KafkaTestTopics};
use foldline_tests::redis::test_prefix;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use foldline::Projector;
use foldline_tests::tally::{TantivyTally, tantivy_schema};

use crate::redis::{Namespace, check_model, newest_checkpoint};
use crate::support::{self, KillFeed, Rounds, append_tally};
use crate::tantivy;

/// A Kafka store (4 partitions, a topic prefix of its own) and what was appended to it.
struct KafkaFeed {
    topics: KafkaTestTopics,
    events: u64,
    total: u64,
}

impl KafkaFeed {
    async fn with_backlog(backlog: u64) -> anyhow::Result<Self> {
        let mut feed = KafkaFeed {
            topics: KafkaTestTopics::create().await?,
            events: 0,
            total: 0,
        };
        let mut left = backlog;
        while left > 0 {
            let n = left.min(25);
            feed.append(n).await?;
            left -= n;
        }
        Ok(feed)
    }

    fn store(&self) -> &KafkaEventStore {
        self.topics.store()
    }
}

impl KillFeed for KafkaFeed {
    async fn append(&mut self, n: u64) -> anyhow::Result<()> {
        append_tally(self.topics.store(), n, &mut self.events, &mut self.total).await
    }

    async fn head(&self) -> anyhow::Result<Checkpoint> {
        Ok(self.store().head().await?)
    }

    fn worker(&self, target_args: &[&str]) -> Command {
        let options = self.store().options();
        let mut command = Command::new(env!("CARGO_BIN_EXE_projector-worker"));
        command
            .args(["--kafka-brokers", options.brokers()])
            .args(["--kafka-prefix", options.topic_prefix()])
            .args(["--lease-ms", "2000"])
            .args(target_args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }
}

/// Writes records into every partition of the events topic in a transaction, then aborts it:
/// a reader that delivered them would fail on them (they carry no foldline headers).
async fn abort_a_transaction(store: &KafkaEventStore) -> anyhow::Result<()> {
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", store.options().brokers())
        .set(
            "transactional.id",
            format!("{}.aborted", store.options().topic_prefix()),
        )
        .create()?;
    let topic = store.events_topic().to_owned();
    let partitions = store.partitions();
    tokio::task::spawn_blocking(move || {
        producer.init_transactions(Duration::from_secs(10))?;
        producer.begin_transaction()?;
        for partition in 0..i32::try_from(partitions)? {
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(partition)
                        .key("tally-0")
                        .payload("{\"Counted\":{\"amount\":1000000}}"),
                )
                .map_err(|(e, _)| e)?;
        }
        producer.flush(Duration::from_secs(10))?;
        producer.abort_transaction(Duration::from_secs(10))?;
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_projector_from_kafka_killed_20_times() -> anyhow::Result<()> {
    const KILLS: usize = 20;
    let mut feed = KafkaFeed::with_backlog(1_000).await?;
    abort_a_transaction(feed.store()).await?;
    let space = Namespace::new().await;
    let args = space.worker_args();
    let rounds = Rounds {
        appends: 12..24,
        batch_size: "5",
        kills: KILLS,
    };
    let mid_work = support::kill_rounds(&mut feed, &rounds, &args, || {
        newest_checkpoint(space.target())
    })
    .await?;
    abort_a_transaction(feed.store()).await?;
    feed.append(3).await?;
    support::finish(&feed, &args)?;

    let fresh = test_prefix().await;
    check_model(
        (feed.events, feed.total),
        feed.store(),
        space.target(),
        fresh.target(),
    )
    .await?;
    assert!(
        mid_work >= 6,
        "only {mid_work} of {KILLS} kills hit a worker with work left"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_projector_from_kafka_killed_20_times() -> anyhow::Result<()> {
    const KILLS: usize = 20;
    let mut feed = KafkaFeed::with_backlog(300).await?;
    abort_a_transaction(feed.store()).await?;
    let dir = tempfile::tempdir()?;
    let root = support::path_arg(dir.path());
    let args = ["--target", "tantivy", "--tantivy-root", &root];
    // Each Tantivy commit writes and syncs segment files: fewer, larger batches.
    let rounds = Rounds {
        appends: 2..6,
        batch_size: "20",
        kills: KILLS,
    };
    let mid_work = support::kill_rounds(&mut feed, &rounds, &args, || {
        tantivy::newest_checkpoint(dir.path())
    })
    .await?;
    abort_a_transaction(feed.store()).await?;
    feed.append(3).await?;
    support::finish(&feed, &args)?;

    let model = tantivy::dump(dir.path()).await?;
    assert_eq!(model.len() as u64, feed.events, "one document per event");
    let fresh = tempfile::tempdir()?;
    Projector::new(
        feed.store().clone(),
        TantivyTally::<1>::new(&tantivy_schema()),
        tantivy::open(fresh.path())?,
    )
    .catch_up()
    .await?;
    assert_eq!(
        model,
        tantivy::dump(fresh.path()).await?,
        "the index equals a fresh rebuild"
    );
    assert!(
        mid_work >= 6,
        "only {mid_work} of {KILLS} kills hit a worker with work left"
    );
    Ok(())
}
