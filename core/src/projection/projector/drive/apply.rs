//! Handling a run of events into one batch of writes (see `batch.rs`) and committing it; when
//! an event fails, committing what precedes it, then retrying the event alone and applying the
//! poison policy.

use std::time::Instant;

use tracing::Instrument;

use super::super::batch::{self, Built, Failed};
use super::super::options::PoisonPolicy;
use super::super::telemetry;
use super::commit::Committed;
use super::{Driver, Exit, Slept, Step, sleep_or_shutdown};
use crate::codec::Codec;
use crate::error::{BoxError, Error, PoisonEvent, Result, error_chain};
use crate::event::RecordedEvent;
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{DeadLetter, ProjectionTarget, SlotId};
use crate::store::EventStore;

/// How an event that failed ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Poisoned {
    /// A retry of the event alone succeeded, and was committed.
    Retried,
    /// It kept failing and was parked in the dead-letter list, atomically with moving the
    /// checkpoint past it.
    Parked,
    /// The target's checkpoint moved under us, or a shutdown came first: the event stays
    /// unapplied; start again from the target.
    Interrupted,
}

/// Events handled and skipped in a batch.
#[derive(Default)]
struct Counts {
    applied: u64,
    skipped: u64,
}

impl Counts {
    fn add<W>(&mut self, built: &Built<W>) {
        self.applied += built.applied;
        self.skipped += built.skipped;
    }
}

