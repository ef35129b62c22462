//! The projector's loop: pick a slot, hold its lease, read, handle, commit, repeat.
//!
//! Every failure path goes back to [`Driver::attempt`], which starts again from what the target
//! has stored (slot, checkpoint), so a lost reply, a dropped connection or a rival writer can
//! never make the projector skip or repeat an effect.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::batch::{self, Built};
use super::options::PoisonPolicy;
use super::{ProjectorProgress, Shared, telemetry};
use crate::codec::Codec;
use crate::error::{BoxError, Error, PoisonEvent, Result, error_chain};
use crate::event::RecordedEvent;
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{
    Commit, CommitOutcome, DeadLetter, NewSlot, ProjectionTarget, ProjectorState, ProjectorStatus,
    SlotState,
};
use crate::store::{EventBatch, EventStore};

/// When a [`Driver::run`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Until {
    /// Only on shutdown (or a fatal error): the live projector.
    Shutdown,
    /// Once the store's head as of the start is applied.
    CaughtUp,
    /// Once that slot has applied the store's head as of the start (a rebuild).
    SlotCaughtUp(u32),
}

/// How one [`Driver::attempt`] ended.
enum Exit {
    /// The goal of `Until` is reached.
    Done,
    /// Start again from what the target has stored.
    Restart,
}

