//! [`ProjectionTargetExt`]: what callers of any [`ProjectionTarget`] would otherwise write out
//! themselves.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::{ProjectionTarget, SlotInfo, SlotState};
use crate::error::{Error, Result};
use crate::names::ProjectionName;
use crate::position::{Checkpoint, Position};

/// Conveniences on every [`ProjectionTarget`]: the active slot, its checkpoint, waiting for a
/// position (read-your-writes from another process than the projector's).
///
/// Implemented for every target (a blanket impl, as tower's `ServiceExt`); bring it into scope
/// with `use foldline::ProjectionTargetExt`.
pub trait ProjectionTargetExt: ProjectionTarget {
    /// The slot readers of `projection` see, if one is active.
    ///
    /// # Errors
    ///
    /// The target's error when it fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn active_slot(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Option<SlotInfo>>> + Send
    where
        Self: Sized,
    {
        async move {
            let slots = self.slots(projection).await?;
            Ok(slots.into_iter().find(|s| s.state == SlotState::Active))
        }
    }

    /// The active slot of `projection` and its checkpoint; `None` when no slot is active (or
    /// it was dropped between the two reads).
    ///
    /// # Errors
    ///
    /// The target's error when it fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn active_checkpoint(
        &self,
        projection: &ProjectionName,
    ) -> impl Future<Output = Result<Option<(SlotInfo, Checkpoint)>>> + Send
    where
        Self: Sized,
    {
        async move {
            let Some(active) = self.active_slot(projection).await? else {
                return Ok(None);
            };
            let checkpoint = self.checkpoint(projection, active.slot).await?;
            Ok(checkpoint.map(|checkpoint| (active, checkpoint)))
        }
    }

    /// Waits until the event at `position` is applied in the active slot of `projection`:
    /// read-your-writes for a reader in another process than the projector. (In the
    /// projector's own process, [`ProjectorHandle::wait_for`](crate::ProjectorHandle::wait_for)
    /// waits without polling.)
    ///
    /// Polls the target's checkpoint, every 2 ms at first, backing off to every 100 ms.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the event is not applied within `timeout`; the target's error
    /// when it fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn wait_for_checkpoint(
        &self,
        projection: &ProjectionName,
        position: &Position,
        timeout: Duration,
    ) -> impl Future<Output = Result<()>> + Send
    where
        Self: Sized,
    {
        async move {
            let deadline = Instant::now() + timeout;
            let mut delay = Duration::from_millis(2);
            loop {
                let applied = self.active_checkpoint(projection).await?;
                if applied.is_some_and(|(_, checkpoint)| checkpoint.covers(position)) {
                    return Ok(());
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::Timeout {
                        what: format!("projection `{projection}` to reach {position}"),
                        after: timeout,
                    });
                }
                tokio::time::sleep(delay.min(deadline - now)).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
        }
    }
}

impl<T: ProjectionTarget + ?Sized> ProjectionTargetExt for T {}
