//! Leases: at most one owner per slot until the lease expires or is released.

use std::time::Duration;

use super::TargetProbe;
use super::fixture::Fixture;
use crate::names::ProjectionName;
use crate::projection::{NewSlot, SlotId};

/// The lease the case lets expire.
const SHORT: Duration = Duration::from_millis(300);

/// How long the case waits for a [`SHORT`] lease to expire: past it, with room for a target
/// whose clock ticks in coarser steps.
const PAST_SHORT: Duration = Duration::from_millis(450);

/// A lease that must not expire while the case runs.
const LONG: Duration = Duration::from_secs(30);

async fn acquire<T: TargetProbe>(
    fx: &Fixture,
    target: &T,
    projection: &ProjectionName,
    slot: SlotId,
    owner: &str,
    ttl: Duration,
) -> bool {
    fx.ok(
        target.acquire_lease(projection, slot, owner, ttl).await,
        format_args!("`{owner}` acquiring the lease of slot {slot} of `{projection}`"),
    )
}

async fn release<T: TargetProbe>(
    fx: &Fixture,
    target: &T,
    projection: &ProjectionName,
    slot: SlotId,
    owner: &str,
) {
    fx.ok(
        target.release_lease(projection, slot, owner).await,
        format_args!("`{owner}` releasing the lease of slot {slot} of `{projection}`"),
    );
}

/// Owner `a` takes a slot's lease; `b` is refused while it lasts; `a` renews it (renewing
/// extends it); once it expires `b` takes it; a release by `a`, who does not hold it, changes
/// nothing; after `b` releases, `a` takes it. Each slot has its own lease.
pub async fn lease_has_one_owner<T: TargetProbe>(target: T) {
    let fx = Fixture::new("lease_has_one_owner");
    let p = fx.projection();
    let s = fx.create(&target, &p, 1, NewSlot::Fresh).await.slot;
    let other = fx.create(&target, &p, 1, NewSlot::Fresh).await.slot;

    let got = acquire(&fx, &target, &p, s, "a", SHORT).await;
    fx.check_eq(got, true, "`a` acquiring a free lease");
    let got = acquire(&fx, &target, &p, s, "b", SHORT).await;
    fx.check_eq(got, false, "`b` acquiring the lease `a` holds");
    let got = acquire(&fx, &target, &p, other, "b", LONG).await;
    fx.check_eq(
        got,
        true,
        "`b` acquiring another slot's lease while `a` holds the first",
    );

    // Renewing for longer keeps the lease past its first expiry.
    let got = acquire(&fx, &target, &p, s, "a", LONG).await;
    fx.check_eq(got, true, "`a` renewing its lease");
    tokio::time::sleep(PAST_SHORT).await;
    let got = acquire(&fx, &target, &p, s, "b", SHORT).await;
    fx.check_eq(
        got,
        false,
        format_args!("`b` acquiring, {PAST_SHORT:?} after `a` renewed its lease for {LONG:?}"),
    );

    // Renewing can also shorten it; then it expires.
    let got = acquire(&fx, &target, &p, s, "a", SHORT).await;
    fx.check_eq(
        got,
        true,
        format_args!("`a` renewing its lease for {SHORT:?}"),
    );
    tokio::time::sleep(PAST_SHORT).await;
    let got = acquire(&fx, &target, &p, s, "b", LONG).await;
    fx.check_eq(
        got,
        true,
        format_args!("`b` acquiring {PAST_SHORT:?} after `a` renewed for {SHORT:?} (expired)"),
    );
    let got = acquire(&fx, &target, &p, s, "a", LONG).await;
    fx.check_eq(got, false, "`a` acquiring the lease `b` took over");

    release(&fx, &target, &p, s, "a").await;
    let got = acquire(&fx, &target, &p, s, "a", LONG).await;
    fx.check_eq(
        got,
        false,
        "`a` acquiring after `a`, who does not hold the lease, released it",
    );

    release(&fx, &target, &p, s, "b").await;
    let got = acquire(&fx, &target, &p, s, "a", LONG).await;
    fx.check_eq(got, true, "`a` acquiring after `b` released the lease");
    let got = acquire(&fx, &target, &p, other, "a", LONG).await;
    fx.check_eq(
        got,
        false,
        "`a` acquiring the other slot's lease, which `b` still holds",
    );

    release(&fx, &target, &p, s, "a").await;
    release(&fx, &target, &p, other, "b").await;
}
