//! Slots: creating and resuming builds, activating one, dropping and clearing them.

use std::fmt;
use std::sync::Arc;

use tokio::sync::Barrier;

use super::TargetProbe;
use super::fixture::{Fixture, checkpoint, puts};
use crate::error::{Error, Result};
use crate::names::ProjectionName;
use crate::position::{Checkpoint, Position};
use crate::projection::{Commit, CommitOutcome, NewSlot, SlotId, SlotInfo, SlotState};

/// How many tasks race in [`concurrent_resume_gets_one_slot`].
const RACERS: usize = 8;

/// A slot number far above any the cases create.
fn missing(slots: &[SlotInfo]) -> SlotId {
    let highest = slots.iter().map(|s| s.slot.get()).max().unwrap_or(0);
    SlotId::new(highest + 1000)
}

#[track_caller]
fn check_not_found(
    fx: &Fixture,
    result: Result<()>,
    projection: &ProjectionName,
    slot: SlotId,
    what: impl fmt::Display,
) {
    match result {
        Err(Error::SlotNotFound {
            projection: p,
            slot: s,
        }) if p == *projection && s == slot => {}
        other => fx.fail(format_args!(
            "{what}: expected Error::SlotNotFound naming `{projection}` and slot {slot}, got \
             {other:?}"
        )),
    }
}

/// An unknown projection lists no slots. `Resume` creates a slot numbered 1 or more, in state
/// `Building`, at `START`, and returns the same slot while it is building; another version
/// gets a new, higher slot, and so does `Fresh`; `Resume` picks the newest building slot of
/// its version and never an active one. `slots` lists them all, ordered by number.
pub async fn slots_create_and_resume<T: TargetProbe>(target: T) {
    let fx = Fixture::new("slots_create_and_resume");
    let p = fx.projection();
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(listed, vec![], "the slots of a projection never created");

    let a = fx.create(&target, &p, 1, NewSlot::Resume).await;
    fx.check(
        a.slot >= SlotId::new(1) && a.version == 1 && a.state == SlotState::Building,
        || {
            format!(
                "Resume on a new projection should create a building slot of version 1, \
                 numbered 1 or more, got {a:?}"
            )
        },
    );
    let at = fx.checkpoint(&target, &p, a.slot).await;
    fx.check_eq(at, Some(Checkpoint::START), "the checkpoint of a new slot");

    let again = fx.create(&target, &p, 1, NewSlot::Resume).await;
    fx.check_eq(
        &again,
        &a,
        "Resume again for the same version (its slot is building)",
    );

    let b = fx.create(&target, &p, 2, NewSlot::Resume).await;
    fx.check(
        b.slot > a.slot && b.version == 2 && b.state == SlotState::Building,
        || format!("Resume for version 2 should create a new building slot above {a:?}, got {b:?}"),
    );
    let at = fx.checkpoint(&target, &p, b.slot).await;
    fx.check_eq(
        at,
        Some(Checkpoint::START),
        "the checkpoint of the version 2 slot",
    );

    let c = fx.create(&target, &p, 2, NewSlot::Fresh).await;
    fx.check(
        c.slot > b.slot && c.version == 2 && c.state == SlotState::Building,
        || format!("Fresh for version 2 should create a new building slot above {b:?}, got {c:?}"),
    );
    let at = fx.checkpoint(&target, &p, c.slot).await;
    fx.check_eq(
        at,
        Some(Checkpoint::START),
        "the checkpoint of a Fresh slot",
    );

    let resumed = fx.create(&target, &p, 2, NewSlot::Resume).await;
    fx.check_eq(
        &resumed,
        &c,
        "Resume for version 2 with two building slots (it takes the newest)",
    );
    let resumed = fx.create(&target, &p, 1, NewSlot::Resume).await;
    fx.check_eq(
        &resumed,
        &a,
        "Resume for version 1 after slots of version 2 were made",
    );

    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![a.clone(), b.clone(), c.clone()],
        "the slots, ordered by number",
    );

    fx.activate(&target, &p, a.slot).await;
    let d = fx.create(&target, &p, 1, NewSlot::Resume).await;
    fx.check(
        d.slot > c.slot && d.version == 1 && d.state == SlotState::Building,
        || {
            format!(
                "Resume for version 1 once its only slot {} is active should create a new \
                 building slot above {}, got {d:?}",
                a.slot, c.slot
            )
        },
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![fx.slot_info(a.slot, 1, SlotState::Active), b, c, d],
        "the slots after activating the first and resuming its version",
    );
}

