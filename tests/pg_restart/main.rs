//! PostgreSQL restarted (through the project's own script) while writers append and a
//! subscriber follows the feed. One test, alone in its binary: the restart drops every
//! connection to the server.
//!
//! The restart is `scripts/postgres.sh stop`, then — once every writer and the subscriber have
//! run into the stopped server — `scripts/postgres.sh start`, so the outage is certain to be
//! seen however fast the machine is.
//!
//! Writers retry transient errors. An append that fails at commit has an unknown outcome, so
//! every append carries an idempotency key and is retried with the same key and content (but a
//! fresh event id): the retry writes it or replays the first result, and the test checks
//! exactly-once by content. The subscriber, as a projector would, resubscribes from the last
//! checkpoint it processed whenever its subscription ends with an error.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldline::{
    AppendRequest, Checkpoint, EventStore, EventType, ExpectedVersion, IdempotencyKey, NewEvent,
    RecordedEvent, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::test_schema;
use serde::Deserialize;
use tokio::sync::watch;

const WRITERS: usize = 4;
/// Appends each writer completes before the server is stopped, and after it is back.
const BEFORE: u64 = 25;
const AFTER: u64 = 25;
const EVENT_TYPE: EventType = EventType::from_static("test.Restart");
/// How long the whole test may wait for anything (the restart, a catch-up).
const WAIT: Duration = Duration::from_secs(90);
/// Pause between retries while the server is down.
const RETRY: Duration = Duration::from_millis(50);

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
struct Written {
    writer: usize,
    seq: u64,
}

fn content(event: &RecordedEvent) -> Written {
    serde_json::from_slice(&event.payload).expect("a writer's payload")
}

/// What a writer did.
#[derive(Debug, Default, Clone, Copy)]
struct WriterReport {
    appended: u64,
    transient_errors: u64,
    replays: u64,
}

/// Where the writers are, for the test to wait on.
type Progress = watch::Sender<Vec<WriterReport>>;

