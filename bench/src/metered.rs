//! A projection target that passes everything through to another and records its commits:
//! how many events each carried and how long the target took. The projection benchmarks use
//! it to give their raw limits the exact commit cadence the projector had, and to say how much
//! of a catch-up was spent committing.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use foldline::{
    Checkpoint, Commit, CommitOutcome, DeadLetter, NewSlot, ProjectionControl, ProjectionName,
    ProjectionTarget, ProjectorHeartbeat, Result, SlotId, SlotInfo, StoreIdentity,
};

use crate::report::Figure;
use crate::stats::{median, median_round, size_f64};

/// What the commits through a [`MeteredTarget`] did.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitLog {
    /// Events per commit, in order (`Moved` commits included: they are rare and count as
    /// work the target did).
    pub(crate) sizes: Vec<usize>,
    /// Time spent inside the target's `commit`, summed.
    pub(crate) busy: Duration,
}

impl CommitLog {
    /// The events of every commit.
    pub(crate) fn events(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// The smallest and largest commit, in events.
    pub(crate) fn range(&self) -> (usize, usize) {
        let min = self.sizes.iter().copied().min().unwrap_or(0);
        let max = self.sizes.iter().copied().max().unwrap_or(0);
        (min, max)
    }

    /// Mean events per commit (0 for none).
    pub(crate) fn mean(&self) -> f64 {
        // Counts are far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let mean = self.events() as f64 / self.sizes.len().max(1) as f64;
        mean
    }
}

impl CommitLog {
    /// Fails unless the commits carried `expected` events (`noun`: what an event is counted
    /// as, `events` or `documents`).
    pub(crate) fn check(&self, expected: u64, noun: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.events() == usize::try_from(expected)?,
            "the projector committed {} of {expected} {noun}",
            self.events()
        );
        Ok(())
    }

    /// `N commits of MIN to MAX <noun> (mean M), S s in the target's commit (P %)`, for a
    /// catch-up that took `elapsed`.
    pub(crate) fn summary(&self, noun: &str, elapsed: Duration) -> String {
        let (min, max) = self.range();
        format!(
            "{} commits of {min} to {max} {noun} (mean {:.0}), {:.2} s in the target's commit \
             ({:.0} %)",
            self.sizes.len(),
            self.mean(),
            self.busy.as_secs_f64(),
            self.busy.as_secs_f64() / elapsed.as_secs_f64().max(1e-9) * 100.0,
        )
    }
}

/// How a catch-up benchmark (a projector's pass against a raw limit replaying its commit
/// sizes) names its figures and its rounds' detail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatchUp {
    /// The benchmark's name.
    pub(crate) name: &'static str,
    /// The raw limit, as the detail names it (`raw MULTI/EXEC`).
    pub(crate) limit: &'static str,
    /// The unit of both rates (`events/s`).
    pub(crate) unit: &'static str,
    /// What a commit's size counts (`events`).
    pub(crate) noun: &'static str,
}

/// One pass of a round: its rate, how long it took and the machine's CPU use meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassDetail<'a> {
    pub(crate) rate: f64,
    pub(crate) elapsed: Duration,
    pub(crate) usage: &'a str,
}

impl CatchUp {
    /// A round's three lines of stderr detail: the limit, the projector, and its commits.
    pub(crate) fn round_detail(
        &self,
        (round, rounds): (u32, u32),
        limit: PassDetail<'_>,
        value: PassDetail<'_>,
        log: &CommitLog,
    ) -> String {
        let unit = self.unit;
        format!(
            "   round {round}/{rounds} (ratio {:.3}): {} {:.0} {unit} ({:.2} s; {})\n   \
             {:>13}projector {:.0} {unit} ({:.2} s; {})\n   \
             {:>13}{}",
            value.rate / limit.rate,
            self.limit,
            limit.rate,
            limit.elapsed.as_secs_f64(),
            limit.usage,
            "",
            value.rate,
            value.elapsed.as_secs_f64(),
            value.usage,
            "",
            log.summary(self.noun, value.elapsed),
        )
    }

    /// The figures of every catch-up benchmark: the median round's rate against its limit,
    /// the batch size, and the median of the rounds' mean events per commit.
    pub(crate) fn figures(
        &self,
        rounds: &[(f64, f64)],
        batch: usize,
        per_commit: &[f64],
    ) -> Vec<Figure> {
        let (value, limit) = median_round(rounds);
        let name = self.name;
        vec![
            Figure::against(name, value, limit, self.unit),
            Figure::alone(format!("{name}/batch"), size_f64(batch), "events"),
            Figure::alone(
                format!("{name}/events-per-commit"),
                median(per_commit),
                "events",
            ),
        ]
    }
}

/// `inner`, with every commit recorded in a [`CommitLog`]. `events` tells how many events a
/// batch of writes stands for (the benchmarks' projections write a fixed number of operations
/// per event).
pub(crate) struct MeteredTarget<T: ProjectionTarget> {
    inner: T,
    events: fn(&T::Writes) -> usize,
    log: Arc<Mutex<CommitLog>>,
}

impl<T: ProjectionTarget> std::fmt::Debug for MeteredTarget<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredTarget").finish_non_exhaustive()
    }
}

impl<T: ProjectionTarget> MeteredTarget<T> {
    pub(crate) fn new(inner: T, events: fn(&T::Writes) -> usize) -> Self {
        MeteredTarget {
            inner,
            events,
            log: Arc::default(),
        }
    }

    /// The target it passes everything to.
    pub(crate) fn inner(&self) -> &T {
        &self.inner
    }

    /// A handle on the log, readable while the projector owns the target.
    pub(crate) fn log(&self) -> Arc<Mutex<CommitLog>> {
        Arc::clone(&self.log)
    }
}

/// A copy of what `log` holds now.
pub(crate) fn snapshot(log: &Mutex<CommitLog>) -> CommitLog {
    log.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

impl<T: ProjectionTarget> ProjectionTarget for MeteredTarget<T> {
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
        self.inner.checkpoint(projection, slot).await
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<Self::Writes>,
    ) -> Result<CommitOutcome> {
        let events = (self.events)(&commit.writes);
        let started = Instant::now();
        let outcome = self.inner.commit(projection, slot, commit).await;
        let took = started.elapsed();
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.sizes.push(events);
        log.busy += took;
        outcome
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
        status: &ProjectorHeartbeat,
    ) -> Result<()> {
        self.inner.record_heartbeat(projection, status).await
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        self.inner.heartbeat(projection).await
    }
}
