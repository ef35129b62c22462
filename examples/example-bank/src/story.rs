//! The example's story: every step runs real commands against the store it is given and says
//! what happened.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use foldline::{
    Aggregate, AppendRequest, AppendResult, Checkpoint, CommandError, CommandExecutor,
    CommandOptions, CommandOutcome, DomainEvent, EventStore, ExpectedVersion, IdempotencyKey,
    JsonCodec, NewEvent, Projection, Projector, ProjectorHandle, SnapshotStore, StreamId,
};
use foldline_tantivy::{TantivySearcher, TantivyTarget};

use crate::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Cents, Transfer, TransferRef,
    dollars,
};
use crate::projections::balances::{AccountBalance, BalanceTarget, BalanceView, Balances};
use crate::projections::memos::{self, MemoHit, TransferMemos};
use crate::rendezvous::Rendezvous;

/// How long the story waits for the projectors to apply its own writes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the story searches the transfer memos for.
pub const MEMO_QUERY: &str = "rent";

/// What the story read back from its read models at the end.
#[derive(Debug, Clone)]
pub struct StoryEnd {
    /// Every account, from the `balances` projection, ordered by id.
    pub accounts: Vec<AccountBalance>,
    /// The transfer legs whose memo matches [`MEMO_QUERY`], from the `transfer_memos` index.
    pub memo_hits: Vec<MemoHit>,
    /// How far the `balances` projection had got: past every append of the story.
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
}

/// Runs the whole story against `store`, writing what happens to `out`, while two projectors
/// fold the store's feed into read models: [`Balances`] into `balances` (Redis, or the
/// in-memory stand-in) and [`TransferMemos`] into `memos` (a Tantivy index). Returns what it
/// read back from them at the end; the projectors are shut down before it returns.
///
/// The store and both read models must start empty. Any store that also keeps snapshots will
/// do: the in-memory one or PostgreSQL's (`foldline_postgres::PgEventStore`).
///
/// # Errors
///
/// Store or target failures; a command refused where the story expects it to pass, or passed
/// where it expects a refusal; a read model that disagrees with the aggregates, or that has
/// not applied the story's writes within 30 seconds.
pub async fn run<S, B, W>(
    store: S,
    balances: B,
    memos: TantivyTarget,
    out: &mut W,
) -> anyhow::Result<StoryEnd>
where
    S: EventStore + SnapshotStore + Clone,
    B: BalanceTarget,
    W: Write,
{
    let mut story = Story {
        bank: CommandExecutor::new(store.clone()).with_snapshots(store.clone()),
        store: store.clone(),
        out,
        written: Checkpoint::START,
        balances: balances.view(),
        memos: memos.searcher(&TransferMemos::NAME),
        // The read side: each projector runs in a task of its own from now on, following the
        // store's feed while the commands run, and commits each batch of writes together
        // with its checkpoint in its target.
        balance_projector: Projector::new(store.clone(), Balances, balances).spawn(),
        memo_projector: Projector::new(store, TransferMemos::new(), memos).spawn(),
    };
    let told = story.tell().await;
    // Whatever happened, stop both projectors: each finishes its batch and gives up its lease.
    let stopped = [
        story.balance_projector.shutdown().await,
        story.memo_projector.shutdown().await,
    ];
    let end = told?;
    for result in stopped {
        result.context("a projector stopped with an error")?;
    }
    Ok(end)
}

/// Options with an idempotency key.
fn keyed(key: &str) -> foldline::Result<CommandOptions> {
    Ok(CommandOptions::new().with_idempotency_key(IdempotencyKey::new(key)?))
}

/// The command side, the read side and where the story is written.
struct Story<'o, S, W> {
    bank: CommandExecutor<S, S>,
    store: S,
    out: &'o mut W,
    /// Covers every append the story made.
    written: Checkpoint,
    balances: BalanceView,
    memos: TantivySearcher,
    balance_projector: ProjectorHandle,
    memo_projector: ProjectorHandle,
}

