//! The store side of the kill tests: a store with a backlog (a PostgreSQL schema here, a Kafka
//! store in `kafka.rs`), a writer, and the worker process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use foldline::{Checkpoint, EventStore};
use foldline_postgres::PgEventStore;
use foldline_postgres::PgTestSchema;
use foldline_tests::tally;

/// Kills per test.
pub(crate) const KILLS: usize = 50;

/// The store of one kill test and what was appended to it.
pub(crate) struct Feed {
    pub(crate) schema: PgTestSchema,
    pub(crate) events: u64,
    pub(crate) total: u64,
}

impl Feed {
    /// A fresh schema with a backlog of `backlog` events over 40 streams.
    pub(crate) async fn with_backlog(backlog: u64) -> anyhow::Result<Self> {
        let mut feed = Feed {
            schema: foldline_tests::pg::test_schema().await,
            events: 0,
            total: 0,
        };
        let mut left = backlog;
        while left > 0 {
            let n = left.min(25);
            feed.append(n).await?;
            left -= n;
        }
        Ok(feed)
    }

    pub(crate) fn store(&self) -> &PgEventStore {
        self.schema.store()
    }
}

/// What the kill rounds need of a store with a backlog: more events, the head, the worker.
pub(crate) trait KillFeed {
    /// Appends `n` events (amounts 1..=n) to a random one of 40 streams.
    async fn append(&mut self, n: u64) -> anyhow::Result<()>;

    /// The store's head.
    async fn head(&self) -> anyhow::Result<Checkpoint>;

    /// The worker command for this store, with `target_args`.
    fn worker(&self, target_args: &[&str]) -> Command;
}

/// Appends `n` tally events to a random one of 40 streams of `store`, counting them.
pub(crate) async fn append_tally<S: EventStore>(
    store: &S,
    n: u64,
    events: &mut u64,
    total: &mut u64,
) -> anyhow::Result<()> {
    let stream = format!("tally-{}", fastrand::u32(0..40));
    tally::append(store, &stream, &tally::counted(n)).await?;
    *events += n;
    *total += n * (n + 1) / 2;
    Ok(())
}

impl KillFeed for Feed {
    async fn append(&mut self, n: u64) -> anyhow::Result<()> {
        append_tally(self.schema.store(), n, &mut self.events, &mut self.total).await
    }

    async fn head(&self) -> anyhow::Result<Checkpoint> {
        Ok(self.store().head().await?)
    }

    fn worker(&self, target_args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_projector-worker"));
        command
            .arg("--postgres-url")
            .arg(self.schema.url())
            .arg("--schema")
            .arg(self.schema.name().as_str())
            .args(["--lease-ms", "2000"])
            .args(target_args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }
}

/// How much work each kill round brings.
pub(crate) struct Rounds {
    /// Appends (of 1–49 events) before each round.
    pub(crate) appends: std::ops::Range<u64>,
    /// The worker's `--batch-size`.
    pub(crate) batch_size: &'static str,
    /// How many times a worker is killed.
    pub(crate) kills: usize,
}

/// Runs `rounds.kills` rounds: append, start a worker, kill it after a random time. `checkpoint` reads
/// the target's checkpoint (of whichever slot is being built or served). Returns how many
/// kills hit a worker with work left (its checkpoint short of the head).
pub(crate) async fn kill_rounds<F, Fut>(
    feed: &mut impl KillFeed,
    rounds: &Rounds,
    target_args: &[&str],
    mut checkpoint: F,
) -> anyhow::Result<usize>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<Checkpoint>>>,
{
    let mut mid_work = 0;
    for round in 0..rounds.kills {
        for _ in 0..fastrand::u64(rounds.appends.clone()) {
            feed.append(fastrand::u64(1..50)).await?;
        }
        let before = checkpoint().await?;
        let mut child: Child = feed
            .worker(target_args)
            // One owner for every round: a killed worker's lease does not hold up the next.
            .args(["--owner", "worker", "--batch-size", rounds.batch_size])
            .spawn()
            .context("starting projector-worker")?;
        if round % 5 == 0 {
            // Anywhere from start-up (connecting, picking the slot) onwards.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..80))).await;
        } else {
            // Somewhere in the middle of its work: once it has committed something.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while checkpoint().await? == before && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..20_000))).await;
        }
        let head = feed.head().await?;
        child.kill()?;
        let status = child.wait()?;
        ensure!(
            !status.success(),
            "round {round}: the worker exited by itself ({status})"
        );
        if !checkpoint()
            .await?
            .is_some_and(|c| c.covers_checkpoint(&head))
        {
            mid_work += 1;
        }
    }
    Ok(mid_work)
}

/// Runs one worker with `--catch-up` to the head; it must exit 0.
pub(crate) fn finish(feed: &impl KillFeed, target_args: &[&str]) -> anyhow::Result<()> {
    let status = feed
        .worker(target_args)
        .arg("--catch-up")
        .status()
        .context("starting projector-worker")?;
    ensure!(status.success(), "the final catch-up failed: {status}");
    Ok(())
}

/// A directory as a `--tantivy-root` argument.
pub(crate) fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
