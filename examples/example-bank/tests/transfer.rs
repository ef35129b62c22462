//! The `transfer` process manager: its decisions as given/when/then tests (no store), then
//! with real accounts through a `ProcessRunner` on the in-memory store, where a timeout races a
//! withdrawal in flight and the feed is handed over again: the money always ends where it
//! started or where it was sent, never in both places.

use std::time::{Duration, SystemTime};

use example_bank::domain::{
    Account, AccountCommand, AccountEvent, AccountId, TransferRef, dollars,
};
use example_bank::transfer::{
    APPROVAL_WINDOW, AccountDispatcher, Phase, Transfer, TransferHistory, TransferTimeout, Undo,
    WITHDRAWAL_WINDOW,
};
use foldline::testing::ProcessTest;
use foldline::{
    Action, Checkpoint, CommandExecutor, EventStore, InMemoryEventStore, InMemoryTimerStore, Input,
    ProcessManager, ProcessRunner, ProcessStatus, TimerStore,
};

type Test = ProcessTest<Transfer>;

fn rent() -> TransferRef {
    TransferRef::new("T-1", "rent")
}

fn alice() -> AccountId {
    AccountId::new("alice")
}

fn bob() -> AccountId {
    AccountId::new("bob")
}

fn requested(cents: u64) -> Input<Transfer> {
    Input::Event(AccountEvent::TransferRequested {
        transfer: rent(),
        from: alice(),
        to: bob(),
        cents,
        needs_approval: cents > Account::APPROVAL_LIMIT,
    })
}

fn withdrawn() -> Input<Transfer> {
    Input::Event(AccountEvent::Withdrawn {
        cents: dollars(30),
        transfer: Some(rent()),
    })
}

fn deposit() -> AccountCommand {
    AccountCommand::Deposit {
        account: bob(),
        cents: dollars(30),
        transfer: Some(rent()),
    }
}

fn undo() -> Action<Transfer> {
    Action::Send(AccountCommand::CancelTransfer {
        account: alice(),
        transfer: rent(),
    })
}

#[test]
fn request_withdraw_deposit_complete() {
    Test::given_nothing()
        .when(requested(dollars(30)))
        .then_expect([
            Action::Send(AccountCommand::Withdraw {
                account: alice(),
                cents: dollars(30),
                transfer: Some(rent()),
            }),
            Action::Schedule {
                timeout: TransferTimeout::Withdrawal,
                after: WITHDRAWAL_WINDOW,
            },
        ]);
    // The decision that sends the deposit cancels the timeout.
    let depositing = Test::given([requested(dollars(30))])
        .when(withdrawn())
        .then_expect([
            Action::Cancel(TransferTimeout::Withdrawal),
            Action::Send(deposit()),
        ]);
    assert!(depositing.pending_timeouts().is_empty());
    let done = Test::given([requested(dollars(30)), withdrawn()])
        .when(Input::Event(AccountEvent::Deposited {
            cents: dollars(30),
            transfer: Some(rent()),
        }))
        .then_expect([Action::Complete]);
    assert_eq!(*done.status(), ProcessStatus::Completed);
}

#[test]
fn a_refused_deposit_is_undone_at_the_source_and_fails_once_refunded() {
    let refused = Input::Refused {
        command: deposit(),
        error: "the account is closed".into(),
    };
    Test::given([requested(dollars(30)), withdrawn()])
        .when(refused.clone())
        .then_expect([undo()]);
    let failed = Test::given([requested(dollars(30)), withdrawn(), refused])
        .when(Input::Event(AccountEvent::TransferRefunded {
            cents: dollars(30),
            transfer: rent(),
        }))
        .then_expect([Action::Fail {
            reason: "the deposit was refused (the account is closed); $30.00 refunded to alice"
                .into(),
        }]);
    assert_eq!(
        *failed.state().phase(),
        Phase::Failed(Undo::DepositRefused("the account is closed".into()))
    );
    assert_eq!(
        failed.state().deposit_refusal(),
        Some("the account is closed")
    );
}

