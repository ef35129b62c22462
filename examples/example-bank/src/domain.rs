//! The bank's domain: an `Account` aggregate, its commands, events and errors.
//!
//! A transfer is not an aggregate of its own: it is two commands on two accounts (a withdrawal
//! and a deposit) that carry the same [`TransferRef`], so either account's history says where
//! the money went or came from. A process that runs both legs would give each its own
//! idempotency key, so a redelivered leg is applied once.

use std::fmt;

use foldline::{Aggregate, Command, DomainEvent, StreamId};
use serde::{Deserialize, Serialize};

/// An amount of money in cents, displayed as dollars (`$12.34`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(pub u64);

impl fmt::Display for Cents {
    /// `$1,234.56`; honours width and alignment (`{:>10}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = (self.0 / 100).to_string();
        let mut text = String::from("$");
        for (i, digit) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                text.push(',');
            }
            text.push(digit);
        }
        f.pad(&format!("{text}.{:02}", self.0 % 100))
    }
}

/// `amount` whole dollars, in cents.
pub const fn dollars(amount: u64) -> u64 {
    amount * 100
}

/// Which account: rendered into the stream id `account-<id>`, so it is limited to ASCII
/// letters, digits and `-_.:@/+=#` (checked when a command runs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// The account `id`.
    pub fn new(id: impl Into<String>) -> Self {
        AccountId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account whose stream is `stream` (`account-<id>`); `None` for other streams.
    pub fn from_stream(stream: &StreamId) -> Option<Self> {
        let id = stream
            .as_str()
            .strip_prefix(Account::NAME)?
            .strip_prefix('-')?;
        Some(AccountId::new(id))
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// The transfer a deposit or withdrawal is one leg of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRef {
    /// The transfer's id, the same on both legs.
    pub id: String,
    /// What the transfer is for, as the sender wrote it.
    pub memo: String,
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
pub enum AccountEvent {
    /// The account was opened.
    Opened {
        /// Who owns it.
        owner: String,
    },
    /// Money came in. Schema version 2 added `transfer`; version 1 payloads are upcast from
    /// [`DepositedV1`] when read.
    #[foldline(version = 2, upcast(v1 = DepositedV1))]
    Deposited {
        /// How much.
        cents: u64,
        /// The transfer this deposit is the incoming leg of, if any.
        transfer: Option<TransferRef>,
    },
    /// Money went out.
    Withdrawn {
        /// How much.
        cents: u64,
        /// The transfer this withdrawal is the outgoing leg of, if any.
        transfer: Option<TransferRef>,
    },
}

/// How `Deposited` looked before transfers existed (schema version 1).
#[derive(Debug, Deserialize)]
pub struct DepositedV1 {
    /// How much.
    pub cents: u64,
}

impl From<DepositedV1> for AccountEvent {
    fn from(old: DepositedV1) -> Self {
        AccountEvent::Deposited {
            cents: old.cents,
            transfer: None,
        }
    }
}

/// What an account can be asked to do.
#[derive(Debug, Clone, Command)]
pub enum AccountCommand {
    /// Open a new account.
    Open {
        /// The account to open.
        #[foldline(id)]
        account: AccountId,
        /// Who owns it.
        owner: String,
    },
    /// Put money in.
    Deposit {
        /// The account.
        #[foldline(id)]
        account: AccountId,
        /// How much; must not be zero.
        cents: u64,
        /// The transfer this is the incoming leg of, if any.
        transfer: Option<TransferRef>,
    },
    /// Take money out; refused if the balance does not cover it.
    Withdraw {
        /// The account.
        #[foldline(id)]
        account: AccountId,
        /// How much; must not be zero.
        cents: u64,
        /// The transfer this is the outgoing leg of, if any.
        transfer: Option<TransferRef>,
    },
}

impl AccountCommand {
    /// Open `account` for `owner`.
    pub fn open(account: &AccountId, owner: &str) -> Self {
        AccountCommand::Open {
            account: account.clone(),
            owner: owner.to_owned(),
        }
    }

    /// Deposit `cents` into `account` (not part of a transfer).
    pub fn deposit(account: &AccountId, cents: u64) -> Self {
        AccountCommand::Deposit {
            account: account.clone(),
            cents,
            transfer: None,
        }
    }

    /// Withdraw `cents` from `account` (not part of a transfer).
    pub fn withdraw(account: &AccountId, cents: u64) -> Self {
        AccountCommand::Withdraw {
            account: account.clone(),
            cents,
            transfer: None,
        }
    }
}

/// A transfer between two accounts, run as two commands that share its [`TransferRef`].
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The transfer's id and memo, carried by both legs.
    pub reference: TransferRef,
    /// The account paying.
    pub from: AccountId,
    /// The account paid.
    pub to: AccountId,
    /// How much.
    pub cents: u64,
}

impl Transfer {
    /// The first leg: withdraw from [`from`](Transfer::from).
    pub fn withdraw_leg(&self) -> AccountCommand {
        AccountCommand::Withdraw {
            account: self.from.clone(),
            cents: self.cents,
            transfer: Some(self.reference.clone()),
        }
    }

    /// The second leg: deposit into [`to`](Transfer::to).
    pub fn deposit_leg(&self) -> AccountCommand {
        AccountCommand::Deposit {
            account: self.to.clone(),
            cents: self.cents,
            transfer: Some(self.reference.clone()),
        }
    }
}

/// Why an account refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// `Open` on an account that is already open.
    #[error("the account is already open")]
    AlreadyOpen,
    /// A deposit or withdrawal on an account that was never opened.
    #[error("the account is not open")]
    NotOpen,
    /// A deposit or withdrawal of nothing.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// A withdrawal larger than the balance.
    #[error("insufficient funds: the balance is {}, the withdrawal {}", Cents(*balance), Cents(*requested))]
    InsufficientFunds {
        /// The balance when the withdrawal was decided.
        balance: u64,
        /// The amount asked for.
        requested: u64,
    },
}

