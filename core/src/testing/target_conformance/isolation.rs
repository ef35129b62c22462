//! Projections in one target are independent of each other.

use super::TargetProbe;
use super::fixture::{Fixture, checkpoint, puts};
use crate::position::{Checkpoint, Position};
use crate::projection::{Commit, CommitOutcome, NewSlot, SlotState};

/// Two projections in one target never see each other's slots, checkpoints, data, dead
/// letters, activations or clears, even when their slots have the same numbers.
pub async fn projections_are_isolated<T: TargetProbe>(target: T) {
    let fx = Fixture::new("projections_are_isolated");
    let (p, q) = (fx.projection(), fx.projection());
    let a = fx.create(&target, &p, 1, NewSlot::Resume).await;
    let listed = fx.slots(&target, &q).await;
    fx.check_eq(
        listed,
        vec![],
        "the slots of a projection after creating another's",
    );
    let b = fx.create(&target, &q, 1, NewSlot::Resume).await;
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![a.clone()],
        "the slots of `p` after creating `q`'s",
    );
    let listed = fx.slots(&target, &q).await;
    fx.check_eq(listed, vec![b.clone()], "the slots of `q`");

    let cp_p = checkpoint(&[Position::new(0, 0, 5)]);
    let cp_q = checkpoint(&[Position::new(0, 0, 8)]);
    let commit = Commit::new(Checkpoint::START, cp_p.clone(), puts::<T>(&[("k", 1)]))
        .with_park(vec![fx.letter(1, Position::new(0, 0, 3), 2)]);
    fx.committed(&target, &p, a.slot, commit).await;

    // `q`'s slot is still at START, whatever `p`'s is.
    let borrowed = Commit::new(cp_p.clone(), cp_q.clone(), puts::<T>(&[("k", 2)]));
    let outcome = fx.commit(&target, &q, b.slot, borrowed).await;
    fx.check_eq(
        outcome,
        CommitOutcome::Moved {
            actual: Some(Checkpoint::START),
        },
        "a commit to `q` expecting the checkpoint of `p`",
    );
    let read = fx.read(&target, &q, b.slot, "k").await;
    fx.check_eq(read, None, "`k` in `q` after a commit to `p`");
    let letters = fx.dead_letters(&target, &q, b.slot).await;
    fx.check(letters.is_empty(), || {
        format!("`q` should have no dead letters after parking one in `p`, got {letters:?}")
    });

    let commit = Commit::new(Checkpoint::START, cp_q.clone(), puts::<T>(&[("k", 2)]));
    fx.committed(&target, &q, b.slot, commit).await;
    let read = (
        fx.read(&target, &p, a.slot, "k").await,
        fx.read(&target, &q, b.slot, "k").await,
    );
    fx.check_eq(read, (Some(1), Some(2)), "`k` in `p` and in `q`");
    let at = (
        fx.checkpoint(&target, &p, a.slot).await,
        fx.checkpoint(&target, &q, b.slot).await,
    );
    fx.check_eq(
        at,
        (Some(cp_p), Some(cp_q.clone())),
        "the checkpoints of `p` and `q`",
    );

    fx.activate(&target, &p, a.slot).await;
    let listed = fx.slots(&target, &q).await;
    fx.check_eq(
        listed,
        vec![fx.slot_info(b.slot, 1, SlotState::Building)],
        "the slots of `q` after activating `p`'s",
    );
    fx.ok(
        target.clear_slot(&p, a.slot, fx.store()).await,
        "clearing the slot of `p`",
    );
    let read = fx.read(&target, &q, b.slot, "k").await;
    fx.check_eq(read, Some(2), "`k` in `q` after clearing `p`");
    let at = fx.checkpoint(&target, &q, b.slot).await;
    fx.check_eq(at, Some(cp_q), "the checkpoint of `q` after clearing `p`");

    let c = fx.create(&target, &q, 2, NewSlot::Fresh).await;
    fx.activate(&target, &q, c.slot).await;
    fx.ok(
        target.drop_slot(&q, b.slot).await,
        "dropping the first slot of `q`",
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![fx.slot_info(a.slot, 1, SlotState::Active)],
        "the slots of `p` after activating and dropping slots of `q`",
    );
}
