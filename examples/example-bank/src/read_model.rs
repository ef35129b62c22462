//! A read model of balances, folded from the store's global feed.
//!
//! This is the smallest honest projection: it reads [`EventStore::read_all`] in batches from
//! its [`Checkpoint`], decodes the account events and keeps a balance per account. It lives in
//! process memory; the projector runtime and the Redis / Tantivy targets do the same against a
//! durable read model, committing the checkpoint with the writes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use foldline::{Aggregate, Checkpoint, EventStore, JsonCodec, RecordedEvent};

use crate::domain::{Account, AccountEvent, AccountId};

/// Events read from the global feed per round trip.
const BATCH: usize = 100;

/// One account as the read model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// Who owns it.
    pub owner: String,
    /// Its balance in cents.
    pub balance: u64,
    /// How many deposits and withdrawals were legs of a transfer.
    pub transfer_legs: u32,
}

/// Balances of every account, as of [`checkpoint`](Balances::checkpoint).
#[derive(Debug, Clone, Default)]
pub struct Balances {
    // A BTreeMap rather than a HashMap only so the example prints accounts in a stable order.
    accounts: BTreeMap<AccountId, AccountView>,
    checkpoint: Checkpoint,
    events: u64,
}

impl Balances {
    /// An empty read model that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every event after the checkpoint, in batches, and folds it in. Returns how many
    /// events it read.
    ///
    /// # Errors
    ///
    /// Store failures, and decode errors for account events this code cannot read.
    pub async fn catch_up<S: EventStore>(&mut self, store: &S) -> foldline::Result<u64> {
        let mut read = 0;
        loop {
            let batch = store.read_all(&self.checkpoint, BATCH).await?;
            if batch.is_empty() {
                return Ok(read);
            }
            for event in &batch.events {
                self.apply(event)?;
                read += 1;
            }
            self.checkpoint = batch.checkpoint;
        }
    }

    /// Catches up until the checkpoint covers `target` (say, the position of the caller's own
    /// last append: read-your-writes), polling the feed every few milliseconds, for at most
    /// `timeout`. Returns how many events it read.
    ///
    /// On PostgreSQL the global feed only shows transactions below the visibility horizon, so
    /// a write can take a moment to appear there if another transaction was open at the time,
    /// and a transaction left open anywhere in the database holds it back until it ends.
    ///
    /// # Errors
    ///
    /// As [`catch_up`](Balances::catch_up); and when `target` is still not covered after
    /// `timeout`.
    pub async fn catch_up_to<S: EventStore>(
        &mut self,
        store: &S,
        target: &Checkpoint,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        let started = Instant::now();
        let mut read = 0;
        loop {
            read += self.catch_up(store).await?;
            if self.checkpoint.covers_checkpoint(target) {
                return Ok(read);
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "the global feed has not reached {target} after {timeout:?} (it is at {}): \
                 a transaction left open elsewhere in the database may be holding it back",
                self.checkpoint
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Folds one recorded event in; events of other aggregates are skipped.
    ///
    /// # Errors
    ///
    /// A decode error when an account event cannot be read.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> foldline::Result<()> {
        self.events += 1;
        let Some(id) = account_of(recorded) else {
            return Ok(());
        };
        let event: AccountEvent = recorded.decode(&JsonCodec)?;
        let view = self.accounts.entry(id).or_insert_with(|| AccountView {
            owner: String::new(),
            balance: 0,
            transfer_legs: 0,
        });
        match event {
            AccountEvent::Opened { owner } => view.owner = owner,
            AccountEvent::Deposited { cents, transfer } => {
                view.balance += cents;
                view.transfer_legs += u32::from(transfer.is_some());
            }
            AccountEvent::Withdrawn { cents, transfer } => {
                view.balance = view.balance.saturating_sub(cents);
                view.transfer_legs += u32::from(transfer.is_some());
            }
        }
        Ok(())
    }

    /// The balance of `account` in cents, if the read model has seen it.
    pub fn balance(&self, account: &AccountId) -> Option<u64> {
        self.accounts.get(account).map(|view| view.balance)
    }

    /// Every account, ordered by id.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &AccountView)> {
        self.accounts.iter()
    }

    /// How far into the global feed the read model has got.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// How many events of the global feed it has read (of every aggregate).
    pub fn events_seen(&self) -> u64 {
        self.events
    }
}

/// The account an event belongs to, from its stream id `account-<id>`.
fn account_of(recorded: &RecordedEvent) -> Option<AccountId> {
    recorded
        .stream_id
        .as_str()
        .strip_prefix(Account::NAME)?
        .strip_prefix('-')
        .map(AccountId::new)
}
