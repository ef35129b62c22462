//! A projection built to catch doubled or lost effects: every `Counted` event adds to
//! counters, so a replayed or skipped event shows up as a wrong total. Used by the projector
//! tests on every target.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use foldline::testing::KeyValueWrites;
use foldline::{
    AppendResult, DomainEvent, Envelope, EventStore, EventStoreExt, ExpectedVersion, Projection,
    ProjectionName, StreamId,
};
use serde::{Deserialize, Serialize};

/// The events the tally projection reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
pub enum TallyEvent {
    /// Adds `amount` to the totals.
    Counted {
        /// How much.
        amount: u64,
    },
    /// The handler refuses it while the projection's failure budget lasts (or forever).
    Poison {
        /// Why it is bad.
        note: String,
    },
}

/// An event type of another aggregate: the tally projection skips it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
pub enum OtherEvent {
    /// Not the tally's business.
    Unrelated {
        /// Anything.
        text: String,
    },
}

/// Sums `Counted` amounts into a [`KeyValueWrites`] model: `total`, `events`, and
/// `stream:<id>` (events per stream), plus `version:<id>` (the last version seen).
/// `VERSION` is a const parameter, so tests can bump it for blue/green rebuilds.
#[derive(Debug, Clone, Default)]
pub struct Tally<const VERSION: u32 = 1> {
    /// How many more times `Poison` events fail; `u32::MAX` means forever.
    pub poison_failures: Arc<AtomicU32>,
}

impl<const VERSION: u32> Tally<VERSION> {
    /// A tally whose `Poison` events always fail.
    pub fn strict() -> Self {
        Tally {
            poison_failures: Arc::new(AtomicU32::new(u32::MAX)),
        }
    }

    /// A tally whose `Poison` events fail `times` times, then pass.
    pub fn failing(times: u32) -> Self {
        Tally {
            poison_failures: Arc::new(AtomicU32::new(times)),
        }
    }

    /// Whether a `Poison` event fails now (and uses up one failure).
    pub fn poison_fails(&self) -> bool {
        self.poison_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                0 => None,
                u32::MAX => Some(u32::MAX),
                n => Some(n - 1),
            })
            .is_ok()
    }
}

impl<const VERSION: u32> Projection for Tally<VERSION> {
    const NAME: ProjectionName = ProjectionName::from_static("tally");
    const VERSION: u32 = VERSION;
    type Event = TallyEvent;
    type Writes = KeyValueWrites;

    fn handle(
        &self,
        event: Envelope<'_, TallyEvent>,
        writes: &mut KeyValueWrites,
    ) -> Result<(), foldline::BoxError> {
        let stream = event.recorded.stream_id.as_str();
        match &event.event {
            TallyEvent::Counted { amount } => {
                // Partial writes first: the runtime must discard them when a later line fails.
                writes.add("total", *amount * u64::from(VERSION));
                writes.add("events", 1);
                writes.add(format!("stream:{stream}"), 1);
                writes.put(
                    format!("version:{stream}"),
                    event.recorded.stream_version.get(),
                );
            }
            TallyEvent::Poison { note } => {
                writes.add("events", 1);
                if self.poison_fails() {
                    return Err(format!("refusing poison event: {note}").into());
                }
                writes.add("healed", 1);
            }
        }
        Ok(())
    }
}

/// Appends `events` (the tally's, or any other aggregate's) to `stream` (any version), waits
/// until the store's feed shows them and returns the append's result.
pub async fn append<S: EventStore, E: DomainEvent>(
    store: &S,
    stream: &str,
    events: &[E],
) -> anyhow::Result<AppendResult> {
    let appended = store
        .append_events(StreamId::new(stream)?, ExpectedVersion::Any, events)
        .await?;
    settled(store, appended).await
}

