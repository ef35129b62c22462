//! The loop on a held slot: wait for events or the idle tick, keep house when it is due, then
//! handle and commit up to a batch of events; until the goal of `Until` is reached, a shutdown
//! is asked for, or something calls for starting again from the target.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::housekeeping::Lease;
use super::read_ahead::ReadAhead;
use super::{Driver, Exit, Step, Until, stopped};
use crate::codec::Codec;
use crate::error::Result;
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{ProjectionTarget, ProjectorState, SlotId, SlotState};
use crate::store::EventStore;

/// The slot a driver holds the lease on, and how far it has got.
pub(super) struct Slot<'h> {
    /// The slot's number.
    pub(super) number: SlotId,
    /// Whether the slot is being built beside the active one (it is activated once caught up).
    pub(super) building: bool,
    /// The checkpoint stored in the slot, as of this driver's last commit.
    pub(super) checkpoint: Checkpoint,
    /// The store's head when the attempt began: where a catch-up or rebuild is done.
    head: &'h Checkpoint,
    until: Until,
}

/// What wakes the loop on a slot, besides the pages read: the idle ticker and a shutdown.
struct Wakeups {
    ticker: Interval,
    shutdown: watch::Receiver<bool>,
}

/// Why the loop on a slot woke up.
enum Wakeup {
    /// The idle interval passed: housekeeping is due (events may be pending too).
    Tick,
    /// A page was read, or events were pending already: housekeeping is not due.
    Read,
    /// A shutdown was asked for ([`Exit::Done`]) or the reader ended ([`Exit::Restart`]).
    Exit(Exit),
}

impl<S, P, T, C> Driver<'_, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// Holds the lease on `slot`: follows the feed from the slot's checkpoint, batch by batch.
    pub(super) async fn follow(
        &mut self,
        slot: SlotId,
        building: bool,
        head: &Checkpoint,
        until: Until,
    ) -> Result<Exit> {
        let shared = self.shared;
        let Some(checkpoint) = shared.target.checkpoint(&P::NAME, slot).await? else {
            return Ok(Exit::Restart);
        };
        self.paused = shared.target.control(&P::NAME).await?.paused;
        self.progress.checkpoint = checkpoint.clone();
        self.progress.caught_up = false;
        self.set_state(if building {
            ProjectorState::Rebuilding
        } else {
            ProjectorState::Running
        });
        self.update_lag();
        self.record_heartbeat().await;

        let mut slot = Slot {
            number: slot,
            building,
            checkpoint,
            head,
            until,
        };
        if slot.checkpoint.covers_checkpoint(head)
            && let Step::Exit(exit) = self.caught_up(&mut slot).await?
        {
            return Ok(exit);
        }

        let subscription = shared.store.subscribe(slot.checkpoint.clone()).await?;
        let batch_size = shared.options.batch_size;
        let mut read = ReadAhead::start(subscription, &slot.checkpoint, batch_size);
        let mut wake = Wakeups::start(shared.options.idle_interval, &shared.shutdown).await;
        loop {
            if let Step::Exit(exit) = self.next_batch(&mut slot, &mut read, &mut wake).await? {
                return Ok(exit);
            }
        }
    }

    /// One turn of the loop: wait for events or the idle tick, keep house when it is due,
    /// then handle and commit up to a batch of the events read.
    async fn next_batch(
        &mut self,
        slot: &mut Slot<'_>,
        read: &mut ReadAhead,
        wake: &mut Wakeups,
    ) -> Result<Step> {
        match wake.wait(read, &slot.checkpoint).await? {
            Wakeup::Exit(exit) => return Ok(Step::Exit(exit)),
            Wakeup::Tick => {
                if let step @ Step::Exit(_) = self.housekeeping(slot).await? {
                    return Ok(step);
                }
            }
            Wakeup::Read => {}
        }
        if self.paused && slot.until == Until::Shutdown {
            // Give the slot up (lease, Tantivy's writer) so an operator can work on it;
            // `attempt` waits for the resume.
            return Ok(Step::Exit(Exit::Restart));
        }
        if read.is_idle(&slot.checkpoint) {
            // Only a tick: nothing read to commit.
            return Ok(Step::Continue);
        }
        let batch_size = self.shared.options.batch_size;
        read.fill(batch_size, slot.head).await?;
        if self.renewal_due() && self.renew(slot.number).await? == Lease::Lost {
            return Ok(Step::Exit(Exit::Restart));
        }
        let (events, through) = read.take(batch_size);
        let applied = self
            .apply(slot.number, &mut slot.checkpoint, &events, through)
            .await?;
        if let step @ Step::Exit(_) = applied {
            return Ok(step);
        }
        if !self.progress.caught_up && slot.checkpoint.covers_checkpoint(slot.head) {
            return self.caught_up(slot).await;
        }
        Ok(Step::Continue)
    }

    /// The slot has applied the head seen at the start: activate it if it was being built,
    /// and tell the projection. [`Exit::Done`] when `until` is reached; a live projector
    /// goes on.
    async fn caught_up(&mut self, slot: &mut Slot<'_>) -> Result<Step> {
        let target = &self.shared.target;
        if slot.building {
            target.activate(&P::NAME, slot.number).await?;
            slot.building = false;
            tracing::info!(projection = %P::NAME, slot = slot.number.get(), "caught up; slot activated");
            for old in target.slots(&P::NAME).await? {
                if old.state == SlotState::Retired {
                    target.drop_slot(&P::NAME, old.slot).await?;
                }
            }
        }
        self.progress.active = true;
        self.progress.caught_up = true;
        self.set_state(ProjectorState::Running);
        self.update_lag();
        self.publish();
        self.record_heartbeat().await;
        self.shared.projection.on_caught_up();
        Ok(match slot.until {
            Until::Shutdown => Step::Continue,
            Until::CaughtUp | Until::SlotCaughtUp(_) => Step::Exit(Exit::Done),
        })
    }
}

impl Wakeups {
    /// Starts the idle ticker (taking its first tick, which is immediate) and watches for a
    /// shutdown.
    async fn start(idle_interval: Duration, shutdown: &watch::Sender<bool>) -> Self {
        let mut ticker = tokio::time::interval(idle_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await;
        Wakeups {
            ticker,
            shutdown: shutdown.subscribe(),
        }
    }

    /// While nothing is read beyond `checkpoint`, waits for a shutdown, the idle tick or a
    /// page, in that order of precedence; otherwise only looks at the first two.
    async fn wait(&mut self, read: &mut ReadAhead, checkpoint: &Checkpoint) -> Result<Wakeup> {
        if !read.is_idle(checkpoint) {
            if *self.shutdown.borrow_and_update() {
                return Ok(Wakeup::Exit(Exit::Done));
            }
            // Catching up keeps this loop busy: look at the ticker without waiting.
            let ticked = futures_util::FutureExt::now_or_never(self.ticker.tick()).is_some();
            return Ok(if ticked { Wakeup::Tick } else { Wakeup::Read });
        }
        tokio::select! {
            biased;
            () = stopped(&mut self.shutdown) => Ok(Wakeup::Exit(Exit::Done)),
            _ = self.ticker.tick() => Ok(Wakeup::Tick),
            received = read.recv() => {
                let Some(page) = received else {
                    return Ok(Wakeup::Exit(Exit::Restart));
                };
                read.absorb(page?);
                Ok(Wakeup::Read)
            }
        }
    }
}
