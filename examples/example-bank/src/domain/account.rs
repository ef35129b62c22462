//! The `Account` aggregate: its commands, events, errors, and what it keeps of the transfers
//! out of it.

use std::collections::BTreeMap;

use foldline::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

use super::{AccountId, Cents, TransferRef, dollars};

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
    /// The account was closed: it takes no more deposits, withdrawals or transfer requests.
    Closed,
    /// The owner asked for a transfer out of this account; the `transfer` process carries it
    /// out.
    TransferRequested {
        /// The transfer.
        transfer: TransferRef,
        /// This account, which pays.
        from: AccountId,
        /// The account paid.
        to: AccountId,
        /// How much.
        cents: u64,
        /// Whether an officer must approve it before the money moves: it is above
        /// [`Account::APPROVAL_LIMIT`]. Recorded with the request, so the limit in force when
        /// it was made is the one that applies to it.
        needs_approval: bool,
    },
    /// An officer approved a transfer that needed it.
    TransferApproved {
        /// The transfer's id.
        transfer: String,
    },
    /// A transfer undone after its withdrawal: the money came back.
    TransferRefunded {
        /// How much came back: what the transfer withdrew.
        cents: u64,
        /// The transfer.
        transfer: TransferRef,
    },
    /// A transfer undone before anything was withdrawn for it: a withdrawal for it is refused
    /// from now on.
    TransferCancelled {
        /// The transfer.
        transfer: TransferRef,
    },
}

impl AccountEvent {
    /// The id of the transfer this event is part of, if any.
    pub fn transfer_id(&self) -> Option<&str> {
        match self {
            AccountEvent::Deposited {
                transfer: Some(transfer),
                ..
            }
            | AccountEvent::Withdrawn {
                transfer: Some(transfer),
                ..
            }
            | AccountEvent::TransferRequested { transfer, .. }
            | AccountEvent::TransferRefunded { transfer, .. }
            | AccountEvent::TransferCancelled { transfer } => Some(&transfer.id),
            AccountEvent::TransferApproved { transfer } => Some(transfer),
            AccountEvent::Opened { .. }
            | AccountEvent::Deposited { transfer: None, .. }
            | AccountEvent::Withdrawn { transfer: None, .. }
            | AccountEvent::Closed => None,
        }
    }
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

/// What an account can be asked to do. Serde, so that the `transfer` process can record the
/// commands it sends in its instances' streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Command)]
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
    /// Take money out; refused if the balance does not cover it, or if it is the leg of a
    /// transfer cancelled here. A second withdrawal for the same transfer does nothing.
    Withdraw {
        /// The account.
        #[foldline(id)]
        account: AccountId,
        /// How much; must not be zero.
        cents: u64,
        /// The transfer this is the outgoing leg of, if any.
        transfer: Option<TransferRef>,
    },
    /// Close the account, for good.
    Close {
        /// The account.
        #[foldline(id)]
        account: AccountId,
    },
    /// Ask for a transfer out of the account (recorded here; the `transfer` process moves the
    /// money).
    RequestTransfer {
        /// The account paying.
        #[foldline(id)]
        account: AccountId,
        /// The transfer; its id must be new to this account.
        transfer: TransferRef,
        /// The account paid.
        to: AccountId,
        /// How much; must not be zero.
        cents: u64,
    },
    /// Approve a transfer requested from the account; refused once it is cancelled.
    ApproveTransfer {
        /// The account paying.
        #[foldline(id)]
        account: AccountId,
        /// The transfer's id.
        transfer: String,
    },
    /// Undo a transfer out of the account, deciding from what the account did for it: refund
    /// it if its money was withdrawn (once), cancel it otherwise so that its withdrawal is
    /// refused if it comes later. Never refused, not even on a closed account: it is how the
    /// `transfer` process compensates, whatever raced it.
    CancelTransfer {
        /// The account paying.
        #[foldline(id)]
        account: AccountId,
        /// The transfer.
        transfer: TransferRef,
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

    /// Close `account`.
    pub fn close(account: &AccountId) -> Self {
        AccountCommand::Close {
            account: account.clone(),
        }
    }

    /// Ask `from` to transfer `cents` to `to`.
    pub fn request_transfer(
        from: &AccountId,
        transfer: TransferRef,
        to: &AccountId,
        cents: u64,
    ) -> Self {
        AccountCommand::RequestTransfer {
            account: from.clone(),
            transfer,
            to: to.clone(),
            cents,
        }
    }

    /// Approve transfer `transfer` out of `account`.
    pub fn approve_transfer(account: &AccountId, transfer: &str) -> Self {
        AccountCommand::ApproveTransfer {
            account: account.clone(),
            transfer: transfer.to_owned(),
        }
    }
}

/// Why an account refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// `Open` on an account that was opened already.
    #[error("the account is already open")]
    AlreadyOpen,
    /// A command other than `Open` on an account that was never opened.
    #[error("the account is not open")]
    NotOpen,
    /// A command other than `CancelTransfer` on a closed account.
    #[error("the account is closed")]
    Closed,
    /// A deposit, withdrawal or transfer of nothing.
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
    /// A transfer to the account it comes from.
    #[error("a transfer must go to another account")]
    SameAccount,
    /// A transfer request whose id the account knows already.
    #[error("transfer {transfer} was requested already")]
    DuplicateTransfer {
        /// The transfer's id.
        transfer: String,
    },
    /// An approval of a transfer never requested from the account.
    #[error("no transfer {transfer} was requested from this account")]
    UnknownTransfer {
        /// The transfer's id.
        transfer: String,
    },
    /// A withdrawal or approval for a transfer that was cancelled or refunded.
    #[error("transfer {transfer} was cancelled")]
    TransferCancelled {
        /// The transfer's id.
        transfer: String,
    },
}

