//! The example's story: every step runs real commands against the store it is given and says
//! what happened.

mod transfers;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use foldline::{
    Aggregate, AppendRequest, AppendResult, Checkpoint, CommandError, CommandExecutor,
    CommandOptions, CommandOutcome, DomainEvent, EventStore, ExpectedVersion, IdempotencyKey,
    JsonCodec, NewEvent, ProcessProjection, ProcessRunner, ProcessTarget, Projection, Projector,
    ProjectorHandle, SnapshotStore, StreamId, TimerStore,
};
use foldline_tantivy::{TantivySearcher, TantivyTarget};

use crate::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Cents, dollars,
};
use crate::projections::balances::{AccountBalance, BalanceTarget, BalanceView, Balances};
use crate::projections::memos::{self, MemoHit, TransferMemos};
use crate::rendezvous::Rendezvous;
use crate::transfer::{AccountDispatcher, Transfer, TransferHistory};

/// How long the story waits for the projectors to apply its own writes, and for a transfer to
/// finish.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the timer loop looks for due timeouts at the least (it sleeps until the next
/// one is due when that is sooner), and how long a timer it claims stays its own.
const TIMER_POLL: Duration = Duration::from_millis(250);
const TIMER_LEASE: Duration = Duration::from_secs(10);

/// What the story searches the transfer memos for.
pub const MEMO_QUERY: &str = "rent";

/// What the story read back from its read models and the transfers' streams at the end.
#[derive(Debug, Clone)]
pub struct StoryEnd {
    /// Every account, from the `balances` projection, ordered by id.
    pub accounts: Vec<AccountBalance>,
    /// The transfer legs whose memo matches [`MEMO_QUERY`], from the `transfer_memos` index.
    pub memo_hits: Vec<MemoHit>,
    /// Every transfer of the story, read back from its instance's stream, in the order
    /// requested.
    pub transfers: Vec<TransferHistory>,
    /// How far the `balances` projection had got: past every append of the story and of the
    /// transfers.
    pub checkpoint: Checkpoint,
}

impl StoryEnd {
    /// The balance of `account` in cents, as the `balances` projection holds it.
    pub fn balance(&self, account: &str) -> Option<i64> {
        self.accounts
            .iter()
            .find(|a| a.id.as_str() == account)
            .map(|a| a.cents)
    }

    /// Transfer `id`, as its stream tells it.
    pub fn transfer(&self, id: &str) -> Option<&TransferHistory> {
        self.transfers.iter().find(|t| t.id == id)
    }
}

/// The runner of the `transfer` process the story starts.
type TransferRunner<S, T> = ProcessRunner<Transfer, S, AccountDispatcher<S, S>, T>;

