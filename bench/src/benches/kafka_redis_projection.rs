//! `kafka-redis-projection`: `redis-projection` with a Kafka store as the feed, beside the
//! PostgreSQL one.
//!
//! # What is measured
//!
//! The same as `redis-projection` (see its docs): `Projector::catch_up` of the `Balances`
//! projection into a `RedisTarget` from an empty target to the feed's head, against the same
//! writes sent as plain `MULTI … EXEC` pipelines of the projector's own commit sizes. Here the
//! projector reads through `KafkaEventStore::subscribe` (`read_committed` consumers, a
//! checkpoint of one offset per partition, committed into Redis with every batch).
//!
//! # The feed
//!
//! `--events` events (default 1 000 000) of the same shape as PostgreSQL's bench feed:
//! accounts of 10 events (`Opened`, then `Deposited`), one append per account from 64 tasks
//! (`kafka_feed::fill`), over 8 partitions. The topics are deleted at the end.

use anyhow::ensure;
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use uuid::Uuid;

use super::Options;
use super::kafka_append::delete_store_topics;
use super::kafka_feed::fill;
use super::redis_projection::{BATCH, Measured};
use crate::report::Figure;

const NAME: &str = "kafka-redis-projection";
const EVENTS: u64 = 1_000_000;
const EVENTS_PER_STREAM: u64 = 10;
const PARTITIONS: u32 = 8;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let events = options.events_or(EVENTS);
    let batch = options.batch_or(BATCH);
    ensure!(batch >= 1, "--batch must be at least 1");
    ensure!(events >= 1, "--events must be at least 1");
    let prefix = format!("bench_kafka_projection_{}", Uuid::now_v7().simple());
    let store_options = KafkaStoreOptions::from_env()
        .with_topic_prefix(&prefix)?
        .with_partitions(PARTITIONS);
    let brokers = store_options.brokers().to_owned();
    let store = KafkaEventStore::connect(store_options).await?;
    let outcome = async {
        let started = std::time::Instant::now();
        let streams = events.div_ceil(EVENTS_PER_STREAM);
        fill(&store, events, streams, "account-f").await?;
        eprintln!(
            "   {events} events appended over {streams} streams and {PARTITIONS} partitions in \
             {:.1} s; batches of {batch}",
            started.elapsed().as_secs_f64()
        );
        let measured = Measured {
            name: NAME,
            events,
            batch,
            rounds: options.rounds,
        };
        measured.run(&store, None).await
    }
    .await;
    delete_store_topics(&brokers, &prefix, &[]).await;
    outcome
}
