//! The transfer process manager's runner, wired as `tests/bin/process_worker.rs` wires it
//! (a `Projector` of `ProcessProjection<Transfer>` over the PostgreSQL feed into a
//! `ProcessTarget` whose checkpoint is in Redis, and the timer loop), in this process, with
//! every store it calls timed ([`timed`](super::timed)).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use foldline::{
    CommandExecutor, Commit, CommitOutcome, EventStore, ProcessInputs, ProcessProjection,
    ProcessRunner, ProcessTarget, Projection, ProjectionTarget, ProjectionTargetExt, Projector,
    ProjectorHandle, ProjectorOptions,
};
use foldline_postgres::PgEventStore;
use foldline_redis::{RedisTarget, RedisWrites};
use foldline_tests::transfers::{Transfer, Wallets};
use tokio::task::JoinHandle;

use super::registry::Registry;
use super::timed::{
    StoreTallies, Tally, TargetTallies, TimedDispatcher, TimedStore, TimedTarget, TimedTimers,
    TimerTallies,
};
use crate::stats::size_f64;

/// The runner's lease (the process worker's default).
const LEASE: Duration = Duration::from_secs(1);
/// How often the timer loop looks for due timers at the most, and how long it claims them
/// (the process worker's).
const TIMER_POLL: Duration = Duration::from_millis(100);
const TIMER_LEASE: Duration = Duration::from_secs(2);
/// How often the runner's lag is sampled.
const LAG_SAMPLE: Duration = Duration::from_millis(50);

/// The runner's projector settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Events per commit at most.
    pub(super) batch: usize,
    /// The projector's idle interval.
    pub(super) idle: Duration,
    /// How many instances' inputs of a batch `ProcessTarget` carries out at once (its own
    /// default when `None`).
    pub(super) concurrent: Option<usize>,
}

/// Where one runner's time went, by what it called.
#[derive(Debug, Default)]
pub(super) struct Profile {
    /// The runner's own store: instance streams read, decisions appended.
    pub(super) instances: Arc<StoreTallies>,
    /// The store of the dispatcher's executor: wallets read, commands appended, their
    /// idempotency keys looked up.
    pub(super) commands: Arc<StoreTallies>,
    /// Each command through the dispatcher, whole.
    pub(super) dispatch: Arc<Tally>,
    /// The timer store (PostgreSQL).
    pub(super) timers: Arc<TimerTallies>,
    /// The checkpoint target (Redis): `ProcessTarget` reads the checkpoint, then commits it.
    pub(super) checkpoints: Arc<TargetTallies>,
    /// `ProcessTarget` itself: each commit is every input of a batch decided and carried out,
    /// then the checkpoint.
    pub(super) runner: Arc<TargetTallies>,
    /// The runner's lag behind the store's head, sampled.
    pub(super) lag: Arc<Lag>,
}

impl Profile {
    /// Where a runner's time went over a pass of `transfers` transfers that took `elapsed`, as
    /// lines of stderr.
    pub(super) fn summary(&self, transfers: usize, elapsed: Duration) -> String {
        let profile = self;
        let runner = &profile.runner;
        let (mean, largest) = runner.per_commit();
        let (lag, most_lag) = profile.lag.mean_max();
        let busy = runner.commits.busy();
        let per = |ms: f64| format!("{ms:.2}");
        let instances = &profile.instances;
        let commands = &profile.commands;
        let timers = &profile.timers;
        let checkpoints = &profile.checkpoints;
        let decisions = instances.reads.ms_per(transfers) + instances.appends.ms_per(transfers);
        let dispatch = profile.dispatch.ms_per(transfers);
        let timer_calls = timers.schedule.ms_per(transfers)
            + timers.cancel.ms_per(transfers)
            + timers.cancel_all.ms_per(transfers);
        let checkpoint =
            checkpoints.checkpoints.ms_per(transfers) + checkpoints.commits.ms_per(transfers);
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let total = busy.as_secs_f64() * 1e3 / transfers.max(1) as f64;
        // One input at a time (`--concurrent 1`), the calls add up to the time inside
        // commits; carried out concurrently, they overlap and add up to more.
        let rest = total - decisions - dispatch - timer_calls - checkpoint;
        let rest = if rest >= -0.05 {
            format!("+ the rest {}", per(rest.max(0.0)))
        } else {
            "(overlapping: the calls ran concurrently)".to_owned()
        };
        format!(
            "       runner: {} commits of {mean:.1} inputs (largest {largest}), inside them {:.0} % \
             of the pass; lag behind the head mean {lag:.0} events, largest {most_lag}\n       \
             runner ms per transfer: {} in all = instances {} (reads {}, decisions appended {}) \
             + commands {} (key look-ups {}, wallet reads {}, appends {}) + timers {} (schedule \
             {}, cancel {}, cancel all {}) + checkpoint {} (reads {}, commits {}) {rest}; timer \
             loop {:.0} calls, {:.2} s in all\n",
            runner.commits.calls(),
            busy.as_secs_f64() / elapsed.as_secs_f64().max(1e-9) * 100.0,
            per(total),
            per(decisions),
            instances.reads.per(transfers),
            instances.appends.per(transfers),
            per(dispatch),
            commands.keys.per(transfers),
            commands.reads.per(transfers),
            commands.appends.per(transfers),
            per(timer_calls),
            timers.schedule.per(transfers),
            timers.cancel.per(transfers),
            timers.cancel_all.per(transfers),
            per(checkpoint),
            checkpoints.checkpoints.per(transfers),
            checkpoints.commits.per(transfers),
            size_f64(usize::try_from(timers.polling.calls()).unwrap_or(usize::MAX)),
            timers.polling.busy().as_secs_f64(),
        )
    }
}

