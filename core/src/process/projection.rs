//! Process managers on the projector runtime: the feed is read, checkpointed, leased, paused
//! and reported on as for any projection; the target carries each batch's inputs out before
//! it commits the checkpoint.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, stream};

use super::runner::Received;
use super::{CommandDispatcher, Input, ProcessManager, ProcessRunner, TimerStore};
use crate::codec::Codec;
use crate::error::{BoxError, Result, error_chain};
use crate::names::{ProjectionName, StreamId};
use crate::position::Checkpoint;
use crate::projection::{
    Commit, CommitOutcome, DeadLetter, Envelope, NewSlot, PoisonPolicy, Projection,
    ProjectionControl, ProjectionTarget, ProjectorHeartbeat, SlotId, SlotInfo,
};
use crate::store::{EventStore, StoreIdentity};

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
    inputs: Vec<PendingInput<P>>,
}

/// One input of a batch: the instance it is for, the input, and the event it came from (what
/// a dead letter names).
struct PendingInput<P: ProcessManager> {
    stream: StreamId,
    received: Received,
    input: Input<P>,
    /// The dead letter it becomes if it cannot be carried out, its error left to fill in:
    /// what names the event, without a copy of its payload.
    letter: DeadLetter,
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
            writes.inputs.push(PendingInput {
                stream,
                received: Received::of(event.recorded),
                input: Input::Event(event.event),
                letter: DeadLetter::new(event.recorded, String::new(), 1),
            });
        }
        Ok(())
    }
}

/// The [`ProjectionTarget`] of a [`ProcessProjection`]: a commit first has its
/// [`ProcessRunner`] decide on each input and carry the decisions out, then commits the
/// checkpoint (and dead letters) in `inner`, which keeps the slots, leases, controls and
/// heartbeats. A crash between the two hands the batch over again; every instance recognizes
/// the inputs it decided on already, so nothing happens twice.
///
/// An input whose carrying out fails for a reason that is not transient (an instance's stream
/// that does not decode, a dispatcher's error that retrying will not cure) is handled by the
/// target's [`PoisonPolicy`]: [`Stop`](PoisonPolicy::Stop) (the default) fails the commit,
/// so the projector stops before that event and resumes there once it is fixed;
/// [`DeadLetter`](PoisonPolicy::DeadLetter) parks the event with the error, atomically with
/// the checkpoint, and carries the rest of the batch out. A parked input is one its instance
/// has not seen: retry it (`foldline dead-letters retry`) once the cause is fixed. Transient
/// failures always fail the commit, and the projector retries the batch.
pub struct ProcessTarget<P, S, D, T, C, I> {
    runner: Arc<ProcessRunner<P, S, D, T, C>>,
    inner: I,
    poison: PoisonPolicy,
    concurrency: usize,
}

/// How many instances' inputs a commit carries out at once, by default.
const CONCURRENCY: usize = 32;

impl<P, S, D, T, C, I> ProcessTarget<P, S, D, T, C, I> {
    /// A target carrying inputs out through `runner` and keeping its checkpoints in `inner`;
    /// an input that cannot be carried out stops it ([`PoisonPolicy::Stop`]).
    pub fn new(runner: Arc<ProcessRunner<P, S, D, T, C>>, inner: I) -> Self {
        ProcessTarget {
            runner,
            inner,
            poison: PoisonPolicy::Stop,
            concurrency: CONCURRENCY,
        }
    }

    /// Sets how many instances' inputs a commit carries out at once (default 32; at least
    /// 1). Each instance's inputs are carried out in feed order, one after the other; the
    /// instances of a batch overlap, so commands of two instances to one aggregate may reach
    /// it in another order than their inputs' feed order.
    #[must_use]
    pub fn with_concurrency(mut self, instances: usize) -> Self {
        self.concurrency = instances.max(1);
        self
    }

    /// Sets what an input that cannot be carried out does.
    #[must_use]
    pub fn with_poison_policy(mut self, poison: PoisonPolicy) -> Self {
        self.poison = poison;
        self
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

impl<P, S, D, T, C, I> ProcessTarget<P, S, D, T, C, I>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
    C: Codec,
{
    /// Carries out one instance's `inputs`, in order: the dead letters to park (under
    /// [`PoisonPolicy::DeadLetter`]), or the error that stops the commit.
    async fn carry_out(
        &self,
        inputs: Vec<PendingInput<P>>,
        now: SystemTime,
    ) -> Result<Vec<DeadLetter>> {
        let mut parked = Vec::new();
        for pending in inputs {
            let handled = self
                .runner
                .handle_input(pending.stream, pending.received, pending.input, now)
                .await;
            match handled {
                Ok(_) => {}
                Err(error) if error.is_transient() || self.poison == PoisonPolicy::Stop => {
                    return Err(error);
                }
                Err(error) => {
                    tracing::error!(
                        process = P::NAME,
                        event_id = %pending.letter.event_id,
                        error = %error_chain(&error, ": "),
                        "an input could not be carried out; parked as a dead letter"
                    );
                    metrics::counter!("foldline_process_parked_inputs_total", "process" => P::NAME)
                        .increment(1);
                    let error = error_chain(&error, ": ");
                    let mut letter = pending.letter;
                    (letter.error, letter.parked_at) = (error, SystemTime::now());
                    parked.push(letter);
                }
            }
        }
        Ok(parked)
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
        // runner took over) would hand them a second time, harmless but wasted. A batch
        // without inputs has nothing to carry out: the inner commit checks the checkpoint.
        if !commit.writes.inputs.is_empty() {
            let stored = self.inner.checkpoint(projection, slot).await?;
            if stored.as_ref() != Some(&commit.expected) {
                return Ok(CommitOutcome::Moved { actual: stored });
            }
        }
        let now = SystemTime::now();
        // Each instance's inputs in feed order, one after the other; up to `concurrency`
        // instances at once (their stream reads, decisions and commands overlap, and share
        // the store's group commits).
        let mut instances: Vec<Vec<PendingInput<P>>> = Vec::new();
        let mut of_stream: HashMap<StreamId, usize> = HashMap::new();
        for pending in commit.writes.inputs {
            let at = *of_stream.entry(pending.stream.clone()).or_insert_with(|| {
                instances.push(Vec::new());
                instances.len() - 1
            });
            instances[at].push(pending);
        }
        let carried: Vec<Result<Vec<DeadLetter>>> = stream::iter(instances)
            .map(|inputs| self.carry_out(inputs, now))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut park = commit.park;
        for parked in carried {
            park.extend(parked?);
        }
        let checkpoint_only = Commit::new(commit.expected, commit.checkpoint, I::Writes::default())
            .with_park(park)
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
