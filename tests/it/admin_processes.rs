//! `processes list|show|retry`, `trace` and the process managers' part of `status`, run
//! in-process on a transfer between accounts (a process manager over a real aggregate), on a
//! fresh PostgreSQL schema per test (`scripts/postgres.sh start` brings the server up) and on
//! the in-memory store, reading the JSON lines back.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldline::{
    Action, CommandDispatcher, CommandExecutor, CommandOptions, Dispatched, Envelope, EventStore,
    InMemoryEventStore, InMemoryTarget, InMemoryTimerStore, Input, ManagedStore, ProcessManager,
    ProcessProjection, ProcessRunner, ProcessTarget, Projector, RecordedEvent, StreamId,
    TimerStore, testing::KeyValueModel,
};
use foldline_admin::{Admin, AdminError, Outcome};
use foldline_postgres::PgTestSchema;
use foldline_tests::bank::{Account, AccountCommand, Bank, BankEvent, balance, open_accounts};
use foldline_tests::cli::{Ran, run};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

// ---- the domain: a transfer between two accounts (`foldline_tests::bank`) ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TransferTimeout {
    Stuck,
}

/// request → withdraw (a minute to get that far) → deposit → completed; a refused step →
/// refund what was withdrawn → failed.
#[derive(Debug, Default)]
struct Transfer {
    id: String,
    from: String,
    to: String,
    cents: u64,
    withdrawn: bool,
}

impl ProcessManager for Transfer {
    const NAME: &'static str = "transfer";
    type Id = String;
    type Event = BankEvent;
    type Command = AccountCommand;
    type Timeout = TransferTimeout;

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
                    timeout: TransferTimeout::Stuck,
                    after: Duration::from_secs(60),
                },
            ],
            Input::Event(BankEvent::Withdrawn {
                transfer: Some(transfer),
                cents,
                ..
            }) => vec![
                Action::Cancel(TransferTimeout::Stuck),
                Action::Send(AccountCommand::Deposit {
                    account: self.to.clone(),
                    cents: *cents,
                    transfer: Some(transfer.clone()),
                }),
            ],
            Input::Event(BankEvent::Deposited { .. }) => vec![Action::Complete],
            Input::Event(_) => Vec::new(),
            Input::Refused { .. } | Input::Timeout(_) => {
                let reason = match input {
                    Input::Refused { error, .. } => format!("refused: {error}"),
                    _ => "stuck".to_owned(),
                };
                let mut actions = vec![Action::Fail { reason }];
                if self.withdrawn {
                    let refund = AccountCommand::Deposit {
                        account: self.from.clone(),
                        cents: self.cents,
                        transfer: Some(format!("{}-refund", self.id)),
                    };
                    actions.insert(0, Action::Send(refund));
                }
                actions
            }
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        match input {
            Input::Event(BankEvent::TransferRequested {
                transfer,
                from,
                to,
                cents,
            }) => {
                (self.id, self.from, self.to, self.cents) =
                    (transfer.clone(), from.clone(), to.clone(), *cents);
            }
            Input::Event(BankEvent::Withdrawn { .. }) => self.withdrawn = true,
            _ => {}
        }
    }
}

/// The bank, except that deposits into the accounts in `failing` fail as an unreachable store
/// would.
struct FailingDeposits<S: EventStore + Clone> {
    bank: Bank<S>,
    failing: Arc<Mutex<HashSet<String>>>,
}

impl<S: EventStore + Clone> CommandDispatcher<AccountCommand> for FailingDeposits<S> {
    async fn dispatch(
        &self,
        command: &AccountCommand,
        options: CommandOptions,
    ) -> foldline::Result<Dispatched> {
        if let AccountCommand::Deposit { account, .. } = command
            && self
                .failing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(account)
        {
            return Err(foldline::Error::Closed {
                what: "the test's account store",
            });
        }
        self.bank.dispatch(command, options).await
    }
}

type Runner<S, T> = ProcessRunner<Transfer, S, FailingDeposits<S>, T>;

/// A bank on `store`: accounts `a` (100 cents), `b` (empty) and `c` (closed), the transfer's
/// runner, and the admin with the runner and its projector registered.
struct Fixture<S: ManagedStore + Clone, T: TimerStore> {
    store: S,
    executor: CommandExecutor<S>,
    runner: Arc<Runner<S, T>>,
    failing: Arc<Mutex<HashSet<String>>>,
    admin: Admin<S>,
}