/// Samples of the runner's lag in events (`ProjectorProgress::lag_events`).
#[derive(Debug, Default)]
pub(super) struct Lag {
    sum: AtomicU64,
    count: AtomicU64,
    max: AtomicU64,
}

impl Lag {
    fn add(&self, lag: u64) {
        self.sum.fetch_add(lag, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(lag, Ordering::Relaxed);
    }

    /// Mean and largest sampled lag, in events.
    pub(super) fn mean_max(&self) -> (f64, u64) {
        let count = self.count.load(Ordering::Relaxed).max(1);
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let mean = self.sum.load(Ordering::Relaxed) as f64 / count as f64;
        (mean, self.max.load(Ordering::Relaxed))
    }
}

/// A runner following the feed, its timer loop, and the task sampling its lag.
pub(super) struct Running {
    handle: ProjectorHandle,
    timers: JoinHandle<foldline::Result<()>>,
    sampler: JoinHandle<()>,
    pub(super) profile: Arc<Profile>,
}

/// Starts a runner after moving its checkpoint to the store's head (so it skips the raw
/// limit's transfers, whose events it would otherwise take for requests of its own), and
/// waits until it follows the feed live.
pub(super) async fn start(
    store: &PgEventStore,
    checkpoints: &RedisTarget,
    settings: Settings,
    registry: Arc<Registry>,
) -> anyhow::Result<Running> {
    skip_to_head(store, checkpoints).await?;
    let profile = Arc::new(Profile::default());
    let runner_store = TimedStore::new(store.clone(), Arc::clone(&profile.instances));
    let command_store = TimedStore::new(store.clone(), Arc::clone(&profile.commands));
    let dispatcher = TimedDispatcher::new(
        Wallets::new(CommandExecutor::new(command_store)),
        Arc::clone(&profile.dispatch),
        registry,
    );
    let timers = TimedTimers::new(store.clone(), Arc::clone(&profile.timers));
    let runner = Arc::new(ProcessRunner::<Transfer, _, _, _>::new(
        runner_store,
        dispatcher,
        timers,
    ));
    let inner = TimedTarget::new(checkpoints.clone(), |_| 0, Arc::clone(&profile.checkpoints));
    let options = ProjectorOptions::new()
        .with_batch_size(settings.batch)
        .with_lease_ttl(LEASE)
        .with_idle_interval(settings.idle)
        .with_owner(format!("bench-{}", std::process::id()));
    let mut process_target = ProcessTarget::new(Arc::clone(&runner), inner);
    if let Some(instances) = settings.concurrent {
        process_target = process_target.with_concurrency(instances);
    }
    let target = TimedTarget::new(
        process_target,
        ProcessInputs::<Transfer>::len,
        Arc::clone(&profile.runner),
    );
    let handle = Projector::new(store.clone(), ProcessProjection::<Transfer>::new(), target)
        .with_options(options)
        .spawn();
    let mut progress = handle.watch();
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|p| p.caught_up && p.active),
    )
    .await
    .context("the runner did not catch up within 60 s")?
    .context("the runner stopped before catching up")?;
    // Timers are claimed for a lease, as the process worker does.
    let timers = tokio::spawn(async move { runner.run_timers(TIMER_POLL, TIMER_LEASE).await });
    let lag = Arc::clone(&profile.lag);
    let sampler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(LAG_SAMPLE).await;
            lag.add(progress.borrow().lag_events);
        }
    });
    Ok(Running {
        handle,
        timers,
        sampler,
        profile,
    })
}

impl Running {
    /// Shuts the runner down (its lease released) and stops its timer loop.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.sampler.abort();
        let timers_failed = self.timers.is_finished();
        self.handle.shutdown().await.context("the runner failed")?;
        if timers_failed {
            self.timers
                .await
                .context("the timer loop panicked")?
                .context("the timer loop failed")?;
            anyhow::bail!("the timer loop stopped");
        }
        self.timers.abort();
        Ok(())
    }
}

/// Moves the runner's checkpoint (in its active slot) to the store's head, as an operator
/// skipping events would; nothing when it has no slot yet (the first start creates it).
async fn skip_to_head(store: &PgEventStore, checkpoints: &RedisTarget) -> anyhow::Result<()> {
    let name = <ProcessProjection<Transfer> as Projection>::NAME;
    let Some((slot, current)) = checkpoints.active_checkpoint(&name).await? else {
        return Ok(());
    };
    let head = store.head().await?;
    if current.covers_checkpoint(&head) {
        return Ok(());
    }
    let outcome = checkpoints
        .commit(
            &name,
            slot.slot,
            Commit::new(current, head, RedisWrites::default()),
        )
        .await?;
    ensure!(
        outcome == CommitOutcome::Committed,
        "could not move the runner's checkpoint to the head: {outcome:?}"
    );
    Ok(())
}
