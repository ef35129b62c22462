//! Slots record the store they are built from.

use super::TargetProbe;
use super::fixture::Fixture;
use crate::projection::{NewSlot, SlotState};
use crate::store::StoreIdentity;

/// A slot records the store it was created for, and lists it; `Resume` for another store
/// never returns a slot building from the first one (it makes a new slot); clearing a slot
/// for another store records that store.
pub async fn slots_record_their_store<T: TargetProbe>(target: T) {
    let fx = Fixture::new("slots_record_their_store");
    let p = fx.projection();
    let other = StoreIdentity::new("conformance:store-b");

    let first = fx.create(&target, &p, 1, NewSlot::Resume).await;
    fx.check_eq(
        first.store.as_ref(),
        Some(fx.store()),
        "the store `create_slot` returns",
    );
    fx.check_eq(
        fx.slots(&target, &p).await,
        vec![fx.slot_info(first.slot, 1, SlotState::Building)],
        "the slots after creating one (with its store)",
    );

    let second = fx.ok(
        target.create_slot(&p, 1, NewSlot::Resume, &other).await,
        "resuming version 1 for another store",
    );
    fx.check(second.slot > first.slot, || {
        format!(
            "`Resume` for another store must not return slot {} (built from {}), got {second:?}",
            first.slot,
            fx.store()
        )
    });
    fx.check_eq(
        second.store.as_ref(),
        Some(&other),
        "the store of the slot made for the other store",
    );

    fx.ok(
        target.clear_slot(&p, first.slot, &other).await,
        "clearing the first slot for the other store",
    );
    let listed = fx.slots(&target, &p).await;
    fx.check_eq(
        listed.iter().map(|s| s.store.clone()).collect::<Vec<_>>(),
        vec![Some(other.clone()), Some(other.clone())],
        "the stores of both slots after clearing the first for the other store",
    );
}
