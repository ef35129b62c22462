//! `AccountDispatcher`: how the transfer process's commands reach the accounts.

use foldline::{
    BackendError, BackendErrorKind, CommandDispatcher, CommandError, CommandExecutor,
    CommandOptions, Dispatched, EventStore, NoSnapshots, SnapshotStore,
};

use crate::domain::{Account, AccountCommand};

/// Sends the [`Transfer`](super::Transfer) process's commands to the accounts through a [`CommandExecutor`],
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
