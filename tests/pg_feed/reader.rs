//! Readers of the global feed that check every batch as it arrives: a subscriber, a `read_all`
//! poller, and — to prove the tests really commit out of order — a naive reader that trusts
//! positions alone.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use foldline::{Checkpoint, EventBatch, EventStore, Position, RecordedEvent, StreamId, Version};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::{raw_client, table};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a reader may take to deliver what was committed before a test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// What one reader was delivered, in delivery order, and the first rule it saw broken.
#[derive(Debug, Default)]
pub(crate) struct FeedLog {
    /// Every event delivered, in order.
    pub(crate) events: Vec<RecordedEvent>,
    /// The checkpoint of the last batch.
    pub(crate) checkpoint: Checkpoint,
    /// The first broken rule (a repeat, a skip in a stream, a step back), or the reader's error.
    pub(crate) violation: Option<String>,
    ids: HashSet<Uuid>,
    versions: HashMap<StreamId, Version>,
    last: Option<Position>,
}

fn key(position: &Position) -> (u32, u64, u64) {
    (position.partition(), position.major(), position.minor())
}

impl FeedLog {
    /// Takes in one batch, checking that:
    /// - no event is delivered twice;
    /// - events come in strictly increasing store order, after the previous checkpoint;
    /// - each stream's versions arrive as 1, 2, 3... (nothing skipped, nothing repeated);
    /// - the batch's checkpoint covers its events and never moves back.
    fn take(&mut self, batch: EventBatch) {
        for event in &batch.events {
            let problem = if !self.ids.insert(event.event_id) {
                Some("delivered twice".to_owned())
            } else if self.checkpoint.covers(&event.position) {
                Some(format!("at or behind the checkpoint {}", self.checkpoint))
            } else if let Some(last) = self.last.filter(|l| key(&event.position) <= key(l)) {
                Some(format!("not after the previous event at {last}"))
            } else {
                let version = self.versions.entry(event.stream_id.clone()).or_default();
                let expected = version.next();
                *version = event.stream_version;
                (event.stream_version != expected).then(|| format!("expected version {expected}"))
            };
            if let Some(problem) = problem {
                self.violate(format!(
                    "event {} ({}@{} at {}) {problem}",
                    event.event_id, event.stream_id, event.stream_version, event.position
                ));
            }
            self.last = Some(event.position);
            if !batch.checkpoint.covers(&event.position) {
                self.violate(format!(
                    "batch checkpoint {} does not cover its event at {}",
                    batch.checkpoint, event.position
                ));
            }
        }
        if !batch.checkpoint.covers_checkpoint(&self.checkpoint) {
            self.violate(format!(
                "checkpoint moved back from {} to {}",
                self.checkpoint, batch.checkpoint
            ));
        }
        self.checkpoint = batch.checkpoint;
        self.events.extend(batch.events);
    }

    fn violate(&mut self, problem: String) {
        self.violation.get_or_insert(problem);
    }

    /// Whether every id in `ids` was delivered.
    pub(crate) fn has_all(&self, ids: &HashSet<Uuid>) -> bool {
        ids.iter().all(|id| self.ids.contains(id))
    }

    /// The delivered event ids, in order.
    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.events.iter().map(|e| e.event_id).collect()
    }
}

/// A task reading the feed into a [`FeedLog`]; aborted when dropped.
pub(crate) struct Reader {
    name: &'static str,
    log: watch::Receiver<FeedLog>,
    task: JoinHandle<()>,
}

impl Reader {
    /// A subscriber from `after`: `store.subscribe`, batch by batch. Any error is a violation
    /// (nothing in these tests should fail a subscription).
    pub(crate) async fn subscriber(store: &PgEventStore, after: Checkpoint) -> Self {
        let (tx, log) = watch::channel(FeedLog {
            checkpoint: after.clone(),
            ..FeedLog::default()
        });
        let mut subscription = store
            .subscribe(after)
            .await
            .unwrap_or_else(|e| panic!("cannot subscribe: {e:?}"));
        let task = tokio::spawn(async move {
            while let Some(item) = subscription.next().await {
                match item {
                    Ok(batch) => tx.send_modify(|log| log.take(batch)),
                    Err(error) => {
                        tx.send_modify(|log| {
                            log.violate(format!("subscription failed: {error:?}"))
                        });
                        return;
                    }
                }
            }
            tx.send_modify(|log| log.violate("the subscription ended".into()));
        });
        Reader {
            name: "subscriber",
            log,
            task,
        }
    }