/// How far a transfer out of an account got, as the account keeps it: the "semantic lock" that
/// makes undoing the transfer safe whatever is still in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutgoingTransfer {
    /// Requested, nothing withdrawn yet.
    Requested,
    /// Approved, nothing withdrawn yet.
    Approved,
    /// Its money was withdrawn.
    Withdrawn {
        /// How much.
        cents: u64,
    },
    /// Its money was withdrawn, then refunded.
    Refunded,
    /// Cancelled before anything was withdrawn: its withdrawal is refused.
    Cancelled,
}

/// A bank account: decides on [`AccountCommand`]s, folds [`AccountEvent`]s.
///
/// Its stream is `account-<id>`; a snapshot of its state is saved every 5 events, so loading a
/// long-lived account reads the latest snapshot and at most 4 events after it. Snapshot
/// version 2: version 1 had neither `closed` nor the transfers out, and is ignored (the
/// account is then loaded from its events).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[foldline(
    id = AccountId,
    command = AccountCommand,
    event = AccountEvent,
    error = AccountError,
    snapshot(every = 5, version = 2)
)]
pub struct Account {
    owner: Option<String>,
    closed: bool,
    balance: u64,
    /// Every transfer out of the account, by id. Kept for good: a withdrawal for a cancelled
    /// transfer must be refused however late it comes.
    transfers_out: BTreeMap<String, OutgoingTransfer>,
}

impl Account {
    /// Transfers above this amount need an officer's approval: $500.00.
    pub const APPROVAL_LIMIT: u64 = dollars(500);

    /// Who owns the account (`None` until it is opened).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Whether the account is open: opened, and not closed since.
    pub fn is_open(&self) -> bool {
        self.owner.is_some() && !self.closed
    }

    /// Whether the account was closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The balance in cents.
    pub fn balance(&self) -> u64 {
        self.balance
    }

    /// How far transfer `id` out of this account got; `None` for a transfer it never heard of.
    pub fn transfer_out(&self, id: &str) -> Option<OutgoingTransfer> {
        self.transfers_out.get(id).copied()
    }