impl<S: ManagedStore + Clone, T: TimerStore + Clone> Fixture<S, T> {
    async fn new(store: S, timers: T) -> anyhow::Result<Self> {
        let executor = CommandExecutor::new(store.clone());
        let failing = Arc::new(Mutex::new(HashSet::new()));
        let runner = Arc::new(ProcessRunner::new(
            store.clone(),
            FailingDeposits {
                bank: Bank {
                    executor: executor.clone(),
                },
                failing: failing.clone(),
            },
            timers,
        ));
        let projector = Projector::new(
            store.clone(),
            ProcessProjection::<Transfer>::new(),
            ProcessTarget::new(runner.clone(), InMemoryTarget::<KeyValueModel>::new()),
        );
        let admin = Admin::new(store.clone())
            .with_projection(projector)
            .with_process(runner.clone());
        open_accounts(&executor).await?;
        Ok(Fixture {
            store,
            executor,
            runner,
            failing,
            admin,
        })
    }

    /// Requests transfer `id` from `a` to `to` (in business transaction `correlation`, if
    /// given) and hands the runner the request and then, `steps - 1` times, the newest event
    /// of the account the last command went to: the whole transfer, step by step, without
    /// reading the feed (which another test's open transaction can hold back). The request.
    async fn transfer(
        &self,
        id: &str,
        to: &str,
        correlation: Option<Uuid>,
        steps: usize,
    ) -> anyhow::Result<RecordedEvent> {
        let mut options = CommandOptions::new();
        if let Some(correlation) = correlation {
            options = options.with_correlation_id(correlation);
        }
        let command = AccountCommand::RequestTransfer {
            account: "a".into(),
            transfer: id.into(),
            to: to.into(),
            cents: 10,
        };
        self.executor
            .execute_with::<Account>(command, options)
            .await?;
        let request = self.newest("account-a").await?;
        let mut next = request.clone();
        for step in 0..steps {
            self.runner.handle_event(&next).await?;
            if step + 1 < steps {
                // The withdrawal lands on `a`, the deposit on `to`.
                let account = if step == 0 { "a" } else { to };
                next = self.newest(&format!("account-{account}")).await?;
            }
        }
        Ok(request)
    }

    async fn newest(&self, stream: &str) -> anyhow::Result<RecordedEvent> {
        let events = self
            .store
            .read_stream(&StreamId::new(stream)?, 1.into(), 1000)
            .await?;
        events
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{stream} is empty"))
    }

    async fn balance(&self, account: &str) -> u64 {
        balance(&self.executor, account).await
    }

    /// t1 completes (a → b); t2 fails (c is closed: refunded); t3 waits for its timer (only
    /// its request was handed over); t4 runs (its deposit into b failed, after the decision to
    /// send it was recorded).
    async fn four_transfers(&self, correlation: Uuid) -> anyhow::Result<()> {
        self.transfer("t1", "b", Some(correlation), 3).await?;
        self.transfer("t2", "c", None, 2).await?;
        self.transfer("t3", "b", None, 1).await?;
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert("b".into());
        let failed = self.transfer("t4", "b", None, 2).await;
        anyhow::ensure!(failed.is_err(), "t4's deposit should have failed");
        Ok(())
    }
}

// ---- reading the CLI's output ----

/// What a run's command returned: its outcome, or the admin's own error.
fn returned(ran: anyhow::Result<Ran>) -> Result<Outcome, AdminError> {
    match ran {
        Ok(ran) => Ok(ran.outcome),
        Err(error) => Err(error
            .downcast::<AdminError>()
            .expect("the command's own error, not a parse error")),
    }
}

