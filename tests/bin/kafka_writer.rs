//! A Kafka store writer in a process of its own, for the tests that freeze it (SIGSTOP) or
//! kill it (SIGKILL) mid-append: `--tasks` tasks, each appending `--appends` one-event appends
//! with idempotency keys `<task>-<n>` to streams `stream-<n mod --streams>`, retrying transient
//! errors. Prints `ack <key> <stream> <version>` for each acknowledged append and
//! `refused <key> <error kind>` for each retryable refusal (with `--skip-refused`, a key
//! refused as `NotOwner` is given up), then `done`. With
//! `KAFKA_WRITER_VERBOSE` set, each refusal's message goes to stderr.

// A test process whose output is its report to the test.
#![allow(clippy::print_stderr)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use foldline::{BackendErrorKind, Error, EventStore, StreamId};
use foldline_kafka::{KafkaEventStore, KafkaStoreOptions};
use foldline_tests::keyed;

#[derive(Parser)]
struct Args {
    /// Bootstrap brokers.
    #[arg(long)]
    brokers: String,
    /// The store's topic prefix.
    #[arg(long)]
    prefix: String,
    /// The instance's static member id in the writers' group.
    #[arg(long)]
    member_id: Option<String>,
    /// The writers' group session timeout, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    session_ms: u64,
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// Appends per task.
    #[arg(long)]
    appends: usize,
    /// Streams the appends spread over.
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Prefix of the keys (so two writers' keys differ).
    #[arg(long, default_value = "w")]
    key_prefix: String,
    /// Stop after this many milliseconds: no new append, a refused one given up, then the
    /// store is dropped (leaving the writers' group) and the process exits 0.
    #[arg(long)]
    run_ms: Option<u64>,
    /// Give an append refused as `NotOwner` up and go on with the next key (the refused one
    /// is never sent again), instead of retrying it until the partition comes back.
    #[arg(long)]
    skip_refused: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut options = KafkaStoreOptions::from_brokers(&args.brokers)
        .with_topic_prefix(&args.prefix)?
        .with_session_timeout(Duration::from_millis(args.session_ms));
    if let Some(id) = &args.member_id {
        options = options.with_member_id(id)?;
    }
    let store = KafkaEventStore::connect(options).await?;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let deadline = args
        .run_ms
        .map(|ms| std::time::Instant::now() + Duration::from_millis(ms));
    let mut tasks = Vec::new();
    for task in 0..args.tasks {
        let (store, out) = (store.clone(), Arc::clone(&out));
        let (appends, streams, key_prefix) = (args.appends, args.streams, args.key_prefix.clone());
        let skip_refused = args.skip_refused;
        tasks.push(tokio::spawn(async move {
            for n in 0..appends {
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    break;
                }
                let key = format!("{key_prefix}{task}-{n}");
                let stream = StreamId::new(format!("stream-{}", (task + n) % streams))?;
                append_until_done(&store, &stream, &key, &out, deadline, skip_refused).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    say(&out, "done");
    // Leaves the writers' group now: the partitions go to the other instances at once.
    drop(store);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// Appends the event of `key`, retrying transient errors until it is acknowledged (or the
/// deadline passes: then it is given up).
async fn append_until_done(
    store: &KafkaEventStore,
    stream: &StreamId,
    key: &str,
    out: &Mutex<std::io::Stdout>,
    deadline: Option<std::time::Instant>,
    skip_refused: bool,
) -> anyhow::Result<()> {
    loop {
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Ok(());
        }
        let request = keyed::keyed_append(stream, key)?;
        match store.append(request).await {
            Ok(result) => {
                say(
                    out,
                    &format!("ack {key} {stream} {}", result.current_version.get()),
                );
                return Ok(());
            }
            Err(Error::Backend(error)) if error.is_transient() => {
                say(out, &format!("refused {key} {:?}", error.kind()));
                if std::env::var_os("KAFKA_WRITER_VERBOSE").is_some() {
                    eprintln!("refused {key}: {}", foldline::error_chain(&error, ": "));
                }
                if skip_refused && error.kind() == BackendErrorKind::NotOwner {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

fn say(out: &Mutex<std::io::Stdout>, line: &str) {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
