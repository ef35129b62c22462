//! Steps 8 and 9 of the story: four transfers run by the `transfer` process manager, each
//! ending its own way, then the process's inputs handed over again.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::ensure;
use foldline::{
    EventStore, InMemoryTarget, ProcessProjection, ProcessTarget, Projection, Projector,
    SnapshotStore, TimerStore,
};
use foldline_redis::RedisKeyspace;

use super::{READ_TIMEOUT, Story};
use crate::domain::{
    Account, AccountCommand, AccountError, AccountId, Cents, TransferRef, dollars,
};
use crate::transfer::{APPROVAL_WINDOW, Transfer, TransferHistory};

/// How often the story looks whether a transfer has finished.
const POLL: Duration = Duration::from_millis(20);

impl<S, T, W> Story<'_, S, T, W>
where
    S: EventStore + SnapshotStore + Clone,
    T: TimerStore,
    W: Write,
{
    /// Requests four transfers — one completes, one is refused by its target and refunded,
    /// one waits in vain for its approval and is cancelled — waits until each has finished,
    /// and prints each one step by step from its stream. Checks that a late approval is
    /// refused and that the accounts hold together what they held before. Returns the
    /// transfers in the order requested.
    pub(super) async fn transfers(&mut self) -> anyhow::Result<Vec<TransferHistory>> {
        let alice = AccountId::new("alice");
        let bob = AccountId::new("bob");
        let carol = AccountId::new("carol");
        let dave = AccountId::new("dave");
        writeln!(
            self.out,
            "  Projection `{}` hands every account event that carries a transfer id to the \
             transfer's process instance, which decides what to do (recorded first in its \
             own stream, transfer-<id>) and sends the commands, each under an idempotency \
             key; a timer loop fires the timeouts. Transfers above {} wait for an officer's \
             approval ({APPROVAL_WINDOW:?} at most in this story). A failed transfer is undone \
             by the paying account, which refunds what it withdrew or refuses the withdrawal \
             if it comes later.",
            ProcessProjection::<Transfer>::NAME,
            Cents(Account::APPROVAL_LIMIT)
        )?;
        self.run("close dave's account", AccountCommand::close(&dave))
            .await?;
        let accounts = [&alice, &bob, &carol, &dave];
        let before = self.sum_of(&accounts).await?;

        let requests = [
            (TransferRef::new("T-1001", "March rent"), &alice, &bob, 200),
            (
                TransferRef::new("T-1002", "Concert tickets"),
                &bob,
                &carol,
                30,
            ),
            // dave's account is closed: the deposit is refused, bob is refunded.
            (TransferRef::new("T-1003", "Old debt"), &bob, &dave, 50),
            // Above the approval limit, and nobody approves it in time.
            (TransferRef::new("T-1004", "Used car"), &carol, &alice, 600),
        ];
        for (transfer, from, to, amount) in &requests {
            let what = format!(
                "request transfer {} at {from}: {} to {to}",
                transfer.id,
                Cents(dollars(*amount))
            );
            let request =
                AccountCommand::request_transfer(from, transfer.clone(), to, dollars(*amount));
            self.run(&what, request).await?;
        }
        writeln!(
            self.out,
            "  (waiting for the four transfers to finish; T-1004 waits {APPROVAL_WINDOW:?} for \
             an approval)"
        )?;
        let mut transfers = Vec::new();
        for (transfer, ..) in &requests {
            transfers.push(self.finished(&transfer.id).await?);
        }
        writeln!(self.out, "  The transfers, as their streams tell them:")?;
        for transfer in &transfers {
            for line in transfer.to_string().lines() {
                writeln!(self.out, "    {line}")?;
            }
        }
        let ended: Vec<&str> = transfers.iter().map(|t| t.status.name()).collect();
        ensure!(
            ended == ["completed", "completed", "failed", "failed"],
            "the transfers ended {ended:?}, expected two completed and two failed"
        );

        self.refused(
            "approve T-1004 at carol, after its time ran out",
            AccountCommand::approve_transfer(&carol, "T-1004"),
            |error| matches!(error, AccountError::TransferCancelled { .. }),
        )
        .await?;

        let after = self.sum_of(&accounts).await?;
        ensure!(
            after == before,
            "the accounts held {} before the transfers and {} after",
            Cents(before),
            Cents(after)
        );
        writeln!(
            self.out,
            "  alice, bob, carol and dave hold {} together, as before the transfers: no money \
             made or lost",
            Cents(after)
        )?;
        // The transfers appended too: the read models must cover their events as well.
        for position in self.store.head().await?.positions() {
            self.written.advance(*position);
        }
        Ok(transfers)
    }

    /// A second `transfer` projector, its checkpoint new, reads the whole feed again (as
    /// after a crash that lost the checkpoint): every transfer finds the events it decided
    /// on, and carries its decisions out again without anything happening twice.
    pub(super) async fn transfers_again(&mut self) -> anyhow::Result<()> {
        let head = self.store.head().await?;
        let again = Projector::new(
            self.store.clone(),
            ProcessProjection::<Transfer>::new(),
            ProcessTarget::new(
                self.transfers.clone(),
                InMemoryTarget::<RedisKeyspace>::new(),
            ),
        );
        let read = again.catch_up().await?.applied;
        let now = self.store.head().await?;
        ensure!(
            now == head,
            "handing the transfers their inputs again appended events: the head moved from \
             {head} to {now}"
        );
        writeln!(
            self.out,
            "  a second `{}` projector with a new checkpoint read the {read} account events \
             again; the store's head did not move ({head}). Each transfer knew the events by \
             their ids and carried its recorded decisions out again: every command sent again \
             found its first result by its idempotency key, and the deposit dave refused was \
             not sent again.",
            ProcessProjection::<Transfer>::NAME
        )?;
        Ok(())
    }

    /// Transfer `id` once it has finished, read from its stream.
    async fn finished(&self, id: &str) -> anyhow::Result<TransferHistory> {
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let transfer = TransferHistory::load(&self.store, id).await?;
            if transfer.status.is_finished() {
                return Ok(transfer);
            }
            ensure!(
                Instant::now() < deadline,
                "transfer {id} did not finish within {READ_TIMEOUT:?}:\n{transfer}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// What `accounts` hold together, from their aggregates.
    async fn sum_of(&self, accounts: &[&AccountId]) -> anyhow::Result<u64> {
        let mut sum = 0;
        for id in accounts {
            sum += self.bank.load::<Account>(id).await?.state.balance();
        }
        Ok(sum)
    }
}
