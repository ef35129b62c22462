//! Transfers between wallets as a process manager (`foldline_tests::transfers`) on PostgreSQL,
//! its runners in processes of their own (`process-worker`, tests/bin), killed with SIGKILL at
//! random moments while a second runner competes for the lease and fires timers beside it.
//!
//! In the end every transfer must be completed or compensated, the sum of the balances
//! unchanged, every movement recorded once (a command carried out twice shows as a second
//! event: the wallets do not dedupe on their own), no cancelled timeout fired, and no timer
//! left behind. A second test stops every runner while a timer comes due, and checks it fires
//! once a runner is back.
//!
//! Each run prints how often each runner was killed and how the transfers ended (stderr,
//! `--nocapture`), for the notes.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use foldline::{
    Checkpoint, CommandExecutor, Decision, EventStore, FeedEvent, Input, JsonCodec, ProcessManager,
    ProcessStatus, StoredInstance, TimerStore,
};
use foldline_postgres::PgTestSchema;
use foldline_redis::RedisTestPrefix;
use foldline_tests::transfers::{
    STUCK_AFTER, Stuck, Transfer, Wallet, WalletCommand, WalletEvent, check_effects, effects,
};

const WALLETS: usize = 50;
const CLOSED_WALLETS: usize = 5;
const START_CENTS: u64 = 10_000;
const TRANSFERS: usize = 1_000;
const KILLS: usize = 30;
/// Concurrent requesters.
const REQUESTERS: usize = 8;

/// The store, the checkpoint's Redis prefix, and the runner processes.
struct Bank {
    schema: PgTestSchema,
    redis: RedisTestPrefix,
}

impl Bank {
    async fn new() -> Self {
        Bank {
            schema: foldline_tests::pg::test_schema().await,
            redis: foldline_tests::redis::test_prefix().await,
        }
    }

    fn executor(&self) -> CommandExecutor<foldline_postgres::PgEventStore> {
        CommandExecutor::new(self.schema.store().clone())
    }

    /// Starts a runner with lease owner `owner`.
    fn runner(&self, owner: &str) -> anyhow::Result<Runner> {
        let redis_url = std::env::var(foldline_redis::ENV_URL)
            .unwrap_or_else(|_| foldline_redis::DEFAULT_URL.to_owned());
        Command::new(env!("CARGO_BIN_EXE_process-worker"))
            .arg("--postgres-url")
            .arg(self.schema.url())
            .arg("--schema")
            .arg(self.schema.name().as_str())
            .arg("--redis-url")
            .arg(redis_url)
            .arg("--redis-prefix")
            .arg(self.redis.prefix())
            .arg("--owner")
            .arg(owner)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map(|child| Runner {
                child,
                owner: owner.to_owned(),
            })
            .context("starting process-worker")
    }

    async fn instance(&self, transfer: &str) -> anyhow::Result<StoredInstance<Transfer>> {
        Ok(StoredInstance::load(self.schema.store(), &JsonCodec, &transfer.to_owned()).await?)
    }

