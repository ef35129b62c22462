//! The conditional commit: writes and checkpoint stored together, only if the slot's checkpoint
//! is still the one the batch started from.

use super::super::batch::Built;
use super::super::telemetry;
use super::Driver;
use crate::codec::Codec;
use crate::error::Result;
use crate::position::Checkpoint;
use crate::projection::Projection;
use crate::projection::target::{Commit, CommitOutcome, DeadLetter, ProjectionTarget, SlotId};
use crate::store::EventStore;

/// What a [`Driver::commit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Committed {
    /// Everything was stored, and the checkpoint advanced.
    Stored,
    /// Nothing was stored: the slot's checkpoint moved under this projector (another instance
    /// wrote, or an operator reset or dropped the slot). Start again from the target.
    Moved,
}

impl<S, P, T, C> Driver<'_, S, P, T, C>
where
    S: EventStore,
    P: Projection,
    T: ProjectionTarget<Writes = P::Writes>,
    C: Codec + Clone + Send + Sync + 'static,
{
    /// Commits `built` (and parks `park`) conditional on `checkpoint`; advances `checkpoint`
    /// when stored.
    pub(super) async fn commit(
        &mut self,
        slot: SlotId,
        checkpoint: &mut Checkpoint,
        built: Built<P::Writes>,
        park: Vec<DeadLetter>,
    ) -> Result<Committed> {
        let next = built.checkpoint.clone();
        let commit =
            Commit::new(checkpoint.clone(), built.checkpoint, built.writes).with_park(park);
        match self.shared.target.commit(&P::NAME, slot, commit).await? {
            CommitOutcome::Committed => {
                *checkpoint = next;
                if built.last_recorded_at.is_some() {
                    self.last_recorded_at = built.last_recorded_at;
                }
                Ok(Committed::Stored)
            }
            CommitOutcome::Moved { actual } => {
                telemetry::moved(&P::NAME);
                tracing::info!(
                    projection = %P::NAME,
                    slot = slot.get(),
                    expected = %checkpoint,
                    actual = %actual.map_or_else(|| "none (slot dropped)".to_owned(), |c| c.to_string()),
                    "the slot's checkpoint moved under this projector; starting again from it"
                );
                Ok(Committed::Moved)
            }
        }
    }
}
