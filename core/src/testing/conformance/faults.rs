//! The suite's own tests: stores with one deliberate fault each must fail the cases that
//! guard against it (and the faultless wrapper must pass them).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::watch;

use crate::error::Result;
use crate::event::RecordedEvent;
use crate::names::{IdempotencyKey, StreamId};
use crate::position::{Checkpoint, Position};
use crate::store::InMemoryEventStore;
use crate::store::{
    AppendRequest, AppendResult, EventBatch, EventStore, Snapshot, SnapshotStore, StoreLimits,
    Subscription,
};
use crate::version::{ExpectedVersion, Version};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    IgnoresExpectedVersion,
    ConflictNamesWrongActual,
    IgnoresIdempotencyKey,
    ReplayNotFlagged,
    DropsFeedEvent,
    RepeatsFeedEvent,
    CheckpointShort,
    SubscribesFromStart,
    ReadStreamIgnoresLimit,
    HeadAhead,
    NoLimits,
    SnapshotOverwritesNewer,
}

/// The in-memory store with `fault` injected.
#[derive(Clone)]
struct Faulty {
    inner: InMemoryEventStore,
    fault: Fault,
    changes: Arc<watch::Sender<u64>>,
    snapshots: Arc<Mutex<HashMap<StreamId, Snapshot>>>,
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        let limits = if fault == Fault::NoLimits {
            StoreLimits::default()
                .with_max_event_bytes(usize::MAX)
                .with_max_events_per_append(usize::MAX)
        } else {
            StoreLimits::default()
        };
        Faulty {
            inner: InMemoryEventStore::with_limits(limits),
            fault,
            changes: Arc::new(watch::channel(0).0),
            snapshots: Arc::default(),
        }
    }
}

impl EventStore for Faulty {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        let (stream, expected, events, key) = request.into_parts();
        let expected = match self.fault {
            Fault::IgnoresExpectedVersion => ExpectedVersion::Any,
            _ => expected,
        };
        let mut request = AppendRequest::new(stream, expected, events);
        if let Some(key) = key.filter(|_| self.fault != Fault::IgnoresIdempotencyKey) {
            request = request.with_idempotency_key(key);
        }
        let result = match self.inner.append(request).await {
            Err(crate::Error::Conflict {
                stream, expected, ..
            }) if self.fault == Fault::ConflictNamesWrongActual => Err(crate::Error::Conflict {
                stream,
                expected,
                actual: Version::ZERO,
            }),
            Ok(mut result) if self.fault == Fault::ReplayNotFlagged => {
                result.replayed = false;
                Ok(result)
            }
            other => other,
        };
        self.changes.send_modify(|n| *n += 1);
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let limit = match self.fault {
            Fault::ReadStreamIgnoresLimit => usize::MAX,
            _ => limit,
        };
        self.inner.read_stream(stream, from, limit).await
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch> {
        let mut batch = self.inner.read_all(after, limit).await?;
        let events = &mut batch.events;
        match self.fault {
            Fault::DropsFeedEvent if events.len() >= 3 => {
                events.remove(1);
            }
            Fault::RepeatsFeedEvent if events.len() >= 2 => {
                // Keeps the batch size: the first event again, in place of the last.
                events.pop();
                events.insert(1, events[0].clone());
            }
            Fault::CheckpointShort if events.len() >= 2 => {
                let mut checkpoint = after.clone();
                checkpoint.advance(events[events.len() - 2].position);
                batch.checkpoint = checkpoint;
            }
            _ => {}
        }
        Ok(batch)
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription> {
        let after = match self.fault {
            Fault::SubscribesFromStart => Checkpoint::START,
            _ => after,
        };
        let store = self.clone();
        let read = move |checkpoint: Checkpoint| {
            let store = store.clone();
            async move { store.read_all(&checkpoint, 512).await }
        };
        Ok(Subscription::polling(
            after,
            read,
            self.changes.subscribe(),
            Duration::from_secs(1),
        ))
    }

    async fn identity(&self) -> Result<crate::store::StoreIdentity> {
        self.inner.identity().await
    }

    async fn head(&self) -> Result<Checkpoint> {
        match self.fault {
            Fault::HeadAhead => {
                let mut head = Checkpoint::START;
                head.advance(Position::new(0, 0, u64::MAX / 2));
                Ok(head)
            }
            _ => self.inner.head().await,
        }
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>> {
        self.inner.find_idempotent(key).await
    }
}

impl SnapshotStore for Faulty {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        match self.fault {
            Fault::SnapshotOverwritesNewer => Ok(self
                .snapshots
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(stream)
                .cloned()),
            _ => self.inner.load_snapshot(stream).await,
        }
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        match self.fault {
            Fault::SnapshotOverwritesNewer => {
                self.snapshots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(snapshot.stream_id.clone(), snapshot);
                Ok(())
            }
            _ => self.inner.save_snapshot(snapshot).await,
        }
    }
}

/// Runs `case` and returns its panic message, if it panicked.
async fn failure(case: impl Future<Output = ()>) -> Option<String> {
    let panic = AssertUnwindSafe(case).catch_unwind().await.err()?;
    Some(
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    )
}

macro_rules! must_fail {
    ($($test:ident: $fault:ident => $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let store = Faulty::new(Fault::$fault);
                let message = failure(super::$case(store)).await.unwrap_or_else(|| {
                    panic!(concat!(
                        "case `", stringify!($case), "` passed a store that ",
                        stringify!($fault)
                    ))
                });
                let expected = concat!("conformance case `", stringify!($case), "` failed");
                assert!(message.starts_with(expected), "unexpected panic: {message}");
            }
        )*
    };
}

must_fail! {
    no_stream_catches_ignored_version: IgnoresExpectedVersion => append_no_stream,
    exact_catches_ignored_version: IgnoresExpectedVersion => append_exact,
    races_catch_ignored_version: IgnoresExpectedVersion => concurrent_appends_conflict,
    exact_catches_wrong_actual: ConflictNamesWrongActual => append_exact,
    replay_catches_ignored_key: IgnoresIdempotencyKey => idempotent_append_replays,
    shared_key_catches_ignored_key: IgnoresIdempotencyKey => concurrent_idempotent_appends_write_once,
    replay_catches_missing_flag: ReplayNotFlagged => idempotent_append_replays,
    read_all_catches_lost_event: DropsFeedEvent => read_all_in_batches,
    subscribe_catches_lost_event: DropsFeedEvent => subscribe_catches_up_then_follows,
    read_all_catches_repeated_event: RepeatsFeedEvent => read_all_in_batches,
    concurrent_subscribe_catches_repeated_event: RepeatsFeedEvent => subscribe_with_concurrent_writers,
    read_all_catches_short_checkpoint: CheckpointShort => read_all_in_batches,
    resume_catches_subscription_from_start: SubscribesFromStart => subscribe_resumes_from_checkpoint,
    read_stream_catches_ignored_limit: ReadStreamIgnoresLimit => read_stream_ranges,
    head_catches_head_ahead: HeadAhead => head_tracks_appends,
    invalid_input_catches_missing_limits: NoLimits => invalid_input_writes_nothing,
    snapshots_catch_overwrite: SnapshotOverwritesNewer => snapshot_older_does_not_replace_newer,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faultless_wrapper_passes_everything() {
    super::run_all(async || Faulty::new(Fault::None)).await;
    super::run_snapshot_cases(async || Faulty::new(Fault::None)).await;
}