/// The fewest pages read ahead of the handler, so reading overlaps committing.
const READ_AHEAD: usize = 4;

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
        }
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
                        self.report(None).await;
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
            if !error.is_transient() || give_up {
                tracing::error!(projection = %P::NAME, error = %error_chain(&error, ": "), "projection stopped");
                self.set_state(ProjectorState::Failed);
                self.report(Some(error_chain(&error, ": "))).await;
                return Err(error);
            }
            tracing::warn!(
                projection = %P::NAME,
                error = %error_chain(&error, ": "),
                retry_in = ?backoff,
                "projection interrupted; resuming from the target's checkpoint"
            );
            if sleep_or_shutdown(&self.shared.shutdown, backoff).await {
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
        let target = &self.shared.target;
        let name = &P::NAME;
        let slots = target.slots(name).await?;
        // A switch interrupted between activating the new slot and dropping the old one.
        for retired in slots.iter().filter(|s| s.state == SlotState::Retired) {
            if let Err(error) = target.drop_slot(name, retired.slot).await {
                tracing::warn!(projection = %name, slot = retired.slot, error = %error_chain(&error, ": "), "could not drop a retired slot");
            }
        }
        let active = slots.iter().find(|s| s.state == SlotState::Active);
        let (slot, building) = match until {
            Until::SlotCaughtUp(number) => {
                let slot = slots
                    .iter()
                    .find(|s| s.slot == number)
                    .ok_or(Error::SlotNotFound {
                        projection: name.clone(),
                        slot: number,
                    })?;
                (number, slot.state == SlotState::Building)
            }
            Until::Shutdown | Until::CaughtUp => match active {
                Some(a) if a.version == P::VERSION => (a.slot, false),
                Some(a) if a.version > P::VERSION => {
                    return Err(Error::ProjectionSuperseded {
                        projection: name.clone(),
                        running: P::VERSION,
                        active: a.version,
                    });
                }
                _ => (
                    target
                        .create_slot(name, P::VERSION, NewSlot::Resume)
                        .await?
                        .slot,
                    true,
                ),
            },
        };
        let head = self.shared.store.head().await?;
        self.progress.slot = slot;
        self.progress.active = !building;
        self.progress.head = head.clone();

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
        let worked = self.work(slot, building, &head, until).await;
        if let Err(error) = target.release_lease(name, slot, owner).await {
            tracing::debug!(projection = %name, slot, error = %error_chain(&error, ": "), "could not release the lease");
        }
        worked
    }

    /// Another instance holds the slot's lease: wait a while, then look again. A catch-up or
    /// rebuild is also done once that instance has brought the slot to the head.
    async fn stand_by(&mut self, slot: u32, head: &Checkpoint, until: Until) -> Result<Exit> {
        self.set_state(ProjectorState::Standby);
        self.publish();
        if until != Until::Shutdown {
            let checkpoint = self.shared.target.checkpoint(&P::NAME, slot).await?;
            if checkpoint.is_some_and(|c| c.covers_checkpoint(head)) {
                return Ok(Exit::Done);
            }
        }
        if sleep_or_shutdown(&self.shared.shutdown, self.shared.options.idle_interval).await {
            return Ok(Exit::Done);
        }
        Ok(Exit::Restart)
    }

    /// An operator paused the projection: hold nothing, report `paused`, look again each idle
    /// interval. (Only live projectors pause; `catch_up` and `rebuild` are operator actions.)
    async fn wait_paused(&mut self) -> Result<Exit> {
        self.set_state(ProjectorState::Paused);
        self.report(None).await;
        loop {
            if sleep_or_shutdown(&self.shared.shutdown, self.shared.options.idle_interval).await {
                return Ok(Exit::Done);
            }
            if !self.shared.target.control(&P::NAME).await?.paused {
                return Ok(Exit::Restart);
            }
            self.report(None).await;
        }
    }

    /// Holds the lease on `slot`: follows the feed from the slot's checkpoint, batch by batch.
    async fn work(
        &mut self,
        slot: u32,
        mut building: bool,
        head: &Checkpoint,
        until: Until,
    ) -> Result<Exit> {
        let shared = self.shared;
        let Some(mut checkpoint) = shared.target.checkpoint(&P::NAME, slot).await? else {
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
        self.report(None).await;

        if checkpoint.covers_checkpoint(head)
            && let Some(exit) = self.caught_up(slot, &mut building, until).await?
        {
            return Ok(exit);
        }

        let subscription = shared.store.subscribe(checkpoint.clone()).await?;
        let batch_size = shared.options.batch_size;
        let (sender, mut batches) = mpsc::channel(read_ahead_pages(batch_size));
        let _reader = AbortOnDrop(tokio::spawn(
            read_ahead(subscription, sender).instrument(tracing::Span::current()),
        ));
        let mut ticker = tokio::time::interval(shared.options.idle_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut shutdown = shared.shutdown.subscribe();
        // Events read but not committed yet, and a checkpoint covering all of them (the
        // store's pages may cover more than their events).
        let mut pending: VecDeque<RecordedEvent> = VecDeque::new();
        let mut read_through = checkpoint.clone();

        loop {
            let idle = pending.is_empty() && checkpoint.covers_checkpoint(&read_through);
            let housekeeping_due = if idle {
                tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => return Ok(Exit::Done),
                    _ = ticker.tick() => true,
                    received = batches.recv() => {
                        let Some(page) = received else {
                            return Ok(Exit::Restart);
                        };
                        absorb(page?, &mut pending, &mut read_through);
                        false
                    }
                }
            } else {
                if *shutdown.borrow_and_update() {
                    return Ok(Exit::Done);
                }
                // Catching up keeps this loop busy: look at the ticker without waiting.
                futures_util::FutureExt::now_or_never(ticker.tick()).is_some()
            };
            if housekeeping_due
                && let Some(exit) = self.housekeeping(slot, &checkpoint, building).await?
            {
                return Ok(exit);
            }
            if self.paused && until == Until::Shutdown {
                // Give the slot up (lease, Tantivy's writer) so an operator can work on it;
                // `attempt` waits for the resume.
                return Ok(Exit::Restart);
            }
            if pending.is_empty() && checkpoint.covers_checkpoint(&read_through) {
                // Only a tick: nothing read to commit.
                continue;
            }
            // Fill the batch: what is read already, and while behind the head seen at the
            // start, wait for the pages the reader is fetching (full batches mean fewer
            // commits, which dominate the cost of a catch-up).
            while pending.len() < batch_size {
                let page = match batches.try_recv() {
                    Ok(page) => page,
                    Err(mpsc::error::TryRecvError::Empty)
                        if !read_through.covers_checkpoint(head) =>
                    {
                        match batches.recv().await {
                            Some(page) => page,
                            None => break,
                        }
                    }
                    Err(_) => break,
                };
                absorb(page?, &mut pending, &mut read_through);
            }
            if self.last_renewal.elapsed() >= shared.options.lease_ttl / 3
                && !self.renew(slot).await?
            {
                return Ok(Exit::Restart);
            }
            let take = pending.len().min(batch_size);
            let chunk: Vec<RecordedEvent> = pending.drain(..take).collect();
            // The store's checkpoint only goes with the last event read.
            let through = pending.is_empty().then_some(&read_through);
            if !self.apply(slot, &mut checkpoint, &chunk, through).await? {
                return Ok(Exit::Restart);
            }
            if !self.progress.caught_up
                && checkpoint.covers_checkpoint(head)
                && let Some(exit) = self.caught_up(slot, &mut building, until).await?
            {
                return Ok(exit);
            }
        }
    }

    /// The slot has applied the head seen at the start: activate it if it was being built,
    /// and tell the projection. `Some` when `until` is reached.
    async fn caught_up(
        &mut self,
        slot: u32,
        building: &mut bool,
        until: Until,
    ) -> Result<Option<Exit>> {
        let target = &self.shared.target;
        if *building {
            target.activate(&P::NAME, slot).await?;
            *building = false;
            tracing::info!(projection = %P::NAME, slot, "caught up; slot activated");
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
        self.report(None).await;
        self.shared.projection.on_caught_up();
        Ok(match until {
            Until::Shutdown => None,
            Until::CaughtUp | Until::SlotCaughtUp(_) => Some(Exit::Done),
        })
    }

    /// Every idle interval: renew the lease, read the operator's flags, sample the head,
    /// check nobody reset, dropped or replaced the slot, report status.
    async fn housekeeping(
        &mut self,
        slot: u32,
        checkpoint: &Checkpoint,
        building: bool,
    ) -> Result<Option<Exit>> {
        let target = &self.shared.target;
        if !self.renew(slot).await? {
            return Ok(Some(Exit::Restart));
        }
        self.paused = target.control(&P::NAME).await?.paused;
        if target.checkpoint(&P::NAME, slot).await?.as_ref() != Some(checkpoint) {
            tracing::info!(projection = %P::NAME, slot, "the slot was reset or dropped; starting again");
            return Ok(Some(Exit::Restart));
        }
        if !building {
            let slots = target.slots(&P::NAME).await?;
            let still_active = slots
                .iter()
                .any(|s| s.slot == slot && s.state == SlotState::Active);
            if !still_active {
                tracing::info!(projection = %P::NAME, slot, "another slot was activated; switching to it");
                return Ok(Some(Exit::Restart));
            }
        }
        self.progress.head = self.shared.store.head().await?;
        let state = match (self.paused, building) {
            (true, _) => ProjectorState::Paused,
            (false, true) => ProjectorState::Rebuilding,
            (false, false) => ProjectorState::Running,
        };
        self.set_state(state);
        self.update_lag();
        self.publish();
        self.report(None).await;
        Ok(None)
    }

    async fn renew(&mut self, slot: u32) -> Result<bool> {
        let options = &self.shared.options;
        let held = self
            .shared
            .target
            .acquire_lease(&P::NAME, slot, &options.owner, options.lease_ttl)
            .await?;
        if held {
            self.last_renewal = Instant::now();
        } else {
            tracing::warn!(projection = %P::NAME, slot, "lost the slot's lease to another instance");
        }
        Ok(held)
    }

    /// Handles and commits what was read. `false` when the target's checkpoint moved under
    /// us (nothing of the failed commit was stored), or a shutdown interrupted the retries of
    /// a failing event: start again from the target (which ends the run on shutdown).
    async fn apply(
        &mut self,
        slot: u32,
        checkpoint: &mut Checkpoint,
        events: &[RecordedEvent],
        store_checkpoint: Option<&Checkpoint>,
    ) -> Result<bool> {
        let started = Instant::now();
        let span = tracing::info_span!("projection.batch", projection = %P::NAME, slot, events = events.len());
        let counts: Result<Option<(u64, u64)>> = async {
            let (mut applied, mut skipped) = (0, 0);
            let mut start = 0;
            loop {
                let shared = self.shared;
                match batch::build(
                    &shared.projection,
                    &shared.codec,
                    &events[start..],
                    checkpoint,
                ) {
                    Ok(mut built) => {
                        // The store's checkpoint may cover more than the events (e.g. a
                        // partition read to its end): keep that too.
                        for position in store_checkpoint.map_or(&[][..], Checkpoint::positions) {
                            built.checkpoint.advance(*position);
                        }
                        applied += built.applied;
                        skipped += built.skipped;
                        if built.checkpoint != *checkpoint
                            && !self.commit(slot, checkpoint, built, Vec::new()).await?
                        {
                            return Ok(None);
                        }
                        return Ok(Some((applied, skipped)));
                    }
                    Err(mut failed) => {
                        // Commit what precedes the failing event, without its partial writes.
                        while failed.index > 0 {
                            let prefix = &events[start..start + failed.index];
                            match batch::build(
                                &shared.projection,
                                &shared.codec,
                                prefix,
                                checkpoint,
                            ) {
                                Ok(built) => {
                                    applied += built.applied;
                                    skipped += built.skipped;
                                    if !self.commit(slot, checkpoint, built, Vec::new()).await? {
                                        return Ok(None);
                                    }
                                    break;
                                }
                                Err(again) => failed = again,
                            }
                        }
                        let poison = &events[start + failed.index];
                        match self.poison(slot, checkpoint, poison, failed.error).await? {
                            Some(handled) => applied += u64::from(handled),
                            None => return Ok(None),
                        }
                        start += failed.index + 1;
                    }
                }
            }
        }
        .instrument(span)
        .await;
        let Some((applied, skipped)) = counts? else {
            return Ok(false);
        };
        self.progress.applied += applied;
        self.progress.skipped += skipped;
        self.progress.checkpoint = checkpoint.clone();
        telemetry::batch(&P::NAME, applied, skipped, started.elapsed());
        self.update_lag();
        self.publish();
        Ok(true)
    }

    /// An event failed: retry it alone with backoff, then apply the poison policy.
    /// `Some(true)` when a retry succeeded, `Some(false)` when it was parked, `None` when the
    /// target's checkpoint moved or a shutdown came first (the event stays unapplied).
    async fn poison(
        &mut self,
        slot: u32,
        checkpoint: &mut Checkpoint,
        event: &RecordedEvent,
        first_error: BoxError,
    ) -> Result<Option<bool>> {
        let shared = self.shared;
        let options = &shared.options;
        let mut error = first_error;
        let mut attempts = 1;
        let mut delay = options.retry_delay;
        while attempts < options.max_attempts {
            telemetry::retry(&P::NAME);
            tracing::debug!(projection = %P::NAME, event = %event.event_id, attempts, error = %error_chain(&*error, ": "), "handler failed; retrying");
            if sleep_or_shutdown(&self.shared.shutdown, delay).await {
                return Ok(None);
            }
            delay *= 2;
            attempts += 1;
            match batch::build(
                &shared.projection,
                &shared.codec,
                std::slice::from_ref(event),
                checkpoint,
            ) {
                Ok(built) => {
                    return Ok(self
                        .commit(slot, checkpoint, built, Vec::new())
                        .await?
                        .then_some(true));
                }
                Err(failed) => error = failed.error,
            }
        }
        match options.poison {
            PoisonPolicy::Stop => Err(Error::PoisonEvent(Box::new(PoisonEvent::new(
                P::NAME,
                event,
                attempts,
                error,
            )))),
            PoisonPolicy::DeadLetter => {
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
                if !self.commit(slot, checkpoint, built, vec![letter]).await? {
                    return Ok(None);
                }
                telemetry::dead_letter(&P::NAME);
                self.progress.dead_lettered += 1;
                Ok(Some(false))
            }
        }
    }

    /// Commits `built` conditional on `checkpoint`; advances `checkpoint` when stored.
    async fn commit(
        &mut self,
        slot: u32,
        checkpoint: &mut Checkpoint,
        built: Built<P::Writes>,
        park: Vec<DeadLetter>,
    ) -> Result<bool> {
        let next = built.checkpoint.clone();
        let commit =
            Commit::new(checkpoint.clone(), built.checkpoint, built.writes).with_park(park);
        match self.shared.target.commit(&P::NAME, slot, commit).await? {
            CommitOutcome::Committed => {
                *checkpoint = next;
                if built.last_recorded_at.is_some() {
                    self.last_recorded_at = built.last_recorded_at;
                }
                Ok(true)
            }
            CommitOutcome::Moved { actual } => {
                telemetry::moved(&P::NAME);
                tracing::info!(
                    projection = %P::NAME,
                    slot,
                    expected = %checkpoint,
                    actual = %actual.map_or_else(|| "none (slot dropped)".to_owned(), |c| c.to_string()),
                    "the slot's checkpoint moved under this projector; starting again from it"
                );
                Ok(false)
            }
        }
    }

    fn update_lag(&mut self) {
        let progress = &mut self.progress;
        progress.lag_events = progress.checkpoint.distance_to(&progress.head);
        let behind = !progress.checkpoint.covers_checkpoint(&progress.head);
        let seconds = match (behind, self.last_recorded_at) {
            (true, Some(at)) => SystemTime::now()
                .duration_since(at)
                .unwrap_or_default()
                .as_secs_f64(),
            _ => 0.0,
        };
        telemetry::lag(&P::NAME, progress.lag_events, seconds);
    }

    fn set_state(&mut self, state: ProjectorState) {
        self.progress.state = state;
    }

    fn publish(&mut self) {
        self.shared.progress.send_replace(self.progress.clone());
        if let Some(on_progress) = self.on_progress.as_mut() {
            on_progress(&self.progress);
        }
    }

    /// Records the projector's state in the target, for `status`; a failure to do so is
    /// logged, never fatal.
    async fn report(&mut self, error: Option<String>) {
        self.publish();
        let progress = &self.progress;
        let mut status = ProjectorStatus::new(
            progress.state,
            progress.slot,
            progress.checkpoint.clone(),
            self.shared.options.owner.clone(),
        );
        if let Some(error) = error {
            status = status.with_error(error);
        }
        if let Err(error) = self.shared.target.report_status(&P::NAME, &status).await {
            tracing::debug!(projection = %P::NAME, error = %error_chain(&error, ": "), "could not report status");
        }
    }

    fn shutdown_requested(&self) -> bool {
        *self.shared.shutdown.borrow()
    }
}

/// Sleeps for `duration`; `true` when a shutdown was asked for meanwhile.
async fn sleep_or_shutdown(shutdown: &watch::Sender<bool>, duration: Duration) -> bool {
    let mut stop = shutdown.subscribe();
    tokio::select! {
        () = stopped(&mut stop) => true,
        () = tokio::time::sleep(duration) => *shutdown.borrow(),
    }
}

/// Resolves once a shutdown is asked for.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it before anything else awaits.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Adds a page read from the store to the pending events.
fn absorb(page: EventBatch, pending: &mut VecDeque<RecordedEvent>, read_through: &mut Checkpoint) {
    for position in page.checkpoint.positions() {
        read_through.advance(*position);
    }
    pending.extend(page.events);
}

/// Pages read ahead of the handler: enough to fill the next batch while this one commits
/// (stores read pages of 500–1000 events), few enough to bound memory.
fn read_ahead_pages(batch_size: usize) -> usize {
    (batch_size / 250).clamp(READ_AHEAD, 64)
}

/// Pulls batches from the store's subscription into the bounded channel.
async fn read_ahead(
    mut subscription: crate::store::Subscription,
    sender: mpsc::Sender<Result<EventBatch>>,
) {
    while let Some(batch) = subscription.next().await {
        let failed = batch.is_err();
        if sender.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Aborts the read-ahead task when the loop that consumes it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