/// A bank account: decides on [`AccountCommand`]s, folds [`AccountEvent`]s.
///
/// Its stream is `account-<id>`; a snapshot of its state is saved every 5 events, so loading a
/// long-lived account reads the latest snapshot and at most 4 events after it.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[foldline(
    id = AccountId,
    command = AccountCommand,
    event = AccountEvent,
    error = AccountError,
    snapshot(every = 5)
)]
pub struct Account {
    owner: Option<String>,
    balance: u64,
}

impl Account {
    /// Who owns the account (`None` until it is opened).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Whether the account has been opened.
    pub fn is_open(&self) -> bool {
        self.owner.is_some()
    }

    /// The balance in cents.
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// Decides which events `command` causes, or why it is refused.
    ///
    /// # Errors
    ///
    /// [`AccountError`] when the account refuses the command; nothing is recorded then.
    pub fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.is_open() => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if !self.is_open() => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents: 0, .. }
            | AccountCommand::Withdraw { cents: 0, .. } => Err(AccountError::ZeroAmount),
            AccountCommand::Deposit {
                cents, transfer, ..
            } => Ok(vec![AccountEvent::Deposited {
                cents: *cents,
                transfer: transfer.clone(),
            }]),
            AccountCommand::Withdraw { cents, .. } if *cents > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: *cents,
                })
            }
            AccountCommand::Withdraw {
                cents, transfer, ..
            } => Ok(vec![AccountEvent::Withdrawn {
                cents: *cents,
                transfer: transfer.clone(),
            }]),
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents, .. } => self.balance += cents,
            // `handle` never withdraws more than the balance, so this cannot go below zero.
            AccountEvent::Withdrawn { cents, .. } => {
                self.balance = self.balance.saturating_sub(*cents)
            }
        }
    }
}
