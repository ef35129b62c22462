//! Every idle interval, and between batches when it is due: keep the slot's lease, follow the
//! operator's pause flag, notice a reset, dropped or replaced slot, report the status.

use std::time::Instant;

use super::follow::Slot;
use super::{Driver, Exit, Step};
use crate::codec::Codec;
use crate::error::Result;
use crate::projection::Projection;
use crate::projection::target::{ProjectionTarget, ProjectionTargetExt, ProjectorState, SlotId};
use crate::store::EventStore;

/// Whether this driver still holds the slot's lease after a [`Driver::renew`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lease {
    /// Renewed: held for another lease lifetime.
    Held,
    /// Another instance holds it now: leave the slot.
    Lost,
}

impl<S, P, T, C> Driver<'_, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// Every idle interval: renew the lease, read the operator's flags, sample the head,
    /// check nobody reset, dropped or replaced the slot, report status. [`Exit::Restart`]
    /// when the slot is no longer this driver's to work on.
    pub(super) async fn housekeeping(&mut self, slot: &Slot<'_>) -> Result<Step> {
        let target = &self.shared.target;
        if self.renew(slot.number).await? == Lease::Lost {
            return Ok(Step::Exit(Exit::Restart));
        }
        self.paused = target.control(&P::NAME).await?.paused;
        if target.checkpoint(&P::NAME, slot.number).await?.as_ref() != Some(&slot.checkpoint) {
            tracing::info!(projection = %P::NAME, slot = slot.number.get(), "the slot was reset or dropped; starting again");
            return Ok(Step::Exit(Exit::Restart));
        }
        if !slot.building {
            let active = target.active_slot(&P::NAME).await?;
            let still_active = active.is_some_and(|a| a.slot == slot.number);
            if !still_active {
                tracing::info!(projection = %P::NAME, slot = slot.number.get(), "another slot was activated; switching to it");
                return Ok(Step::Exit(Exit::Restart));
            }
        }
        self.progress.head = self.shared.store.head().await?;
        let state = match (self.paused, slot.building) {
            (true, _) => ProjectorState::Paused,
            (false, true) => ProjectorState::Rebuilding,
            (false, false) => ProjectorState::Running,
        };
        self.set_state(state);
        self.update_lag();
        self.publish();
        self.record_heartbeat().await;
        Ok(Step::Continue)
    }

    /// Whether a third of the lease's lifetime has passed since it was last renewed: renew
    /// it before the next batch, which may take a while.
    pub(super) fn renewal_due(&self) -> bool {
        self.last_renewal.elapsed() >= self.shared.options.lease_ttl / 3
    }

    /// Renews the lease on `slot` for another lease lifetime.
    pub(super) async fn renew(&mut self, slot: SlotId) -> Result<Lease> {
        let options = &self.shared.options;
        let held = self
            .shared
            .target
            .acquire_lease(&P::NAME, slot, &options.owner, options.lease_ttl)
            .await?;
        if held {
            self.last_renewal = Instant::now();
            Ok(Lease::Held)
        } else {
            tracing::warn!(projection = %P::NAME, slot = slot.get(), "lost the slot's lease to another instance");
            Ok(Lease::Lost)
        }
    }
}
