//! A blue/green rebuild while its Redis restarts: the binary says on stderr that it is retrying,
//! carries on once Redis is back, and ends with the same read model as a fresh build.

use std::time::Duration;

use anyhow::Context;
use example_bank::projections::balances::Balances;
use foldline::{Projector, SlotId};
use foldline_redis::RedisTestPrefix;
use foldline_redis::{RedisTarget, RedisTargetOptions};
use foldline_tests::redis_server::RedisServer;

use crate::support::{Bank, dump, fill, first_rebuild_commit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_rides_out_a_redis_restart_and_says_so() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let store = bank.store();
    // Enough events that the rebuild is still going when Redis stops (~100 000).
    fill(&store, 50, 1999).await?;
    let mut server = RedisServer::start()?;
    let url = server.url();
    let options = RedisTargetOptions::from_url(&url)?.with_prefix(bank.redis.prefix())?;
    let target = RedisTarget::connect(options.clone()).await?;

    let mut child = bank.spawn(&["rebuild", "balances", "--redis-url", &url])?;
    // Stop Redis (cleanly: its append-only file keeps every acknowledged write) once the
    // building slot has a first commit, and start it again a second later.
    first_rebuild_commit(&target, &mut child).await?;
    server.stop()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart()?;

    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let stdout = String::from_utf8(out.stdout)?;
    let stderr = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("rebuilt balances into slot 1 (version 1): "),
        "{stdout}"
    );
    // The retries are logged (warnings go to stderr by default), naming the projection and
    // the cause, with the plain progress lines around them.
    let retry = stderr
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains("projection interrupted"))
        .with_context(|| format!("a retry warning on stderr:\n{stderr}"))?;
    assert!(retry.contains("projection=balances"), "{retry}");
    assert!(retry.contains("redis failed while"), "{retry}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour off a terminal: {stderr}"
    );
    // The progress line says it is interrupted and why, once per cause, instead of a rate
    // averaged over the outage.
    let interrupted: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rebuilding: slot 1: interrupted at "))
        .collect();
    assert!(!interrupted.is_empty(), "an interruption line:\n{stderr}");
    assert!(
        interrupted
            .iter()
            .all(|l| l.contains("retrying from the slot's checkpoint: redis failed while")),
        "{interrupted:?}"
    );
    let mut causes = interrupted.clone();
    causes.dedup();
    assert_eq!(causes, interrupted, "each cause is said once in a row");

    // Nothing lost or doubled: the same data as a fresh build of the same store.
    let fresh = RedisTestPrefix::create().await?;
    Projector::new(store.clone(), Balances, fresh.target().clone())
        .catch_up()
        .await?;
    // A new connection: the one above saw the restart, and its next command would fail.
    let target = RedisTarget::connect(options).await?;
    let rebuilt = dump(&target, SlotId::new(1)).await?;
    assert_eq!(rebuilt.len(), 51, "50 accounts and the set of them");
    assert_eq!(rebuilt, dump(fresh.target(), SlotId::new(1)).await?);
    Ok(())
}
