//! Conditional commits: writes, checkpoint and dead letters stored together or not at all,
//! and only from the expected checkpoint.

use std::sync::Arc;

use tokio::sync::Barrier;

use super::TargetProbe;
use super::fixture::{Fixture, checkpoint, puts};
use crate::position::{Checkpoint, Position};
use crate::projection::{Commit, CommitOutcome, NewSlot, SlotId};

/// How many tasks race in [`concurrent_commits_one_wins`].
const RACERS: usize = 8;

/// A commit from `START` stores its writes and its checkpoint (several partitions, positions
/// above 2^53, read back equal). A commit whose expected checkpoint is stale is
/// `Moved { actual: Some(stored) }` and stores none of its writes, checkpoint or dead-letter
/// changes. An empty commit still moves the checkpoint. A commit to a missing slot (or
/// projection) is `Moved { actual: None }` and creates nothing.
pub async fn commit_is_conditional<T: TargetProbe>(target: T) {
    let fx = Fixture::new("commit_is_conditional");
    let p = fx.projection();
    let s = fx.create(&target, &p, 1, NewSlot::Resume).await.slot;
    // Above 2^53: a target that keeps positions as floating-point numbers loses them.
    let cp1 = checkpoint(&[
        Position::new(0, 1, 0),
        Position::new(2, 9_007_199_254_740_993, u64::MAX - 1),
        Position::new(7, 4, 12),
    ]);
    let cp2 = checkpoint(&[
        Position::new(0, 3, 1),
        Position::new(2, 9_007_199_254_740_993, u64::MAX),
        Position::new(7, 4, 12),
    ]);
    let cp3 = checkpoint(&[Position::new(0, 5, 0), Position::new(2, u64::MAX, 0)]);

    let first = Commit::new(
        Checkpoint::START,
        cp1.clone(),
        puts::<T>(&[("a", 1), ("b", 2)]),
    );
    fx.committed(&target, &p, s, first).await;
    for (key, value) in [("a", 1), ("b", 2)] {
        let read = fx.read(&target, &p, s, key).await;
        fx.check_eq(
            read,
            Some(value),
            format_args!("`{key}` after the first commit"),
        );
    }
    let at = fx.checkpoint(&target, &p, s).await;
    fx.check_eq(
        at,
        Some(cp1.clone()),
        "the checkpoint after the first commit",
    );

    let letter = fx.letter(1, Position::new(0, 0, 9), 3);
    for stale_expected in [
        Checkpoint::START,
        cp2.clone(),
        checkpoint(&[Position::new(0, 1, 0)]),
    ] {
        let stale = Commit::new(
            stale_expected.clone(),
            cp3.clone(),
            puts::<T>(&[("a", 99), ("c", 3)]),
        )
        .with_park(vec![letter.clone()]);
        let outcome = fx.commit(&target, &p, s, stale).await;
        fx.check_eq(
            outcome,
            CommitOutcome::Moved {
                actual: Some(cp1.clone()),
            },
            format_args!("a commit expecting {stale_expected} when the slot is at {cp1}"),
        );
        let read = (
            fx.read(&target, &p, s, "a").await,
            fx.read(&target, &p, s, "c").await,
        );
        fx.check_eq(
            read,
            (Some(1), None),
            format_args!("`a` and `c` after a refused commit expecting {stale_expected}"),
        );
        let at = fx.checkpoint(&target, &p, s).await;
        fx.check_eq(
            at,
            Some(cp1.clone()),
            format_args!("the checkpoint after a refused commit expecting {stale_expected}"),
        );
        let letters = fx.dead_letters(&target, &p, s).await;
        fx.check(letters.is_empty(), || {
            format!("a refused commit must park nothing, got {letters:?}")
        });
    }

    let second = Commit::new(cp1.clone(), cp2.clone(), puts::<T>(&[("a", 10), ("c", 3)]));
    fx.committed(&target, &p, s, second).await;
    let read = (
        fx.read(&target, &p, s, "a").await,
        fx.read(&target, &p, s, "b").await,
        fx.read(&target, &p, s, "c").await,
    );
    fx.check_eq(
        read,
        (Some(10), Some(2), Some(3)),
        "`a`, `b` and `c` after the second commit",
    );
    let at = fx.checkpoint(&target, &p, s).await;
    fx.check_eq(
        at,
        Some(cp2.clone()),
        "the checkpoint after the second commit",
    );

    let empty = Commit::new(cp2, cp3.clone(), T::Writes::default());
    fx.committed(&target, &p, s, empty).await;
    let at = fx.checkpoint(&target, &p, s).await;
    fx.check_eq(
        at,
        Some(cp3.clone()),
        "the checkpoint after a commit without writes",
    );

    let unknown = fx.projection();
    for (projection, slot, what) in [
        (&p, SlotId::new(s.get() + 1000), "a slot never created"),
        (&unknown, s, "a slot of an unknown projection"),
    ] {
        let commit = Commit::new(Checkpoint::START, cp3.clone(), puts::<T>(&[("a", 7)]));
        let outcome = fx.commit(&target, projection, slot, commit).await;
        fx.check_eq(
            outcome,
            CommitOutcome::Moved { actual: None },
            format_args!("a commit to {what}"),
        );
        let at = fx.checkpoint(&target, projection, slot).await;
        fx.check_eq(
            at,
            None,
            format_args!("the checkpoint of {what}, after a commit to it"),
        );
        let read = fx.read(&target, projection, slot, "a").await;
        fx.check_eq(
            read,
            None,
            format_args!("`a` in {what}, after a commit to it"),
        );
    }
    let listed = fx.slots(&target, &p).await;
    fx.check(listed.len() == 1 && listed[0].slot == s, || {
        format!("a commit to a missing slot must not create one: slots {listed:?}")
    });
    let listed = fx.slots(&target, &unknown).await;
    fx.check_eq(
        listed,
        vec![],
        "the slots of a projection only committed to",
    );
}

