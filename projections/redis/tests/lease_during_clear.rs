//! A lease asked for while a slot is being cleared: the clearer holds it, so the answer is
//! "held by another owner", as the in-memory and tantivy targets answer, not a missing slot
//! (which would stop a projector that starts during an in-place rebuild).
#![cfg(feature = "testing")]

use std::time::Duration;

use foldline::{Checkpoint, NewSlot, ProjectionName, ProjectionTarget, StoreIdentity};
use foldline_redis::RedisTestPrefix;
use foldline_redis::redis;

#[tokio::test]
async fn a_lease_asked_for_during_a_clear_is_held_by_the_clearer() -> foldline::Result<()> {
    let test = RedisTestPrefix::create().await?;
    let target = test.target();
    let p = ProjectionName::new("cleared")?;
    let store = StoreIdentity::new("lease-during-clear");
    let slot = target
        .create_slot(&p, 1, NewSlot::Fresh, &store)
        .await?
        .slot;
    let ttl = Duration::from_secs(30);
    assert!(target.acquire_lease(&p, slot, "clearer", ttl).await?);

    // The middle of `clear_slot`: its first step deleted the checkpoint, the slot's keys are
    // being deleted.
    let checkpoint = format!("{}:checkpoint", target.slot_keys(&p, slot).hash_tag());
    redis::cmd("DEL")
        .arg(&checkpoint)
        .exec_async(&mut target.connection())
        .await
        .expect("deleting the checkpoint");
    let held = target.acquire_lease(&p, slot, "standby", ttl).await;
    assert!(matches!(held, Ok(false)), "{held:?}");

    // Once the clear is done and the lease given up, the slot is the standby's to take.
    target.clear_slot(&p, slot, &store).await?;
    assert_eq!(target.checkpoint(&p, slot).await?, Some(Checkpoint::START));
    target.release_lease(&p, slot, "clearer").await?;
    assert!(target.acquire_lease(&p, slot, "standby", ttl).await?);
    // A slot that does not exist is still one.
    let missing = target.acquire_lease(&p, slot.next(), "standby", ttl).await;
    assert!(
        matches!(missing, Err(foldline::Error::SlotNotFound { .. })),
        "{missing:?}"
    );
    Ok(())
}