#[test]
fn no_approval_in_time_undoes_the_transfer_and_a_late_approval_moves_nothing() {
    let big = dollars(600);
    Test::given_nothing()
        .when(requested(big))
        .then_expect([Action::Schedule {
            timeout: TransferTimeout::Approval,
            after: APPROVAL_WINDOW,
        }]);
    Test::given([requested(big)])
        .when(Input::Timeout(TransferTimeout::Approval))
        .then_expect([undo()]);
    let approved = Input::Event(AccountEvent::TransferApproved {
        transfer: "T-1".into(),
    });
    Test::given([requested(big), Input::Timeout(TransferTimeout::Approval)])
        .when(approved.clone())
        .then_expect([]);
    Test::given([
        requested(big),
        Input::Timeout(TransferTimeout::Approval),
        approved,
    ])
    .when(Input::Event(AccountEvent::TransferCancelled {
        transfer: rent(),
    }))
    .then_expect([Action::Fail {
        reason: "no approval within 1s; nothing was withdrawn".into(),
    }]);
}

#[test]
fn an_approval_in_time_starts_the_withdrawal() {
    let big = dollars(600);
    let actions = Test::given([requested(big)])
        .when(Input::Event(AccountEvent::TransferApproved {
            transfer: "T-1".into(),
        }))
        .then_expect([
            Action::Cancel(TransferTimeout::Approval),
            Action::Send(AccountCommand::Withdraw {
                account: alice(),
                cents: big,
                transfer: Some(rent()),
            }),
            Action::Schedule {
                timeout: TransferTimeout::Withdrawal,
                after: WITHDRAWAL_WINDOW,
            },
        ]);
    assert_eq!(actions.pending_timeouts(), [TransferTimeout::Withdrawal]);
}

#[test]
fn a_timeout_after_the_deposit_was_sent_never_undoes_it() {
    Test::given([requested(dollars(30)), withdrawn()])
        .when(Input::Timeout(TransferTimeout::Withdrawal))
        .then_ignored();
}

#[test]
fn a_withdrawal_seen_while_undoing_is_undone_again() {
    // The timeout fired with the withdrawal in flight: the source refunds it (once), however
    // often it is asked.
    Test::given([
        requested(dollars(30)),
        Input::Timeout(TransferTimeout::Withdrawal),
    ])
    .when(withdrawn())
    .then_expect([undo()]);
    // A refused withdrawal is undone too: it may be sent again after a crash and pass.
    Test::given([requested(dollars(30))])
        .when(Input::Refused {
            command: AccountCommand::Withdraw {
                account: alice(),
                cents: dollars(30),
                transfer: Some(rent()),
            },
            error: "insufficient funds".into(),
        })
        .then_expect([Action::Cancel(TransferTimeout::Withdrawal), undo()]);
}

/// The accounts, the runner that moves money between them, and its timers.
struct Bank {
    store: InMemoryEventStore,
    accounts: CommandExecutor<InMemoryEventStore>,
    timers: InMemoryTimerStore,
    runner: ProcessRunner<
        Transfer,
        InMemoryEventStore,
        AccountDispatcher<InMemoryEventStore>,
        InMemoryTimerStore,
    >,
}

impl Bank {
    /// alice with $100.00, bob with nothing.
    async fn new() -> anyhow::Result<Self> {
        let store = InMemoryEventStore::new();
        let accounts = CommandExecutor::new(store.clone());
        let timers = InMemoryTimerStore::new();
        let runner = ProcessRunner::new(
            store.clone(),
            AccountDispatcher::new(accounts.clone()),
            timers.clone(),
        );
        let bank = Bank {
            store,
            accounts,
            timers,
            runner,
        };
        bank.execute(AccountCommand::open(&alice(), "Alice"))
            .await?;
        bank.execute(AccountCommand::deposit(&alice(), dollars(100)))
            .await?;
        bank.execute(AccountCommand::open(&bob(), "Bob")).await?;
        Ok(bank)
    }

    async fn execute(&self, command: AccountCommand) -> anyhow::Result<()> {
        self.accounts.execute::<Account>(command).await?;
        Ok(())
    }

    async fn balance(&self, account: &AccountId) -> anyhow::Result<u64> {
        Ok(self
            .accounts
            .load::<Account>(account)
            .await?
            .state
            .balance())
    }

