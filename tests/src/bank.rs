//! Accounts that can be opened, closed, debited and credited, and asked for a transfer: the
//! aggregate the process-manager tests run their transfers over (`it::process_runner`,
//! `it::admin_processes`). Each of those tests writes its own transfer process manager on top,
//! shaped for what it shows.

use foldline::{
    Aggregate, Command, CommandDispatcher, CommandExecutor, CommandOptions, Dispatched,
    DomainEvent, EventStore,
};
use serde::{Deserialize, Serialize};

/// What happens to accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
pub enum BankEvent {
    /// Opened (again).
    Opened {
        /// Which account.
        account: String,
    },
    /// Closed: it refuses withdrawals, deposits and transfer requests until opened again.
    Closed {
        /// Which account.
        account: String,
    },
    /// Money went out.
    Withdrawn {
        /// This account.
        account: String,
        /// How much, in cents.
        cents: u64,
        /// The transfer it was for, if any.
        transfer: Option<String>,
    },
    /// Money came in.
    Deposited {
        /// This account.
        account: String,
        /// How much, in cents.
        cents: u64,
        /// The transfer it was for (or its refund, `<transfer>-refund`), if any.
        transfer: Option<String>,
    },
    /// A transfer from this account was requested: what a transfer process manager starts on.
    TransferRequested {
        /// The transfer.
        transfer: String,
        /// This account.
        from: String,
        /// Where the money goes.
        to: String,
        /// How much, in cents.
        cents: u64,
    },
}

impl BankEvent {
    /// The transfer this event is a step of: its request, or a withdrawal or deposit made for
    /// it. A refund's deposit (`<transfer>-refund`) is none: it is the transfer's own doing, not
    /// something it reacts to. What the transfer process managers correlate by.
    pub fn step_of_transfer(&self) -> Option<String> {
        match self {
            BankEvent::TransferRequested { transfer, .. } => Some(transfer.clone()),
            BankEvent::Withdrawn {
                transfer: Some(transfer),
                ..
            }
            | BankEvent::Deposited {
                transfer: Some(transfer),
                ..
            } => (!transfer.ends_with("-refund")).then(|| transfer.clone()),
            _ => None,
        }
    }
}

/// What accounts are asked to do; each names its account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Command)]
pub enum AccountCommand {
    /// Open the account (again).
    Open {
        /// Which account.
        #[foldline(id)]
        account: String,
    },
    /// Close the account.
    Close {
        /// Which account.
        #[foldline(id)]
        account: String,
    },
    /// Take money out; refused beyond the balance.
    Withdraw {
        /// Which account.
        #[foldline(id)]
        account: String,
        /// How much, in cents.
        cents: u64,
        /// The transfer it is for, if any.
        transfer: Option<String>,
    },
    /// Put money in.
    Deposit {
        /// Which account.
        #[foldline(id)]
        account: String,
        /// How much, in cents.
        cents: u64,
        /// The transfer it is for, if any.
        transfer: Option<String>,
    },
    /// Ask for a transfer from this account.
    RequestTransfer {
        /// The source account.
        #[foldline(id)]
        account: String,
        /// The transfer's id.
        transfer: String,
        /// Where the money goes.
        to: String,
        /// How much, in cents.
        cents: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Anything but opening or closing, while closed.
    #[error("account is closed")]
    Closed,
    /// A withdrawal beyond the balance.
    #[error("insufficient funds")]
    Insufficient,
}

/// An account: open or closed, and its balance.
#[derive(Debug, Default, Aggregate)]
#[foldline(id = String, command = AccountCommand, event = BankEvent, error = AccountError)]
pub struct Account {
    /// Whether it takes commands other than opening and closing.
    pub open: bool,
    /// In cents.
    pub balance: u64,
}

impl Account {
    fn handle(&self, command: &AccountCommand) -> Result<Vec<BankEvent>, AccountError> {
        Ok(match command.clone() {
            AccountCommand::Open { account } => vec![BankEvent::Opened { account }],
            AccountCommand::Close { account } => vec![BankEvent::Closed { account }],
            _ if !self.open => return Err(AccountError::Closed),
            AccountCommand::Withdraw { cents, .. } if cents > self.balance => {
                return Err(AccountError::Insufficient);
            }
            AccountCommand::Withdraw {
                account,
                cents,
                transfer,
            } => vec![BankEvent::Withdrawn {
                account,
                cents,
                transfer,
            }],
            AccountCommand::Deposit {
                account,
                cents,
                transfer,
            } => vec![BankEvent::Deposited {
                account,
                cents,
                transfer,
            }],
            AccountCommand::RequestTransfer {
                account,
                transfer,
                to,
                cents,
            } => vec![BankEvent::TransferRequested {
                transfer,
                from: account,
                to,
                cents,
            }],
        })
    }

    fn apply(&mut self, event: &BankEvent) {
        match event {
            BankEvent::Opened { .. } => self.open = true,
            BankEvent::Closed { .. } => self.open = false,
            BankEvent::Withdrawn { cents, .. } => self.balance -= cents,
            BankEvent::Deposited { cents, .. } => self.balance += cents,
            BankEvent::TransferRequested { .. } => {}
        }
    }
}

/// Sends a process manager's commands to the accounts through a real executor.
#[derive(Clone, Debug)]
pub struct Bank<S: EventStore + Clone> {
    /// The executor the commands go through.
    pub executor: CommandExecutor<S>,
}

impl<S: EventStore + Clone> CommandDispatcher<AccountCommand> for Bank<S> {
    async fn dispatch(
        &self,
        command: &AccountCommand,
        options: CommandOptions,
    ) -> foldline::Result<Dispatched> {
        Dispatched::from_result(
            self.executor
                .execute_with::<Account>(command.clone(), options)
                .await,
        )
    }
}

/// The balance of `account`, in cents.
///
/// # Panics
///
/// When the account cannot be loaded.
pub async fn balance<S: EventStore + Clone>(executor: &CommandExecutor<S>, account: &str) -> u64 {
    executor
        .load::<Account>(&account.to_owned())
        .await
        .expect("loading")
        .state
        .balance
}

/// Opens accounts `a` (with 100 cents), `b` (empty) and `c` (closed again): what the transfer
/// tests start from.
///
/// # Errors
///
/// When a command fails.
pub async fn open_accounts<S: EventStore + Clone>(
    executor: &CommandExecutor<S>,
) -> Result<(), foldline::CommandError<AccountError>> {
    for account in ["a", "b", "c"] {
        let account = account.to_owned();
        executor
            .execute::<Account>(AccountCommand::Open { account })
            .await?;
    }
    executor
        .execute::<Account>(AccountCommand::Deposit {
            account: "a".into(),
            cents: 100,
            transfer: None,
        })
        .await?;
    executor
        .execute::<Account>(AccountCommand::Close {
            account: "c".into(),
        })
        .await?;
    Ok(())
}
