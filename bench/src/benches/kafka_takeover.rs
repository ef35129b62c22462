//! `kafka-takeover`: how long a new owner of a partition takes to accept appends, for a
//! partition holding `--events` events (default 1 000 000) over 10 000 streams and over
//! 100 000 streams.
//!
//! # What is measured
//!
//! A store with one partition is filled (100-event appends, or 10-event appends for 100 000
//! streams, from 64 tasks) by a first instance, which then leaves (dropped: it leaves the
//! writers' group at once). The time is from a second instance's `connect` to its first
//! acknowledged append: it joins the writers' group, fences the previous writer
//! (`init_transactions`) and passes the barrier (reads the partition's stream heads, one
//! compacted record per stream, never the events). The process's peak resident memory
//! during the takeover is reported beside it (the whole process: both instances' clients
//! live in it).
//!
//! There is no raw limit: the figure is a time, reported for both stream counts so that its
//! growth with streams (not events) shows. One round per stream count; the topics are deleted
//! at the end.

use std::time::{Duration, Instant};

use foldline::{AppendRequest, EventMetadata, EventStore, ExpectedVersion, StreamId};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use uuid::Uuid;

use super::Options;
use super::account::{AccountEvent, Encoded};
use super::kafka_append::delete_store_topics;
use super::kafka_feed::fill;
use crate::report::Figure;
use crate::rss::{self, Rss};

const NAME: &str = "kafka-takeover";

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    let events = options.events_or(1_000_000);
    let mut figures = Vec::new();
    for streams in [10_000, 100_000] {
        let prefix = format!("bench_kafka_takeover_{}", Uuid::now_v7().simple());
        let store_options = KafkaStoreOptions::from_env()
            .with_topic_prefix(&prefix)?
            .with_partitions(1);
        let brokers = store_options.brokers().to_owned();
        let outcome = takeover(store_options, events, streams).await;
        delete_store_topics(&brokers, &prefix, &[]).await;
        let (seconds, peak) = outcome?;
        figures.push(Figure::alone(
            format!("{NAME}/streams={streams}"),
            seconds,
            "seconds",
        ));
        if let Some(peak) = peak {
            figures.push(Figure::alone(
                format!("{NAME}/streams={streams}/peak-rss"),
                rss::mib(peak),
                "MiB",
            ));
        }
    }
    Ok(figures)
}

/// Fills a one-partition store, hands it over: seconds until the new owner's first append,
/// and the process's peak resident memory meanwhile.
async fn takeover(
    options: KafkaStoreOptions,
    events: u64,
    streams: u64,
) -> anyhow::Result<(f64, Option<u64>)> {
    let first = KafkaEventStore::connect(options.clone()).await?;
    let started = Instant::now();
    fill(&first, events, streams, "takeover-").await?;
    eprintln!(
        "   {events} events over {streams} streams in one partition, appended in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(first);
    // The first instance's group membership ends as it leaves; give the broker a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let before = Rss::read();
    let peak_reset = rss::reset_peak();
    let started = Instant::now();
    let second = KafkaEventStore::connect(options).await?;
    let encoded = Encoded::of(&AccountEvent::Deposited { cents: 1 })?;
    let request = AppendRequest::new(
        StreamId::new("takeover-0")?,
        ExpectedVersion::Any,
        vec![encoded.event(&EventMetadata::new())],
    );
    second.append(request).await?;
    let seconds = started.elapsed().as_secs_f64();
    let after = Rss::read();
    let peak = after.filter(|_| peak_reset).map(|r| r.peak);
    eprintln!(
        "   {streams} streams: the new owner accepted its first append after {seconds:.2} s; \
         resident {:.1} MiB before, {:.1} MiB after{}",
        before.map_or(0.0, |r| rss::mib(r.now)),
        after.map_or(0.0, |r| rss::mib(r.now)),
        peak.map_or_else(String::new, |p| format!(", peak {:.1} MiB", rss::mib(p)))
    );
    Ok((seconds, peak))
}