/// Waits until `store`'s feed shows `appended`. A PostgreSQL feed stops short of every
/// transaction still open on the server, another test's append in another schema included, so
/// a returned append can show in `head` (and to a catch-up) a moment later; tests that compare a
/// read model with what they appended wait for it first.
async fn settled<S: EventStore>(store: &S, appended: AppendResult) -> anyhow::Result<AppendResult> {
    let Some(position) = &appended.position else {
        return Ok(appended);
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.head().await?.covers(position) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the feed did not show the append at {position} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(appended)
}

/// Appends one unrelated event (another aggregate's) to `stream`.
pub async fn append_other<S: EventStore>(store: &S, stream: &str) -> anyhow::Result<AppendResult> {
    append(store, stream, &[OtherEvent::Unrelated { text: "x".into() }]).await
}

/// `n` `Counted` events of amounts 1..=n.
pub fn counted(n: u64) -> Vec<TallyEvent> {
    (1..=n)
        .map(|amount| TallyEvent::Counted { amount })
        .collect()
}

/// The tally for Redis: `events` and `total` counters (`INCRBY`), per stream a hash `stream:<id>`
/// with `count` (`HINCRBY`) and `version` (`HSET`), and the set `streams`. A doubled event
/// shows in `events`, a lost one too. Version `V` multiplies `total` by `V`, so a reader can
/// tell the versions apart during a blue/green rebuild.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisTally<const V: u32 = 1>;

impl<const V: u32> Projection for RedisTally<V> {
    const NAME: ProjectionName = ProjectionName::from_static("tally");
    const VERSION: u32 = V;
    type Event = TallyEvent;
    type Writes = foldline_redis::RedisWrites;

    fn handle(
        &self,
        event: Envelope<'_, TallyEvent>,
        writes: &mut foldline_redis::RedisWrites,
    ) -> Result<(), foldline::BoxError> {
        let TallyEvent::Counted { amount } = &event.event else {
            return Err("the Redis tally reads no poison events".into());
        };
        let stream = event.recorded.stream_id.as_str();
        let version = event.recorded.stream_version.get();
        writes
            .incr_by("events", 1)
            .incr_by("total", i64::try_from(*amount * u64::from(V))?)
            .hincr_by(format!("stream:{stream}"), "count", 1)
            .hset(format!("stream:{stream}"), "version", version.to_string())
            .sadd("streams", stream);
        Ok(())
    }
}

/// The Redis tally's `events` counter in the active slot.
///
/// # Errors
///
/// When Redis fails.
pub async fn redis_events(target: &foldline_redis::RedisTarget) -> anyhow::Result<Option<u64>> {
    let events = target
        .reader()
        .read(
            &<RedisTally as Projection>::NAME,
            |mut conn, keys| async move {
                let events: Option<u64> = redis::cmd("GET")
                    .arg(keys.key("events"))
                    .query_async(&mut conn)
                    .await?;
                Ok(events)
            },
        )
        .await?;
    Ok(events.flatten())
}

/// The schema of [`TantivyTally`]'s index: one document per event, keyed by event id.
pub fn tantivy_schema() -> tantivy::schema::Schema {
    use tantivy::schema::{INDEXED, STORED, STRING, Schema, TEXT};
    let mut schema = Schema::builder();
    schema.add_text_field("key", STRING | STORED);
    schema.add_text_field("stream", STRING | STORED);
    schema.add_u64_field("version", INDEXED | STORED);
    schema.add_u64_field("amount", STORED);
    schema.add_text_field("memo", TEXT | STORED);
    schema.build()
}

/// The tally for Tantivy: a document per event (key = event id) with its stream, version,
/// amount and a memo `amount <n> of <stream> in v<V>`. Documents are keyed, so a replay
/// replaces rather than doubles; a lost event shows as a missing document.
#[derive(Debug, Clone)]
pub struct TantivyTally<const V: u32 = 1> {
    stream: tantivy::schema::Field,
    version: tantivy::schema::Field,
    amount: tantivy::schema::Field,
    memo: tantivy::schema::Field,
}

impl<const V: u32> TantivyTally<V> {
    /// The projection for an index with [`tantivy_schema`].
    ///
    /// # Panics
    ///
    /// If the schema lacks a field of [`tantivy_schema`].
    pub fn new(schema: &tantivy::schema::Schema) -> Self {
        let field = |name| schema.get_field(name).expect("the tally schema");
        TantivyTally {
            stream: field("stream"),
            version: field("version"),
            amount: field("amount"),
            memo: field("memo"),
        }
    }
}

impl<const V: u32> Projection for TantivyTally<V> {
    const NAME: ProjectionName = ProjectionName::from_static("tally");
    const VERSION: u32 = V;
    type Event = TallyEvent;
    type Writes = foldline_tantivy::TantivyWrites;

    fn handle(
        &self,
        event: Envelope<'_, TallyEvent>,
        writes: &mut foldline_tantivy::TantivyWrites,
    ) -> Result<(), foldline::BoxError> {
        let TallyEvent::Counted { amount } = &event.event else {
            return Err("the Tantivy tally reads no poison events".into());
        };
        let stream = event.recorded.stream_id.as_str();
        let mut doc = tantivy::TantivyDocument::default();
        doc.add_text(self.stream, stream);
        doc.add_u64(self.version, event.recorded.stream_version.get());
        doc.add_u64(self.amount, *amount);
        doc.add_text(self.memo, format!("amount {amount} of {stream} in v{V}"));
        writes.upsert(event.recorded.event_id.to_string(), doc);
        Ok(())
    }
}