/// Runs the whole story against `store`, writing what happens to `out`, while two projectors
/// fold the store's feed into read models — [`Balances`] into `balances` (Redis, or the
/// in-memory stand-in) and [`TransferMemos`] into `memos` (a Tantivy index) — and the
/// [`Transfer`] process runs the transfers: a third projector reads the feed into a
/// [`ProcessTarget`] (its checkpoint kept in `balances`, beside the balances'), and a timer
/// loop fires the timeouts kept in `timers`. Returns what it read back at the end; the
/// projectors and the timer loop are stopped before it returns.
///
/// The store, `timers` and both read models must start empty. Any store that also keeps
/// snapshots will do: the in-memory one or PostgreSQL's (`foldline_postgres::PgEventStore`,
/// which is a timer store too).
///
/// # Errors
///
/// Store or target failures; a command refused where the story expects it to pass, or passed
/// where it expects a refusal; a transfer that ends otherwise than the story expects, or not
/// within 30 seconds; balances whose sum changed; a read model that disagrees with the
/// aggregates, or that has not applied the story's writes within 30 seconds.
pub async fn run<S, T, B, W>(
    store: S,
    timers: T,
    balances: B,
    memos: TantivyTarget,
    out: &mut W,
) -> anyhow::Result<StoryEnd>
where
    S: EventStore + SnapshotStore + Clone,
    T: TimerStore,
    B: BalanceTarget + Clone,
    W: Write,
{
    let bank = CommandExecutor::new(store.clone()).with_snapshots(store.clone());
    let transfers = Arc::new(ProcessRunner::new(
        store.clone(),
        AccountDispatcher::new(bank.clone()),
        timers,
    ));
    let timer_loop = tokio::spawn({
        let transfers = transfers.clone();
        async move { transfers.run_timers(TIMER_POLL, TIMER_LEASE).await }
    });
    let mut story = Story {
        bank,
        store: store.clone(),
        out,
        written: Checkpoint::START,
        balances: balances.view(),
        memos: memos.searcher(&TransferMemos::NAME),
        // The read side: each projector runs in a task of its own from now on, following the
        // store's feed while the commands run, and commits each batch of writes together
        // with its checkpoint in its target.
        balance_projector: Projector::new(store.clone(), Balances, balances.clone()).spawn(),
        memo_projector: Projector::new(store.clone(), TransferMemos::new(), memos).spawn(),
        // The transfers: a projector like the others, whose target carries each batch's
        // inputs out (decides, records, sends the commands) before it commits the checkpoint.
        transfer_projector: Projector::new(
            store,
            ProcessProjection::<Transfer>::new(),
            ProcessTarget::new(transfers.clone(), balances),
        )
        .spawn(),
        transfers,
    };
    let told = story.tell().await;
    // Whatever happened, stop the projectors (each finishes its batch and gives up its lease)
    // and the timer loop (a timer it had claimed fires later, under the next run's loop).
    let stopped = [
        story.balance_projector.shutdown().await,
        story.memo_projector.shutdown().await,
        story.transfer_projector.shutdown().await,
    ];
    timer_loop.abort();
    let timers_stopped = timer_loop.await;
    let end = told?;
    for result in stopped {
        result.context("a projector stopped with an error")?;
    }
    match timers_stopped {
        Err(aborted) if aborted.is_cancelled() => {}
        Err(panicked) => bail!("the transfers' timer loop panicked: {panicked}"),
        // It runs until aborted, unless it fails.
        Ok(result) => result.context("the transfers' timer loop stopped with an error")?,
    }
    Ok(end)
}

/// Options with an idempotency key.
fn keyed(key: &str) -> foldline::Result<CommandOptions> {
    Ok(CommandOptions::new().with_idempotency_key(IdempotencyKey::new(key)?))
}

/// The command side, the read side, the transfers and where the story is written.
struct Story<'o, S, T, W> {
    bank: CommandExecutor<S, S>,
    store: S,
    out: &'o mut W,
    /// Covers every append the story made.
    written: Checkpoint,
    balances: BalanceView,
    memos: TantivySearcher,
    balance_projector: ProjectorHandle,
    memo_projector: ProjectorHandle,
    transfer_projector: ProjectorHandle,
    transfers: Arc<TransferRunner<S, T>>,
}

