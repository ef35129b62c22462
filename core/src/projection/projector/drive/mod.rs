//! The projector's loop: pick a slot, hold its lease, read, handle, commit, repeat.
//!
//! Every failure path goes back to [`Driver::attempt`], which starts again from what the target
//! has stored (slot, checkpoint), so a lost reply, a dropped connection or a rival writer can
//! never make the projector skip or repeat an effect.
//!
//! This file is the orchestration: [`Driver::run`] retries attempts with backoff, and an
//! attempt picks the slot and takes its lease (or stands by, or waits out a pause). Holding
//! the lease, [`follow`] runs the loop on the slot: [`read_ahead`] feeds it events, [`apply`]
//! turns them into writes, [`commit`] stores them, [`progress`] tells how it goes, and
//! [`housekeeping`] keeps the lease and notices operators' changes.

mod apply;
mod commit;
mod follow;
mod housekeeping;
mod progress;
mod read_ahead;

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use super::{PoisonPolicy, ProjectorProgress, Shared};
use crate::codec::Codec;
use crate::error::{Error, Result, error_chain};
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{NewSlot, ProjectionTarget, ProjectorState, SlotId, SlotState};
use crate::store::EventStore;

/// When a [`Driver::run`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Until {
    /// Only on shutdown (or a fatal error): the live projector.
    Shutdown,
    /// Once the store's head as of the start is applied.
    CaughtUp,
    /// Once that slot has applied the store's head as of the start (a rebuild).
    SlotCaughtUp(SlotId),
}

/// How one [`Driver::attempt`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// The goal of `Until` is reached, or a shutdown was asked for: [`Driver::run`] returns.
    Done,
    /// Start again from what the target has stored: pick the slot, take its lease, read its
    /// checkpoint.
    Restart,
}

/// What the loop on a held slot does after one of its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Go on with this slot.
    Continue,
    /// Leave the slot (its lease is released) and end the attempt this way.
    Exit(Exit),
}

/// How a [`sleep_or_shutdown`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slept {
    /// The whole duration passed, and no shutdown was asked for.
    Elapsed,
    /// A shutdown was asked for meanwhile (the sleep may have been cut short).
    Shutdown,
}

/// A rebuild's progress callback.
type OnProgress<'a> = Box<dyn FnMut(&ProjectorProgress) + Send + 'a>;

pub(super) struct Driver<'a, S, P, T, C> {
    shared: &'a Shared<S, P, T, C>,
    on_progress: Option<OnProgress<'a>>,
    progress: ProjectorProgress,
    paused: bool,
    last_renewal: Instant,
    last_recorded_at: Option<SystemTime>,
    /// Whether this driver has held a slot's lease (and so reported on it).
    worked: bool,
    /// What to do with an event that keeps failing: the options', unless an operator's
    /// rebuild says otherwise.
    poison: PoisonPolicy,
}