/// Appends `{writer, seq}` for seq = 0, 1, 2... until it has done [`AFTER`] appends after the
/// server came back, each with key `w<writer>-<seq>`, retrying transient errors.
async fn writer(
    store: PgEventStore,
    writer: usize,
    progress: Arc<Progress>,
    mut back: watch::Receiver<bool>,
) -> WriterReport {
    let stream = StreamId::new(format!("restart-{}", writer % 2)).expect("stream id");
    let mut after = 0;
    let mut seq = 0_u64;
    while after < AFTER {
        let key = IdempotencyKey::new(format!("w{writer}-{seq}")).expect("key");
        let payload = serde_json::json!({ "writer": writer, "seq": seq });
        loop {
            // The same content under the same key, with a fresh event id: were the first
            // attempt committed and the retry written again, the duplicate would show.
            let event = NewEvent::new(EVENT_TYPE, 1, payload.to_string().into_bytes());
            let request = AppendRequest::new(stream.clone(), ExpectedVersion::Any, vec![event])
                .with_idempotency_key(key.clone());
            match store.append(request).await {
                Ok(result) => {
                    progress.send_modify(|p| p[writer].replays += u64::from(result.replayed));
                    break;
                }
                Err(error) if error.is_transient() => {
                    progress.send_modify(|p| p[writer].transient_errors += 1);
                    tokio::time::sleep(RETRY).await;
                }
                Err(error) => panic!(
                    "writer {writer}, append {seq}: a non-transient error while the server \
                     restarted: {error:?}"
                ),
            }
        }
        seq += 1;
        progress.send_modify(|p| p[writer].appended += 1);
        if *back.borrow_and_update() {
            after += 1;
        }
        // Keep appends spread out rather than all before the restart.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    progress.borrow()[writer]
}

/// What the subscriber did.
#[derive(Debug, Default)]
struct SubscriberLog {
    events: Vec<RecordedEvent>,
    checkpoint: Checkpoint,
    subscriptions: u64,
    errors: Vec<String>,
}

/// Follows the feed from the start; when a subscription fails, resubscribes from the checkpoint
/// of the last batch it processed, as a projector does.
async fn subscriber(store: PgEventStore, log: watch::Sender<SubscriberLog>) {
    loop {
        let after = log.borrow().checkpoint.clone();
        let mut subscription = match store.subscribe(after).await {
            Ok(subscription) => subscription,
            Err(error) => {
                assert!(error.is_transient(), "subscribe failed for good: {error:?}");
                log.send_modify(|log| log.errors.push(format!("subscribe: {error}")));
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        log.send_modify(|log| log.subscriptions += 1);
        loop {
            match subscription.next().await {
                Some(Ok(batch)) => log.send_modify(|log| {
                    log.checkpoint = batch.checkpoint.clone();
                    log.events.extend(batch.events);
                }),
                Some(Err(error)) => {
                    assert!(
                        error.is_transient(),
                        "the subscription failed with a non-transient error: {error:?}"
                    );
                    log.send_modify(|log| log.errors.push(format!("subscription: {error}")));
                    break;
                }
                None => {
                    log.send_modify(|log| log.errors.push("subscription ended".into()));
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh")
}

/// Runs `scripts/postgres.sh <command>`.
async fn postgres_script(command: &'static str) {
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(script())
            .arg(command)
            .status()
    })
    .await
    .expect("the script's thread")
    .unwrap_or_else(|e| panic!("cannot run scripts/postgres.sh: {e}"));
    assert!(
        status.success(),
        "`scripts/postgres.sh {command}` failed: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(
    clippy::print_stderr,
    reason = "what the restart did is part of the test's report"
)]
async fn subscriber_resumes_without_gap_or_duplicate_after_a_restart() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let (log_tx, mut log) = watch::channel(SubscriberLog::default());
    let follower = tokio::spawn(subscriber(store.clone(), log_tx));

    let progress = Arc::new(watch::channel(vec![WriterReport::default(); WRITERS]).0);
    let mut watching = progress.subscribe();
    let (back_tx, back) = watch::channel(false);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        writers.push(tokio::spawn(writer(
            store.clone(),
            w,
            progress.clone(),
            back.clone(),
        )));
    }

    // Stop the server once the writers are well under way...
    tokio::time::timeout(
        WAIT,
        watching.wait_for(|p| p.iter().all(|w| w.appended >= BEFORE)),
    )
    .await
    .expect("the writers made no progress")?;
    let stopped = Instant::now();
    postgres_script("stop").await;
    // ...and start it again once every writer and the subscriber have run into it.
    let outage_seen = tokio::time::timeout(WAIT, async {
        watching
            .wait_for(|p| p.iter().all(|w| w.transient_errors > 0))
            .await
            .map(drop)?;
        log.wait_for(|l| !l.errors.is_empty()).await.map(drop)
    })
    .await;
    postgres_script("start").await;
    let down_for = stopped.elapsed();
    if !matches!(outage_seen, Ok(Ok(()))) {
        // A writer that failed for good says why; otherwise the outage went unnoticed.
        for w in &mut writers {
            if w.is_finished() {
                (&mut *w).await?;
            }
        }
        panic!(
            "after {WAIT:?} down, not every writer and the subscriber had noticed: {:?}, \
             subscriber errors {:?}",
            progress.borrow(),
            log.borrow().errors
        );
    }
    back_tx.send_replace(true);

    let mut reports = Vec::new();
    for w in writers {
        reports.push(tokio::time::timeout(WAIT, w).await??);
    }
    let appended: u64 = reports.iter().map(|r| r.appended).sum();

    // The truth: the whole feed, read afresh. Each writer's appends are there once each, by
    // content, with no hole in a writer's sequence.
    let mut truth = Vec::new();
    let mut checkpoint = Checkpoint::START;
    loop {
        let batch = store.read_all(&checkpoint, 500).await?;
        if batch.is_empty() {
            break;
        }
        checkpoint = batch.checkpoint.clone();
        truth.extend(batch.events);
    }
    let mut by_writer: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for event in &truth {
        let written = content(event);
        by_writer
            .entry(written.writer)
            .or_default()
            .push(written.seq);
    }
    for (w, report) in (0..).zip(&reports) {
        let mut seqs = by_writer.remove(&w).unwrap_or_default();
        seqs.sort_unstable();
        let expected: Vec<u64> = (0..report.appended).collect();
        assert_eq!(
            seqs, expected,
            "writer {w}: its appends are not in the store exactly once each"
        );
    }
    assert!(
        by_writer.is_empty(),
        "events from unknown writers: {by_writer:?}"
    );

    // The subscriber, across its resubscriptions, got exactly the same events in the same order.
    let ids: Vec<_> = truth.iter().map(|e| e.event_id).collect();
    let caught_up = tokio::time::timeout(WAIT, log.wait_for(|l| l.events.len() >= ids.len()))
        .await
        .is_ok();
    let log = log.borrow();
    assert!(
        caught_up,
        "the subscriber has {} of {} events after {WAIT:?} (errors: {:?})",
        log.events.len(),
        ids.len(),
        log.errors
    );
    let seen: Vec<_> = log.events.iter().map(|e| e.event_id).collect();
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "the subscriber got an event twice"
    );
    assert_eq!(seen, ids, "the subscriber's events differ from the feed");

    let transient: u64 = reports.iter().map(|r| r.transient_errors).sum();
    let replays: u64 = reports.iter().map(|r| r.replays).sum();
    eprintln!(
        "pg_restart: server down for {down_for:.1?}; {appended} appends, {transient} transient \
         errors retried, {replays} retries replayed an append that had committed; the \
         subscriber subscribed {} times, after {} errors (first: {:?})",
        log.subscriptions,
        log.errors.len(),
        log.errors.first()
    );
    drop(log);
    follower.abort();
    Ok(())
}