/// 8 tasks asking at once to `Resume` the same version of a new projection all get the same
/// slot, and only one slot exists afterwards.
pub async fn concurrent_resume_gets_one_slot<T: TargetProbe>(target: T) {
    let fx = Fixture::new("concurrent_resume_gets_one_slot");
    let p = fx.projection();
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        let (target, p, barrier) = (target.clone(), p.clone(), barrier.clone());
        let store = fx.store().clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            target.create_slot(&p, 3, NewSlot::Resume, &store).await
        }));
    }
    let mut got = Vec::with_capacity(RACERS);
    for task in tasks {
        let result = task
            .await
            .unwrap_or_else(|e| fx.fail(format_args!("a resuming task panicked: {e}")));
        got.push(fx.ok(result, "resuming version 3 concurrently"));
    }
    let first = got[0].clone();
    fx.check(
        got.iter().all(|s| *s == first) && first.version == 3,
        || {
            format!(
                "{RACERS} concurrent Resume calls for one version should all get the same \
                 slot, got {got:?}"
            )
        },
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![first],
        "the slots after the concurrent Resume calls",
    );
}

/// Activating slot A, then B: A becomes `Retired`, B `Active`, never two active. Activating a
/// slot that does not exist is [`Error::SlotNotFound`] and changes nothing. Data written in B
/// is readable, and A's stays readable until A is dropped.
pub async fn activate_switches_slots<T: TargetProbe>(target: T) {
    let fx = Fixture::new("activate_switches_slots");
    let p = fx.projection();
    let a = fx.create(&target, &p, 1, NewSlot::Fresh).await;
    let b = fx.create(&target, &p, 2, NewSlot::Fresh).await;
    let cp = checkpoint(&[Position::new(0, 0, 1)]);
    fx.committed(
        &target,
        &p,
        a.slot,
        Commit::new(Checkpoint::START, cp.clone(), puts::<T>(&[("k", 1)])),
    )
    .await;
    fx.committed(
        &target,
        &p,
        b.slot,
        Commit::new(Checkpoint::START, cp.clone(), puts::<T>(&[("k", 2)])),
    )
    .await;

    fx.activate(&target, &p, a.slot).await;
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![
            fx.slot_info(a.slot, 1, SlotState::Active),
            fx.slot_info(b.slot, 2, SlotState::Building),
        ],
        "the slots after activating A",
    );

    fx.activate(&target, &p, b.slot).await;
    let after_b = vec![
        fx.slot_info(a.slot, 1, SlotState::Retired),
        fx.slot_info(b.slot, 2, SlotState::Active),
    ];
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(&listed, &after_b, "the slots after activating A, then B");

    fx.activate(&target, &p, b.slot).await;
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        &listed,
        &after_b,
        "the slots after activating B a second time",
    );

    let nowhere = missing(&listed);
    let result = target.activate(&p, nowhere).await;
    check_not_found(&fx, result, &p, nowhere, "activating a slot never created");
    let unknown = fx.projection();
    let result = target.activate(&unknown, b.slot).await;
    check_not_found(
        &fx,
        result,
        &unknown,
        b.slot,
        "activating a slot of an unknown projection",
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        &listed,
        &after_b,
        "the slots after activating a missing slot",
    );

    let read = fx.read(&target, &p, b.slot, "k").await;
    fx.check_eq(read, Some(2), "`k` in the active slot B");
    let read = fx.read(&target, &p, a.slot, "k").await;
    fx.check_eq(read, Some(1), "`k` in the retired slot A, not dropped yet");
    let at = fx.checkpoint(&target, &p, a.slot).await;
    fx.check_eq(at, Some(cp), "the checkpoint of the retired slot A");

    fx.ok(
        target.drop_slot(&p, a.slot).await,
        "dropping the retired slot A",
    );
    let read = fx.read(&target, &p, a.slot, "k").await;
    fx.check_eq(read, None, "`k` in slot A once dropped");
    let read = fx.read(&target, &p, b.slot, "k").await;
    fx.check_eq(read, Some(2), "`k` in the active slot B after dropping A");
}

