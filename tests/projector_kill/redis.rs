//! The Redis tally: killed 50 times, two workers at once, Redis restarted mid-run.

use std::process::Child;
use std::time::Duration;

use anyhow::Context;
use foldline::{
    Checkpoint, EventStore, Projection, ProjectionTarget, ProjectionTargetExt, Projector,
    ProjectorOptions,
};
use foldline_redis::RedisTestPrefix;
use foldline_redis::{RedisKeyspace, RedisTarget, RedisTargetOptions};
use foldline_tests::redis::{dump_slot, test_prefix};
use foldline_tests::redis_server::RedisServer;
use foldline_tests::tally::RedisTally;

use crate::support::{self, Feed, KILLS, KillFeed, Rounds};

fn redis_url() -> String {
    std::env::var(foldline_redis::ENV_URL)
        .unwrap_or_else(|_| foldline_redis::DEFAULT_URL.to_owned())
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisTarget> {
    let options = RedisTargetOptions::from_url(url)?.with_prefix(prefix)?;
    RedisTarget::connect(options).await.with_context(|| {
        format!("connecting to Redis at {url}; start it with `scripts/redis.sh start`")
    })
}

/// A test's own key prefix on the shared Redis (its keys deleted on drop), and the worker
/// arguments that point there.
pub(crate) struct Namespace {
    url: String,
    test: RedisTestPrefix,
}

impl Namespace {
    pub(crate) async fn new() -> Self {
        Namespace {
            url: redis_url(),
            test: test_prefix().await,
        }
    }

    pub(crate) fn target(&self) -> &RedisTarget {
        self.test.target()
    }

    pub(crate) fn worker_args(&self) -> [&str; 6] {
        [
            "--target",
            "redis",
            "--redis-url",
            &self.url,
            "--redis-prefix",
            self.test.prefix(),
        ]
    }
}

/// Waits until the newest slot's checkpoint covers `head`.
async fn reach(target: &RedisTarget, head: &Checkpoint) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let checkpoint = newest_checkpoint(target).await.ok().flatten();
            if checkpoint.is_some_and(|c| c.covers_checkpoint(head)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .context("the projector did not reach the store's head within 30 s")
}

/// The checkpoint of the newest slot (the one being built or served).
pub(crate) async fn newest_checkpoint(target: &RedisTarget) -> anyhow::Result<Option<Checkpoint>> {
    let slots = target.slots(&<RedisTally>::NAME).await?;
    let Some(newest) = slots.last() else {
        return Ok(None);
    };
    Ok(target.checkpoint(&<RedisTally>::NAME, newest.slot).await?)
}

/// The active slot's keys.
pub(crate) async fn dump(target: &RedisTarget) -> anyhow::Result<RedisKeyspace> {
    let active = target
        .active_slot(&<RedisTally>::NAME)
        .await?
        .context("no active slot")?;
    let keys = target.slot_keys(&<RedisTally>::NAME, active.slot);
    Ok(dump_slot(&mut target.connection(), &keys).await?)
}

/// Checks the read model against what was appended (`events` tally events summing to
/// `total`) and against a fresh build from the same `store` into `fresh`, an empty target.
pub(crate) async fn check_model<S: EventStore + Clone>(
    (events, total): (u64, u64),
    store: &S,
    target: &RedisTarget,
    fresh: &RedisTarget,
) -> anyhow::Result<()> {
    let model = dump(target).await?;
    assert_eq!(
        model.get_str("events"),
        Some(events.to_string().as_str()),
        "events counter"
    );
    assert_eq!(
        model.get_str("total"),
        Some(total.to_string().as_str()),
        "total"
    );
    Projector::new(store.clone(), RedisTally::<1>, fresh.clone())
        .catch_up()
        .await?;
    assert_eq!(
        model,
        dump(fresh).await?,
        "the read model equals a fresh rebuild"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_projector_killed_50_times() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(3_000).await?;
    let space = Namespace::new().await;
    let args = space.worker_args();
    let rounds = Rounds {
        appends: 12..24,
        batch_size: "5",
        kills: KILLS,
    };
    let mid_work = support::kill_rounds(&mut feed, &rounds, &args, || {
        newest_checkpoint(space.target())
    })
    .await?;
    support::finish(&feed, &args)?;
    let fresh = test_prefix().await;
    check_model(
        (feed.events, feed.total),
        feed.store(),
        space.target(),
        fresh.target(),
    )
    .await?;
    assert!(
        mid_work >= 15,
        "only {mid_work} of {KILLS} kills hit a worker with work left"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_workers_started_together() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(1_000).await?;
    let space = Namespace::new().await;
    let args = space.worker_args();
    let spawn = |owner: &str| -> anyhow::Result<Child> {
        Ok(feed.worker(&args).args(["--owner", owner]).spawn()?)
    };
    let mut workers = [spawn("first")?, spawn("second")?];
    for _ in 0..40 {
        feed.append(fastrand::u64(1..10)).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reached = reach(space.target(), &feed.head().await?).await;
    for worker in &mut workers {
        worker.kill()?;
        worker.wait()?;
    }
    reached?;
    let fresh = test_prefix().await;
    check_model(
        (feed.events, feed.total),
        feed.store(),
        space.target(),
        fresh.target(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_a_running_projector() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(500).await?;
    let mut server = RedisServer::start()?;
    let url = server.url();
    let target = connect(&url, "restart").await?;
    let handle = Projector::new(feed.store().clone(), RedisTally::<1>, target.clone())
        .with_options(
            ProjectorOptions::new()
                .with_batch_size(20)
                .with_idle_interval(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(200)),
        )
        .spawn();
    for restart in 0..3 {
        for _ in 0..30 {
            feed.append(fastrand::u64(1..10)).await?;
        }
        tokio::time::sleep(Duration::from_millis(100 + 100 * restart)).await;
        server.stop()?;
        // Writers go on while Redis is down.
        for _ in 0..30 {
            feed.append(fastrand::u64(1..10)).await?;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.restart()?;
    }
    let caught_up = reach(&target, &feed.head().await?).await;
    assert!(!handle.is_finished(), "the projector survives the restarts");
    caught_up?;
    handle.shutdown().await?;
    let fresh = connect(&url, "fresh").await?;
    check_model((feed.events, feed.total), feed.store(), &target, &fresh).await
}