impl<S, P, T, C> Driver<'_, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// Handles and commits `events` (a `projection.batch` span), then publishes the progress.
    /// [`Exit::Restart`] when the target's checkpoint moved under us (nothing of the failed
    /// commit was stored), or a shutdown interrupted the retries of a failing event: start
    /// again from the target (which ends the run on shutdown).
    pub(super) async fn apply(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        events: &[RecordedEvent],
        store_checkpoint: Option<&Checkpoint>,
    ) -> Result<Step> {
        let started = Instant::now();
        let span = tracing::info_span!("projection.batch", projection = %P::NAME, slot = slot.get(), events = events.len());
        let mut counts = Counts::default();
        let step = self
            .handle_and_commit(slot, checkpoint, events, store_checkpoint, &mut counts)
            .instrument(span)
            .await?;
        if let exit @ Step::Exit(_) = step {
            return Ok(exit);
        }
        self.progress.applied += counts.applied;
        self.progress.skipped += counts.skipped;
        self.progress.checkpoint = checkpoint.clone();
        telemetry::batch(&P::NAME, counts.applied, counts.skipped, started.elapsed());
        self.update_lag();
        self.publish();
        Ok(Step::Continue)
    }

    /// Builds `events` into one batch and commits it; on a failing event, commits what
    /// precedes it, deals with the event alone, and goes on after it.
    async fn handle_and_commit(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        events: &[RecordedEvent],
        store_checkpoint: Option<&Checkpoint>,
        counts: &mut Counts,
    ) -> Result<Step> {
        let mut start = 0;
        loop {
            let shared = self.shared;
            let rest = &events[start..];
            let mut failed = match batch::build(&shared.projection, &shared.codec, rest, checkpoint)
            {
                Ok(mut built) => {
                    // The store's checkpoint may cover more than the events (e.g. a
                    // partition read to its end): keep that too.
                    for position in store_checkpoint.map_or(&[][..], Checkpoint::positions) {
                        built.checkpoint.advance(*position);
                    }
                    counts.add(&built);
                    if built.checkpoint != *checkpoint
                        && self.commit(slot, checkpoint, built, Vec::new()).await?
                            == Committed::Moved
                    {
                        return Ok(Step::Exit(Exit::Restart));
                    }
                    return Ok(Step::Continue);
                }
                Err(failed) => failed,
            };
            if let step @ Step::Exit(_) = self
                .commit_prefix(slot, checkpoint, rest, &mut failed, counts)
                .await?
            {
                return Ok(step);
            }
            let Failed { index, error } = failed;
            match self.poison(slot, checkpoint, &rest[index], error).await? {
                Poisoned::Retried => counts.applied += 1,
                Poisoned::Parked => {}
                Poisoned::Interrupted => return Ok(Step::Exit(Exit::Restart)),
            }
            start += index + 1;
        }
    }

    /// Commits what precedes the failing event, without its partial writes. Handled again,
    /// an earlier event may fail this time: `failed` then names that one.
    async fn commit_prefix(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        events: &[RecordedEvent],
        failed: &mut Failed,
        counts: &mut Counts,
    ) -> Result<Step> {
        let shared = self.shared;
        while failed.index > 0 {
            let prefix = &events[..failed.index];
            match batch::build(&shared.projection, &shared.codec, prefix, checkpoint) {
                Ok(built) => {
                    counts.add(&built);
                    if self.commit(slot, checkpoint, built, Vec::new()).await? == Committed::Moved {
                        return Ok(Step::Exit(Exit::Restart));
                    }
                    break;
                }
                Err(again) => *failed = again,
            }
        }
        Ok(Step::Continue)
    }

    /// An event failed: retry it alone with backoff, then apply the poison policy:
    /// [`Error::PoisonEvent`] under [`PoisonPolicy::Stop`], parked under
    /// [`PoisonPolicy::DeadLetter`].
    async fn poison(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        event: &RecordedEvent,
        first_error: BoxError,
    ) -> Result<Poisoned> {
        let shared = self.shared;
        let options = &shared.options;
        let mut error = first_error;
        let mut attempts = 1;
        let mut delay = options.retry_delay;
        while attempts < options.max_attempts {
            telemetry::retry(&P::NAME);
            tracing::debug!(projection = %P::NAME, event = %event.event_id, attempts, error = %error_chain(&*error, ": "), "handler failed; retrying");
            if sleep_or_shutdown(&self.shared.shutdown, delay).await == Slept::Shutdown {
                return Ok(Poisoned::Interrupted);
            }
            delay *= 2;
            attempts += 1;
            let alone = std::slice::from_ref(event);
            match batch::build(&shared.projection, &shared.codec, alone, checkpoint) {
                Ok(built) => {
                    let committed = self.commit(slot, checkpoint, built, Vec::new()).await?;
                    return Ok(match committed {
                        Committed::Stored => Poisoned::Retried,
                        Committed::Moved => Poisoned::Interrupted,
                    });
                }
                Err(failed) => error = failed.error,
            }
        }
        match self.poison {
            PoisonPolicy::Stop => Err(Error::PoisonEvent(Box::new(PoisonEvent::new(
                P::NAME,
                event,
                attempts,
                error,
            )))),
            PoisonPolicy::DeadLetter => self.park(slot, checkpoint, event, error, attempts).await,
        }
    }

    /// Parks `event` in the dead-letter list, atomically with moving the checkpoint past it.
    async fn park(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        event: &RecordedEvent,
        error: BoxError,
        attempts: u32,
    ) -> Result<Poisoned> {
        let letter = DeadLetter::new(event, error_chain(&*error, ": "), attempts);
        tracing::warn!(
            projection = %P::NAME,
            stream = %event.stream_id,
            version = %event.stream_version,
            event_type = %event.event_type,
            error = %letter.error,
            "event parked in the dead-letter list"
        );
        let mut next = checkpoint.clone();
        next.advance(event.position);
        let built = Built {
            writes: P::Writes::default(),
            checkpoint: next,
            applied: 0,
            skipped: 0,
            last_recorded_at: Some(event.recorded_at),
        };
        if self.commit(slot, checkpoint, built, vec![letter]).await? == Committed::Moved {
            return Ok(Poisoned::Interrupted);
        }
        telemetry::dead_letter(&P::NAME);
        self.progress.dead_lettered += 1;
        Ok(Poisoned::Parked)
    }
}