/// Dropping the active slot is [`Error::SlotActive`] and keeps it. Dropping a retired or a
/// building slot deletes it: gone from `slots`, no checkpoint, no data, no dead letters, and a
/// later commit to it is `Moved { actual: None }`. Dropping a missing slot does nothing. Slot
/// numbers are never reused: the next slot is numbered above every slot ever created.
pub async fn drop_slot_deletes_everything<T: TargetProbe>(target: T) {
    let fx = Fixture::new("drop_slot_deletes_everything");
    let p = fx.projection();
    let cp = checkpoint(&[Position::new(0, 0, 5)]);
    // Slots of versions 1, 2, 3, each with data and a dead letter.
    let mut made = [SlotId::NONE; 3];
    for (version, made) in (1..).zip(&mut made) {
        let slot = fx.create(&target, &p, version, NewSlot::Fresh).await;
        let letter = fx.letter(
            u64::from(version),
            Position::new(0, 0, u64::from(version)),
            2,
        );
        let commit = Commit::new(
            Checkpoint::START,
            cp.clone(),
            puts::<T>(&[("k", version.into())]),
        )
        .with_park(vec![letter]);
        fx.committed(&target, &p, slot.slot, commit).await;
        *made = slot.slot;
    }
    let [a, b, c] = made;
    fx.activate(&target, &p, a).await;

    match target.drop_slot(&p, a).await {
        Err(Error::SlotActive { projection, slot }) if projection == p && slot == a => {}
        other => fx.fail(format_args!(
            "dropping the active slot {a} should fail with Error::SlotActive naming `{p}` and \
             slot {a}, got {other:?}"
        )),
    }
    let read = fx.read(&target, &p, a, "k").await;
    fx.check_eq(read, Some(1), "`k` in the active slot after a refused drop");
    let at = fx.checkpoint(&target, &p, a).await;
    fx.check_eq(
        at,
        Some(cp.clone()),
        "the checkpoint of the active slot after a refused drop",
    );

    fx.activate(&target, &p, b).await;
    // `a` is retired now, `c` still building.
    for (slot, state) in [(a, "retired"), (c, "building")] {
        fx.ok(
            target.drop_slot(&p, slot).await,
            format_args!("dropping {state} slot {slot}"),
        );
        let listed = fx.slots(&target, &p).await;
        fx.check(listed.iter().all(|s| s.slot != slot), || {
            format!("the dropped {state} slot {slot} should not be listed, got {listed:?}")
        });
        let at = fx.checkpoint(&target, &p, slot).await;
        fx.check_eq(
            at,
            None,
            format_args!("the checkpoint of dropped {state} slot {slot}"),
        );
        let read = fx.read(&target, &p, slot, "k").await;
        fx.check_eq(
            read,
            None,
            format_args!("`k` in dropped {state} slot {slot}"),
        );
        let letters = fx.dead_letters(&target, &p, slot).await;
        fx.check(letters.is_empty(), || {
            format!("dropped {state} slot {slot} should have no dead letters, got {letters:?}")
        });
        let late = Commit::new(
            cp.clone(),
            checkpoint(&[Position::new(0, 0, 9)]),
            puts::<T>(&[("late", 1)]),
        );
        let outcome = fx.commit(&target, &p, slot, late).await;
        fx.check_eq(
            outcome,
            CommitOutcome::Moved { actual: None },
            format_args!("a commit to dropped {state} slot {slot}"),
        );
        let read = fx.read(&target, &p, slot, "late").await;
        fx.check_eq(
            read,
            None,
            format_args!("a refused commit's write in dropped {state} slot {slot}"),
        );
    }
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        &listed,
        &vec![fx.slot_info(b, 2, SlotState::Active)],
        "the slots after dropping the retired and the building slot",
    );

    let nowhere = SlotId::new(c.get() + 1000);
    fx.ok(
        target.drop_slot(&p, nowhere).await,
        "dropping a slot never created",
    );
    let unknown = fx.projection();
    fx.ok(
        target.drop_slot(&unknown, b).await,
        "dropping a slot of an unknown projection",
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![fx.slot_info(b, 2, SlotState::Active)],
        "the slots after dropping missing slots",
    );

    // `c` was the highest slot ever created; a target that reuses numbers would hand it out.
    let d = fx.create(&target, &p, 3, NewSlot::Resume).await;
    fx.check(d.slot > c && d.state == SlotState::Building, || {
        format!(
            "the slot created after dropping slot {c} (the highest ever) should be a new \
             building slot above it, got {d:?}"
        )
    });
    let read = fx.read(&target, &p, d.slot, "k").await;
    fx.check_eq(read, None, "`k` in the slot created after the drops");
}