    /// Hands the runner every event of the feed after `from` until no new one comes; the
    /// checkpoint reached.
    async fn run_feed(&self, mut from: Checkpoint) -> anyhow::Result<Checkpoint> {
        loop {
            let batch = self.store.read_all(&from, 100).await?;
            if batch.events.is_empty() {
                return Ok(from);
            }
            for event in &batch.events {
                self.runner.handle_event(event).await?;
            }
            from = batch.checkpoint;
        }
    }

    async fn transfer(&self, id: &str) -> anyhow::Result<TransferHistory> {
        Ok(TransferHistory::load(&self.store, id).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_racing_a_withdrawal_in_flight_refunds_it_and_deposits_nothing()
-> anyhow::Result<()> {
    let bank = Bank::new().await?;
    let start = bank.store.head().await?;
    bank.execute(AccountCommand::request_transfer(
        &alice(),
        rent(),
        &bob(),
        dollars(30),
    ))
    .await?;
    // Only the request reaches the process: it withdraws, but the withdrawal is not handed
    // over (as if the feed stalled), so the timeout fires first.
    let feed = bank.store.read_all(&start, 100).await?;
    let request = feed
        .events
        .iter()
        .find(|e| e.event_type.as_str() == "TransferRequested")
        .expect("the request on the feed");
    bank.runner.handle_event(request).await?;
    assert_eq!(bank.balance(&alice()).await?, dollars(70), "withdrawn");
    let late = SystemTime::now() + WITHDRAWAL_WINDOW + Duration::from_secs(1);
    let fired = bank
        .runner
        .fire_due(late, 10, Duration::from_secs(30))
        .await?;
    assert_eq!(fired, 1);
    // The source decided: the money was withdrawn, so it is refunded.
    assert_eq!(bank.balance(&alice()).await?, dollars(100), "refunded");

    // The rest of the feed arrives: the withdrawal (undone again: nothing more happens) and
    // the refund (the transfer fails).
    bank.run_feed(start).await?;
    let transfer = bank.transfer("T-1").await?;
    assert_eq!(
        transfer.status,
        ProcessStatus::Failed {
            reason: "no withdrawal within 30s; $30.00 refunded to alice".into()
        },
        "{transfer}"
    );
    assert_eq!(bank.balance(&alice()).await?, dollars(100));
    assert_eq!(bank.balance(&bob()).await?, 0, "no deposit");
    assert!(
        bank.timers.next_due(Transfer::NAME).await?.is_none(),
        "a finished transfer keeps no timer"
    );

    // Everything handed over again, as after a crash: nothing is appended.
    let head = bank.store.head().await?;
    bank.run_feed(Checkpoint::START).await?;
    assert_eq!(bank.store.head().await?, head);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_refused_and_refunded_is_never_sent_again() -> anyhow::Result<()> {
    let bank = Bank::new().await?;
    // erin has no account yet: the deposit is refused, alice refunded.
    let erin = AccountId::new("erin");
    bank.execute(AccountCommand::request_transfer(
        &alice(),
        rent(),
        &erin,
        dollars(30),
    ))
    .await?;
    bank.run_feed(Checkpoint::START).await?;
    let transfer = bank.transfer("T-1").await?;
    assert_eq!(
        transfer.status,
        ProcessStatus::Failed {
            reason: "the deposit was refused (the account is not open); $30.00 refunded to \
                     alice"
                .into()
        },
        "{transfer}"
    );
    assert_eq!(bank.balance(&alice()).await?, dollars(100));

    // erin opens her account; then the feed is handed over again (a lost checkpoint, a
    // rebuild). The deposit's decision is carried out again, but its refusal is on record:
    // the deposit is not sent again, and erin gets nothing alice was refunded.
    bank.execute(AccountCommand::open(&erin, "Erin")).await?;
    let head = bank.store.head().await?;
    bank.run_feed(Checkpoint::START).await?;
    assert_eq!(bank.store.head().await?, head, "nothing appended");
    assert_eq!(bank.balance(&erin).await?, 0);
    assert_eq!(bank.balance(&alice()).await?, dollars(100));
    Ok(())
}
