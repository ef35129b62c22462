//! `AccountDispatcher`: how the transfer process's commands reach the accounts.

use foldline::{
    CommandDispatcher, CommandExecutor, CommandOptions, Dispatched, EventStore, NoSnapshots,
    SnapshotStore,
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
        Dispatched::from_result(
            self.accounts
                .execute_with::<Account>(command.clone(), options)
                .await,
        )
    }
}