/// Clearing a slot empties it in place: no data, checkpoint back to `START`, no dead letters,
/// same number, version and state; other slots keep theirs; it takes commits from `START`
/// again. Clearing a missing slot is [`Error::SlotNotFound`].
pub async fn clear_slot_empties_in_place<T: TargetProbe>(target: T) {
    let fx = Fixture::new("clear_slot_empties_in_place");
    let p = fx.projection();
    let cp = checkpoint(&[Position::new(0, 3, 0), Position::new(1, 2, 0)]);
    let s = fx.create(&target, &p, 4, NewSlot::Fresh).await;
    let other = fx.create(&target, &p, 5, NewSlot::Fresh).await;
    for slot in [s.slot, other.slot] {
        let commit = Commit::new(
            Checkpoint::START,
            cp.clone(),
            puts::<T>(&[("a", 1), ("b", 2)]),
        )
        .with_park(vec![fx.letter(1, Position::new(0, 1, 0), 3)]);
        fx.committed(&target, &p, slot, commit).await;
    }
    fx.activate(&target, &p, s.slot).await;

    fx.ok(
        target.clear_slot(&p, s.slot, fx.store()).await,
        "clearing the active slot",
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed,
        vec![
            fx.slot_info(s.slot, 4, SlotState::Active),
            fx.slot_info(other.slot, 5, SlotState::Building),
        ],
        "the slots after clearing the active one (number, version and state unchanged)",
    );
    for key in ["a", "b"] {
        let read = fx.read(&target, &p, s.slot, key).await;
        fx.check_eq(read, None, format_args!("`{key}` in the cleared slot"));
    }
    let at = fx.checkpoint(&target, &p, s.slot).await;
    fx.check_eq(
        at,
        Some(Checkpoint::START),
        "the checkpoint of the cleared slot",
    );
    let letters = fx.dead_letters(&target, &p, s.slot).await;
    fx.check(letters.is_empty(), || {
        format!("the cleared slot should have no dead letters, got {letters:?}")
    });

    let read = fx.read(&target, &p, other.slot, "a").await;
    fx.check_eq(read, Some(1), "`a` in the slot beside the cleared one");
    let at = fx.checkpoint(&target, &p, other.slot).await;
    fx.check_eq(
        at,
        Some(cp.clone()),
        "the checkpoint of the slot beside the cleared one",
    );
    let letters = fx.dead_letters(&target, &p, other.slot).await;
    fx.check(letters.len() == 1, || {
        format!("the slot beside the cleared one should keep its dead letter, got {letters:?}")
    });

    let stale = Commit::new(
        cp.clone(),
        checkpoint(&[Position::new(0, 4, 0)]),
        puts::<T>(&[("c", 3)]),
    );
    let outcome = fx.commit(&target, &p, s.slot, stale).await;
    fx.check_eq(
        outcome,
        CommitOutcome::Moved {
            actual: Some(Checkpoint::START),
        },
        "a commit to the cleared slot from its checkpoint before the clear",
    );
    let rebuild = Commit::new(Checkpoint::START, cp, puts::<T>(&[("c", 3)]));
    fx.committed(&target, &p, s.slot, rebuild).await;
    let read = fx.read(&target, &p, s.slot, "c").await;
    fx.check_eq(read, Some(3), "`c` written to the cleared slot");
    let read = fx.read(&target, &p, s.slot, "a").await;
    fx.check_eq(read, None, "`a` in the cleared slot after a new commit");

    let listed = fx.slots(&target, &p).await;
    let nowhere = missing(&listed);
    let result = target.clear_slot(&p, nowhere, fx.store()).await;
    check_not_found(&fx, result, &p, nowhere, "clearing a slot never created");
    let unknown = fx.projection();
    let result = target.clear_slot(&unknown, s.slot, fx.store()).await;
    check_not_found(
        &fx,
        result,
        &unknown,
        s.slot,
        "clearing a slot of an unknown projection",
    );
}