impl<'a, S, P, T, C> Driver<'a, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    pub(super) fn new(shared: &'a Shared<S, P, T, C>) -> Self {
        Driver {
            shared,
            on_progress: None,
            progress: shared.progress.borrow().clone(),
            paused: false,
            last_renewal: Instant::now(),
            last_recorded_at: None,
            worked: false,
            poison: shared.options.poison,
        }
    }

    pub(super) fn with_poison_policy(mut self, poison: PoisonPolicy) -> Self {
        self.poison = poison;
        self
    }

    pub(super) fn with_progress(
        mut self,
        on_progress: impl FnMut(&ProjectorProgress) + Send + 'a,
    ) -> Self {
        self.on_progress = Some(Box::new(on_progress));
        self
    }

    /// Runs attempts until `until` is reached, retrying transient failures with backoff.
    pub(super) async fn run(mut self, until: Until) -> Result<()> {
        let options = &self.shared.options;
        let mut backoff = Duration::from_millis(100).min(options.max_backoff);
        let mut failing_since: Option<Instant> = None;
        loop {
            let error = match self.attempt(until).await {
                Ok(Exit::Done) => {
                    // A catch-up or rebuild that a standby instance saw finished elsewhere
                    // did nothing itself: its report would overwrite the running one's.
                    if until == Until::Shutdown || self.worked {
                        self.set_state(ProjectorState::Stopped);
                        self.record_heartbeat().await;
                    }
                    return Ok(());
                }
                Ok(Exit::Restart) => {
                    failing_since = None;
                    backoff = Duration::from_millis(100).min(options.max_backoff);
                    continue;
                }
                Err(error) => error,
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            let give_up = options.give_up_after.is_some_and(|g| since.elapsed() >= g);
            let message = error_chain(&error, ": ");
            if !error.is_transient() || give_up {
                tracing::error!(projection = %P::NAME, error = %message, "projection stopped");
                self.report_failure(ProjectorState::Failed, message).await;
                return Err(error);
            }
            tracing::warn!(
                projection = %P::NAME,
                error = %message,
                retry_in = ?backoff,
                "projection interrupted; resuming from the target's checkpoint"
            );
            // Watchers (a rebuild's progress line, `status`) see the interruption, not a
            // projector that silently stopped moving.
            self.report_failure(ProjectorState::Retrying, message).await;
            if sleep_or_shutdown(&self.shared.shutdown, backoff).await == Slept::Shutdown {
                return Ok(());
            }
            backoff = (backoff * 2).min(options.max_backoff);
        }
    }

    /// One pass: pick the slot, take its lease, work on it until done, restart or failure.
    async fn attempt(&mut self, until: Until) -> Result<Exit> {
        if self.shutdown_requested() {
            return Ok(Exit::Done);
        }
        let (slot, building) = self.pick_slot(until).await?;
        let head = self.shared.store.head().await?;
        self.progress.slot = slot;
        self.progress.active = !building;
        self.progress.head = head.clone();

        let target = &self.shared.target;
        let name = &P::NAME;
        if until == Until::Shutdown && target.control(name).await?.paused {
            return self.wait_paused().await;
        }
        let owner = self.shared.options.owner.as_str();
        let ttl = self.shared.options.lease_ttl;
        if !target.acquire_lease(name, slot, owner, ttl).await? {
            return self.stand_by(slot, &head, until).await;
        }
        self.last_renewal = Instant::now();
        self.worked = true;
        let followed = self.follow(slot, building, &head, until).await;
        if let Err(error) = target.release_lease(name, slot, owner).await {
            tracing::debug!(projection = %name, slot = slot.get(), error = %error_chain(&error, ": "), "could not release the lease");
        }
        followed
    }

    /// The slot to work on, and whether it is being built (not active yet): the one `until`
    /// names, else the active one if this version built it, else one built beside it.
    /// (`&mut self`: a `Driver` is not `Sync`, and this future must be `Send`.)
    async fn pick_slot(&mut self, until: Until) -> Result<(SlotId, bool)> {
        let target = &self.shared.target;
        let name = &P::NAME;
        let slots = target.slots(name).await?;
        // A switch interrupted between activating the new slot and dropping the old one.
        for retired in slots.iter().filter(|s| s.state == SlotState::Retired) {
            if let Err(error) = target.drop_slot(name, retired.slot).await {
                tracing::warn!(projection = %name, slot = retired.slot.get(), error = %error_chain(&error, ": "), "could not drop a retired slot");
            }
        }
        let active = slots.iter().find(|s| s.state == SlotState::Active);
        // A slot built from another store's feed has a checkpoint that means nothing here.
        let store = self.shared.store.identity().await?;
        Ok(match until {
            Until::SlotCaughtUp(number) => {
                let slot = slots
                    .iter()
                    .find(|s| s.slot == number)
                    .ok_or(Error::SlotNotFound {
                        projection: name.clone(),
                        slot: number,
                    })?;
                slot.check_store(name, &store)?;
                (number, slot.state == SlotState::Building)
            }
            Until::Shutdown | Until::CaughtUp => match active {
                Some(a) if a.version == P::VERSION => {
                    a.check_store(name, &store)?;
                    (a.slot, false)
                }
                Some(a) if a.version > P::VERSION => {
                    return Err(Error::ProjectionSuperseded {
                        projection: name.clone(),
                        running: P::VERSION,
                        active: a.version,
                    });
                }
                _ => (
                    target
                        .create_slot(name, P::VERSION, NewSlot::Resume, &store)
                        .await?
                        .slot,
                    true,
                ),
            },
        })
    }

    /// Another instance holds the slot's lease: wait a while, then look again. A catch-up or
    /// rebuild is also done once that instance has brought the slot to the head.
    async fn stand_by(&mut self, slot: SlotId, head: &Checkpoint, until: Until) -> Result<Exit> {
        self.set_state(ProjectorState::Standby);
        self.publish();
        if until != Until::Shutdown {
            let checkpoint = self.shared.target.checkpoint(&P::NAME, slot).await?;
            if checkpoint.is_some_and(|c| c.covers_checkpoint(head)) {
                return Ok(Exit::Done);
            }
        }
        let idle = self.shared.options.idle_interval;
        if sleep_or_shutdown(&self.shared.shutdown, idle).await == Slept::Shutdown {
            return Ok(Exit::Done);
        }
        Ok(Exit::Restart)
    }

    /// An operator paused the projection: hold nothing, report `paused`, look again each idle
    /// interval. (Only live projectors pause; `catch_up` and `rebuild` are operator actions.)
    async fn wait_paused(&mut self) -> Result<Exit> {
        self.set_state(ProjectorState::Paused);
        self.record_heartbeat().await;
        loop {
            let idle = self.shared.options.idle_interval;
            if sleep_or_shutdown(&self.shared.shutdown, idle).await == Slept::Shutdown {
                return Ok(Exit::Done);
            }
            if !self.shared.target.control(&P::NAME).await?.paused {
                return Ok(Exit::Restart);
            }
            self.record_heartbeat().await;
        }
    }

    fn shutdown_requested(&self) -> bool {
        *self.shared.shutdown.borrow()
    }
}

/// Sleeps for `duration`, or less if a shutdown is asked for meanwhile.
async fn sleep_or_shutdown(shutdown: &watch::Sender<bool>, duration: Duration) -> Slept {
    let mut stop = shutdown.subscribe();
    tokio::select! {
        () = stopped(&mut stop) => Slept::Shutdown,
        () = tokio::time::sleep(duration) => {
            if *shutdown.borrow() { Slept::Shutdown } else { Slept::Elapsed }
        }
    }
}

/// Resolves once a shutdown is asked for.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it before anything else awaits.
    let _ = stop.wait_for(|stop| *stop).await;
}
