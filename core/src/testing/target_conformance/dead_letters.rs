//! Dead letters: parked and unparked by commits, listed oldest first, kept per slot.

use super::TargetProbe;
use super::fixture::{Fixture, checkpoint, puts};
use crate::position::{Checkpoint, Position};
use crate::projection::{Commit, CommitOutcome, NewSlot};

/// Two letters parked in one commit (one of an unreadable event, with its raw values) list in
/// the order parked, every field kept (`parked_at` within a second); a letter parked later comes after them even when its event is older.
/// Parking an event again does not list it twice. `unpark` removes exactly the given events,
/// and only when its commit is accepted. Each slot has its own list.
pub async fn dead_letters_park_and_unpark<T: TargetProbe>(target: T) {
    let fx = Fixture::new("dead_letters_park_and_unpark");
    let p = fx.projection();
    let s = fx.create(&target, &p, 1, NewSlot::Fresh).await.slot;
    let other = fx.create(&target, &p, 1, NewSlot::Fresh).await.slot;
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check_letters(&letters, &[], "the dead letters of a new slot");

    let l1 = fx.letter(4, Position::new(0, 7, 40), 3);
    let l2 = fx.unreadable_letter(Position::new(1, 2, 0));
    let cp1 = checkpoint(&[Position::new(0, 7, 40), Position::new(1, 2, 0)]);
    let commit = Commit::new(Checkpoint::START, cp1.clone(), puts::<T>(&[("a", 1)]))
        .with_park(vec![l1.clone(), l2.clone()]);
    fx.committed(&target, &p, s, commit).await;
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check_letters(&letters, &[&l1, &l2], "two letters parked in one commit");

    // Older event, parked later: it goes last.
    let l3 = fx.letter(2, Position::new(0, 1, 0), 5);
    let cp2 = checkpoint(&[Position::new(0, 8, 0), Position::new(1, 2, 0)]);
    let commit = Commit::new(cp1, cp2.clone(), T::Writes::default()).with_park(vec![l3.clone()]);
    fx.committed(&target, &p, s, commit).await;
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check_letters(
        &letters,
        &[&l1, &l2, &l3],
        "a third letter parked in a later commit",
    );

    let mut again = fx.letter(4, l1.position, 9);
    again.event_id = l1.event_id;
    let cp3 = checkpoint(&[Position::new(0, 9, 0), Position::new(1, 2, 0)]);
    let commit = Commit::new(cp2, cp3.clone(), T::Writes::default()).with_park(vec![again]);
    fx.committed(&target, &p, s, commit).await;
    let letters = fx.dead_letters(&target, &p, s).await;
    let ids: Vec<_> = letters.iter().map(|l| l.event_id).collect();
    fx.check_eq(
        ids,
        vec![l1.event_id, l2.event_id, l3.event_id],
        "the dead letters' event ids after parking the first one's event again",
    );

    let stale = Commit::new(
        Checkpoint::START,
        checkpoint(&[Position::new(0, 10, 0)]),
        T::Writes::default(),
    )
    .with_unpark(vec![l1.event_id]);
    let outcome = fx.commit(&target, &p, s, stale).await;
    fx.check(matches!(outcome, CommitOutcome::Moved { .. }), || {
        format!("a commit from START to a slot at {cp3} should be Moved, got {outcome:?}")
    });
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check(letters.len() == 3, || {
        format!("a refused commit must unpark nothing; dead letters now {letters:?}")
    });

    let unknown = fx.letter(1, Position::new(0, 0, 1), 1).event_id;
    let cp4 = checkpoint(&[Position::new(0, 11, 0), Position::new(1, 2, 0)]);
    let commit =
        Commit::new(cp3, cp4, T::Writes::default()).with_unpark(vec![l2.event_id, unknown]);
    fx.committed(&target, &p, s, commit).await;
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check_letters(
        &letters,
        &[&l1, &l3],
        "after unparking the second letter and an event never parked",
    );

    let letters = fx.dead_letters(&target, &p, other).await;
    fx.check_letters(
        &letters,
        &[],
        "the dead letters of another slot of the projection",
    );
    let commit = Commit::new(
        Checkpoint::START,
        checkpoint(&[Position::new(0, 1, 0)]),
        T::Writes::default(),
    )
    .with_park(vec![l2.clone()]);
    fx.committed(&target, &p, other, commit).await;
    let letters = fx.dead_letters(&target, &p, other).await;
    fx.check_letters(
        &letters,
        &[&l2],
        "the other slot after parking a letter there",
    );
    let letters = fx.dead_letters(&target, &p, s).await;
    fx.check_letters(
        &letters,
        &[&l1, &l3],
        "the first slot after parking in the other",
    );
}