impl<S, T, W> Story<'_, S, T, W>
where
    S: EventStore + SnapshotStore + Clone,
    T: TimerStore,
    W: Write,
{
    /// The steps, in order.
    async fn tell(&mut self) -> anyhow::Result<StoryEnd> {
        let alice = AccountId::new("alice");
        let bob = AccountId::new("bob");
        let carol = AccountId::new("carol");
        let dave = AccountId::new("dave");
        let every = Account::SNAPSHOT_EVERY.unwrap_or_default();
        writeln!(
            self.out,
            "The read side runs from the start: projectors `{}` and `{}` follow the store's \
             feed while the commands run, and so does the `{}` process, which runs the \
             transfers.",
            Balances::NAME,
            TransferMemos::NAME,
            ProcessProjection::<Transfer>::NAME
        )?;

        self.heading("1. Open three accounts")?;
        self.run(
            "open alice for Alice",
            AccountCommand::open(&alice, "Alice"),
        )
        .await?;
        self.run("open bob for Bob", AccountCommand::open(&bob, "Bob"))
            .await?;
        self.run("open dave for Dave", AccountCommand::open(&dave, "Dave"))
            .await?;

        self.heading(&format!(
            "2. Deposits and a withdrawal (an account takes a snapshot every {every} events)"
        ))?;
        for (what, command) in [
            (
                "deposit $500.00 into alice",
                AccountCommand::deposit(&alice, dollars(500)),
            ),
            (
                "deposit $120.00 into alice",
                AccountCommand::deposit(&alice, dollars(120)),
            ),
            (
                "withdraw $45.00 from alice",
                AccountCommand::withdraw(&alice, dollars(45)),
            ),
            (
                "deposit $30.00 into alice",
                AccountCommand::deposit(&alice, dollars(30)),
            ),
        ] {
            self.run(what, command).await?;
        }

        self.heading("3. A deposit delivered twice, with the same idempotency key")?;
        let salary = || AccountCommand::deposit(&bob, dollars(100));
        let first = self
            .run_with(
                "deposit $100.00 into bob (key payroll-bob-03)",
                salary(),
                keyed("payroll-bob-03")?,
            )
            .await?;
        let again = self
            .run_with(
                "deposit $100.00 into bob (key payroll-bob-03)",
                salary(),
                keyed("payroll-bob-03")?,
            )
            .await?;
        ensure!(
            again.is_replay() && again.append.current_version == first.append.current_version,
            "the redelivered deposit was applied twice"
        );

        self.heading("4. A command the account refuses")?;
        self.refused(
            "withdraw $1,000.00 from bob",
            AccountCommand::withdraw(&bob, dollars(1_000)),
            |error| matches!(error, AccountError::InsufficientFunds { .. }),
        )
        .await?;

        self.heading("5. carol's account, imported from version 1 of this app")?;
        self.import_v1(&carol).await?;

        self.heading("6. Two tellers deposit into carol at the same moment")?;
        self.race(&carol).await?;

        self.heading("7. Snapshots: loading starts from the latest one")?;
        self.run(
            "deposit $25.00 into alice",
            AccountCommand::deposit(&alice, dollars(25)),
        )
        .await?;
        for id in [&alice, &bob, &carol] {
            self.show_load(id).await?;
        }

        self.heading("8. Transfers, each one run by the `transfer` process manager")?;
        let transfers = self.transfers().await?;

        self.heading("9. The transfers' inputs handed over again, as after a lost checkpoint")?;
        self.transfers_again().await?;

        self.heading("10. The read models, once they have applied the story's writes")?;
        self.wait_for_projectors().await?;
        let accounts = self.show_balances().await?;
        let memo_hits = self.show_memo_search(MEMO_QUERY).await?;
        Ok(StoryEnd {
            accounts,
            memo_hits,
            transfers,
            checkpoint: self.balance_projector.progress().checkpoint,
        })
    }

    /// Read-your-writes: every append returned its position in the global feed (and the
    /// transfers' were covered by the head once they finished); once both projectors' active
    /// slots cover those positions, reading them shows the story's writes.
    ///
    /// On PostgreSQL the feed only shows transactions below the visibility horizon, so a
    /// write can take a moment to appear there if another transaction was open at the time,
    /// and a transaction left open anywhere in the database holds it back until it ends.
    async fn wait_for_projectors(&mut self) -> anyhow::Result<()> {
        for position in self.written.positions() {
            for projector in [&self.balance_projector, &self.memo_projector] {
                projector
                    .wait_for(position, READ_TIMEOUT)
                    .await
                    .with_context(|| {
                        format!(
                            "waiting for projection `{}` to apply the story's writes (it is \
                             at {}): a transaction left open elsewhere in the database may \
                             be holding the feed back",
                            projector.progress().projection,
                            projector.progress().checkpoint
                        )
                    })?;
            }
        }
        writeln!(
            self.out,
            "  read-your-writes: both projectors have applied the story's and the transfers' \
             appends, up to {} (ProjectorHandle::wait_for)",
            self.written
        )?;
        Ok(())
    }

    /// Prints every account as the `balances` projection holds it, and checks it against the
    /// aggregate loaded from the account's stream.
    async fn show_balances(&mut self) -> anyhow::Result<Vec<AccountBalance>> {
        let source = match self.balances {
            BalanceView::Redis(_) => "Redis hashes",
            BalanceView::Memory(_) => "in memory, as Redis would hold them",
        };
        writeln!(
            self.out,
            "  balances, from projection `{}` ({source}):",
            Balances::NAME
        )?;
        let accounts = self.balances.accounts().await?;
        let mut sum = 0;
        for account in &accounts {
            let id = &account.id;
            let cents = u64::try_from(account.cents)
                .with_context(|| format!("the read model holds a negative balance for {id}"))?;
            writeln!(
                self.out,
                "    {id:<6} {:<6} {:>10}  v{}, {} transfer leg(s){}",
                account.owner,
                Cents(cents),
                account.version,
                account.transfer_legs,
                if account.closed { ", closed" } else { "" }
            )?;
            sum += cents;
            let loaded = self.bank.load::<Account>(id).await?;
            ensure!(
                loaded.state.balance() == cents && loaded.version.get() == account.version,
                "the read model says {id} has {} at v{}, its aggregate {} at v{}",
                Cents(cents),
                account.version,
                Cents(loaded.state.balance()),
                loaded.version
            );
        }
        writeln!(
            self.out,
            "  every balance matches the aggregate loaded from its stream; together {}",
            Cents(sum)
        )?;
        Ok(accounts)
    }

    /// Prints the transfer legs whose memo matches `query`, from the `transfer_memos` index.
    async fn show_memo_search(&mut self, query: &str) -> anyhow::Result<Vec<MemoHit>> {
        let hits = memos::search(&self.memos, query).await?;
        writeln!(
            self.out,
            "  transfer legs whose memo matches {query:?}, from projection `{}` (a Tantivy \
             index): {} found",
            TransferMemos::NAME,
            hits.len()
        )?;
        for hit in &hits {
            writeln!(
                self.out,
                "    {}  {:<3}  {:<6} {:>10}  {:?}",
                hit.transfer,
                hit.leg,
                hit.account,
                Cents(hit.cents),
                hit.memo
            )?;
        }
        Ok(hits)
    }

    /// Remembers where an append landed in the global feed.
    fn wrote(&mut self, append: &AppendResult) {
        if let Some(position) = append.position {
            self.written.advance(position);
        }
    }

    fn heading(&mut self, title: &str) -> anyhow::Result<()> {
        writeln!(self.out, "\n{title}")?;
        Ok(())
    }

    async fn run(&mut self, what: &str, command: AccountCommand) -> anyhow::Result<Outcome> {
        self.run_with(what, command, CommandOptions::new()).await
    }

    /// Runs a command the story expects to pass, and prints the events it recorded.
    async fn run_with(
        &mut self,
        what: &str,
        command: AccountCommand,
        options: CommandOptions,
    ) -> anyhow::Result<Outcome> {
        writeln!(self.out, "> {what}")?;
        let outcome = self
            .bank
            .execute_with::<Account>(command, options)
            .await
            .with_context(|| format!("failed to {what}"))?;
        self.wrote(&outcome.append);
        self.print_outcome(&outcome).await?;
        Ok(outcome)
    }

    /// Runs a command the story expects the account to refuse, for a reason `expected` accepts.
    async fn refused(
        &mut self,
        what: &str,
        command: AccountCommand,
        expected: impl FnOnce(&AccountError) -> bool,
    ) -> anyhow::Result<()> {
        writeln!(self.out, "> {what}")?;
        match self.bank.execute::<Account>(command).await {
            Err(CommandError::Rejected(reason)) if expected(&reason) => {
                writeln!(self.out, "    refused: {reason}; nothing was recorded")?;
                Ok(())
            }
            Err(error) => Err(error).with_context(|| format!("expected a refusal of: {what}")),
            Ok(outcome) => bail!("{what}: accepted, expected a refusal: {:?}", outcome.events),
        }
    }

    async fn print_outcome(&mut self, outcome: &Outcome) -> anyhow::Result<()> {
        let append = &outcome.append;
        if outcome.is_replay() {
            writeln!(
                self.out,
                "    replayed: nothing appended, the first result is returned \
                 ({}@{}, {} event(s), attempts {})",
                append.stream_id,
                append.current_version,
                outcome.events.len(),
                outcome.attempts
            )?;
            return Ok(());
        }
        let mut version = append.first_version();
        for event in &outcome.events {
            writeln!(self.out, "    {}@{version}  {event:?}", append.stream_id)?;
            version = version.next();
        }
        let snapshot = self.store.load_snapshot(&append.stream_id).await?;
        if snapshot.is_some_and(|s| s.version == append.current_version) {
            writeln!(
                self.out,
                "    snapshot of {} saved at v{version}",
                append.stream_id,
                version = append.current_version
            )?;
        }
        Ok(())
    }

    /// Writes carol's history as version 1 of the app did (`Deposited` had no `transfer` field
    /// then: schema version 1), then loads it through the current code, which upcasts it.
    async fn import_v1(&mut self, carol: &AccountId) -> anyhow::Result<()> {
        let stream = StreamId::for_aggregate(Account::NAME, carol)?;
        let opened = AccountEvent::Opened {
            owner: "Carol".into(),
        };
        let deposited = AccountEvent::Deposited {
            cents: 0,
            transfer: None,
        }
        .event_type();
        let v1_payload = r#"{"cents":80000}"#;
        let history = vec![
            NewEvent::encode(&opened, &JsonCodec)?,
            NewEvent::new(deposited.clone(), 1, v1_payload.as_bytes().to_vec()),
        ];
        let request = AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, history);
        let append = self.store.append(request).await?;
        self.wrote(&append);
        writeln!(
            self.out,
            "  appended raw: {stream}@1 {}, {stream}@2 {deposited} (schema v1) {v1_payload}",
            opened.event_type()
        )?;
        let loaded = self.bank.load::<Account>(carol).await?;
        writeln!(
            self.out,
            "  loaded {}@{}: owner {}, balance {} (the schema v1 Deposited was upcast on read)",
            loaded.stream_id,
            loaded.version,
            loaded.state.owner().unwrap_or("?"),
            Cents(loaded.state.balance())
        )?;
        Ok(())
    }

    /// Two tellers, each with an executor of its own (two processes, as far as the account
    /// can tell), deposit into `account` concurrently. Both load the same version (the
    /// [`Rendezvous`] store holds their first reads until both have read), so one append
    /// conflicts and its executor loads and decides that command again. (Commands through one
    /// executor queue and are decided in turn instead, and never conflict with each other.)
    async fn race(&mut self, account: &AccountId) -> anyhow::Result<()> {
        writeln!(
            self.out,
            "  (two tellers, each its own process, both load {account} before either appends: \
             one append must conflict)"
        )?;
        let meeting = Rendezvous::new(self.store.clone(), 2);
        let tellers =
            [("teller A", dollars(50)), ("teller B", dollars(25))].map(|(teller, cents)| {
                let bank = CommandExecutor::new(meeting.clone()).with_snapshots(self.store.clone());
                let command = AccountCommand::deposit(account, cents);
                let task = tokio::spawn(async move { bank.execute::<Account>(command).await });
                (teller, cents, task)
            });
        let mut done = Vec::new();
        for (teller, cents, task) in tellers {
            let outcome = task
                .await?
                .with_context(|| format!("{teller} failed to deposit"))?;
            self.wrote(&outcome.append);
            done.push((teller, cents, outcome));
        }
        done.sort_by_key(|(_, _, outcome)| outcome.append.current_version);
        for (teller, cents, outcome) in &done {
            writeln!(
                self.out,
                "> {teller}: deposit {} into {account}",
                Cents(*cents)
            )?;
            self.print_outcome(outcome).await?;
            let attempts = outcome.attempts;
            let note = if attempts > 1 {
                format!(
                    "its first append conflicted, so the executor loaded {account} again and re-decided"
                )
            } else {
                "appended first".to_owned()
            };
            writeln!(self.out, "    attempts {attempts}: {note}")?;
        }
        let attempts: Vec<u32> = done
            .iter()
            .map(|(_, _, outcome)| outcome.attempts)
            .collect();
        ensure!(
            attempts == [1, 2],
            "expected one conflict retried once, got attempts {attempts:?}"
        );
        Ok(())
    }

    /// Loads an account and says whether a snapshot was used.
    async fn show_load(&mut self, id: &AccountId) -> anyhow::Result<()> {
        let loaded = self.bank.load::<Account>(id).await?;
        let from = match loaded.snapshot_version {
            Some(at) => format!(
                "snapshot at v{at} + {} later event(s)",
                loaded.version.get() - at.get()
            ),
            None => "no snapshot yet, every event".to_owned(),
        };
        writeln!(
            self.out,
            "  load {}: {from} -> v{}, balance {}",
            loaded.stream_id,
            loaded.version,
            Cents(loaded.state.balance())
        )?;
        Ok(())
    }
}

type Outcome = CommandOutcome<Account>;
