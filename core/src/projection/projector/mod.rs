//! The projector runtime: feed → handler → atomic, conditional commits in the target.
//!
//! The life of a batch, file by file. `drive/mod.rs`: [`Projector::run`] (or `catch_up`,
//! `rebuild`) runs a `Driver`, which picks the slot, takes its lease (or stands by, or waits
//! out a pause), and on any failure starts again from what the target has stored.
//! `drive/follow.rs`: holding the lease, the loop waits for events or the idle tick.
//! `drive/read_ahead.rs`: a task reads the feed ahead into a bounded channel; the loop takes
//! up to `batch_size` events from it. `drive/apply.rs`: the projection's handler turns them
//! into one batch of writes (`batch.rs`); an event that fails is retried alone, then stops
//! the projector or is parked as a dead letter. `drive/commit.rs`: writes and checkpoint are
//! committed together, only if the slot's checkpoint has not moved. `drive/progress.rs`: the
//! progress and lag are published. Every idle interval, `drive/housekeeping.rs` renews the
//! lease and notices a pause, a reset or a switched slot. Beside the loop: `handle.rs` (a
//! spawned projector), `operate.rs` (an operator's actions), `options.rs`, `telemetry.rs`.

mod batch;
mod drive;
mod handle;
mod operate;
mod options;
mod telemetry;
#[cfg(test)]
mod tests;

pub use handle::{ProjectorHandle, ProjectorProgress};
pub use operate::ProjectionOverview;
pub use options::{PoisonPolicy, ProjectorOptions, RebuildMode};

use std::sync::Arc;

use tokio::sync::watch;
use tracing::Instrument;

use super::Projection;
use super::target::{NewSlot, ProjectionTarget, SlotInfo, SlotState};
use crate::codec::{Codec, JsonCodec};
use crate::error::{Error, Result};
use crate::store::EventStore;
use drive::{Driver, Until};

/// Runs one [`Projection`] from an [`EventStore`] into a [`ProjectionTarget`].
///
/// - [`run`](Projector::run) / [`spawn`](Projector::spawn): catch up, then follow the feed
///   live until shut down. On start it picks the slot to work on: the active one if it was
///   built by this [`Projection::VERSION`]; otherwise (first start, or a version bump) a slot
///   being built beside the active one, which it activates once caught up (blue/green).
/// - [`catch_up`](Projector::catch_up): the same, but return once the store's head (as of the
///   call) is applied.
/// - [`rebuild`](Projector::rebuild): rebuild the read model, blue/green or in place.
///
/// Store and target failures are retried with backoff, from the checkpoint stored in the
/// target, so nothing is lost or doubled; see [`ProjectorOptions`].
///
/// ```
/// use std::collections::BTreeMap;
///
/// use foldline::{DomainEvent, Envelope, EventStoreExt, ExpectedVersion, InMemoryEventStore};
/// use foldline::{InMemoryTarget, MemoryModel, Projection, ProjectionName, Projector, StreamId};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
/// enum Clicked { Clicked { button: String } }
///
/// /// The read model: clicks per button. Its writes are the buttons clicked in a batch.
/// #[derive(Default)]
/// struct Clicks(BTreeMap<String, u64>);
/// impl MemoryModel for Clicks {
///     type Writes = Vec<String>;
///     fn apply(&mut self, clicked: Vec<String>) {
///         for button in clicked {
///             *self.0.entry(button).or_default() += 1;
///         }
///     }
/// }
///
/// struct ClicksPerButton;
/// impl Projection for ClicksPerButton {
///     const NAME: ProjectionName = ProjectionName::from_static("clicks");
///     type Event = Clicked;
///     type Writes = Vec<String>;
///     fn handle(&self, e: Envelope<'_, Clicked>, writes: &mut Vec<String>) -> Result<(), foldline::BoxError> {
///         let Clicked::Clicked { button } = &e.event;
///         writes.push(button.clone());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), foldline::BoxError> {
/// let store = InMemoryEventStore::new();
/// let clicked = [Clicked::Clicked { button: "ok".into() }];
/// store.append_events(StreamId::new("page-1")?, ExpectedVersion::Any, &clicked).await?;
///
/// let target = InMemoryTarget::<Clicks>::new();
/// let projector = Projector::new(store, ClicksPerButton, target.clone());
/// projector.catch_up().await?;
/// assert_eq!(target.read(&ClicksPerButton::NAME, |m| m.0.get("ok").copied()), Some(Some(1)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Projector<S, P, T, C = JsonCodec> {
    shared: Arc<Shared<S, P, T, C>>,
}

