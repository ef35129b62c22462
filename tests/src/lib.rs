//! Shared pieces of foldline's integration tests: a small bank domain written with the
//! derives, the way an application would write it.
//!
//! [`AccountEvent::Deposited`] is at schema version 3 and has an upcaster chain for the two
//! shapes older releases wrote (`tests/fixtures/upcasting/` holds such payloads):
//!
//! | version | payload                                   |
//! |---------|-------------------------------------------|
//! | 1       | `{"amount": 12}` — whole dollars          |
//! | 2       | `{"cents": 1250, "note": "rent"}` — `""` meant no note |
//! | 3       | `{"cents": 1250, "memo": "rent"}` — `memo` optional |
//!
//! [`pg`] opens PostgreSQL for the tests: a fresh schema per test, raw connections for raw SQL.
//! [`pg_server`] runs a private PostgreSQL server, for settings the shared one lacks.
//! [`keyed`] writes and reads back events carrying their idempotency keys, for the
//! exactly-once tests. [`tally`] is a projection that counts, so doubled or lost effects show as wrong totals.

pub mod bank;
pub mod cli;
pub mod keyed;
pub mod pg;
pub mod pg_server;
pub mod redis;
pub mod redis_server;
pub mod tally;
pub mod tantivy;
pub mod transfers;

use foldline::{Aggregate, Command, DomainEvent, StoreIdentity};
use serde::{Deserialize, Serialize};

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
pub enum AccountEvent {
    /// The account was opened.
    Opened {
        /// Who owns it.
        owner: String,
    },
    /// Money came in. Stored as `account.deposited`, schema version 3; versions 1 and 2 are
    /// upcast through [`DepositedV1`] and [`DepositedV2`].
    #[foldline(
        rename = "account.deposited",
        version = 3,
        upcast(v1 = DepositedV1, v2 = DepositedV2)
    )]
    Deposited {
        /// How much, in cents.
        cents: u64,
        /// What it was for.
        memo: Option<String>,
    },
    /// Money went out.
    Withdrawn {
        /// How much, in cents.
        cents: u64,
    },
    /// The account was frozen: it accepts no more deposits or withdrawals.
    Frozen,
}

/// `Deposited` at schema version 1: whole dollars.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepositedV1 {
    /// How much, in dollars.
    pub amount: u64,
}

/// `Deposited` at schema version 2: cents, and a note that was empty when there was none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DepositedV2 {
    /// How much, in cents.
    pub cents: u64,
    /// What it was for; `""` for nothing.
    pub note: String,
}

impl From<DepositedV1> for DepositedV2 {
    fn from(v1: DepositedV1) -> Self {
        DepositedV2 {
            cents: v1.amount * 100,
            note: String::new(),
        }
    }
}

impl From<DepositedV2> for AccountEvent {
    fn from(v2: DepositedV2) -> Self {
        AccountEvent::Deposited {
            cents: v2.cents,
            memo: Some(v2.note).filter(|note| !note.is_empty()),
        }
    }
}

/// What an account can be asked to do.
#[derive(Debug, Clone, Command)]
pub enum AccountCommand {
    /// Open the account.
    Open {
        /// Which account.
        #[foldline(id)]
        account: String,
        /// Who owns it.
        owner: String,
    },
    /// Put money in.
    Deposit {
        /// Which account.
        #[foldline(id)]
        account: String,
        /// How much, in cents.
        cents: u64,
    },
    /// Take money out.
    Withdraw {
        /// Which account.
        #[foldline(id)]
        account: String,
        /// How much, in cents.
        cents: u64,
    },
    /// Stop all movements.
    Freeze {
        /// Which account.
        #[foldline(id)]
        account: String,
    },
}

impl AccountCommand {
    /// Open `account` for `owner`.
    pub fn open(account: &str, owner: &str) -> Self {
        AccountCommand::Open {
            account: account.into(),
            owner: owner.into(),
        }
    }

    /// Deposit `cents` into `account`.
    pub fn deposit(account: &str, cents: u64) -> Self {
        AccountCommand::Deposit {
            account: account.into(),
            cents,
        }
    }

    /// Withdraw `cents` from `account`.
    pub fn withdraw(account: &str, cents: u64) -> Self {
        AccountCommand::Withdraw {
            account: account.into(),
            cents,
        }
    }

    /// Freeze `account`.
    pub fn freeze(account: &str) -> Self {
        AccountCommand::Freeze {
            account: account.into(),
        }
    }
}