fn field(records: &[Value], name: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r[name].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---- the tests ----

#[tokio::test]
async fn instances_are_listed_by_state_and_shown_whole() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let bank = Fixture::new(schema.store().clone(), schema.store().clone()).await?;
    bank.four_transfers(Uuid::now_v7()).await?;
    let admin = &bank.admin;

    let out = run(admin, &["--json", "processes", "list"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let all = out.of_type("process_instance");
    assert_eq!(
        field(&all, "instance"),
        ["transfer-t1", "transfer-t2", "transfer-t3", "transfer-t4"]
    );
    assert_eq!(
        field(&all, "state"),
        ["completed", "failed", "waiting", "running"]
    );
    assert_eq!(field(&all, "id"), ["t1", "t2", "t3", "t4"]);
    assert_eq!(all[1]["reason"], "refused: account is closed");
    assert!(all[2]["next_due"].is_string(), "{}", all[2]);
    assert!(all[3]["next_due"].is_null());
    assert_eq!(all[0]["decisions"], 3);

    for (state, expected) in [
        ("failed", "transfer-t2"),
        ("waiting", "transfer-t3"),
        ("running", "transfer-t4"),
        ("completed", "transfer-t1"),
    ] {
        let out = run(admin, &["--json", "processes", "list", "--state", state]).await?;
        assert_eq!(out.outcome, Outcome::Ok);
        assert_eq!(
            field(&out.of_type("process_instance"), "instance"),
            [expected]
        );
    }

    let out = run(admin, &["processes", "list"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(
        out.stdout.clone().lines().count(),
        5,
        "{}",
        out.stdout.clone()
    );

    // Pages.
    let first = run(admin, &["processes", "list", "--limit", "2"]).await?;
    assert_eq!(first.outcome, Outcome::Ok);
    let text = &first.stdout;
    assert!(
        text.starts_with("INSTANCE     STATE      DECISIONS  NEXT TIMER"),
        "{text}"
    );
    assert!(
        text.contains("next page with `processes list --after transfer-t2`"),
        "{text}"
    );
    let rest = run(
        admin,
        &[
            "--json",
            "processes",
            "list",
            "--after",
            "transfer-t2",
            "--process",
            "transfer",
        ],
    )
    .await?;
    assert_eq!(rest.outcome, Outcome::Ok);
    assert_eq!(
        field(&rest.of_type("process_instance"), "instance"),
        ["transfer-t3", "transfer-t4"]
    );

    // t2 whole: the withdrawal applied, the deposit refused, the refund applied, the timeout
    // cancelled.
    let out = run(admin, &["--json", "processes", "show", "transfer-t2"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(out.of_type("process_instance")[0]["state"], "failed");
    let decisions = out.of_type("process_decision");
    assert_eq!(
        field(&decisions, "input_kind"),
        ["event", "event", "refused"]
    );
    let outcome = |d: usize, a: usize| decisions[d]["actions"][a]["outcome"].clone();
    assert_eq!(decisions[0]["actions"][0]["kind"], "send");
    assert_eq!(outcome(0, 0)["status"], "applied");
    assert_eq!(outcome(0, 0)["stream"], "account-a");
    assert_eq!(outcome(0, 1)["status"], "cancelled");
    assert_eq!(outcome(0, 1)["decided_in"], 2);
    assert_eq!(decisions[0]["actions"][1]["after_ms"], 60_000);
    assert_eq!(outcome(1, 1)["status"], "refused");
    assert_eq!(outcome(1, 1)["error"], "account is closed");
    assert_eq!(outcome(1, 1)["decided_in"], 3);
    assert_eq!(decisions[2]["input"]["command"]["Deposit"]["account"], "c");
    assert_eq!(outcome(2, 0)["status"], "applied");
    assert_eq!(decisions[2]["actions"][1]["kind"], "fail");
    assert!(out.of_type("process_timer").is_empty());

    let out = run(admin, &["processes", "show", "transfer-t2"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(
        text.contains(
            "send {\"Deposit\":{\"account\":\"c\",\"cents\":10,\"transfer\":\"t2\"}}: \
             refused: account is closed (decided on in #3)"
        ),
        "{text}"
    );
    assert!(
        text.contains("schedule \"Stuck\" in 1m: cancelled (#2)"),
        "{text}"
    );

    // t3 waits on its timer; the human view says when it is due.
    let out = run(admin, &["processes", "show", "transfer-t3"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(
        text.starts_with("instance transfer-t3 of process transfer: waiting\n"),
        "{text}"
    );
    assert!(
        text.contains("schedule \"Stuck\" in 1m: pending, due "),
        "{text}"
    );
    assert!(
        text.contains("(in 59s)") || text.contains("(in 1m00s)"),
        "{text}"
    );
    assert!(text.contains("timers:\nTIMER"), "{text}");

    // Status counts them, beside the projector's row.
    let out = run(admin, &["--json", "status"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let projection = &out.of_type("projection_status")[0];
    assert_eq!(projection["projection"], "transfer");
    assert_eq!(projection["kind"], "process_manager");
    let process = &out.of_type("process_status")[0];
    assert_eq!(process["process"], "transfer");
    assert_eq!(process["projection_registered"], true);
    assert_eq!(process["instances"], 4);
    assert_eq!(process["counted_all"], true);
    for state in ["running", "waiting", "completed", "failed"] {
        assert_eq!(process[state], 1, "{state}: {process}");
    }
    assert!(process["next_timer_due"].is_string());
    let out = run(admin, &["status", "transfer"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(text.contains("PROCESS   RUNNING  WAITING  COMPLETED  FAILED  NEXT TIMER\ntransfer  1        1        1          1"), "{text}");

    // Asking about what is not there.
    let result = returned(run(admin, &["processes", "show", "transfer-t9"]).await);
    assert!(matches!(result, Err(AdminError::NotFound(_))), "{result:?}");
    let result = returned(run(admin, &["processes", "show", "order-1"]).await);
    assert!(
        matches!(result, Err(AdminError::UnknownProcess { ref name, .. }) if name == "order"),
        "{result:?}"
    );
    let result = returned(run(admin, &["processes", "retry", "transfer"]).await);
    assert!(matches!(result, Err(AdminError::Usage(_))), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn retry_sends_the_command_that_failed_and_nothing_twice() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    let bank = Fixture::new(schema.store().clone(), schema.store().clone()).await?;
    bank.four_transfers(Uuid::now_v7()).await?;
    let admin = &bank.admin;
    assert_eq!(bank.balance("b").await, 10, "t1's deposit only");

    // t4's deposit was decided, but never reached b.
    let out = run(admin, &["--json", "processes", "show", "transfer-t4"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let decisions = out.of_type("process_decision");
    assert_eq!(
        decisions[1]["actions"][1]["outcome"]["status"],
        "unconfirmed"
    );

    // While it still fails, the retry fails too, and changes nothing.
    let result = returned(run(admin, &["processes", "retry", "transfer-t4"]).await);
    assert!(matches!(result, Err(AdminError::Foldline(_))), "{result:?}");

    bank.failing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    let out = run(admin, &["--json", "processes", "retry", "transfer-t4"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let retried = &out.of_type("process_retried")[0];
    assert_eq!(retried["accepted"], 1, "{retried}");
    assert_eq!(
        retried["applied_before"], 1,
        "the withdrawal is not sent again"
    );
    assert_eq!(retried["decisions"], 2);
    assert_eq!(
        retried["state"], "running",
        "its deposit has not come back yet"
    );
    assert_eq!(bank.balance("b").await, 20);

    // The deposit comes back to the instance: it completes.
    let deposited = bank.newest("account-b").await?;
    bank.runner.handle_event(&deposited).await?;
    let out = run(admin, &["--json", "processes", "show", "transfer-t4"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(out.of_type("process_instance")[0]["state"], "completed");
    let decisions = out.of_type("process_decision");
    assert_eq!(decisions[1]["actions"][1]["outcome"]["status"], "applied");

    // Again: nothing is appended, nothing doubled.
    let versions = bank.store.streams(None, 100).await?;
    let out = run(admin, &["processes", "retry", "transfer-t4"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(
        text.contains("2 command(s) applied before: not sent again"),
        "{text}"
    );
    assert!(text.ends_with("transfer-t4 is now completed\n"), "{text}");
    assert_eq!(bank.store.streams(None, 100).await?, versions);
    assert_eq!(bank.balance("b").await, 20);
    assert_eq!(bank.balance("a").await, 100 - 10 - 10 - 10 - 10 + 10);

    // t3's timer lost (deleted by hand): shown missing, scheduled again by the retry.
    let t3 = StreamId::new("transfer-t3")?;
    let timers = schema.store().pending("transfer", &t3).await?;
    assert_eq!(timers.len(), 1);
    schema.store().remove(timers[0].id).await?;
    let out = run(admin, &["processes", "list", "--state", "waiting"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert!(
        out.stdout.clone().contains("missing (retry schedules it)"),
        "{}",
        out.stdout.clone()
    );
    let out = run(admin, &["--json", "processes", "retry", "transfer-t3"]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(out.of_type("process_retried")[0]["timers_scheduled"], 1);
    let restored = schema.store().pending("transfer", &t3).await?;
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].id, timers[0].id);
    let due = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap();
    let drift = due(restored[0].due_at).abs_diff(due(timers[0].due_at));
    assert!(
        drift < Duration::from_secs(1),
        "due as first decided: {drift:?} apart"
    );
    Ok(())
}

/// The tree of a transfer's correlation, from `trace --json`: `(depth, stream, type, link)`
/// per event, depth first.
fn tree(out: &Ran) -> Vec<(u64, String, String, String)> {
    out.of_type("trace_event")
        .iter()
        .map(|e| {
            (
                e["depth"].as_u64().unwrap_or(99),
                e["stream"].as_str().unwrap_or_default().to_owned(),
                e["event_type"].as_str().unwrap_or_default().to_owned(),
                e["link"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn node(depth: u64, stream: &str, event_type: &str, link: &str) -> (u64, String, String, String) {
    (depth, stream.into(), event_type.into(), link.into())
}

const DECIDED: &str = "foldline.process.Decided";

async fn transfers_trace<S: ManagedStore + Clone, T: TimerStore + Clone>(
    store: S,
    timers: T,
) -> anyhow::Result<()> {
    let bank = Fixture::new(store, timers).await?;
    let correlation = Uuid::now_v7();
    bank.transfer("t1", "b", Some(correlation), 3).await?;
    let request = bank.transfer("t2", "c", None, 2).await?;
    let admin = &bank.admin;

    // t1: request → decision → withdrawal → decision → deposit → decision (complete).
    let expected_t1 = [
        node(0, "account-a", "TransferRequested", "root"),
        node(1, "transfer-t1", DECIDED, "causation"),
        node(2, "account-a", "Withdrawn", "causation"),
        node(3, "transfer-t1", DECIDED, "causation"),
        node(4, "account-b", "Deposited", "causation"),
        node(5, "transfer-t1", DECIDED, "causation"),
    ];
    let out = run(admin, &["--json", "trace", &correlation.to_string()]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(tree(&out), expected_t1);
    let head = &out.of_type("trace")[0];
    assert_eq!(head["correlation_id"], correlation.to_string());
    assert_eq!(
        (head["events"].as_u64(), head["streams"].as_u64()),
        (Some(6), Some(3))
    );
    let events = out.of_type("trace_event");
    for pair in events.windows(2) {
        if pair[1]["depth"].as_u64() > pair[0]["depth"].as_u64() {
            assert_eq!(pair[1]["parent_id"], pair[0]["event_id"]);
        }
    }
    assert_eq!(events[2]["metadata"]["causation_id"], events[1]["event_id"]);

    // The withdrawal's id finds the same tree.
    let withdrawal = events[2]["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let out = run(admin, &["trace", &withdrawal]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(
        text.starts_with(&format!(
            "event {withdrawal} belongs to correlation {correlation}\n\
             trace of correlation {correlation}: 6 event(s) in 3 stream(s)\n\
             account-a@"
        )),
        "{text}"
    );
    let shape: Vec<&str> = text
        .lines()
        .skip(2)
        .map(|line| line.rsplit_once("  ").map_or(line, |(shown, _id)| shown))
        .collect();
    assert_eq!(
        shape,
        [
            "account-a@3 TransferRequested",
            "└─ transfer-t1@1 decided on TransferRequested: send Withdraw, schedule Stuck in 1m",
            "   └─ account-a@4 Withdrawn",
            "      └─ transfer-t1@2 decided on Withdrawn: cancel Stuck, send Deposit",
            "         └─ account-b@2 Deposited",
            "            └─ transfer-t1@3 decided on Deposited: complete",
        ],
        "{text}"
    );

    // t2's request had no correlation id: its own id is the correlation. The refusal of the
    // deposit hangs under the decision that sent it; the refund under the refusal's decision.
    let out = run(admin, &["--json", "trace", &request.event_id.to_string()]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    assert_eq!(
        tree(&out),
        [
            node(0, "account-a", "TransferRequested", "root"),
            node(1, "transfer-t2", DECIDED, "causation"),
            node(2, "account-a", "Withdrawn", "causation"),
            node(3, "transfer-t2", DECIDED, "causation"),
            node(4, "transfer-t2", DECIDED, "refusal"),
            node(5, "account-a", "Deposited", "causation"),
        ]
    );

    let out = run(admin, &["trace", &request.event_id.to_string()]).await?;
    assert_eq!(out.outcome, Outcome::Ok);
    let text = &out.stdout;
    assert!(
        text.contains(
            "└─ transfer-t2@3 decided on refused Deposit (account is closed): send Deposit, fail \
             (refused: account is closed)"
        ),
        "{text}"
    );

    let result = returned(run(admin, &["trace", &Uuid::now_v7().to_string()]).await);
    assert!(matches!(result, Err(AdminError::NotFound(_))), "{result:?}");
    Ok(())
}

#[tokio::test]
async fn trace_follows_a_transfer_across_streams_on_postgres() -> anyhow::Result<()> {
    let schema = PgTestSchema::create().await?;
    transfers_trace(schema.store().clone(), schema.store().clone()).await
}

#[tokio::test]
async fn trace_follows_a_transfer_across_streams_in_memory() -> anyhow::Result<()> {
    transfers_trace(InMemoryEventStore::new(), InMemoryTimerStore::new()).await
}