    /// A poller calling `read_all` in batches of `limit` from the start, pausing briefly when
    /// it is caught up.
    pub(crate) fn poller(store: PgEventStore, limit: usize) -> Self {
        let (tx, log) = watch::channel(FeedLog::default());
        let task = tokio::spawn(async move {
            let mut checkpoint = Checkpoint::START;
            loop {
                match store.read_all(&checkpoint, limit).await {
                    Ok(batch) if batch.is_empty() => {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    Ok(batch) => {
                        checkpoint = batch.checkpoint.clone();
                        tx.send_modify(|log| log.take(batch));
                    }
                    Err(error) => {
                        tx.send_modify(|log| log.violate(format!("read_all failed: {error:?}")));
                        return;
                    }
                }
            }
        });
        Reader {
            name: "read_all poller",
            log,
            task,
        }
    }

    /// Waits until every id in `ids` was delivered.
    ///
    /// # Panics
    ///
    /// When the reader broke a rule, failed, or missed an id for [`WAIT`]; `context` says where.
    pub(crate) async fn wait_for_all(&mut self, ids: &HashSet<Uuid>, context: &str) {
        let name = self.name;
        let timed_out = match tokio::time::timeout(
            WAIT,
            self.log
                .wait_for(|log| log.violation.is_some() || log.has_all(ids)),
        )
        .await
        {
            Ok(Ok(_)) => false,
            Ok(Err(_)) => panic!("{context}: the {name} task died"),
            Err(_) => true,
        };
        let violation = self.log.borrow().violation.clone();
        let violation = violation.or_else(|| timed_out.then(|| self.missing(ids)));
        if let Some(violation) = violation {
            panic!("{context}: the {name} broke the feed's contract: {violation}");
        }
    }

    fn missing(&self, ids: &HashSet<Uuid>) -> String {
        let log = self.log.borrow();
        let missing: Vec<&Uuid> = ids.iter().filter(|id| !log.ids.contains(id)).collect();
        let mut message = format!(
            "after {WAIT:?} it still misses {} of {} events (checkpoint {}), e.g.",
            missing.len(),
            ids.len(),
            log.checkpoint
        );
        for id in missing.iter().take(5) {
            let _ = write!(message, " {id}");
        }
        message
    }

    /// Whether the reader gets any event beyond the first `count` within `window`: for checks
    /// that something is *not* delivered, which can only be watched for a while.
    pub(crate) async fn delivers_more_than(&mut self, count: usize, window: Duration) -> bool {
        tokio::time::timeout(
            window,
            self.log
                .wait_for(|log| log.violation.is_some() || log.events.len() > count),
        )
        .await
        .is_ok()
    }

    /// What the reader has been delivered so far.
    pub(crate) fn log(&self) -> watch::Ref<'_, FeedLog> {
        self.log.borrow()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The reader the gap problem is about: `WHERE position > last ORDER BY position`, with no
/// regard for transactions still in flight. It skips every event whose position was allocated
/// before, but committed after, an event it already read.
pub(crate) struct NaiveReader {
    seen: watch::Receiver<Naive>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Naive {
    last: u64,
    ids: HashSet<Uuid>,
}

impl NaiveReader {
    /// Starts polling `schema`'s events table on a raw connection of its own.
    pub(crate) async fn start(schema: &foldline::SchemaName) -> Self {
        let client = raw_client().await;
        let sql = format!(
            "SELECT position, event_id FROM {} WHERE position > $1 ORDER BY position LIMIT 500",
            table(schema, "events")
        );
        let (tx, seen) = watch::channel(Naive::default());
        let task = tokio::spawn(async move {
            let mut last = 0_i64;
            loop {
                let Ok(rows) = client.query(&sql, &[&last]).await else {
                    return;
                };
                if rows.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                tx.send_modify(|naive| {
                    for row in &rows {
                        last = row.get(0);
                        naive.ids.insert(row.get::<_, Uuid>(1));
                    }
                    naive.last = last.cast_unsigned();
                });
            }
        });
        NaiveReader { seen, task }
    }

    /// How many of `events` the naive reader has passed without seeing them (positions are
    /// the `minor` part of a PostgreSQL [`Position`]).
    pub(crate) fn skipped(&self, events: &[RecordedEvent]) -> usize {
        let naive = self.seen.borrow();
        events
            .iter()
            .filter(|e| e.position.minor() <= naive.last && !naive.ids.contains(&e.event_id))
            .count()
    }
}

impl Drop for NaiveReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The whole feed from the start, read with `read_all` in batches of `limit`.
///
/// # Panics
///
/// When a read fails or the feed breaks a rule [`FeedLog`] checks.
pub(crate) async fn read_everything(store: &PgEventStore, limit: usize) -> FeedLog {
    let mut log = FeedLog::default();
    loop {
        let batch = store
            .read_all(&log.checkpoint, limit)
            .await
            .unwrap_or_else(|e| panic!("read_all failed: {e:?}"));
        if batch.is_empty() {
            break;
        }
        log.take(batch);
    }
    if let Some(violation) = &log.violation {
        panic!("a full read of the feed broke its contract: {violation}");
    }
    log
}
