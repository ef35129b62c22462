//! The Redis tally: killed 50 times, two workers at once, Redis restarted mid-run.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::Duration;

use anyhow::Context;
use foldline::{Checkpoint, Projection, ProjectionTarget, Projector, ProjectorOptions, SlotState};
use foldline_redis::{RedisTarget, RedisTargetOptions};
use foldline_tests::redis_server::RedisServer;
use foldline_tests::tally::RedisTally;
use redis::AsyncCommands;

use crate::support::{self, Feed, KILLS, Rounds};

fn redis_url() -> String {
    std::env::var("FOLDLINE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

fn fresh_prefix(label: &str) -> String {
    format!("{label}{:08x}", fastrand::u32(..))
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<RedisTarget> {
    let options = RedisTargetOptions::from_url(url)?.with_prefix(prefix)?;
    RedisTarget::connect(options).await.with_context(|| {
        format!("connecting to Redis at {url}; start it with `scripts/redis.sh start`")
    })
}

/// A test's own key prefix on the shared Redis, and the worker arguments that point there.
struct Namespace {
    url: String,
    prefix: String,
    target: RedisTarget,
}

impl Namespace {
    async fn new(label: &str) -> anyhow::Result<Self> {
        let url = redis_url();
        let prefix = fresh_prefix(label);
        let target = connect(&url, &prefix).await?;
        Ok(Namespace {
            url,
            prefix,
            target,
        })
    }

    fn worker_args(&self) -> [&str; 6] {
        [
            "--target",
            "redis",
            "--redis-url",
            &self.url,
            "--redis-prefix",
            &self.prefix,
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
async fn newest_checkpoint(target: &RedisTarget) -> anyhow::Result<Option<Checkpoint>> {
    let slots = target.slots(&<RedisTally>::NAME).await?;
    let Some(newest) = slots.last() else {
        return Ok(None);
    };
    Ok(target.checkpoint(&<RedisTally>::NAME, newest.slot).await?)
}

/// Every data key of the active slot, with its value: strings as text, hashes and sets sorted.
async fn dump(target: &RedisTarget) -> anyhow::Result<BTreeMap<String, String>> {
    let slots = target.slots(&<RedisTally>::NAME).await?;
    let active = slots
        .iter()
        .find(|s| s.state == SlotState::Active)
        .context("no active slot")?;
    let keys = target.slot_keys(&<RedisTally>::NAME, active.slot);
    let prefix = keys.data_prefix();
    let mut conn = target.connection();
    let mut names: Vec<String> = Vec::new();
    let mut iter = conn.scan_match::<_, String>(format!("{prefix}*")).await?;
    while let Some(key) = futures_like_next(&mut iter).await {
        names.push(key);
    }
    drop(iter);
    let mut model = BTreeMap::new();
    for key in names {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await?;
        let value = match kind.as_str() {
            "string" => conn.get::<_, String>(&key).await?,
            "hash" => {
                let map: BTreeMap<String, String> = conn.hgetall(&key).await?;
                format!("{map:?}")
            }
            "set" => {
                let mut members: Vec<String> = conn.smembers(&key).await?;
                members.sort();
                format!("{members:?}")
            }
            other => anyhow::bail!("unexpected Redis type {other} at {key}"),
        };
        model.insert(key[prefix.len()..].to_owned(), value);
    }
    Ok(model)
}

async fn futures_like_next(iter: &mut redis::AsyncIter<'_, String>) -> Option<String> {
    iter.next_item().await.transpose().ok().flatten()
}

/// Deletes every key under `prefix` (the test's own namespace).
async fn cleanup(target: &RedisTarget, prefix: &str) {
    let mut conn = target.connection();
    let mut keys: Vec<String> = Vec::new();
    if let Ok(mut iter) = conn.scan_match::<_, String>(format!("*{prefix}*")).await {
        while let Some(key) = futures_like_next(&mut iter).await {
            keys.push(key);
        }
    }
    for key in keys {
        let _: Result<(), _> = conn.del(&key).await;
    }
}

/// Checks the read model against the feed and against a fresh build from the same store.
async fn check_model(feed: &Feed, target: &RedisTarget, url: &str) -> anyhow::Result<()> {
    let model = dump(target).await?;
    assert_eq!(
        model.get("events").map(String::as_str),
        Some(feed.events.to_string().as_str()),
        "events counter"
    );
    assert_eq!(
        model.get("total").map(String::as_str),
        Some(feed.total.to_string().as_str()),
        "total"
    );
    let fresh_prefix = fresh_prefix("fresh");
    let fresh = connect(url, &fresh_prefix).await?;
    Projector::new(feed.store().clone(), RedisTally::<1>, fresh.clone())
        .catch_up()
        .await?;
    let rebuilt = dump(&fresh).await?;
    cleanup(&fresh, &fresh_prefix).await;
    assert_eq!(model, rebuilt, "the read model equals a fresh rebuild");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_projector_killed_50_times() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(3_000).await?;
    let space = Namespace::new("kill").await?;
    let args = space.worker_args();
    let rounds = Rounds {
        appends: 12..24,
        batch_size: "5",
    };
    let mid_work = support::kill_rounds(&mut feed, &rounds, &args, || {
        newest_checkpoint(&space.target)
    })
    .await?;
    support::finish(&feed, &args)?;
    let checked = check_model(&feed, &space.target, &space.url).await;
    cleanup(&space.target, &space.prefix).await;
    checked?;
    assert!(
        mid_work >= 15,
        "only {mid_work} of {KILLS} kills hit a worker with work left"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_redis_workers_started_together() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(1_000).await?;
    let space = Namespace::new("pair").await?;
    let args = space.worker_args();
    let spawn = |owner: &str| -> anyhow::Result<Child> {
        Ok(feed.worker(&args).args(["--owner", owner]).spawn()?)
    };
    let mut workers = [spawn("first")?, spawn("second")?];
    for _ in 0..40 {
        feed.append(fastrand::u64(1..10)).await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reached = reach(&space.target, &feed.head().await?).await;
    for worker in &mut workers {
        worker.kill()?;
        worker.wait()?;
    }
    reached?;
    let checked = check_model(&feed, &space.target, &space.url).await;
    cleanup(&space.target, &space.prefix).await;
    checked
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
    check_model(&feed, &target, &url).await
}
