//! `AccountDispatcher`: how the transfer process's commands reach the accounts.

use foldline::{
    BackendError, BackendErrorKind, CommandDispatcher, CommandError, CommandExecutor,
    CommandOptions, Dispatched, EventStore, JsonCodec, NoSnapshots, SnapshotStore, StoredInstance,
};

use super::Transfer;
use crate::domain::{Account, AccountCommand, TransferRef};

/// Sends the [`Transfer`] process's commands to the accounts through a [`CommandExecutor`],
/// with the options the runner made for each (its idempotency key among them); an account's
/// refusal goes back to the process as [`Dispatched::Refused`].
#[derive(Debug, Clone)]
pub struct AccountDispatcher<S, N = NoSnapshots> {
    accounts: CommandExecutor<S, N>,
}

impl<S, N> AccountDispatcher<S, N> {
    /// Sends through `accounts`.
    pub fn new(accounts: CommandExecutor<S, N>) -> Self {
        AccountDispatcher { accounts }
    }
}

impl<S, N> AccountDispatcher<S, N>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
{
    /// Why the target refused `transfer`'s deposit, if it did and the transfer acted on it.
    ///
    /// The runner carries a decision out again whenever its input comes again (after a crash,
    /// or the feed read again from the start), and sends its commands again under the same
    /// keys. A key finds an *accepted* command's first result; a *refused* one is decided
    /// afresh, and a deposit refused because the target was not open yet could then be
    /// accepted, after the transfer refunded the source: money made twice. So a deposit whose
    /// refusal the transfer's stream records is refused here again, without asking the target.
    async fn deposit_refused(&self, transfer: &TransferRef) -> foldline::Result<Option<String>> {
        let store = self.accounts.store();
        let instance = StoredInstance::<Transfer>::load(store, &JsonCodec, &transfer.id).await?;
        Ok(instance
            .instance
            .state()
            .deposit_refusal()
            .map(str::to_owned))
    }
}

impl<S, N> CommandDispatcher<AccountCommand> for AccountDispatcher<S, N>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
{
    async fn dispatch(
        &self,
        command: &AccountCommand,
        options: CommandOptions,
    ) -> foldline::Result<Dispatched> {
        if let AccountCommand::Deposit {
            transfer: Some(transfer),
            ..
        } = command
            && let Some(refusal) = self.deposit_refused(transfer).await?
        {
            return Ok(Dispatched::Refused(refusal));
        }
        match self
            .accounts
            .execute_with::<Account>(command.clone(), options)
            .await
        {
            Ok(_) => Ok(Dispatched::Accepted),
            Err(CommandError::Rejected(reason)) => Ok(Dispatched::Refused(reason.to_string())),
            Err(CommandError::Store(error)) => Err(error),
            // `CommandError` may grow: a failure that is neither stops the runner (the input
            // is handled again later) rather than passing for a refusal, which would undo the
            // transfer.
            Err(other) => Err(BackendError::new(
                "example-bank",
                BackendErrorKind::Rejected,
                "sending a transfer's command to an account",
                Some(Box::new(other)),
            )
            .into()),
        }
    }
}
