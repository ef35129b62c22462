//! Pass-through wrappers that time what goes through them (the event store, the timer store,
//! the dispatcher, the projection targets), so a pass can say where the runner's time went
//! without touching foldline. Each costs two clock reads and two atomic adds per call.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use foldline::{
    AppendRequest, AppendResult, Checkpoint, CommandDispatcher, CommandOptions, Commit,
    CommitOutcome, DeadLetter, Dispatched, EventBatch, EventStore, IdempotencyKey, NewSlot,
    ProjectionControl, ProjectionName, ProjectionTarget, ProjectorHeartbeat, RecordedEvent, Result,
    SlotId, SlotInfo, StoreIdentity, StreamId, Subscription, Timer, TimerStore, Version,
};
use foldline_tests::transfers::WalletCommand;
use uuid::Uuid;

use super::registry::{Registry, Stage};

/// Calls of one kind and the time spent in them, summed.
#[derive(Debug, Default)]
pub(super) struct Tally {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Tally {
    /// Runs `future`, counting it and its time.
    pub(super) async fn time<T>(&self, future: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = future.await;
        self.add(started.elapsed());
        output
    }

    fn add(&self, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(super) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub(super) fn busy(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    /// `calls × mean ms` per transfer, for `transfers` transfers: `3.0 × 1.21 ms`.
    pub(super) fn per(&self, transfers: usize) -> String {
        let calls = self.calls();
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let (per, mean) = (
            calls as f64 / transfers.max(1) as f64,
            self.busy().as_secs_f64() * 1e3 / calls.max(1) as f64,
        );
        format!("{per:.1} × {mean:.2} ms")
    }

    /// Milliseconds spent per transfer, for `transfers` transfers.
    pub(super) fn ms_per(&self, transfers: usize) -> f64 {
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let ms = self.busy().as_secs_f64() * 1e3 / transfers.max(1) as f64;
        ms
    }
}

/// What an event store was asked: stream reads, appends, idempotency-key look-ups.
#[derive(Debug, Default)]
pub(super) struct StoreTallies {
    pub(super) reads: Tally,
    pub(super) appends: Tally,
    pub(super) keys: Tally,
}

/// An event store whose stream reads, appends and key look-ups are timed (the feed is passed
/// through untimed).
#[derive(Debug, Clone)]
pub(super) struct TimedStore<S> {
    inner: S,
    tallies: Arc<StoreTallies>,
}

impl<S> TimedStore<S> {
    pub(super) fn new(inner: S, tallies: Arc<StoreTallies>) -> Self {
        TimedStore { inner, tallies }
    }
}

impl<S: EventStore> EventStore for TimedStore<S> {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult> {
        self.tallies.appends.time(self.inner.append(request)).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.tallies
            .reads
            .time(self.inner.read_stream(stream, from, limit))
            .await
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> Result<EventBatch> {
        self.inner.read_all(after, limit).await
    }

    async fn subscribe(&self, after: Checkpoint) -> Result<Subscription> {
        self.inner.subscribe(after).await
    }

    async fn head(&self) -> Result<Checkpoint> {
        self.inner.head().await
    }

    async fn identity(&self) -> Result<StoreIdentity> {
        self.inner.identity().await
    }

    async fn find_idempotent(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>> {
        self.tallies
            .keys
            .time(self.inner.find_idempotent(key))
            .await
    }
}

/// What a timer store was asked by the runner's decisions, and by its timer loop.
#[derive(Debug, Default)]
pub(super) struct TimerTallies {
    pub(super) schedule: Tally,
    pub(super) cancel: Tally,
    pub(super) cancel_all: Tally,
    /// `claim_due`, `next_due` and `remove`: the timer loop's polling.
    pub(super) polling: Tally,
}

/// A timer store whose calls are timed.
#[derive(Debug)]
pub(super) struct TimedTimers<T> {
    inner: T,
    tallies: Arc<TimerTallies>,
}

impl<T> TimedTimers<T> {
    pub(super) fn new(inner: T, tallies: Arc<TimerTallies>) -> Self {
        TimedTimers { inner, tallies }
    }
}

impl<T: TimerStore> TimerStore for TimedTimers<T> {
    async fn schedule(&self, timer: Timer) -> Result<()> {
        self.tallies.schedule.time(self.inner.schedule(timer)).await
    }

    async fn cancel(&self, process: &str, instance: &StreamId, timeout: &[u8]) -> Result<u64> {
        self.tallies
            .cancel
            .time(self.inner.cancel(process, instance, timeout))
            .await
    }

    async fn cancel_all(&self, process: &str, instance: &StreamId) -> Result<u64> {
        self.tallies
            .cancel_all
            .time(self.inner.cancel_all(process, instance))
            .await
    }

    async fn claim_due(
        &self,
        process: &str,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Timer>> {
        self.tallies
            .polling
            .time(self.inner.claim_due(process, now, limit, lease))
            .await
    }

    async fn remove(&self, id: Uuid) -> Result<()> {
        self.tallies.polling.time(self.inner.remove(id)).await
    }

    async fn pending(&self, process: &str, instance: &StreamId) -> Result<Vec<Timer>> {
        self.inner.pending(process, instance).await
    }

    async fn next_due(&self, process: &str) -> Result<Option<SystemTime>> {
        self.tallies
            .polling
            .time(self.inner.next_due(process))
            .await
    }
}

/// A dispatcher whose commands are timed and stamped in the pass's [`Registry`] (when the
/// runner sent each transfer's withdrawal and deposit, and when they returned).
#[derive(Debug)]
pub(super) struct TimedDispatcher<D> {
    inner: D,
    tally: Arc<Tally>,
    registry: Arc<Registry>,
}

impl<D> TimedDispatcher<D> {
    pub(super) fn new(inner: D, tally: Arc<Tally>, registry: Arc<Registry>) -> Self {
        TimedDispatcher {
            inner,
            tally,
            registry,
        }
    }
}

impl<D: CommandDispatcher<WalletCommand>> CommandDispatcher<WalletCommand> for TimedDispatcher<D> {
    async fn dispatch(
        &self,
        command: &WalletCommand,
        options: CommandOptions,
    ) -> Result<Dispatched> {
        let stages = match command {
            WalletCommand::Withdraw { transfer, .. } => {
                Some((transfer, Stage::WithdrawSent, Stage::Withdrawn))
            }
            WalletCommand::Deposit { transfer, .. } => {
                Some((transfer, Stage::DepositSent, Stage::Deposited))
            }
            _ => None,
        };
        if let Some((transfer, sent, _)) = stages {
            self.registry.stamp(transfer, sent, Instant::now());
        }
        let dispatched = self.tally.time(self.inner.dispatch(command, options)).await;
        if let Some((transfer, _, done)) = stages {
            self.registry.stamp(transfer, done, Instant::now());
        }
        dispatched
    }
}

/// What a projection target was asked: checkpoint reads and commits, and how many inputs
/// (events, for a process target) the commits carried.
#[derive(Debug, Default)]
pub(super) struct TargetTallies {
    pub(super) checkpoints: Tally,
    pub(super) commits: Tally,
    pub(super) inputs: AtomicU64,
    pub(super) largest: AtomicU64,
}

impl TargetTallies {
    /// Mean and largest inputs per commit.
    pub(super) fn per_commit(&self) -> (f64, u64) {
        let inputs = self.inputs.load(Ordering::Relaxed);
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let mean = inputs as f64 / self.commits.calls().max(1) as f64;
        (mean, self.largest.load(Ordering::Relaxed))
    }
}

/// A projection target whose checkpoint reads and commits are timed.
pub(super) struct TimedTarget<T: ProjectionTarget> {
    inner: T,
    size: fn(&T::Writes) -> usize,
    tallies: Arc<TargetTallies>,
}

impl<T: ProjectionTarget> std::fmt::Debug for TimedTarget<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedTarget").finish_non_exhaustive()
    }
}

impl<T: ProjectionTarget> TimedTarget<T> {
    /// `inner`, timed; `size` tells how many inputs a commit's writes carry.
    pub(super) fn new(
        inner: T,
        size: fn(&T::Writes) -> usize,
        tallies: Arc<TargetTallies>,
    ) -> Self {
        TimedTarget {
            inner,
            size,
            tallies,
        }
    }
}

impl<T: ProjectionTarget> ProjectionTarget for TimedTarget<T> {
    type Writes = T::Writes;

    async fn slots(&self, projection: &ProjectionName) -> Result<Vec<SlotInfo>> {
        self.inner.slots(projection).await
    }

    async fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> Result<SlotInfo> {
        self.inner
            .create_slot(projection, version, how, store)
            .await
    }

    async fn activate(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.inner.activate(projection, slot).await
    }

    async fn drop_slot(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.inner.drop_slot(projection, slot).await
    }

    async fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> Result<()> {
        self.inner.clear_slot(projection, slot, store).await
    }

    async fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Option<Checkpoint>> {
        self.tallies
            .checkpoints
            .time(self.inner.checkpoint(projection, slot))
            .await
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<Self::Writes>,
    ) -> Result<CommitOutcome> {
        let size = u64::try_from((self.size)(&commit.writes)).unwrap_or(u64::MAX);
        self.tallies.inputs.fetch_add(size, Ordering::Relaxed);
        self.tallies.largest.fetch_max(size, Ordering::Relaxed);
        self.tallies
            .commits
            .time(self.inner.commit(projection, slot, commit))
            .await
    }

    async fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        self.inner.acquire_lease(projection, slot, owner, ttl).await
    }

    async fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> Result<()> {
        self.inner.release_lease(projection, slot, owner).await
    }

    async fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(projection, slot).await
    }

    async fn control(&self, projection: &ProjectionName) -> Result<ProjectionControl> {
        self.inner.control(projection).await
    }

    async fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> Result<()> {
        self.inner.set_control(projection, control).await
    }

    async fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        heartbeat: &ProjectorHeartbeat,
    ) -> Result<()> {
        self.inner.record_heartbeat(projection, heartbeat).await
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        self.inner.heartbeat(projection).await
    }
}
