//! A complete event store in process memory: for tests, examples and prototypes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::names::{IdempotencyKey, StreamId};
use crate::position::{Checkpoint, Position};
use crate::store::{
    AppendRequest, AppendResult, EventBatch, EventStore, HeldFeed, ManagedStore, Snapshot,
    SnapshotStore, StoreIdentity, StoreLimits, Subscription,
};
use crate::version::Version;

/// Subscribers are woken by the change signal; this poll only bounds the wait if one is missed.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
const SUBSCRIPTION_BATCH: usize = 512;

/// An [`EventStore`] and [`SnapshotStore`] in memory. Cheap to clone: clones share the data.
///
/// It keeps every promise of the store contract (it passes the conformance suite): appends are
/// atomic and checked under one lock, the global feed is a single sequence with position
/// `0:0:n` for the n-th event, and subscribers are woken on every commit.
///
/// ```
/// use foldline::{AppendRequest, Checkpoint, EventStore, EventType, ExpectedVersion, InMemoryEventStore, NewEvent, StreamId};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let store = InMemoryEventStore::new();
/// let event = NewEvent::new(EventType::new("Opened")?, 1, b"{}".to_vec());
/// let stream = StreamId::new("account-1")?;
/// store.append(AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, vec![event])).await?;
/// let batch = store.read_all(&Checkpoint::START, 100).await?;
/// assert_eq!(batch.events[0].stream_id, stream);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct InMemoryEventStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    limits: StoreLimits,
    /// Drawn at creation: another in-memory store is another feed.
    identity: StoreIdentity,
}

#[derive(Debug, Default)]
struct State {
    /// The global feed; the event at index `i` has sequence `i + 1`.
    log: Vec<RecordedEvent>,
    /// Indexes into `log`, per stream, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    idempotency: HashMap<IdempotencyKey, AppendResult>,
    snapshots: HashMap<StreamId, Snapshot>,
}

impl Default for InMemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryEventStore {
    /// An empty store with the default [`StoreLimits`].
    pub fn new() -> Self {
        Self::with_limits(StoreLimits::default())
    }

    /// An empty store enforcing `limits`.
    pub fn with_limits(limits: StoreLimits) -> Self {
        let (changes, _) = watch::channel(0);
        InMemoryEventStore {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changes,
                limits,
                identity: StoreIdentity::new(format!("memory:{}", Uuid::now_v7())),
            }),
        }
    }

    /// How many events the store holds.
    pub fn len(&self) -> usize {
        self.state().log.len()
    }

    /// Whether the store holds no events.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied append: appends build
        // everything before touching the state. So a poisoned lock is still consistent.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sequence_after(after: &Checkpoint) -> Result<u64> {
        match after.positions() {
            [] => Ok(0),
            [p] if p.partition() == 0 && p.major() == 0 => Ok(p.minor()),
            _ => Err(Error::InvalidCheckpoint {
                value: after.to_string(),
            }),
        }
    }

    fn position_of(sequence: u64) -> Position {
        Position::new(0, 0, sequence)
    }

    fn read_all_now(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch> {
        let from = usize::try_from(Self::sequence_after(after)?).unwrap_or(usize::MAX);
        let state = self.state();
        let events: Vec<RecordedEvent> = state.log.iter().skip(from).take(limit).cloned().collect();
        let mut checkpoint = after.clone();
        if let Some(last) = events.last() {
            checkpoint.advance(last.position);
        }
        Ok(EventBatch::new(events, checkpoint))
    }
}

impl EventStore for InMemoryEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        self.inner.limits.check(&request)?;
        let (stream, expected, events, key) = request.into_parts();
        let result = {
            let mut state = self.state();
            if let Some(first) = key.as_ref().and_then(|k| state.idempotency.get(k)) {
                return Ok(first.clone().into_replayed());
            }
            let actual = state
                .streams
                .get(&stream)
                .map_or(Version::ZERO, |indexes| Version::new(indexes.len() as u64));
            if !expected.allows(actual) {
                return Err(Error::Conflict {
                    stream,
                    expected,
                    actual,
                });
            }
            let now = SystemTime::now();
            let mut version = actual;
            let mut position = None;
            let mut indexes = Vec::with_capacity(events.len());
            for event in events {
                version = version.next();
                let index = state.log.len();
                let at = Self::position_of(index as u64 + 1);
                position = Some(at);
                state.log.push(RecordedEvent::from_new(
                    event,
                    stream.clone(),
                    version,
                    at,
                    now,
                ));
                indexes.push(index);
            }
            state
                .streams
                .entry(stream.clone())
                .or_default()
                .extend(indexes);
            let result = AppendResult {
                stream_id: stream,
                previous_version: actual,
                current_version: version,
                position,
                replayed: false,
            };
            if let Some(key) = key {
                state.idempotency.insert(key, result.clone());
            }
            result
        };
        if result.position.is_some() {
            self.inner.changes.send_modify(|n| *n += 1);
        }
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let state = self.state();
        let Some(indexes) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from.get().saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(indexes
            .iter()
            .skip(skip)
            .take(limit)
            .map(|&i| state.log[i].clone())
            .collect())
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch> {
        self.read_all_now(after, limit)
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription> {
        Self::sequence_after(&after)?;
        let store = self.clone();
        let read = move |checkpoint: Checkpoint| {
            let batch = store.read_all_now(&checkpoint, SUBSCRIPTION_BATCH);
            std::future::ready(batch)
        };
        Ok(Subscription::polling(
            after,
            read,
            self.inner.changes.subscribe(),
            POLL_INTERVAL,
        ))
    }

    async fn head(&self) -> Result<Checkpoint> {
        let mut head = Checkpoint::START;
        if let Some(last) = self.state().log.last() {
            head.advance(last.position);
        }
        Ok(head)
    }

    async fn identity(&self) -> Result<StoreIdentity> {
        Ok(self.inner.identity.clone())
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>> {
        Ok(self
            .state()
            .idempotency
            .get(key)
            .cloned()
            .map(AppendResult::into_replayed))
    }
}

impl ManagedStore for InMemoryEventStore {
    fn describe(&self) -> String {
        "the in-memory store".to_owned()
    }

    async fn streams(
        &self,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Vec<(StreamId, Version)>> {
        let state = self.state();
        let mut streams: Vec<(StreamId, Version)> = state
            .streams
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a.as_str()))
            .map(|(id, indexes)| (id.clone(), Version::new(indexes.len() as u64)))
            .collect();
        streams.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        streams.truncate(limit);
        Ok(streams)
    }

    /// Never held: appends are visible to readers the moment they return.
    async fn feed_held_back(&self) -> Result<HeldFeed> {
        Ok(HeldFeed::default())
    }

    /// Always empty: nothing to migrate in memory.
    async fn migrate(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn pending_migrations(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

impl SnapshotStore for InMemoryEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        Ok(self.state().snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let mut state = self.state();
        let newer = state
            .snapshots
            .get(&snapshot.stream_id)
            .is_none_or(|s| s.version <= snapshot.version);
        if newer {
            state.snapshots.insert(snapshot.stream_id.clone(), snapshot);
        }
        Ok(())
    }
}
