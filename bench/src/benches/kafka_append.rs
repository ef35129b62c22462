//! `kafka-append`: one-event commands per second through the whole command path on the Kafka
//! store, at 1, 16 and 64 concurrent handlers, against a raw rdkafka transactional producer
//! per partition committing the same records in transactions of the same size.
//!
//! # What is measured
//!
//! - **Value**: `CommandExecutor::execute` on a `KafkaEventStore` (8 partitions; load the
//!   account, decide, encode, append with the expected version through the partition's
//!   group-commit writer: the events, each stream's head and the commit in one transaction),
//!   in commands/s, once per `--handlers` count. The executor keeps an aggregate cache
//!   (10 000 entries), as in `pg-append-1`.
//! - **Limit**, measured right after each handler count: one bare transactional producer
//!   per partition (`BaseProducer` on a thread of its own), each looping
//!   begin / produce *B* records / serve their delivery reports / commit, where *B* is the store's mean appends per
//!   transaction in the phase just measured (at least 1). The records are the events the
//!   commands wrote: same key, payload and header names and sizes, to a scratch topic with the
//!   same partition count. What Kafka takes for these records in transactions of that size;
//!   the store's extra work (heads records, the version check, the executor) is the gap.
//! - **Diagnostics**: `handlers=N/batch`, the mean appends per transaction.
//!
//! Each of `--rounds` rounds measures every handler count and its limit for `--seconds`
//! each; the medians are reported. The store's topics (`bench_kafka_append_<random>.*`) and
//! the scratch topic are deleted at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use foldline::{CommandExecutor, EventMetadata};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use uuid::Uuid;

use super::Options;
use super::account::{AccountEvent, Encoded, Generations, Handler, OWNER, Rotation};
use crate::counters::{self, COMMAND_CONFLICTS, KAFKA_TRANSACTION_APPENDS};
use crate::report::Figure;
use crate::stats::median;
use crate::timed::{Measured, run_for};

const NAME: &str = "kafka-append";
const PARTITIONS: u32 = 8;
const STREAMS: u32 = 1_000;
const EXECUTOR_CACHE: usize = 10_000;

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    counters::install()?;
    let streams = options.streams_or(STREAMS);
    let handlers = options.handlers.clone();
    anyhow::ensure!(!handlers.is_empty(), "--handlers needs at least one count");
    anyhow::ensure!(
        usize::try_from(streams).is_ok_and(|s| s >= handlers.iter().copied().max().unwrap_or(1)),
        "--streams ({streams}) must be at least the number of handlers"
    );
    let prefix = format!("bench_kafka_append_{}", Uuid::now_v7().simple());
    let store_options = KafkaStoreOptions::from_env()
        .with_topic_prefix(&prefix)?
        .with_partitions(PARTITIONS);
    let brokers = store_options.brokers().to_owned();
    let store = KafkaEventStore::connect(store_options).await?;
    let scratch = format!("{prefix}.raw");
    create_scratch(&brokers, &scratch).await?;
    eprintln!(
        "   Kafka at {brokers}, topics {prefix}.* ({PARTITIONS} partitions); {streams} accounts \
         split over the handlers (no conflicts); limit: {PARTITIONS} transactional producers \
         into {scratch}"
    );
    let mut bench = Bench {
        store,
        brokers,
        scratch,
        streams,
        options,
        generations: Generations::default(),
    };
    let outcome = bench.measure(&handlers).await;
    delete_store_topics(&bench.brokers, &prefix, &[&bench.scratch]).await;
    outcome
}

struct Bench {
    store: KafkaEventStore,
    brokers: String,
    scratch: String,
    streams: u32,
    options: Options,
    generations: Generations,
}

impl Bench {
    async fn measure(&mut self, handlers: &[usize]) -> anyhow::Result<Vec<Figure>> {
        let warmup = self.options.warmup();
        if !warmup.is_zero() {
            let most = handlers.iter().copied().max().unwrap_or(1);
            let (_, batch) = self.commands(most, warmup).await?;
            self.limit(batch, warmup / 2).await?;
        }
        let measured = self.options.measured();
        let mut values = vec![Vec::new(); handlers.len()];
        let mut limits = vec![Vec::new(); handlers.len()];
        let mut batches = vec![Vec::new(); handlers.len()];
        for round in 1..=self.options.rounds.max(1) {
            eprintln!("   round {round}/{}", self.options.rounds);
            for (index, &count) in handlers.iter().enumerate() {
                let (phase, batch) = self.commands(count, measured).await?;
                let limit = self.limit(batch, measured).await?;
                values[index].push(phase.rate());
                limits[index].push(limit);
                batches[index].push(batch);
            }
        }
        let mut figures = Vec::new();
        for (index, count) in handlers.iter().enumerate() {
            figures.push(Figure::against(
                format!("{NAME}/handlers={count}"),
                median(&values[index]),
                median(&limits[index]),
                "commands/s",
            ));
        }
        for (index, count) in handlers.iter().enumerate() {
            figures.push(Figure::alone(
                format!("{NAME}/handlers={count}/batch"),
                median(&batches[index]),
                "appends/transaction",
            ));
        }
        Ok(figures)
    }