impl<S, P, T, C> Clone for Projector<S, P, T, C> {
    fn clone(&self) -> Self {
        Projector {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared<S, P, T, C> {
    pub(crate) store: S,
    pub(crate) projection: P,
    pub(crate) target: T,
    pub(crate) codec: C,
    pub(crate) options: ProjectorOptions,
    pub(crate) progress: watch::Sender<ProjectorProgress>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl<S, P, T> Projector<S, P, T, JsonCodec>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
{
    /// A projector of `projection` from `store` into `target`, with default options and JSON
    /// payloads.
    pub fn new(store: S, projection: P, target: T) -> Self {
        Self::with_codec(store, projection, target, JsonCodec)
    }
}

impl<S, P, T, C> Projector<S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// A projector decoding payloads with `codec`.
    pub fn with_codec(store: S, projection: P, target: T, codec: C) -> Self {
        Projector {
            shared: Arc::new(Shared {
                store,
                projection,
                target,
                codec,
                options: ProjectorOptions::default(),
                progress: watch::Sender::new(ProjectorProgress::starting::<P>()),
                shutdown: watch::Sender::new(false),
            }),
        }
    }

    /// The same projector with `options`. Call before running it.
    ///
    /// # Panics
    ///
    /// If the projector was cloned or is running (options are fixed once it is shared).
    #[must_use]
    pub fn with_options(mut self, options: ProjectorOptions) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("set options before cloning or running the projector")
            .options = options;
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.shared.projection
    }

    /// The target.
    pub fn target(&self) -> &T {
        &self.shared.target
    }

    /// The options.
    pub fn options(&self) -> &ProjectorOptions {
        &self.shared.options
    }

    /// What the projector is doing, updated after every batch.
    pub fn progress(&self) -> watch::Receiver<ProjectorProgress> {
        self.shared.progress.subscribe()
    }

    /// Asks a running [`run`](Projector::run) to finish its batch, give up its lease and return.
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Catches up, then follows the feed until [`shutdown`](Projector::shutdown).
    ///
    /// # Errors
    ///
    /// [`Error::PoisonEvent`] under [`PoisonPolicy::Stop`]; [`Error::ProjectionSuperseded`] when
    /// a newer version of the projection is active; a store or target error once
    /// [`give_up_after`](ProjectorOptions::with_give_up_after) has passed; a decode error of
    /// the checkpoint. Transient failures are retried.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: dropped, the projector stops at whatever point it was, as a
    /// crash would, and nothing is lost or doubled: the next run resumes from the last commit
    /// (a commit in flight may land unseen; the conditional commit takes care of that). The
    /// slot's lease is not released, so another instance waits until it expires
    /// ([`ProjectorOptions::with_lease_ttl`]); prefer [`shutdown`](Projector::shutdown).
    pub async fn run(&self) -> Result<()> {
        Driver::new(&self.shared).run(Until::Shutdown).await
    }

    /// Runs the projector in a task of its own (with a `projection` tracing span).
    pub fn spawn(&self) -> ProjectorHandle {
        let projector = self.clone();
        let span = tracing::info_span!("projection", name = %P::NAME);
        // Dropped with the task's future, however it ends (return, panic, abort).
        let (running, ended) = watch::channel(());
        let task = tokio::spawn(
            async move {
                let _running = running;
                projector.run().await
            }
            .instrument(span),
        );
        let shared = Arc::clone(&self.shared);
        ProjectorHandle::new(
            self.shared.progress.subscribe(),
            ended,
            Box::new(move || {
                shared.shutdown.send_replace(true);
            }),
            task,
        )
    }

    /// Applies every event up to the store's head as of this call, then returns; activates
    /// the slot it built if it was building one.
    ///
    /// # Errors
    ///
    /// As [`run`](Projector::run).
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Projector::run).
    pub async fn catch_up(&self) -> Result<ProjectorProgress> {
        Driver::new(&self.shared).run(Until::CaughtUp).await?;
        Ok(self.shared.progress.borrow().clone())
    }

    /// Rebuilds the read model from the start of the feed and returns the slot that serves it
    /// now. Blue/green builds a new slot (or resumes an interrupted rebuild of this version)
    /// while the active one serves reads, switches the alias once caught up and drops the old
    /// slot; a projector running elsewhere follows the switch. In place empties the active
    /// slot and rebuilds it; running projectors must be [paused](Projector::pause) first, or
    /// it fails with [`Error::ProjectionBusy`]. `on_progress` is called after every batch.
    ///
    /// # Errors
    ///
    /// As [`run`](Projector::run); [`Error::ProjectionSuperseded`] when a newer version is active.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Projector::run): run the rebuild again and a blue/green build resumes where
    /// it stopped; an in-place rebuild interrupted after emptying the slot leaves it being
    /// refilled by the next run.
    pub async fn rebuild(
        &self,
        mode: RebuildMode,
        on_progress: impl FnMut(&ProjectorProgress) + Send,
    ) -> Result<SlotInfo> {
        self.rebuild_with(mode, self.shared.options.poison, on_progress)
            .await
    }

    /// As [`rebuild`](Projector::rebuild), handling events that keep failing by `poison`
    /// instead of the projector's own [`PoisonPolicy`]: how an operator gets a rebuild past a
    /// poison event (`foldline rebuild --on-poison dead-letter`) without changing the code.
    ///
    /// # Errors
    ///
    /// As [`rebuild`](Projector::rebuild).
    ///
    /// # Cancel safety
    ///
    /// As [`rebuild`](Projector::rebuild).
    pub async fn rebuild_with(
        &self,
        mode: RebuildMode,
        poison: PoisonPolicy,
        on_progress: impl FnMut(&ProjectorProgress) + Send,
    ) -> Result<SlotInfo> {
        let target = &self.shared.target;
        let slots = target.slots(&P::NAME).await?;
        let active = slots.iter().find(|s| s.state == SlotState::Active);
        if let Some(active) = active.filter(|a| a.version > P::VERSION) {
            return Err(Error::ProjectionSuperseded {
                projection: P::NAME,
                running: P::VERSION,
                active: active.version,
            });
        }
        let store = self.shared.store.identity().await?;
        let slot = match (mode, active) {
            (RebuildMode::InPlace, Some(active)) => {
                self.with_lease(active.slot, async || {
                    target.clear_slot(&P::NAME, active.slot, &store).await
                })
                .await?;
                active.clone()
            }
            _ => {
                // A rebuild resumes an interrupted one of this version from this store,
                // never one started before the active slot was built.
                let resumable = slots.iter().rev().find(|s| {
                    s.state == SlotState::Building
                        && s.version == P::VERSION
                        && s.built_from(&store)
                        && active.is_none_or(|a| s.slot > a.slot)
                });
                let how = if resumable.is_some() {
                    NewSlot::Resume
                } else {
                    NewSlot::Fresh
                };
                target
                    .create_slot(&P::NAME, P::VERSION, how, &store)
                    .await?
            }
        };
        Driver::new(&self.shared)
            .with_progress(on_progress)
            .with_poison_policy(poison)
            .run(Until::SlotCaughtUp(slot.slot))
            .await?;
        Ok(SlotInfo::new(
            slot.slot,
            slot.version,
            SlotState::Active,
            Some(store),
        ))
    }
}