    /// Waits until every transfer of `ids` is finished; fails naming those that are not.
    async fn wait_finished(&self, ids: &[String], within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut open: Vec<&String> = ids.iter().collect();
        while !open.is_empty() {
            let mut still = Vec::new();
            for id in open {
                if !self.instance(id).await?.instance.status().is_finished() {
                    still.push(id);
                }
            }
            open = still;
            if open.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let mut report = String::new();
                for id in open.iter().take(5) {
                    let stored = self.instance(id).await?;
                    let timers = self
                        .schema
                        .store()
                        .pending(Transfer::NAME, &stored.stream)
                        .await?;
                    report.push_str(&format!(
                        "\n  {id}: {} after {} decision(s), {} timer(s) pending",
                        stored.instance.status(),
                        stored.instance.decided(),
                        timers.len()
                    ));
                }
                bail!(
                    "{} transfer(s) unfinished after {within:?}:{report}",
                    open.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }
}

fn wallet(n: usize) -> String {
    format!("w{n:02}")
}

/// Opens the wallets with [`START_CENTS`] each and closes the last [`CLOSED_WALLETS`]: their
/// deposits and withdrawals are refused.
async fn open_wallets(bank: &Bank) -> anyhow::Result<()> {
    let executor = bank.executor();
    for n in 0..WALLETS {
        executor
            .execute::<Wallet>(WalletCommand::Open {
                wallet: wallet(n),
                cents: START_CENTS,
            })
            .await?;
    }
    for n in WALLETS - CLOSED_WALLETS..WALLETS {
        executor
            .execute::<Wallet>(WalletCommand::Close { wallet: wallet(n) })
            .await?;
    }
    Ok(())
}

/// One transfer request, as the requesters drew it.
#[derive(Clone, Debug)]
struct Request {
    id: String,
    from: String,
    to: String,
    cents: u64,
    needs_approval: bool,
    approve: bool,
}

fn draw(n: usize) -> Request {
    let from = fastrand::usize(0..WALLETS);
    let to = (from + fastrand::usize(1..WALLETS)) % WALLETS;
    let needs_approval = fastrand::u8(0..100) < 15;
    Request {
        id: format!("t{n:04}"),
        from: wallet(from),
        to: wallet(to),
        // Up to 3 000 of 10 000: most go through, some find too little left.
        cents: fastrand::u64(1..=3_000),
        needs_approval,
        // A third of those waiting for approval never get it, and time out.
        approve: needs_approval && fastrand::u8(0..3) > 0,
    }
}

/// Sends `requests` through [`REQUESTERS`] tasks, spread over about `over`, each approval
/// (when drawn) a moment after its request.
async fn request_all(bank: &Bank, requests: &[Request], over: Duration) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let per_request = over * u32::try_from(REQUESTERS)? / u32::try_from(requests.len())?;
    let pause = u64::try_from(per_request.as_millis())?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REQUESTERS {
        let (executor, next, requests) = (bank.executor(), next.clone(), requests.to_vec());
        tasks.spawn(async move {
            while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                executor
                    .execute::<Wallet>(WalletCommand::RequestTransfer {
                        wallet: request.from.clone(),
                        transfer: request.id.clone(),
                        to: request.to.clone(),
                        cents: request.cents,
                        needs_approval: request.needs_approval,
                    })
                    .await?;
                if request.approve {
                    let (executor, request) = (executor.clone(), request.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..1_500))).await;
                        let approve = WalletCommand::Approve {
                            wallet: request.from,
                            transfer: request.id,
                        };
                        // A closed source wallet refuses the approval: that transfer is
                        // refused at its withdrawal anyway.
                        let _ = executor.execute::<Wallet>(approve).await;
                    });
                }
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=2 * pause))).await;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// A runner process, killed when dropped (a failed test leaves none behind).
struct Runner {
    child: Child,
    owner: String,
}

impl Runner {
    /// Kills it with SIGKILL; fails if it had exited by itself.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "runner {} exited by itself ({status}); its stderr is above",
                self.owner
            );
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every wallet event of the feed, in feed order.
async fn wallet_events(bank: &Bank) -> anyhow::Result<Vec<WalletEvent>> {
    let store = bank.schema.store();
    let mut from = Checkpoint::START;
    let mut events = Vec::new();
    loop {
        let batch = store.read_all(&from, 500).await?;
        if batch.events.is_empty() {
            return Ok(events);
        }
        for recorded in &batch.events {
            if let Some(event) = WalletEvent::from_recorded(recorded, &JsonCodec)? {
                events.push(event);
            }
        }
        from = batch.checkpoint;
    }
}

/// 1 000 transfers between 50 wallets (some refused at the withdrawal or the deposit, some
/// waiting for an approval that never comes) while runner `a` or `b` is killed 30 times at
/// random moments and restarted: every transfer ends completed or compensated, money is
/// neither lost nor made, and nothing happened twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_runners_killed_at_random_moments() -> anyhow::Result<()> {
    let bank = Bank::new().await;
    open_wallets(&bank).await?;
    let requests: Vec<Request> = (0..TRANSFERS).map(draw).collect();
    let mut runners = [bank.runner("a")?, bank.runner("b")?];

    let kills = async {
        let mut killed = [0; 2];
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(100..1_000))).await;
            let victim = fastrand::usize(0..2);
            runners[victim].kill()?;
            killed[victim] += 1;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..300))).await;
            runners[victim] = bank.runner(["a", "b"][victim])?;
        }
        anyhow::Ok(killed)
    };
    let (requested, killed) = tokio::join!(
        request_all(&bank, &requests, Duration::from_secs(15)),
        kills
    );
    requested?;
    let killed = killed?;
    eprintln!("runner a killed {} times, b {} times", killed[0], killed[1]);

    let ids: Vec<String> = requests.iter().map(|r| r.id.clone()).collect();
    let finished = bank.wait_finished(&ids, Duration::from_secs(120)).await;
    for runner in &mut runners {
        runner.kill()?;
    }
    finished?;

    // The money: every balance from the wallets' own events, summed.
    let events = wallet_events(&bank).await?;
    let moved = effects(&events);
    let total: u64 = moved.balances.values().sum();
    ensure!(
        total == START_CENTS * WALLETS as u64,
        "the balances sum to {total}, not {}",
        START_CENTS * WALLETS as u64
    );

    // Each transfer: its movements match how it ended; a cancelled timeout never fired.
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let none = Default::default();
    for request in &requests {
        let stored = bank.instance(&request.id).await?;
        let status = stored.instance.status().clone();
        let outcome = match &status {
            ProcessStatus::Completed => "completed",
            ProcessStatus::Failed { reason } if reason.starts_with("refused") => "refused",
            ProcessStatus::Failed { .. } => "timed out",
            other => bail!("{}: {other} after waiting for every transfer", request.id),
        };
        *outcomes.entry(outcome).or_default() += 1;
        let movements = moved.transfers.get(&request.id).unwrap_or(&none);
        if let Some(problem) =
            check_effects(status == ProcessStatus::Completed, request.cents, movements)
        {
            wrong.push(format!("{} ({request:?}): {problem}", request.id));
        }
        if let Some(problem) = fired_after_cancel(&bank, &stored.stream).await? {
            wrong.push(format!("{}: {problem}", request.id));
        }
    }
    eprintln!("outcomes: {outcomes:?}");
    ensure!(
        wrong.is_empty(),
        "{} transfer(s) went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    for kind in ["completed", "refused", "timed out"] {
        ensure!(
            outcomes.get(kind).copied().unwrap_or(0) > 0,
            "no transfer {kind}: the run did not exercise that path ({outcomes:?})"
        );
    }
    let left = bank.schema.store().next_due(Transfer::NAME).await?;
    ensure!(left.is_none(), "a timer is left behind, due {left:?}");
    Ok(())
}

