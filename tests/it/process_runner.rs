//! The process manager runner with real aggregates: a transfer between two accounts as a
//! process (withdraw, deposit, complete; a refused deposit refunded; no progress in time
//! compensated), its events handled again from the start as after a crash (nothing happens
//! twice), on the in-memory store and on PostgreSQL.

use std::time::{Duration, SystemTime};

use foldline::{
    Action, Checkpoint, CommandDispatcher, CommandExecutor, CommandOptions, Dispatched, Envelope,
    EventStore, InMemoryEventStore, InMemoryTimerStore, Input, ProcessManager, ProcessRunner,
    ProcessStatus, StoredInstance, TimerStore, Version,
};
use foldline_tests::bank::{Account, AccountCommand, Bank, BankEvent, balance, open_accounts};
use foldline_tests::pg::test_schema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stuck;

/// request → withdraw from the source → deposit into the target → completed; a refused step
/// or no progress in a minute → refund what was withdrawn → failed.
#[derive(Debug, Default)]
struct Transfer {
    from: String,
    to: String,
    cents: u64,
    withdrawn: bool,
}

impl Transfer {
    fn fail(&self, transfer: &str, reason: String) -> Vec<Action<Self>> {
        let mut actions = vec![Action::Fail { reason }];
        if self.withdrawn {
            actions.insert(
                0,
                Action::Send(AccountCommand::Deposit {
                    account: self.from.clone(),
                    cents: self.cents,
                    transfer: Some(format!("{transfer}-refund")),
                }),
            );
        }
        actions
    }
}

impl ProcessManager for Transfer {
    const NAME: &'static str = "transfer";
    type Id = String;
    type Event = BankEvent;
    type Command = AccountCommand;
    type Timeout = Stuck;

    fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
        event.event.step_of_transfer()
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(BankEvent::TransferRequested {
                transfer,
                from,
                cents,
                ..
            }) => vec![
                Action::Send(AccountCommand::Withdraw {
                    account: from.clone(),
                    cents: *cents,
                    transfer: Some(transfer.clone()),
                }),
                Action::Schedule {
                    timeout: Stuck,
                    after: Duration::from_secs(60),
                },
            ],
            Input::Event(BankEvent::Withdrawn {
                transfer: Some(transfer),
                cents,
                ..
            }) => {
                vec![Action::Send(AccountCommand::Deposit {
                    account: self.to.clone(),
                    cents: *cents,
                    transfer: Some(transfer.clone()),
                })]
            }
            Input::Event(BankEvent::Deposited { .. }) => {
                vec![Action::Cancel(Stuck), Action::Complete]
            }
            Input::Refused { error, command } => {
                let transfer = transfer_of(command);
                self.fail(&transfer, format!("refused: {error}"))
            }
            Input::Timeout(Stuck) => self.fail("stuck", "no progress in time".into()),
            Input::Event(_) => Vec::new(),
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        match input {
            Input::Event(BankEvent::TransferRequested {
                from, to, cents, ..
            }) => {
                (self.from, self.to, self.cents) = (from.clone(), to.clone(), *cents);
            }
            Input::Event(BankEvent::Withdrawn { .. }) => self.withdrawn = true,
            _ => {}
        }
    }
}

fn transfer_of(command: &AccountCommand) -> String {
    match command {
        AccountCommand::Withdraw {
            transfer: Some(t), ..
        }
        | AccountCommand::Deposit {
            transfer: Some(t), ..
        } => t.clone(),
        _ => String::new(),
    }
}

/// Every stream the transfer tests write: the accounts and the transfers' instances.
const TRANSFER_STREAMS: [&str; 6] = [
    "account-a",
    "account-b",
    "account-c",
    "transfer-t1",
    "transfer-t2",
    "transfer-t3",
];

/// The checkpoint just past every event committed to [`TRANSFER_STREAMS`], read from the
/// streams themselves: a stream read sees a commit at once, while the feed (on PostgreSQL) holds
/// it back behind transactions still open, other tests' included, for as long as they stay open.
async fn written<S: EventStore>(store: &S) -> anyhow::Result<Checkpoint> {
    let mut written = Checkpoint::START;
    for stream in TRANSFER_STREAMS {
        let stream = foldline::StreamId::new(stream)?;
        for event in store.read_stream(&stream, Version::new(1), 1000).await? {
            written.advance(event.position);
        }
    }
    Ok(written)
}