/// 8 tasks commit at once from the same checkpoint to different ones, each writing its own
/// key: exactly one is `Committed`, the others `Moved` to the winner's checkpoint; only the
/// winner's key is written and its checkpoint stored.
pub async fn concurrent_commits_one_wins<T: TargetProbe>(target: T) {
    let fx = Fixture::new("concurrent_commits_one_wins");
    let p = fx.projection();
    let s = fx.create(&target, &p, 1, NewSlot::Resume).await.slot;
    let base = checkpoint(&[Position::new(0, 0, 1)]);
    let first = Commit::new(Checkpoint::START, base.clone(), puts::<T>(&[("base", 1)]));
    fx.committed(&target, &p, s, first).await;

    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS as u64 {
        let (target, p, barrier, base) = (target.clone(), p.clone(), barrier.clone(), base.clone());
        let to = checkpoint(&[Position::new(0, 0, 10 + racer), Position::new(1, racer, 0)]);
        tasks.push(tokio::spawn(async move {
            let writes = puts::<T>(&[(&format!("k{racer}"), racer), ("base", 100 + racer)]);
            barrier.wait().await;
            let outcome = target
                .commit(&p, s, Commit::new(base, to.clone(), writes))
                .await;
            (racer, to, outcome)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        let (racer, to, outcome) = task
            .await
            .unwrap_or_else(|e| fx.fail(format_args!("a committing task panicked: {e}")));
        let outcome = fx.ok(
            outcome,
            format_args!("racer {racer} committing {base} -> {to}"),
        );
        outcomes.push((racer, to, outcome));
    }
    let winners: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o)| *o == CommitOutcome::Committed)
        .collect();
    let [(winner, won, _)] = winners[..] else {
        fx.fail(format_args!(
            "exactly one of {RACERS} commits from {base} should win, got {outcomes:?}"
        ));
    };
    for (racer, _, outcome) in &outcomes {
        if racer != winner {
            fx.check_eq(
                outcome,
                &CommitOutcome::Moved {
                    actual: Some(won.clone()),
                },
                format_args!("the outcome of losing racer {racer} (racer {winner} won)"),
            );
        }
    }
    for racer in 0..RACERS as u64 {
        let read = fx.read(&target, &p, s, &format!("k{racer}")).await;
        let expected = (racer == *winner).then_some(racer);
        fx.check_eq(
            read,
            expected,
            format_args!("`k{racer}` after the race (racer {winner} won)"),
        );
    }
    let read = fx.read(&target, &p, s, "base").await;
    fx.check_eq(
        read,
        Some(100 + winner),
        format_args!("`base` after the race (racer {winner} won)"),
    );
    let at = fx.checkpoint(&target, &p, s).await;
    fx.check_eq(
        at.as_ref(),
        Some(won),
        "the checkpoint after the race: the winner's",
    );
}
