use std::time::Duration;

use tokio::time::Instant;

use super::target::{ProjectionTarget, SlotState};
use crate::error::{Error, Result};
use crate::names::ProjectionName;
use crate::position::Position;

/// Waits until the event at `position` is applied in the active slot of `projection` in
/// `target`: read-your-writes for a reader in another process than the projector. (In the
/// projector's own process, [`ProjectorHandle::wait_for`](crate::ProjectorHandle::wait_for)
/// waits without polling.)
///
/// Polls the target's checkpoint, every 2 ms at first, backing off to every 100 ms.
///
/// # Errors
///
/// [`Error::Timeout`] when the event is not applied within `timeout`; the target's error when
/// it fails.
pub async fn wait_for_checkpoint<T: ProjectionTarget>(
    target: &T,
    projection: &ProjectionName,
    position: &Position,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(2);
    loop {
        let slots = target.slots(projection).await?;
        if let Some(active) = slots.iter().find(|s| s.state == SlotState::Active) {
            let checkpoint = target.checkpoint(projection, active.slot).await?;
            if checkpoint.is_some_and(|c| c.covers(position)) {
                return Ok(());
            }
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