/// Whether the instance of `stream` decided on a timeout after it had cancelled it (and not
/// scheduled it again): a cancelled timer that fired.
async fn fired_after_cancel(
    bank: &Bank,
    stream: &foldline::StreamId,
) -> anyhow::Result<Option<String>> {
    let recorded = bank
        .schema
        .store()
        .read_stream(stream, foldline::Version::new(1), 100)
        .await?;
    let mut pending = false;
    for event in &recorded {
        let decision = Decision::<Transfer>::decode(event, &JsonCodec)?;
        if let Input::Timeout(Stuck) = decision.input {
            if !pending {
                return Ok(Some(format!(
                    "a timeout fired at version {} while none was pending",
                    event.stream_version
                )));
            }
            pending = false;
        }
        for action in &decision.actions {
            match action {
                foldline::Action::Schedule { .. } => pending = true,
                foldline::Action::Cancel(_)
                | foldline::Action::Complete
                | foldline::Action::Fail { .. } => pending = false,
                _ => {}
            }
        }
    }
    Ok(None)
}

/// A transfer waiting for an approval that never comes: every runner is stopped before its
/// timeout is due, and stays down past it. Nothing fires while they are down; the first
/// runner back fires it (late, not never), and the transfer is compensated once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_due_while_every_runner_is_down_fires_after_the_restart() -> anyhow::Result<()> {
    let bank = Bank::new().await;
    open_wallets(&bank).await?;
    let mut runner = bank.runner("a")?;
    bank.executor()
        .execute::<Wallet>(WalletCommand::RequestTransfer {
            wallet: wallet(0),
            transfer: "late".into(),
            to: wallet(1),
            cents: 500,
            needs_approval: true,
        })
        .await?;
    // Until the withdrawal is decided on: the money is out, the timeout pending.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bank.instance("late").await?.instance.decided() < 2 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the runner did not decide on the request and the withdrawal within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runner.kill()?;
    tokio::time::sleep(STUCK_AFTER + Duration::from_secs(1)).await;
    let stored = bank.instance("late").await?;
    ensure!(
        *stored.instance.status() == ProcessStatus::Running,
        "something fired the timeout with every runner down: {}",
        stored.instance.status()
    );
    let due = bank
        .schema
        .store()
        .pending(Transfer::NAME, &stored.stream)
        .await?;
    ensure!(due.len() == 1, "{} timers pending, not 1", due.len());

    let mut runner = bank.runner("b")?;
    let finished = bank
        .wait_finished(&["late".into()], Duration::from_secs(30))
        .await;
    runner.kill()?;
    finished?;
    let stored = bank.instance("late").await?;
    ensure!(
        *stored.instance.status()
            == ProcessStatus::Failed {
                reason: "no progress in time".into()
            },
        "{}",
        stored.instance.status()
    );
    let moved = effects(&wallet_events(&bank).await?);
    let late = &moved.transfers["late"];
    ensure!(
        check_effects(false, 500, late).is_none() && late.withdrawals == 1,
        "{late:?}"
    );
    ensure!(
        moved.balances[&wallet(0)] == START_CENTS,
        "{:?}",
        moved.balances
    );
    Ok(())
}