/// Hands every event of the feed after `from` to the runner until the feed has delivered
/// everything written (the runner's own commands included).
async fn run_feed<S, T>(
    store: &S,
    runner: &ProcessRunner<Transfer, S, Bank<S>, T>,
    mut from: Checkpoint,
) -> anyhow::Result<()>
where
    S: EventStore + Clone,
    T: TimerStore,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let batch = store.read_all(&from, 100).await?;
        if batch.events.is_empty() {
            // Handling is synchronous (its commands are appended before it returns), so once
            // the feed is past everything written, nothing more is coming.
            let written = written(store).await?;
            if from.covers_checkpoint(&written) {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the feed stayed at {from:?} for 60 s while the streams reached {written:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for event in &batch.events {
            runner.handle_event(event).await?;
        }
        from = batch.checkpoint;
    }
}

/// The event of `transfer` with a type ending in `event_type` in `stream`, read from the stream
/// (the feed may hold it back a while).
async fn event_of<S: EventStore>(
    store: &S,
    stream: &str,
    event_type: &str,
    transfer: &str,
) -> anyhow::Result<foldline::RecordedEvent> {
    let quoted = format!("\"{transfer}\"");
    let events = store
        .read_stream(&foldline::StreamId::new(stream)?, Version::new(1), 1000)
        .await?;
    events
        .into_iter()
        .find(|e| {
            e.event_type.as_str().ends_with(event_type)
                && String::from_utf8_lossy(&e.payload).contains(&quoted)
        })
        .ok_or_else(|| anyhow::anyhow!("no {event_type} of {transfer} in {stream}"))
}

/// t1's events form one causal chain in one correlation: the request → the transfer's first
/// decision → the withdrawal → the second decision → the deposit.
async fn causal_chain_of_t1<S: EventStore>(store: &S) -> anyhow::Result<()> {
    let read = |stream: &'static str| async move {
        let id = foldline::StreamId::new(stream)?;
        anyhow::Ok(store.read_stream(&id, Version::new(1), 100).await?)
    };
    let of_t1 = |event: &&foldline::RecordedEvent| {
        String::from_utf8_lossy(&event.payload).contains("\"t1\"")
    };
    let account_a = read("account-a").await?;
    let request = account_a
        .iter()
        .find(|e| e.event_type.as_str().ends_with("TransferRequested") && of_t1(e))
        .expect("t1's request");
    let withdrawal = account_a
        .iter()
        .find(|e| e.event_type.as_str().ends_with("Withdrawn") && of_t1(e))
        .expect("t1's withdrawal");
    let deposit = read("account-b").await?;
    let deposit = deposit
        .iter()
        .find(|e| e.event_type.as_str().ends_with("Deposited") && of_t1(e))
        .expect("t1's deposit");
    let decisions = read("transfer-t1").await?;
    let correlation = Some(request.metadata.correlation_id.unwrap_or(request.event_id));
    assert_eq!(decisions[0].metadata.causation_id, Some(request.event_id));
    assert_eq!(
        withdrawal.metadata.causation_id,
        Some(decisions[0].event_id)
    );
    assert_eq!(
        decisions[1].metadata.causation_id,
        Some(withdrawal.event_id)
    );
    assert_eq!(deposit.metadata.causation_id, Some(decisions[1].event_id));
    for event in [
        &decisions[0],
        withdrawal,
        &decisions[1],
        deposit,
        &decisions[2],
    ] {
        assert_eq!(event.metadata.correlation_id, correlation, "{event:?}");
    }
    Ok(())
}

async fn status<S: EventStore>(store: &S, transfer: &str) -> ProcessStatus {
    StoredInstance::<Transfer>::load(store, &foldline::JsonCodec, &transfer.to_owned())
        .await
        .expect("loading the transfer")
        .instance
        .status()
        .clone()
}

