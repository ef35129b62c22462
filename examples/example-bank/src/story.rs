//! The example's story: every step runs real commands against the store it is given and says
//! what happened.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use foldline::{
    Aggregate, AppendRequest, AppendResult, Checkpoint, CommandError, CommandExecutor,
    CommandOptions, CommandOutcome, DomainEvent, EventStore, ExpectedVersion, IdempotencyKey,
    JsonCodec, NewEvent, SnapshotStore, StreamId,
};

use crate::domain::{
    Account, AccountCommand, AccountError, AccountEvent, AccountId, Cents, Transfer, TransferRef,
    dollars,
};
use crate::read_model::Balances;
use crate::rendezvous::Rendezvous;

/// How long the read model waits for the story's own writes to show in the global feed.
const FEED_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the whole story against `store`, writing what happens to `out`, and returns the
/// balances read model folded from the store's global feed at the end.
///
/// The store must start empty. Any store that also keeps snapshots will do: the in-memory one
/// or PostgreSQL's (`foldline_postgres::PgEventStore`).
///
/// # Errors
///
/// Store failures; a command refused where the story expects it to pass, or passed where it
/// expects a refusal; a read model that disagrees with the aggregates.
pub async fn run<S, W>(store: S, out: &mut W) -> anyhow::Result<Balances>
where
    S: EventStore + SnapshotStore + Clone,
    W: Write,
{
    let mut story = Story {
        bank: CommandExecutor::new(store.clone()).with_snapshots(store.clone()),
        store,
        out,
        written: Checkpoint::START,
    };
    let alice = AccountId::new("alice");
    let bob = AccountId::new("bob");
    let carol = AccountId::new("carol");
    let every = Account::SNAPSHOT_EVERY.unwrap_or_default();

    story.heading("1. Open two accounts")?;
    story
        .run(
            "open alice for Alice",
            AccountCommand::open(&alice, "Alice"),
        )
        .await?;
    story
        .run("open bob for Bob", AccountCommand::open(&bob, "Bob"))
        .await?;

    story.heading(&format!(
        "2. Deposits and a withdrawal (an account takes a snapshot every {every} events)"
    ))?;
    story
        .run(
            "deposit $500.00 into alice",
            AccountCommand::deposit(&alice, dollars(500)),
        )
        .await?;
    story
        .run(
            "deposit $120.00 into alice",
            AccountCommand::deposit(&alice, dollars(120)),
        )
        .await?;
    story
        .run(
            "withdraw $45.00 from alice",
            AccountCommand::withdraw(&alice, dollars(45)),
        )
        .await?;

    story.heading("3. Transfer T-1001, $200.00 from alice to bob: two commands, one reference")?;
    let rent = Transfer {
        reference: TransferRef {
            id: "T-1001".into(),
            memo: "March rent".into(),
        },
        from: alice.clone(),
        to: bob.clone(),
        cents: dollars(200),
    };
    let withdraw_key = keyed("T-1001-out")?;
    let deposit_key = keyed("T-1001-in")?;
    story
        .run_with(
            "withdraw leg from alice (key T-1001-out)",
            rent.withdraw_leg(),
            withdraw_key,
        )
        .await?;
    let first = story
        .run_with(
            "deposit leg into bob (key T-1001-in)",
            rent.deposit_leg(),
            deposit_key.clone(),
        )
        .await?;

    story.heading("4. The deposit leg is delivered again, with the same idempotency key")?;
    let again = story
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

    story.heading("5. A command the account refuses")?;
    story
        .overdraft(
            "withdraw $1,000.00 from bob",
            AccountCommand::withdraw(&bob, dollars(1_000)),
        )
        .await?;

    story.heading("6. carol's account, imported from version 1 of this app")?;
    story.import_v1(&carol).await?;

    story.heading("7. Two tellers deposit into carol at the same moment")?;
    story.race(&carol).await?;

    story.heading("8. Snapshots: loading starts from the latest one")?;
    story
        .run(
            "deposit $25.00 into alice",
            AccountCommand::deposit(&alice, dollars(25)),
        )
        .await?;
    for id in [&alice, &bob, &carol] {
        story.show_load(id).await?;
    }

    story.heading("9. Balances read model, folded from the global feed with read_all")?;
    // Read-your-writes: fold until the feed has shown the story's own last append.
    let mut balances = Balances::new();
    let read = balances
        .catch_up_to(&story.store, &story.written, FEED_TIMEOUT)
        .await?;
    writeln!(
        story.out,
        "  read {read} events, checkpoint {}",
        balances.checkpoint()
    )?;
    for (id, view) in balances.accounts() {
        let legs = view.transfer_legs;
        writeln!(
            story.out,
            "  {id:<6} {:<6} {:>10}  ({legs} transfer leg(s))",
            view.owner,
            Cents(view.balance)
        )?;
        let aggregate = story.bank.load::<Account>(id).await?.state;
        ensure!(
            aggregate.balance() == view.balance,
            "the read model says {id} has {}, its aggregate {}",
            Cents(view.balance),
            Cents(aggregate.balance())
        );
    }
    writeln!(
        story.out,
        "  every balance matches the aggregate loaded from its stream"
    )?;
    Ok(balances)
}

/// Options with an idempotency key.
fn keyed(key: &str) -> foldline::Result<CommandOptions> {
    Ok(CommandOptions::new().with_idempotency_key(IdempotencyKey::new(key)?))
}

/// The executor, the store and where the story is written.
struct Story<'o, S, W> {
    bank: CommandExecutor<S, S>,
    store: S,
    out: &'o mut W,
    /// Covers every append the story made.
    written: Checkpoint,
}

impl<S, W> Story<'_, S, W>
where
    S: EventStore + SnapshotStore + Clone,
    W: Write,
{
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
        let opened_payload = opened.encode(&JsonCodec).map_err(|e| anyhow::anyhow!(e))?;
        let deposited = AccountEvent::Deposited {
            cents: 0,
            transfer: None,
        }
        .event_type();
        let v1_payload = r#"{"cents":80000}"#;
        let history = vec![
            NewEvent::new(opened.event_type(), opened.schema_version(), opened_payload),
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

    /// Two tasks deposit into `account` concurrently. Both load the same version (the
    /// [`Rendezvous`] store holds their first reads until both have read), so one append
    /// conflicts and the executor loads and decides that command again.
    async fn race(&mut self, account: &AccountId) -> anyhow::Result<()> {
        writeln!(
            self.out,
            "  (both load {account} before either appends: one append must conflict)"
        )?;
        let racing = CommandExecutor::new(Rendezvous::new(self.store.clone(), 2))
            .with_snapshots(self.store.clone());
        let tellers =
            [("teller A", dollars(50)), ("teller B", dollars(25))].map(|(teller, cents)| {
                let bank = racing.clone();
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