    /// Decides which events `command` causes, or why it is refused.
    ///
    /// # Errors
    ///
    /// [`AccountError`] when the account refuses the command; nothing is recorded then.
    pub fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            // Before every other rule: undoing a transfer is never refused.
            AccountCommand::CancelTransfer { transfer, .. } => Ok(self.cancel_transfer(transfer)),
            AccountCommand::Open { .. } if self.owner.is_some() => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            _ if self.closed => Err(AccountError::Closed),
            _ if !self.is_open() => Err(AccountError::NotOpen),
            AccountCommand::Close { .. } => Ok(vec![AccountEvent::Closed]),
            AccountCommand::Deposit { cents: 0, .. }
            | AccountCommand::Withdraw { cents: 0, .. }
            | AccountCommand::RequestTransfer { cents: 0, .. } => Err(AccountError::ZeroAmount),
            AccountCommand::Deposit {
                cents, transfer, ..
            } => Ok(vec![AccountEvent::Deposited {
                cents: *cents,
                transfer: transfer.clone(),
            }]),
            AccountCommand::Withdraw {
                cents, transfer, ..
            } => self.withdraw(*cents, transfer.as_ref()),
            AccountCommand::RequestTransfer {
                account,
                transfer,
                to,
                cents,
            } => self.request_transfer(account, transfer, to, *cents),
            AccountCommand::ApproveTransfer { transfer, .. } => self.approve_transfer(transfer),
        }
    }

    fn withdraw(
        &self,
        cents: u64,
        transfer: Option<&TransferRef>,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if let Some(transfer) = transfer {
            match self.transfer_out(&transfer.id) {
                Some(OutgoingTransfer::Cancelled) => {
                    return Err(AccountError::TransferCancelled {
                        transfer: transfer.id.clone(),
                    });
                }
                // A transfer takes its money once (and a refunded one never again).
                Some(OutgoingTransfer::Withdrawn { .. } | OutgoingTransfer::Refunded) => {
                    return Ok(Vec::new());
                }
                Some(OutgoingTransfer::Requested | OutgoingTransfer::Approved) | None => {}
            }
        }
        if cents > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: cents,
            });
        }
        Ok(vec![AccountEvent::Withdrawn {
            cents,
            transfer: transfer.cloned(),
        }])
    }

    fn request_transfer(
        &self,
        account: &AccountId,
        transfer: &TransferRef,
        to: &AccountId,
        cents: u64,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if to == account {
            return Err(AccountError::SameAccount);
        }
        if self.transfers_out.contains_key(&transfer.id) {
            return Err(AccountError::DuplicateTransfer {
                transfer: transfer.id.clone(),
            });
        }
        Ok(vec![AccountEvent::TransferRequested {
            transfer: transfer.clone(),
            from: account.clone(),
            to: to.clone(),
            cents,
            needs_approval: cents > Self::APPROVAL_LIMIT,
        }])
    }

    fn approve_transfer(&self, transfer: &str) -> Result<Vec<AccountEvent>, AccountError> {
        match self.transfer_out(transfer) {
            None => Err(AccountError::UnknownTransfer {
                transfer: transfer.to_owned(),
            }),
            Some(OutgoingTransfer::Cancelled | OutgoingTransfer::Refunded) => {
                Err(AccountError::TransferCancelled {
                    transfer: transfer.to_owned(),
                })
            }
            Some(OutgoingTransfer::Requested) => Ok(vec![AccountEvent::TransferApproved {
                transfer: transfer.to_owned(),
            }]),
            // Approved already, or under way.
            Some(OutgoingTransfer::Approved | OutgoingTransfer::Withdrawn { .. }) => Ok(Vec::new()),
        }
    }

    /// The semantic lock: a refund if the transfer's money was withdrawn here (and not yet
    /// refunded), a cancellation if it was not (so its withdrawal, still in flight or sent
    /// again after a crash, is refused), nothing if it was undone already.
    fn cancel_transfer(&self, transfer: &TransferRef) -> Vec<AccountEvent> {
        match self.transfer_out(&transfer.id) {
            Some(OutgoingTransfer::Withdrawn { cents }) => vec![AccountEvent::TransferRefunded {
                cents,
                transfer: transfer.clone(),
            }],
            Some(OutgoingTransfer::Refunded | OutgoingTransfer::Cancelled) => Vec::new(),
            Some(OutgoingTransfer::Requested | OutgoingTransfer::Approved) | None => {
                vec![AccountEvent::TransferCancelled {
                    transfer: transfer.clone(),
                }]
            }
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { cents, .. } => self.balance += cents,
            AccountEvent::Withdrawn { cents, transfer } => {
                // `handle` never withdraws more than the balance, so this cannot go below zero.
                self.balance = self.balance.saturating_sub(*cents);
                if let Some(transfer) = transfer {
                    let withdrawn = OutgoingTransfer::Withdrawn { cents: *cents };
                    self.transfers_out.insert(transfer.id.clone(), withdrawn);
                }
            }
            AccountEvent::Closed => self.closed = true,
            AccountEvent::TransferRequested { transfer, .. } => {
                let requested = OutgoingTransfer::Requested;
                self.transfers_out.insert(transfer.id.clone(), requested);
            }
            AccountEvent::TransferApproved { transfer } => {
                let approved = OutgoingTransfer::Approved;
                self.transfers_out.insert(transfer.clone(), approved);
            }
            AccountEvent::TransferRefunded { cents, transfer } => {
                self.balance += cents;
                let refunded = OutgoingTransfer::Refunded;
                self.transfers_out.insert(transfer.id.clone(), refunded);
            }
            AccountEvent::TransferCancelled { transfer } => {
                let cancelled = OutgoingTransfer::Cancelled;
                self.transfers_out.insert(transfer.id.clone(), cancelled);
            }
        }
    }
}