impl<S, W> Story<'_, S, W>
where
    S: EventStore + SnapshotStore + Clone,
    W: Write,
{
    /// The steps, in order.
    async fn tell(&mut self) -> anyhow::Result<StoryEnd> {
        let alice = AccountId::new("alice");
        let bob = AccountId::new("bob");
        let carol = AccountId::new("carol");
        let every = Account::SNAPSHOT_EVERY.unwrap_or_default();
        writeln!(
            self.out,
            "The read side runs from the start: projectors `{}` and `{}` follow the store's \
             feed while the commands run.",
            Balances::NAME,
            TransferMemos::NAME
        )?;

        self.heading("1. Open two accounts")?;
        self.run(
            "open alice for Alice",
            AccountCommand::open(&alice, "Alice"),
        )
        .await?;
        self.run("open bob for Bob", AccountCommand::open(&bob, "Bob"))
            .await?;

        self.heading(&format!(
            "2. Deposits and a withdrawal (an account takes a snapshot every {every} events)"
        ))?;
        self.run(
            "deposit $500.00 into alice",
            AccountCommand::deposit(&alice, dollars(500)),
        )
        .await?;
        self.run(
            "deposit $120.00 into alice",
            AccountCommand::deposit(&alice, dollars(120)),
        )
        .await?;
        self.run(
            "withdraw $45.00 from alice",
            AccountCommand::withdraw(&alice, dollars(45)),
        )
        .await?;

        self.heading("3. Transfer T-1001, $200.00 from alice to bob: two commands, one reference")?;
        let rent = Transfer {
            reference: TransferRef {
                id: "T-1001".into(),
                memo: "March rent".into(),
            },
            from: alice.clone(),
            to: bob.clone(),
            cents: dollars(200),
        };
        let deposit_key = keyed("T-1001-in")?;
        self.run_with(
            "withdraw leg from alice (key T-1001-out)",
            rent.withdraw_leg(),
            keyed("T-1001-out")?,
        )
        .await?;
        let first = self
            .run_with(
                "deposit leg into bob (key T-1001-in)",
                rent.deposit_leg(),
                deposit_key.clone(),
            )
            .await?;

        self.heading("4. The deposit leg is delivered again, with the same idempotency key")?;
        let again = self
            .run_with(
                "deposit leg into bob (key T-1001-in)",
                rent.deposit_leg(),
                deposit_key,
            )
            .await?;
        ensure!(
            again.is_replay() && again.append.current_version == first.append.current_version,
            "the redelivered deposit leg was applied twice"
        );

        self.heading("5. A command the account refuses")?;
        self.overdraft(
            "withdraw $1,000.00 from bob",
            AccountCommand::withdraw(&bob, dollars(1_000)),
        )
        .await?;

        self.heading("6. carol's account, imported from version 1 of this app")?;
        self.import_v1(&carol).await?;

        self.heading("7. Two tellers deposit into carol at the same moment")?;
        self.race(&carol).await?;

        self.heading("8. Snapshots: loading starts from the latest one")?;
        self.run(
            "deposit $25.00 into alice",
            AccountCommand::deposit(&alice, dollars(25)),
        )
        .await?;
        for id in [&alice, &bob, &carol] {
            self.show_load(id).await?;
        }

        self.heading("9. Transfer T-1002, $30.00 from bob to carol")?;
        let tickets = Transfer {
            reference: TransferRef {
                id: "T-1002".into(),
                memo: "Concert tickets".into(),
            },
            from: bob.clone(),
            to: carol.clone(),
            cents: dollars(30),
        };
        self.run_with(
            "withdraw leg from bob (key T-1002-out)",
            tickets.withdraw_leg(),
            keyed("T-1002-out")?,
        )
        .await?;
        self.run_with(
            "deposit leg into carol (key T-1002-in)",
            tickets.deposit_leg(),
            keyed("T-1002-in")?,
        )
        .await?;

        self.heading("10. The read models, once they have applied the story's writes")?;
        self.wait_for_projectors().await?;
        let accounts = self.show_balances().await?;
        let memo_hits = self.show_memo_search(MEMO_QUERY).await?;
        Ok(StoryEnd {
            accounts,
            memo_hits,
            checkpoint: self.balance_projector.progress().checkpoint,
        })
    }

    /// Read-your-writes: every append returned its position in the global feed; once both
    /// projectors' active slots cover those positions, reading them shows the story's writes.
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
            "  read-your-writes: both projectors have applied the story's appends, up to {} \
             (ProjectorHandle::wait_for)",
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
        for account in &accounts {
            let id = &account.id;
            let cents = u64::try_from(account.cents)
                .with_context(|| format!("the read model holds a negative balance for {id}"))?;
            writeln!(
                self.out,
                "    {id:<6} {:<6} {:>10}  v{}, {} transfer leg(s)",
                account.owner,
                Cents(cents),
                account.version,
                account.transfer_legs
            )?;
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
            "  every balance matches the aggregate loaded from its stream"
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

    /// Runs a withdrawal the story expects the account to refuse for lack of funds.
    async fn overdraft(&mut self, what: &str, command: AccountCommand) -> anyhow::Result<()> {
        writeln!(self.out, "> {what}")?;
        match self.bank.execute::<Account>(command).await {
            Err(CommandError::Rejected(reason @ AccountError::InsufficientFunds { .. })) => {
                writeln!(self.out, "    refused: {reason}; nothing was recorded")?;
                Ok(())
            }
            Err(error) => Err(error).context("expected the account to refuse the overdraft"),
            Ok(outcome) => bail!("the overdraft was accepted: {:?}", outcome.events),
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