    /// `handlers` tasks issuing commands through one executor; the phase and its mean
    /// appends per transaction.
    async fn commands(
        &mut self,
        handlers: usize,
        duration: Duration,
    ) -> anyhow::Result<(Measured, f64)> {
        let generation = self.generations.fresh();
        let executor = CommandExecutor::new(self.store.clone()).with_cache(EXECUTOR_CACHE);
        let workers = (0..handlers)
            .map(|task| {
                Ok(Handler {
                    executor: executor.clone(),
                    rotation: Rotation::with(
                        task,
                        handlers,
                        self.streams,
                        self.options.events_per_stream,
                        generation,
                    )?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (appends, conflicts) = (
            counters::read(KAFKA_TRANSACTION_APPENDS),
            counters::read(COMMAND_CONFLICTS),
        );
        let (measured, _) = run_for(workers, duration).await?;
        let batch = counters::read(KAFKA_TRANSACTION_APPENDS)
            .since(appends)
            .mean();
        eprintln!(
            "   {handlers:>3} handlers: {:>8.0} commands/s, p50 {:.2} ms, p99 {:.2} ms, \
             {batch:.1} appends/transaction, {} conflicts",
            measured.rate(),
            measured.latency_us(50.0) / 1000.0,
            measured.latency_us(99.0) / 1000.0,
            counters::read(COMMAND_CONFLICTS).since(conflicts).count,
        );
        Ok((measured, batch))
    }

    /// The raw limit: a transactional producer per partition committing `batch` records per
    /// transaction for `duration`; records/s.
    async fn limit(&self, batch: f64, duration: Duration) -> anyhow::Result<f64> {
        // A mean batch is a fraction; transactions hold whole records.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let batch = (batch.round() as usize).max(1);
        let record = Arc::new(RawRecord::new()?);
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for partition in 0..PARTITIONS {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &self.brokers)
                .set(
                    "transactional.id",
                    format!("{}.raw.{partition}", self.scratch),
                )
                .set("enable.idempotence", "true")
                .set("transaction.timeout.ms", "10000")
                .set("linger.ms", "1")
                .set("log_level", "3")
                .create()
                .context("creating a raw transactional producer")?;
            let (record, stop, records, topic) = (
                Arc::clone(&record),
                Arc::clone(&stop),
                Arc::clone(&records),
                self.scratch.clone(),
            );
            threads.push(tokio::task::spawn_blocking(move || {
                produce(
                    &producer, &topic, partition, batch, &record, &stop, &records,
                )
            }));
        }
        // Every producer is initialised before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_count = records.load(Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        let done = records.load(Ordering::Relaxed) - start_count;
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.await??;
        }
        // Counts stay far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let rate = done as f64 / elapsed.as_secs_f64();
        eprintln!("       limit: {rate:>8.0} records/s in transactions of {batch}");
        Ok(rate)
    }
}

/// One producer's loop: transactions of `batch` records until `stop`. Each transaction's
/// records are flushed (this thread serving their delivery reports) before the commit.
fn produce(
    producer: &BaseProducer,
    topic: &str,
    partition: u32,
    batch: usize,
    record: &RawRecord,
    stop: &AtomicBool,
    records: &AtomicU64,
) -> anyhow::Result<()> {
    producer.init_transactions(Duration::from_secs(30))?;
    let partition = i32::try_from(partition)?;
    while !stop.load(Ordering::Relaxed) {
        producer.begin_transaction()?;
        for _ in 0..batch {
            let message = BaseRecord::to(topic)
                .partition(partition)
                .key(&record.key)
                .payload(&record.payload)
                .headers(record.headers.clone());
            producer
                .send(message)
                .map_err(|(e, _)| anyhow::anyhow!("producing: {e}"))?;
        }
        // Delivery reports served here, 1 ms at a time, before the commit: rdkafka's own
        // `flush` (which `commit_transaction` calls first) waits in a poll that can outlast
        // the last report by ~100 ms.
        while producer.in_flight_count() > 0 {
            producer.poll(Duration::from_millis(1));
        }
        producer.commit_transaction(Duration::from_secs(30))?;
        records.fetch_add(batch as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// A record like the store's events: a stream id key, the encoded event, the store's header
/// names with values of the same sizes.
struct RawRecord {
    key: String,
    payload: Vec<u8>,
    headers: OwnedHeaders,
}

impl RawRecord {
    fn new() -> anyhow::Result<Self> {
        let encoded = Encoded::of(&AccountEvent::Opened {
            owner: OWNER.to_owned(),
        })?;
        let metadata =
            serde_json::to_string(&EventMetadata::new().with_command_id(Uuid::now_v7()))?;
        let id = Uuid::now_v7().to_string();
        let headers = OwnedHeaders::new()
            .insert(header("foldline.version", "12"))
            .insert(header("foldline.event_id", &id))
            .insert(header("foldline.type", encoded.event_type.as_str()))
            .insert(header("foldline.schema_version", "1"))
            .insert(header("foldline.metadata", &metadata))
            .insert(header("foldline.correlation_id", &id))
            .insert(header("foldline.causation_id", &id));
        Ok(RawRecord {
            key: format!("account-{}", Uuid::now_v7().simple()),
            payload: encoded.payload,
            headers,
        })
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

fn admin(brokers: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "3")
        .create()?)
}

async fn create_scratch(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let partitions = i32::try_from(PARTITIONS)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for result in admin(brokers)?
        .create_topics([&new], &AdminOptions::new())
        .await?
    {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating {topic}: {code}"))?;
    }
    // The new partitions need their leaders before the producers start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Deletes a store's topics under `prefix`, and `extra` topics; says so on stderr when it
/// cannot.
pub(super) async fn delete_store_topics(brokers: &str, prefix: &str, extra: &[&str]) {
    let topics: Vec<String> = ["events", "meta", "heads", "keys", "snapshots"]
        .iter()
        .map(|t| format!("{prefix}.{t}"))
        .chain(extra.iter().map(|t| (*t).to_owned()))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let deleted = match admin(brokers) {
        Ok(admin) => admin
            .delete_topics(&names, &AdminOptions::new())
            .await
            .map(drop)
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    if let Err(error) = deleted {
        eprintln!("   could not delete the benchmark's topics: {error:#}");
    }
}
