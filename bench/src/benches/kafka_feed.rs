//! `kafka-feed`: events per second reading a Kafka store's whole feed through `read_all`,
//! against a raw `read_committed` consumer of the same topic.
//!
//! # What is measured
//!
//! - **Value**: `EventStore::read_all` from the start in pages of `--batch` events (default
//!   1000) until a page comes back empty, every event decoded into a `RecordedEvent` (headers
//!   parsed) and the checkpoint advanced.
//! - **Limit**: one bare `BaseConsumer` (`isolation.level=read_committed`), assigned every
//!   partition of the events topic from offset 0, polled until each partition reports its end,
//!   touching each record's key, payload and headers.
//!
//! The feed: `--events` events (default 1 000 000) over 10 000 streams and 8 partitions,
//! appended 100 per `EventStore::append` by 64 tasks ([`fill`]). Rounds alternate value and limit; the
//! medians are reported. The topics are deleted at the end.

use std::time::{Duration, Instant};

use anyhow::Context;
use foldline::{AppendRequest, Checkpoint, EventMetadata, EventStore, ExpectedVersion, StreamId};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use uuid::Uuid;

use super::Options;
use super::account::{AccountEvent, CENTS, Encoded, OWNER};
use super::kafka_append::delete_store_topics;
use crate::report::Figure;
use crate::stats::{median, per_second};

const NAME: &str = "kafka-feed";
const PARTITIONS: u32 = 8;
const STREAMS: u64 = 10_000;
const PER_APPEND: u64 = 100;
const WRITERS: u64 = 64;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    let events = options.events_or(1_000_000);
    let batch = options.batch_or(1000);
    let prefix = format!("bench_kafka_feed_{}", Uuid::now_v7().simple());
    let store_options = KafkaStoreOptions::from_env()
        .with_topic_prefix(&prefix)?
        .with_partitions(PARTITIONS);
    let brokers = store_options.brokers().to_owned();
    let store = KafkaEventStore::connect(store_options).await?;
    let outcome = measure(&store, &brokers, events, batch, &options).await;
    delete_store_topics(&brokers, &prefix, &[]).await;
    outcome
}

async fn measure(
    store: &KafkaEventStore,
    brokers: &str,
    events: u64,
    batch: usize,
    options: &Options,
) -> anyhow::Result<Vec<Figure>> {
    let started = Instant::now();
    fill(store, events, STREAMS, "feed-").await?;
    eprintln!(
        "   {events} events appended over {STREAMS} streams and {PARTITIONS} partitions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut values = Vec::new();
    let mut limits = Vec::new();
    for round in 1..=options.rounds.max(1) {
        let (read, elapsed) = read_all(store, batch).await?;
        anyhow::ensure!(read == events, "read_all read {read} of {events} events");
        let value = per_second(read, elapsed);
        let topic = store.events_topic().to_owned();
        let brokers = brokers.to_owned();
        let (raw, raw_elapsed) =
            tokio::task::spawn_blocking(move || raw_consume(&brokers, &topic)).await??;
        anyhow::ensure!(
            raw == events,
            "the raw consumer read {raw} of {events} records"
        );
        let limit = per_second(raw, raw_elapsed);
        eprintln!(
            "   round {round}: read_all {value:>9.0} events/s ({:.1} s), raw consumer \
             {limit:>9.0} records/s ({:.1} s)",
            elapsed.as_secs_f64(),
            raw_elapsed.as_secs_f64()
        );
        values.push(value);
        limits.push(limit);
    }
    Ok(vec![Figure::against(
        format!("{NAME}/batch={batch}"),
        median(&values),
        median(&limits),
        "events/s",
    )])
}

/// Appends `events` events over `streams` streams named `<stream_prefix><n>`, `events /
/// streams` per append (1 to 100), from 64 tasks: accounts as in PostgreSQL's bench feed,
/// each stream's first event `Opened`, the rest `Deposited`.
pub(super) async fn fill(
    store: &KafkaEventStore,
    events: u64,
    streams: u64,
    stream_prefix: &str,
) -> anyhow::Result<()> {
    let per_append = (events / streams.max(1)).clamp(1, PER_APPEND);
    let appends = events.div_ceil(per_append);
    let opened = Encoded::of(&AccountEvent::Opened {
        owner: OWNER.to_owned(),
    })?;
    let deposited = Encoded::of(&AccountEvent::Deposited { cents: CENTS })?;
    let metadata = EventMetadata::new().with_command_id(Uuid::now_v7());
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (store, opened, deposited, metadata) = (
            store.clone(),
            opened.clone(),
            deposited.clone(),
            metadata.clone(),
        );
        let stream_prefix = stream_prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut n = writer;
            while n < appends {
                let count = per_append.min(events - n * per_append);
                let request = AppendRequest::new(
                    StreamId::new(format!("{stream_prefix}{}", n % streams))?,
                    ExpectedVersion::Any,
                    // A stream's first append opens the account, as in PostgreSQL's feed.
                    (0..count)
                        .map(|i| {
                            let first = n < streams && i == 0;
                            if first { &opened } else { &deposited }.event(&metadata)
                        })
                        .collect(),
                );
                store.append(request).await?;
                n += WRITERS;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Reads the whole feed in pages of `batch`: how many events, how long.
async fn read_all(store: &KafkaEventStore, batch: usize) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut checkpoint = Checkpoint::START;
    let mut read = 0;
    loop {
        let page = store.read_all(&checkpoint, batch).await?;
        if page.events.is_empty() {
            break;
        }
        read += page.events.len() as u64;
        checkpoint = page.checkpoint;
    }
    Ok((read, started.elapsed()))
}

/// Reads every partition of `topic` from offset 0 to its end with a bare `read_committed`
/// consumer: how many records, how long.
fn raw_consume(brokers: &str, topic: &str) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-raw")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("log_level", "3")
        .create()
        .context("creating the raw consumer")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..i32::try_from(PARTITIONS)? {
        assignment.add_partition_offset(topic, partition, Offset::Offset(0))?;
    }
    consumer.assign(&assignment)?;
    let mut open = PARTITIONS;
    let mut records = 0_u64;
    let mut touched = 0_usize;
    while open > 0 {
        match consumer.poll(Duration::from_secs(10)) {
            None => anyhow::bail!("the raw consumer got nothing for 10 s"),
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(message)) => {
                records += 1;
                touched += message.key().map_or(0, <[u8]>::len)
                    + message.payload().map_or(0, <[u8]>::len)
                    + message.headers().map_or(0, |h| h.count());
            }
        }
    }
    std::hint::black_box(touched);
    Ok((records, started.elapsed()))
}
