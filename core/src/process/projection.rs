//! Process managers on the projector runtime: the feed is read, checkpointed, leased, paused
//! and reported on as for any projection; the target carries each batch's inputs out before
//! it commits the checkpoint.

use super::runner::Received;
use super::{CommandDispatcher, Input, ProcessManager, ProcessRunner, TimerStore};
use crate::codec::Codec;
use crate::error::{BoxError, Result};
use crate::names::{ProjectionName, StreamId};
use crate::position::Checkpoint;
use crate::projection::{
    Commit, CommitOutcome, DeadLetter, Envelope, NewSlot, Projection, ProjectionControl,
    ProjectionTarget, ProjectorHeartbeat, SlotId, SlotInfo,
};
use crate::store::{EventStore, StoreIdentity};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Process manager `P` as a [`Projection`] named [`P::NAME`](ProcessManager::NAME): its
/// handler only correlates (pure, as handlers are); the inputs go to a [`ProcessTarget`],
/// which decides and carries them out when the batch commits.
pub struct ProcessProjection<P>(PhantomData<fn() -> P>);

impl<P> ProcessProjection<P> {
    /// The projection of `P`.
    pub fn new() -> Self {
        ProcessProjection(PhantomData)
    }
}

impl<P> Default for ProcessProjection<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P> std::fmt::Debug for ProcessProjection<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProcessProjection")
            .field(&std::any::type_name::<P>())
            .finish()
    }
}

/// The inputs a batch of the feed holds for the instances of `P`, in feed order.
pub struct ProcessInputs<P: ProcessManager> {
    inputs: Vec<(StreamId, Received, Input<P>)>,
}

impl<P: ProcessManager> Default for ProcessInputs<P> {
    fn default() -> Self {
        ProcessInputs { inputs: Vec::new() }
    }
}

impl<P: ProcessManager> std::fmt::Debug for ProcessInputs<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessInputs")
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

impl<P: ProcessManager> ProcessInputs<P> {
    /// How many inputs the batch holds.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether the batch holds none.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }
}

impl<P: ProcessManager> Projection for ProcessProjection<P> {
    /// `P::NAME`, checked as a projection name when the program is compiled.
    const NAME: ProjectionName = ProjectionName::from_static(P::NAME);

    type Event = P::Event;
    type Writes = ProcessInputs<P>;

    fn handle(
        &self,
        event: Envelope<'_, P::Event>,
        writes: &mut ProcessInputs<P>,
    ) -> Result<(), BoxError> {
        if let Some(id) = P::correlate(&event) {
            let stream = super::instance_stream::<P>(&id)?;
            let received = Received::of(event.recorded);
            writes
                .inputs
                .push((stream, received, Input::Event(event.event)));
        }
        Ok(())
    }
}

/// The [`ProjectionTarget`] of a [`ProcessProjection`]: a commit first has its
/// [`ProcessRunner`] decide on each input and carry the decisions out, then commits the
/// checkpoint (and dead letters) in `inner`, which keeps the slots, leases, controls and
/// heartbeats. A crash between the two hands the batch over again; every instance recognizes
/// the inputs it decided on already, so nothing happens twice.
pub struct ProcessTarget<P, S, D, T, C, I> {
    runner: Arc<ProcessRunner<P, S, D, T, C>>,
    inner: I,
}

impl<P, S, D, T, C, I> ProcessTarget<P, S, D, T, C, I> {
    /// A target carrying inputs out through `runner` and keeping its checkpoints in `inner`.
    pub fn new(runner: Arc<ProcessRunner<P, S, D, T, C>>, inner: I) -> Self {
        ProcessTarget { runner, inner }
    }
}

impl<P, S, D, T, C, I: std::fmt::Debug> std::fmt::Debug for ProcessTarget<P, S, D, T, C, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTarget")
            .field("process", &std::any::type_name::<P>())
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<P, S, D, T, C, I> ProjectionTarget for ProcessTarget<P, S, D, T, C, I>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
    C: Codec,
    I: ProjectionTarget,
{
    type Writes = ProcessInputs<P>;

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
        commit: Commit<ProcessInputs<P>>,
    ) -> Result<CommitOutcome> {
        // Only the holder of the slot's checkpoint carries inputs out: one that moved (another
        // runner took over) would hand them a second time, harmless but wasted.
        let stored = self.inner.checkpoint(projection, slot).await?;
        if stored.as_ref() != Some(&commit.expected) {
            return Ok(CommitOutcome::Moved { actual: stored });
        }
        let now = SystemTime::now();
        for (stream, received, input) in commit.writes.inputs {
            self.runner
                .handle_input(stream, received, input, now)
                .await?;
        }
        let checkpoint_only = Commit::new(commit.expected, commit.checkpoint, I::Writes::default())
            .with_park(commit.park)
            .with_unpark(commit.unpark);
        self.inner.commit(projection, slot, checkpoint_only).await
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
