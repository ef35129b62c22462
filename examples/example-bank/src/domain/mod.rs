//! The bank's domain: amounts, account ids, and the `Account` aggregate with its commands,
//! events and errors.
//!
//! A transfer is not an aggregate of its own: it is a process ([`crate::transfer`]) that asks
//! two accounts, one after the other, to do their part, each command carrying the transfer's
//! [`TransferRef`] so either account's history says where the money went or came from. The
//! paying account keeps what it did for each transfer out of it ([`OutgoingTransfer`]): that
//! record is what makes undoing a transfer safe ([`AccountCommand::CancelTransfer`]).

mod account;

use std::fmt;

use foldline::{Aggregate, StreamId};
use serde::{Deserialize, Serialize};

pub use account::{
    Account, AccountCommand, AccountError, AccountEvent, DepositedV1, OutgoingTransfer,
};

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
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

/// The transfer a deposit, withdrawal, refund or cancellation is part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRef {
    /// The transfer's id, the same on every account it touches; it names the transfer's
    /// process instance too (stream `transfer-<id>`).
    pub id: String,
    /// What the transfer is for, as the sender wrote it.
    pub memo: String,
}

impl TransferRef {
    /// Transfer `id`, for `memo`.
    pub fn new(id: impl Into<String>, memo: impl Into<String>) -> Self {
        TransferRef {
            id: id.into(),
            memo: memo.into(),
        }
    }
}
