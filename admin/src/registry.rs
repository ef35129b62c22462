//! Projections of different types behind one object-safe trait, so the CLI can list them and
//! act on one by name.

use std::future::Future;
use std::pin::Pin;

use foldline::{
    Codec, DeadLetter, EventStore, PoisonPolicy, Projection, ProjectionControl, ProjectionName,
    ProjectionOverview, ProjectionTarget, Projector, ProjectorProgress, RebuildMode, SlotInfo,
};
use uuid::Uuid;

/// A boxed future, for the object-safe [`ManagedProjection`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A rebuild's progress callback.
pub type OnProgress<'a> = Box<dyn FnMut(&ProjectorProgress) + Send + 'a>;

/// What the admin can do with a registered projection; implemented for every [`Projector`].
pub trait ManagedProjection: Send + Sync {
    /// The projection's name.
    fn name(&self) -> ProjectionName;
    /// The projection's version in the code registered.
    fn version(&self) -> u32;
    /// Its state, for `status`.
    fn overview(&self) -> BoxFuture<'_, foldline::Result<ProjectionOverview>>;
    /// The operator's flags (paused or not).
    fn control(&self) -> BoxFuture<'_, foldline::Result<ProjectionControl>>;
    /// Pauses running projectors.
    fn pause(&self) -> BoxFuture<'_, foldline::Result<()>>;
    /// Resumes them.
    fn resume(&self) -> BoxFuture<'_, foldline::Result<()>>;
    /// Empties the active slot.
    fn reset(&self) -> BoxFuture<'_, foldline::Result<Option<SlotInfo>>>;
    /// Rebuilds, calling `on_progress` after every batch; events that keep failing are
    /// handled by `poison`, or the projector's own policy when `None`.
    fn rebuild<'a>(
        &'a self,
        mode: RebuildMode,
        poison: Option<PoisonPolicy>,
        on_progress: OnProgress<'a>,
    ) -> BoxFuture<'a, foldline::Result<SlotInfo>>;
    /// The active slot's dead letters.
    fn dead_letters(&self) -> BoxFuture<'_, foldline::Result<Vec<DeadLetter>>>;
    /// Applies a dead letter again; `false` when there is no such letter.
    fn retry_dead_letter(&self, event_id: Uuid) -> BoxFuture<'_, foldline::Result<bool>>;
    /// Drops a dead letter; `false` when there is no such letter.
    fn discard_dead_letter(&self, event_id: Uuid) -> BoxFuture<'_, foldline::Result<bool>>;
}

impl<S, P, T, C> ManagedProjection for Projector<S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    fn name(&self) -> ProjectionName {
        P::NAME
    }

    fn version(&self) -> u32 {
        P::VERSION
    }

    fn overview(&self) -> BoxFuture<'_, foldline::Result<ProjectionOverview>> {
        Box::pin(Projector::overview(self))
    }

    fn control(&self) -> BoxFuture<'_, foldline::Result<ProjectionControl>> {
        Box::pin(Projector::control(self))
    }

    fn pause(&self) -> BoxFuture<'_, foldline::Result<()>> {
        Box::pin(Projector::pause(self))
    }

    fn resume(&self) -> BoxFuture<'_, foldline::Result<()>> {
        Box::pin(Projector::resume(self))
    }

    fn reset(&self) -> BoxFuture<'_, foldline::Result<Option<SlotInfo>>> {
        Box::pin(Projector::reset(self))
    }

    fn rebuild<'a>(
        &'a self,
        mode: RebuildMode,
        poison: Option<PoisonPolicy>,
        on_progress: OnProgress<'a>,
    ) -> BoxFuture<'a, foldline::Result<SlotInfo>> {
        match poison {
            Some(poison) => Box::pin(Projector::rebuild_with(self, mode, poison, on_progress)),
            None => Box::pin(Projector::rebuild(self, mode, on_progress)),
        }
    }

    fn dead_letters(&self) -> BoxFuture<'_, foldline::Result<Vec<DeadLetter>>> {
        Box::pin(Projector::dead_letters(self))
    }

    fn retry_dead_letter(&self, event_id: Uuid) -> BoxFuture<'_, foldline::Result<bool>> {
        Box::pin(Projector::retry_dead_letter(self, event_id))
    }

    fn discard_dead_letter(&self, event_id: Uuid) -> BoxFuture<'_, foldline::Result<bool>> {
        Box::pin(Projector::discard_dead_letter(self, event_id))
    }
}