/// Why an account refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// `Open` on an open account.
    #[error("the account is already open")]
    AlreadyOpen,
    /// A movement on an account never opened.
    #[error("the account is not open")]
    NotOpen,
    /// A movement on a frozen account.
    #[error("the account is frozen")]
    Frozen,
    /// A deposit or withdrawal of nothing.
    #[error("the amount must be more than zero")]
    ZeroAmount,
    /// A withdrawal over the balance.
    #[error("insufficient funds: balance {balance}, requested {requested}")]
    InsufficientFunds {
        /// The balance, in cents.
        balance: u64,
        /// The withdrawal, in cents.
        requested: u64,
    },
}

/// A bank account. Snapshots every [`SNAPSHOT_EVERY`] events, snapshot schema version 1.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[foldline(
    id = String,
    command = AccountCommand,
    event = AccountEvent,
    error = AccountError,
    snapshot(every = 10, version = 1)
)]
pub struct Account {
    /// Who owns it, once open.
    pub owner: Option<String>,
    /// The balance in cents.
    pub balance: u64,
    /// Whether it is frozen.
    pub frozen: bool,
    /// How many deposits it received.
    pub deposits: u64,
}

/// How often [`Account`] is snapshotted.
pub const SNAPSHOT_EVERY: u64 = 10;

impl Account {
    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.owner.is_some() => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if self.owner.is_none() => Err(AccountError::NotOpen),
            _ if self.frozen => Err(AccountError::Frozen),
            AccountCommand::Deposit { cents: 0, .. }
            | AccountCommand::Withdraw { cents: 0, .. } => Err(AccountError::ZeroAmount),
            AccountCommand::Deposit { cents, .. } => Ok(vec![AccountEvent::Deposited {
                cents: *cents,
                memo: None,
            }]),
            AccountCommand::Withdraw { cents, .. } if *cents > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: *cents,
                })
            }
            AccountCommand::Withdraw { cents, .. } => {
                Ok(vec![AccountEvent::Withdrawn { cents: *cents }])
            }
            AccountCommand::Freeze { .. } => Ok(vec![AccountEvent::Frozen]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents, .. } => {
                self.balance += cents;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { cents } => self.balance -= cents,
            AccountEvent::Frozen => self.frozen = true,
        }
    }
}

/// Waits (up to 10 s) until the live projector behind `handle` reports itself paused, after
/// an operator asked for it: from then on it applies nothing. A fixed sleep instead races a
/// loaded machine, where the projector may not have looked at its control flags yet.
pub async fn until_paused(handle: &foldline::ProjectorHandle) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while handle.progress().state != foldline::ProjectorState::Paused {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the projector did not pause within 10 s: {:?}",
            handle.progress().state
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The store identity the target tests build their slots from (they use no store).
pub fn test_store() -> StoreIdentity {
    StoreIdentity::new("foldline-tests")
}

#[cfg(test)]
mod tests {
    use foldline::testing::AggregateTest;

    use super::*;

    fn opened() -> AccountEvent {
        AccountEvent::Opened {
            owner: "ada".into(),
        }
    }

    #[test]
    fn opens_once() {
        AggregateTest::<Account>::given_no_events()
            .when(AccountCommand::open("a", "ada"))
            .then_expect([opened()]);
        AggregateTest::<Account>::given([opened()])
            .when(AccountCommand::open("a", "bob"))
            .then_expect_error(|e| *e == AccountError::AlreadyOpen);
    }

    #[test]
    fn deposits_and_withdraws() {
        let account = AggregateTest::<Account>::given([
            opened(),
            AccountEvent::Deposited {
                cents: 500,
                memo: None,
            },
        ])
        .when(AccountCommand::withdraw("a", 200))
        .then_expect([AccountEvent::Withdrawn { cents: 200 }]);
        assert_eq!(account.balance, 300);

        AggregateTest::<Account>::given([opened()])
            .when(AccountCommand::withdraw("a", 1))
            .then_expect_error_message("insufficient funds: balance 0, requested 1");
        AggregateTest::<Account>::given([opened()])
            .when(AccountCommand::deposit("a", 0))
            .then_expect_error(|e| *e == AccountError::ZeroAmount);
    }

    #[test]
    fn refuses_movements_unless_open_and_not_frozen() {
        AggregateTest::<Account>::given_no_events()
            .when(AccountCommand::deposit("a", 1))
            .then_expect_error(|e| *e == AccountError::NotOpen);
        AggregateTest::<Account>::given([opened(), AccountEvent::Frozen])
            .when(AccountCommand::deposit("a", 1))
            .then_expect_error(|e| *e == AccountError::Frozen);
    }
}
