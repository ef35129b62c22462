//! What an operator does to a projection: look at it, pause it, reset it, deal with its dead
//! letters. The admin CLI calls these.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{Projector, batch};
use crate::codec::Codec;
use crate::error::{BackendError, BackendErrorKind, Error, PoisonEvent, Result};
use crate::names::ProjectionName;
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{
    Commit, CommitOutcome, DeadLetter, ProjectionControl, ProjectionTarget, ProjectionTargetExt,
    ProjectorHeartbeat, ProjectorState, SlotId, SlotInfo, SlotState,
};
use crate::store::EventStore;

/// A projection as an operator sees it: slots, checkpoint, lag, state, dead letters.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProjectionOverview {
    /// The projection.
    pub projection: ProjectionName,
    /// The version the running code builds.
    pub code_version: u32,
    /// The slot readers see, if any.
    pub active: Option<SlotInfo>,
    /// Every slot (a rebuild in progress shows as a second, `building` one).
    pub slots: Vec<SlotInfo>,
    /// The active slot's checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// The newest slot being built (a rebuild or version bump in progress), with its
    /// checkpoint.
    pub building: Option<(SlotInfo, Checkpoint)>,
    /// The store's head.
    pub head: Checkpoint,
    /// About how many events the active slot has yet to apply.
    pub lag_events: u64,
    /// How long the oldest event not yet applied has been waiting (0 when caught up).
    pub lag_seconds: f64,
    /// What the projector is doing, from its last heartbeat: `stopped` when it stopped, or
    /// when its last heartbeat is older than the staleness limit (15 s).
    pub state: ProjectorState,
    /// Whether an operator paused it.
    pub paused: bool,
    /// The projector's last heartbeat.
    pub heartbeat: Option<ProjectorHeartbeat>,
    /// Events parked in the active slot's dead-letter list.
    pub dead_letters: usize,
}

/// How old a projector's last heartbeat may be before `status` calls it stopped.
const STALE_AFTER: Duration = Duration::from_secs(15);