async fn transfers_complete_refund_and_time_out<S: EventStore + Clone>(
    store: S,
) -> anyhow::Result<()> {
    let executor = CommandExecutor::new(store.clone());
    let timers = InMemoryTimerStore::new();
    let runner = ProcessRunner::<Transfer, _, _, _>::new(
        store.clone(),
        Bank {
            executor: executor.clone(),
        },
        timers.clone(),
    );
    open_accounts(&executor).await?;

    // t1 completes: a → b.
    executor
        .execute::<Account>(AccountCommand::RequestTransfer {
            account: "a".into(),
            transfer: "t1".into(),
            to: "b".into(),
            cents: 30,
        })
        .await?;
    // t2's deposit is refused (c is closed): the withdrawal is refunded.
    executor
        .execute::<Account>(AccountCommand::RequestTransfer {
            account: "a".into(),
            transfer: "t2".into(),
            to: "c".into(),
            cents: 20,
        })
        .await?;
    run_feed(&store, &runner, Checkpoint::START).await?;
    assert_eq!(status(&store, "t1").await, ProcessStatus::Completed);
    assert_eq!(
        status(&store, "t2").await,
        ProcessStatus::Failed {
            reason: "refused: account is closed".into()
        }
    );
    assert_eq!(balance(&executor, "a").await, 70);
    assert_eq!(balance(&executor, "b").await, 30);
    assert_eq!(balance(&executor, "c").await, 0);
    assert!(
        timers.next_due(Transfer::NAME).await?.is_none(),
        "finished transfers keep no timer"
    );
    causal_chain_of_t1(&store).await?;

    // Every event handled again from the start, as after a crash: nothing happens twice.
    // c opens again first: t2's refused deposit would pass now, but t2 decided on its
    // refusal already (and refunded a), so it is not sent again.
    executor
        .execute::<Account>(AccountCommand::Open {
            account: "c".into(),
        })
        .await?;
    let written_before = written(&store).await?;
    run_feed(&store, &runner, Checkpoint::START).await?;
    assert_eq!(
        written(&store).await?,
        written_before,
        "a redelivered input appended something"
    );
    assert_eq!(balance(&executor, "a").await, 70);
    assert_eq!(balance(&executor, "b").await, 30);
    assert_eq!(
        balance(&executor, "c").await,
        0,
        "a refused deposit was sent again"
    );

    // t3: only the request is handed to the runner, not the withdrawal it leads to (as if the
    // feed stalled), so the timeout fires and the transfer fails; the withdrawal, handed over
    // late, reaches a finished instance and is ignored. (Refunding money withdrawn after the
    // instance gave up is the process manager's own design: this one does not.)
    executor
        .execute::<Account>(AccountCommand::RequestTransfer {
            account: "a".into(),
            transfer: "t3".into(),
            to: "b".into(),
            cents: 10,
        })
        .await?;
    let request = event_of(&store, "account-a", "TransferRequested", "t3").await?;
    runner.handle_event(&request).await?;
    assert_eq!(status(&store, "t3").await, ProcessStatus::Running);
    let early = runner
        .fire_due(SystemTime::now(), 10, Duration::from_secs(30))
        .await?;
    assert_eq!(early, 0, "nothing is due before the minute");
    let fired = runner
        .fire_due(
            SystemTime::now() + Duration::from_secs(61),
            10,
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(fired, 1);
    assert_eq!(
        status(&store, "t3").await,
        ProcessStatus::Failed {
            reason: "no progress in time".into()
        }
    );
    // The timer fired once: firing again finds nothing.
    let again = runner
        .fire_due(
            SystemTime::now() + Duration::from_secs(3600),
            10,
            Duration::from_secs(30),
        )
        .await?;
    assert_eq!(again, 0);
    // The late withdrawal reaches a finished instance: ignored.
    let withdrawal = event_of(&store, "account-a", "Withdrawn", "t3").await?;
    let handled = runner.handle_event(&withdrawal).await?;
    assert_eq!(handled.ignored, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runner_in_memory() -> anyhow::Result<()> {
    transfers_complete_refund_and_time_out(InMemoryEventStore::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runner_on_postgres() -> anyhow::Result<()> {
    let schema = test_schema().await;
    transfers_complete_refund_and_time_out(schema.store().clone()).await
}

/// The transfers run on the projector runtime: a `ProcessProjection` read by a `Projector`
/// into a `ProcessTarget` (checkpoints in memory). A second projector with a fresh checkpoint
/// hands the whole feed over again, as after losing the checkpoint: nothing happens twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_manager_on_the_projector_runtime() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let executor = CommandExecutor::new(store.clone());
    let runner = std::sync::Arc::new(ProcessRunner::<Transfer, _, _, _>::new(
        store.clone(),
        Bank {
            executor: executor.clone(),
        },
        InMemoryTimerStore::new(),
    ));
    open_accounts(&executor).await?;
    request_t1_and_t2(&executor).await?;

    let first = foldline::Projector::new(
        store.clone(),
        foldline::ProcessProjection::<Transfer>::new(),
        foldline::ProcessTarget::new(runner.clone(), checkpoints()),
    );
    catch_up_all(&store, &first).await?;
    assert_eq!(status(&store, "t1").await, ProcessStatus::Completed);
    assert!(matches!(
        status(&store, "t2").await,
        ProcessStatus::Failed { .. }
    ));
    assert_eq!(balance(&executor, "a").await, 75);
    assert_eq!(balance(&executor, "b").await, 25);

    let head = store.head().await?;
    let again = foldline::Projector::new(
        store.clone(),
        foldline::ProcessProjection::<Transfer>::new(),
        foldline::ProcessTarget::new(runner, checkpoints()),
    );
    let applied = catch_up_all(&store, &again).await?;
    assert!(applied > 0, "the second projector read the feed again");
    assert_eq!(
        store.head().await?,
        head,
        "handing the feed over again appended something"
    );
    assert_eq!(balance(&executor, "a").await, 75);
    assert_eq!(balance(&executor, "b").await, 25);
    Ok(())
}

/// Where the runner's checkpoints live in these tests: an in-memory target with no model of its
/// own to speak of.
fn checkpoints() -> foldline::InMemoryTarget<foldline::testing::KeyValueModel> {
    foldline::InMemoryTarget::new()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping;

/// Opening an account named `remind-…` starts a reminder: 150 ms later it deposits a cent
/// there and completes.
#[derive(Debug, Default)]
struct Reminder {
    account: String,
}

impl ProcessManager for Reminder {
    const NAME: &'static str = "reminder";
    type Id = String;
    type Event = BankEvent;
    type Command = AccountCommand;
    type Timeout = Ping;

    fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
        match &event.event {
            BankEvent::Opened { account } if account.starts_with("remind-") => {
                Some(account.clone())
            }
            _ => None,
        }
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(_) => vec![Action::Schedule {
                timeout: Ping,
                after: Duration::from_millis(150),
            }],
            Input::Timeout(Ping) => vec![
                Action::Send(AccountCommand::Deposit {
                    account: self.account.clone(),
                    cents: 1,
                    transfer: None,
                }),
                Action::Complete,
            ],
            Input::Refused { .. } => vec![Action::Fail {
                reason: "refused".into(),
            }],
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        if let Input::Event(BankEvent::Opened { account }) = input {
            self.account = account.clone();
        }
    }
}

/// Two runners' timer loops on one PostgreSQL timer table: the reminder's timer fires on its
/// own, once (one cent, not two), and the instance completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_loops_fire_a_due_timer_once() -> anyhow::Result<()> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    let executor = CommandExecutor::new(store.clone());
    let runners: Vec<_> = (0..2)
        .map(|_| {
            std::sync::Arc::new(ProcessRunner::<Reminder, _, _, _>::new(
                store.clone(),
                Bank {
                    executor: executor.clone(),
                },
                store.clone(),
            ))
        })
        .collect();
    let loops: Vec<_> = runners
        .iter()
        .map(|runner| {
            let runner = runner.clone();
            tokio::spawn(async move {
                runner
                    .run_timers(Duration::from_millis(50), Duration::from_secs(5))
                    .await
            })
        })
        .collect();

    executor
        .execute::<Account>(AccountCommand::Open {
            account: "remind-1".into(),
        })
        .await?;
    let opened = store
        .read_stream(
            &foldline::StreamId::new("account-remind-1")?,
            Version::new(1),
            1,
        )
        .await?;
    runners[0].handle_event(&opened[0]).await?;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while balance(&executor, "remind-1").await == 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the reminder's timer did not fire within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for a second firing, if the loops could fire one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for task in loops {
        task.abort();
    }
    assert_eq!(
        balance(&executor, "remind-1").await,
        1,
        "the timer fired twice"
    );
    let reminder =
        StoredInstance::<Reminder>::load(&store, &foldline::JsonCodec, &"remind-1".to_owned())
            .await?;
    assert_eq!(*reminder.instance.status(), ProcessStatus::Completed);
    assert!(
        store
            .pending(Reminder::NAME, &reminder.stream)
            .await?
            .is_empty()
    );
    Ok(())
}

/// Sends through [`Bank`], except deposits into `b` while `broken`: those fail with an error
/// retrying will not cure (a bug, a ledger gone for good), not a refusal.
struct BrokenForB<S: EventStore + Clone> {
    bank: Bank<S>,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S: EventStore + Clone> CommandDispatcher<AccountCommand> for BrokenForB<S> {
    async fn dispatch(
        &self,
        command: &AccountCommand,
        options: CommandOptions,
    ) -> foldline::Result<Dispatched> {
        let to_b = matches!(command, AccountCommand::Deposit { account, .. } if account == "b");
        if to_b && self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(foldline::BackendError::new(
                "bank",
                foldline::BackendErrorKind::Rejected,
                "the ledger of b is gone",
                None,
            )
            .into());
        }
        self.bank.dispatch(command, options).await
    }
}

/// An input that cannot be carried out (not a refusal, not transient) stops the runner before
/// it under the default policy, and once fixed the transfer goes on; under
/// `PoisonPolicy::DeadLetter` it is parked, the other transfers go on, and a retry of the dead
/// letter once fixed completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_cannot_be_carried_out_stops_the_runner_or_is_parked() -> anyhow::Result<()> {
    for policy in [
        foldline::PoisonPolicy::Stop,
        foldline::PoisonPolicy::DeadLetter,
    ] {
        let store = InMemoryEventStore::new();
        let executor = CommandExecutor::new(store.clone());
        let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let dispatcher = BrokenForB {
            bank: Bank {
                executor: executor.clone(),
            },
            broken: broken.clone(),
        };
        let runner = std::sync::Arc::new(ProcessRunner::<Transfer, _, _, _>::new(
            store.clone(),
            dispatcher,
            InMemoryTimerStore::new(),
        ));
        open_accounts(&executor).await?;
        request_t1_and_t2(&executor).await?;
        let projector = foldline::Projector::new(
            store.clone(),
            foldline::ProcessProjection::<Transfer>::new(),
            foldline::ProcessTarget::new(runner, checkpoints()).with_poison_policy(policy),
        );

        match policy {
            foldline::PoisonPolicy::Stop => {
                let stopped = catch_up_all(&store, &projector)
                    .await
                    .expect_err("the broken deposit stops it");
                assert!(
                    foldline::error_chain(&stopped, ": ").contains("the ledger of b is gone"),
                    "{stopped}"
                );
                assert_eq!(status(&store, "t1").await, ProcessStatus::Running);
                broken.store(false, std::sync::atomic::Ordering::SeqCst);
                catch_up_all(&store, &projector).await?;
            }
            _ => {
                catch_up_all(&store, &projector).await?;
                assert_eq!(status(&store, "t1").await, ProcessStatus::Running);
                assert!(
                    matches!(status(&store, "t2").await, ProcessStatus::Failed { .. }),
                    "the other transfer went on"
                );
                let letters = projector.dead_letters().await?;
                assert_eq!(letters.len(), 1, "{letters:?}");
                assert!(letters[0].error.contains("the ledger of b is gone"));
                assert!(letters[0].event_type.as_str().ends_with("Withdrawn"));
                broken.store(false, std::sync::atomic::Ordering::SeqCst);
                assert!(projector.retry_dead_letter(letters[0].event_id).await?);
                catch_up_all(&store, &projector).await?;
                assert!(projector.dead_letters().await?.is_empty());
            }
        }
        assert_eq!(
            status(&store, "t1").await,
            ProcessStatus::Completed,
            "{policy:?}"
        );
        assert_eq!(balance(&executor, "b").await, 25, "{policy:?}");
        assert_eq!(balance(&executor, "a").await, 75, "{policy:?}");
    }
    Ok(())
}

/// `a` requests t1 (25 cents to `b`, which completes) and t2 (25 cents to `c`, closed: refused
/// and refunded).
async fn request_t1_and_t2<S: EventStore + Clone>(
    executor: &CommandExecutor<S>,
) -> anyhow::Result<()> {
    for (transfer, to) in [("t1", "b"), ("t2", "c")] {
        executor
            .execute::<Account>(AccountCommand::RequestTransfer {
                account: "a".into(),
                transfer: transfer.into(),
                to: to.into(),
                cents: 25,
            })
            .await?;
    }
    Ok(())
}

/// Catches `projector` up until the head stops moving (the runner's commands append events of
/// their own); how many events it applied.
async fn catch_up_all<S, P, T>(
    store: &S,
    projector: &foldline::Projector<S, P, T>,
) -> foldline::Result<u64>
where
    S: EventStore,
    P: foldline::Projection,
    T: foldline::ProjectionTarget<Writes = P::Writes>,
{
    let mut applied = 0;
    loop {
        let head = store.head().await?;
        applied += projector.catch_up().await?.applied;
        if store.head().await? == head {
            return Ok(applied);
        }
    }
}