impl<S, P, T, C> Projector<S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// The projection's state for an operator.
    ///
    /// # Errors
    ///
    /// The store's or target's error.
    pub async fn overview(&self) -> Result<ProjectionOverview> {
        let shared = &self.shared;
        let name = &P::NAME;
        let slots = shared.target.slots(name).await?;
        let active = slots.iter().find(|s| s.state == SlotState::Active).cloned();
        if let Some(active) = &active {
            active.check_store(name, &shared.store.identity().await?)?;
        }
        let head = shared.store.head().await?;
        let (checkpoint, dead_letters) = match &active {
            Some(a) => (
                shared.target.checkpoint(name, a.slot).await?,
                shared.target.dead_letters(name, a.slot).await?.len(),
            ),
            None => (None, 0),
        };
        let building = match slots.iter().rev().find(|s| s.state == SlotState::Building) {
            Some(slot) => shared
                .target
                .checkpoint(name, slot.slot)
                .await?
                .map(|c| (slot.clone(), c)),
            None => None,
        };
        let from = checkpoint.clone().unwrap_or(Checkpoint::START);
        let lag_events = from.distance_to(&head);
        let oldest = shared.store.read_all(&from, 1).await?;
        let lag_seconds = oldest.events.first().map_or(0.0, |e| {
            SystemTime::now()
                .duration_since(e.recorded_at)
                .unwrap_or_default()
                .as_secs_f64()
        });
        let paused = shared.target.control(name).await?.paused;
        let heartbeat = shared.target.heartbeat(name).await?;
        let state = derive_state(heartbeat.as_ref(), paused, SystemTime::now());
        Ok(ProjectionOverview {
            projection: name.clone(),
            code_version: P::VERSION,
            active,
            slots,
            checkpoint,
            building,
            head,
            lag_events,
            lag_seconds,
            state,
            paused,
            heartbeat,
            dead_letters,
        })
    }

    /// Pauses every running projector of the projection: each finishes its batch, gives its
    /// slot up and waits (within its idle interval, 1 s by default).
    ///
    /// # Errors
    ///
    /// The target's error.
    pub async fn pause(&self) -> Result<()> {
        self.set_paused(true).await
    }

    /// Lets paused projectors go on.
    ///
    /// # Errors
    ///
    /// The target's error.
    pub async fn resume(&self) -> Result<()> {
        self.set_paused(false).await
    }

    async fn set_paused(&self, paused: bool) -> Result<()> {
        let target = &self.shared.target;
        let mut control = target.control(&P::NAME).await?;
        control.paused = paused;
        target.set_control(&P::NAME, control).await
    }

    /// Whether the projection is paused.
    ///
    /// # Errors
    ///
    /// The target's error.
    pub async fn control(&self) -> Result<ProjectionControl> {
        self.shared.target.control(&P::NAME).await
    }

    /// Empties the active slot and sets its checkpoint back to the start: running projectors
    /// rebuild it from the first event once resumed. `None` when no slot is active.
    ///
    /// # Errors
    ///
    /// [`Error::ProjectionBusy`] when a running projector holds the slot (pause it first).
    pub async fn reset(&self) -> Result<Option<SlotInfo>> {
        let Some(active) = self.shared.target.active_slot(&P::NAME).await? else {
            return Ok(None);
        };
        let store = self.shared.store.identity().await?;
        self.with_lease(active.slot, async || {
            self.shared
                .target
                .clear_slot(&P::NAME, active.slot, &store)
                .await
        })
        .await?;
        Ok(Some(SlotInfo {
            store: Some(store),
            ..active
        }))
    }

    /// The active slot's dead letters, oldest first.
    ///
    /// # Errors
    ///
    /// The target's error.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        match self.shared.target.active_slot(&P::NAME).await? {
            Some(active) => self.shared.target.dead_letters(&P::NAME, active.slot).await,
            None => Ok(Vec::new()),
        }
    }

    /// Runs the handler again on the dead-lettered event `event_id` (read back from the
    /// store) and commits its writes with the letter's removal, atomically. `false` when no
    /// such letter is parked. The writes land after events applied since it was parked.
    ///
    /// # Errors
    ///
    /// [`Error::PoisonEvent`] when the handler fails again (the letter stays);
    /// [`Error::ProjectionBusy`] when a running projector holds the slot.
    pub async fn retry_dead_letter(&self, event_id: Uuid) -> Result<bool> {
        self.settle_dead_letter(event_id, true).await
    }

    /// Removes the dead letter of event `event_id` without applying it. `false` when no such
    /// letter is parked.
    ///
    /// # Errors
    ///
    /// [`Error::ProjectionBusy`] when a running projector holds the slot.
    pub async fn discard_dead_letter(&self, event_id: Uuid) -> Result<bool> {
        self.settle_dead_letter(event_id, false).await
    }

    async fn settle_dead_letter(&self, event_id: Uuid, apply: bool) -> Result<bool> {
        let Some(active) = self.shared.target.active_slot(&P::NAME).await? else {
            return Ok(false);
        };
        let shared = &self.shared;
        let name = &P::NAME;
        self.with_lease(active.slot, async || {
            let letters = shared.target.dead_letters(name, active.slot).await?;
            let Some(letter) = letters.into_iter().find(|l| l.event_id == event_id) else {
                return Ok(false);
            };
            let mut writes = P::Writes::default();
            if apply {
                let events = shared
                    .store
                    .read_stream(&letter.stream_id, letter.stream_version, 1)
                    .await?;
                let event = events
                    .into_iter()
                    .find(|e| e.event_id == event_id)
                    .ok_or_else(|| {
                        Error::Backend(BackendError::new(
                            "store",
                            BackendErrorKind::Corrupt,
                            format!(
                                "reading event {event_id} of dead letter `{}` version {}: it is not in the store",
                                letter.stream_id, letter.stream_version
                            ),
                            None,
                        ))
                    })?;
                if let Err(error) =
                    batch::handle_one(&shared.projection, &shared.codec, &event, &mut writes)
                {
                    return Err(Error::PoisonEvent(Box::new(PoisonEvent::new(
                        name.clone(),
                        &event,
                        1,
                        error,
                    ))));
                }
            }
            let checkpoint = shared
                .target
                .checkpoint(name, active.slot)
                .await?
                .ok_or_else(|| Error::SlotNotFound {
                    projection: name.clone(),
                    slot: active.slot,
                })?;
            let commit = Commit::new(checkpoint.clone(), checkpoint, writes).with_unpark(vec![event_id]);
            match shared.target.commit(name, active.slot, commit).await? {
                CommitOutcome::Committed => Ok(true),
                // We hold the lease: only an operator's reset or drop moves it meanwhile.
                CommitOutcome::Moved { .. } => Err(Error::ProjectionBusy {
                    projection: name.clone(),
                    slot: active.slot,
                }),
            }
        })
        .await
    }

    /// Runs `work` holding `slot`'s lease; waits up to a lease's lifetime for a paused or
    /// crashed projector to let go of it.
    pub(super) async fn with_lease<R>(
        &self,
        slot: SlotId,
        work: impl AsyncFnOnce() -> Result<R>,
    ) -> Result<R> {
        let shared = &self.shared;
        let options = &shared.options;
        let deadline = tokio::time::Instant::now() + options.lease_ttl + options.idle_interval;
        loop {
            if shared
                .target
                .acquire_lease(&P::NAME, slot, &options.owner, options.lease_ttl)
                .await?
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::ProjectionBusy {
                    projection: P::NAME,
                    slot,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = work().await;
        let released = shared
            .target
            .release_lease(&P::NAME, slot, &options.owner)
            .await;
        let value = result?;
        released?;
        Ok(value)
    }
}

/// The state `status` shows: paused wins; then the last heartbeat, unless it is stale.
fn derive_state(
    heartbeat: Option<&ProjectorHeartbeat>,
    paused: bool,
    now: SystemTime,
) -> ProjectorState {
    if paused {
        return ProjectorState::Paused;
    }
    let Some(heartbeat) = heartbeat else {
        return ProjectorState::Stopped;
    };
    let age = now.duration_since(heartbeat.at).unwrap_or_default();
    match heartbeat.state {
        ProjectorState::Failed | ProjectorState::Stopped => heartbeat.state,
        _ if age > STALE_AFTER => ProjectorState::Stopped,
        // A paused heartbeat after the resume: the projector picks up within its idle interval.
        ProjectorState::Paused => ProjectorState::Running,
        state => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_reports_read_as_stopped() {
        let now = SystemTime::now();
        let mut heartbeat = ProjectorHeartbeat::new(
            ProjectorState::Running,
            SlotId::new(1),
            Checkpoint::START,
            "a".into(),
        );
        heartbeat.at = now - Duration::from_secs(1);
        assert_eq!(
            derive_state(Some(&heartbeat), false, now),
            ProjectorState::Running
        );
        assert_eq!(
            derive_state(Some(&heartbeat), true, now),
            ProjectorState::Paused
        );
        heartbeat.at = now - STALE_AFTER - Duration::from_secs(1);
        assert_eq!(
            derive_state(Some(&heartbeat), false, now),
            ProjectorState::Stopped
        );
        heartbeat.state = ProjectorState::Failed;
        assert_eq!(
            derive_state(Some(&heartbeat), false, now),
            ProjectorState::Failed
        );
        assert_eq!(derive_state(None, false, now), ProjectorState::Stopped);
    }
}
