//! Transfers as a process manager: request → withdraw from the source → deposit into the
//! target → completed; a refused step or no progress in time → undo at the source → failed.
//!
//! [`Transfer`] is the state of one transfer's process; its decisions are one table
//! (`Transfer::step`, which both `decide` and `evolve` read). What makes it safe when things
//! race or crash:
//!
//! - **The deposit waits for the withdrawal.** It is decided only once the source's
//!   `Withdrawn` is seen, by the decision that also cancels the timeout: after it, no timeout
//!   can undo the transfer while its deposit may still land.
//! - **Undoing is the source's decision, not the process's.** Every way to fail sends the
//!   same [`AccountCommand::CancelTransfer`] to the source account, which decides from what it
//!   did for the transfer ([`OutgoingTransfer`](crate::domain::OutgoingTransfer)): a refund
//!   (once) if the money was withdrawn, a cancellation if not, which refuses the withdrawal if
//!   it arrives later. A timeout that fires while the withdrawal is in flight therefore costs
//!   nothing: whichever of the two the account sees first, the money ends where it started.
//! - **The process fails only on the source's answer** (`TransferRefunded` or
//!   `TransferCancelled`), so a failed transfer has its money back already; a withdrawal seen
//!   while undoing is undone again (the source refunds once).
//! - **Nothing happens twice.** Each decision is recorded in the instance's stream
//!   (`transfer-<id>`) before its commands are sent, each command carries an idempotency key
//!   derived from the decision, and an account takes a transfer's money once and refunds it
//!   once, whatever it is asked. [`AccountDispatcher`] never sends again a deposit whose
//!   refusal the transfer acted on (it refunded the source), however often its decision is
//!   carried out again.
//!
//! The process runs on the projector runtime: [`ProcessProjection`](foldline::ProcessProjection)
//! reads the account events, a [`ProcessTarget`](foldline::ProcessTarget) decides and carries
//! them out, and [`ProcessRunner::run_timers`](foldline::ProcessRunner::run_timers) fires the
//! timeouts. [`TransferHistory`] reads one transfer back from its stream, step by step.

mod dispatch;
mod history;

use std::fmt;
use std::time::Duration;

use foldline::{Action, Envelope, Input};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountCommand, AccountEvent, AccountId, Cents, TransferRef};

pub use dispatch::AccountDispatcher;
pub use history::{Step, TransferHistory};

/// How long a transfer that needs an officer's approval waits for it before it is undone.
/// One second, so the story's run stays short; a bank would wait days.
pub const APPROVAL_WINDOW: Duration = Duration::from_secs(1);

/// How long a transfer waits for its withdrawal before it is undone.
pub const WITHDRAWAL_WINDOW: Duration = Duration::from_secs(30);

/// What wakes a transfer up when nothing happened in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferTimeout {
    /// No approval within [`APPROVAL_WINDOW`].
    Approval,
    /// No withdrawal within [`WITHDRAWAL_WINDOW`].
    Withdrawal,
}

/// The transfer asked for, as its `TransferRequested` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its id and memo.
    pub transfer: TransferRef,
    /// The account paying.
    pub from: AccountId,
    /// The account paid.
    pub to: AccountId,
    /// How much.
    pub cents: u64,
}

/// Where a transfer is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not requested yet.
    #[default]
    New,
    /// Waiting for an officer's approval.
    AwaitingApproval,
    /// The withdrawal is sent; waiting to see it.
    Withdrawing,
    /// The withdrawal is seen and the deposit sent; waiting to see it.
    Depositing,
    /// The source was asked to undo the transfer; waiting for its refund or cancellation.
    Undoing(Undo),
    /// The deposit is seen.
    Completed,
    /// Undone, for this reason.
    Failed(Undo),
}

/// Why a transfer was undone.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Undo {
    /// No approval came within [`APPROVAL_WINDOW`].
    NoApproval,
    /// No withdrawal was seen within [`WITHDRAWAL_WINDOW`].
    NotWithdrawn,
    /// The source refused the withdrawal, for this reason.
    WithdrawalRefused(String),
    /// The target refused the deposit, for this reason.
    DepositRefused(String),
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::NoApproval => write!(f, "no approval within {APPROVAL_WINDOW:?}"),
            Undo::NotWithdrawn => write!(f, "no withdrawal within {WITHDRAWAL_WINDOW:?}"),
            Undo::WithdrawalRefused(error) => write!(f, "the withdrawal was refused ({error})"),
            Undo::DepositRefused(error) => write!(f, "the deposit was refused ({error})"),
        }
    }
}

/// One transfer's process: what was asked, and where it is.
#[derive(Debug, Default, foldline::ProcessManager)]
#[foldline(
    name = "transfer",
    id = String,
    event = AccountEvent,
    command = AccountCommand,
    timeout = TransferTimeout
)]
pub struct Transfer {
    request: Option<Request>,
    phase: Phase,
}

impl Transfer {
    /// What was asked (`None` before the request is seen).
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// Where the transfer is.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The reason the target gave for refusing the deposit, once the transfer acted on it.
    pub fn deposit_refusal(&self) -> Option<&str> {
        match &self.phase {
            Phase::Undoing(Undo::DepositRefused(error))
            | Phase::Failed(Undo::DepositRefused(error)) => Some(error),
            _ => None,
        }
    }

    /// The transfer an account event is part of: every event that carries a transfer id.
    fn correlate(event: &Envelope<'_, AccountEvent>) -> Option<String> {
        event.event.transfer_id().map(str::to_owned)
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        self.step(input)
            .map(|(_, actions)| actions)
            .unwrap_or_default()
    }

    /// Moves to the phase [`step`](Self::step) decides, and keeps the request. The table reads
    /// nothing but the phase and the input (the approval a request needs is recorded with
    /// it), so replaying an instance's stream rebuilds the phases its decisions were made in.
    fn evolve(&mut self, input: &Input<Self>) {
        if let Some((phase, _)) = self.step(input) {
            self.phase = phase;
        }
        if let (
            None,
            Input::Event(AccountEvent::TransferRequested {
                transfer,
                from,
                to,
                cents,
                ..
            }),
        ) = (&self.request, input)
        {
            self.request = Some(Request {
                transfer: transfer.clone(),
                from: from.clone(),
                to: to.clone(),
                cents: *cents,
            });
        }
    }

    /// The whole process, as one table: the phase `input` moves the transfer to and what to
    /// do about it, decided on the phase before it; `None` when the input changes nothing (a
    /// late event, a refusal of a withdrawal already being undone).
    fn step(&self, input: &Input<Self>) -> Option<(Phase, Vec<Action<Self>>)> {
        use AccountEvent as Event;
        use TransferTimeout::{Approval, Withdrawal};

        let request = self.request.as_ref();
        Some(match (&self.phase, input) {
            (
                Phase::New,
                Input::Event(Event::TransferRequested {
                    transfer,
                    from,
                    cents,
                    needs_approval,
                    ..
                }),
            ) => {
                if *needs_approval {
                    let wait = schedule(Approval, APPROVAL_WINDOW);
                    (Phase::AwaitingApproval, vec![wait])
                } else {
                    (Phase::Withdrawing, withdraw(from, transfer, *cents))
                }
            }
            (Phase::AwaitingApproval, Input::Event(Event::TransferApproved { .. })) => {
                let request = request?;
                let mut actions = vec![Action::Cancel(Approval)];
                actions.extend(withdraw(&request.from, &request.transfer, request.cents));
                (Phase::Withdrawing, actions)
            }
            // The decision that sends the deposit cancels the timeout: from here on, only the
            // target's answer moves the transfer.
            (Phase::Withdrawing, Input::Event(Event::Withdrawn { .. })) => {
                let request = request?;
                let deposit = AccountCommand::Deposit {
                    account: request.to.clone(),
                    cents: request.cents,
                    transfer: Some(request.transfer.clone()),
                };
                let actions = vec![Action::Cancel(Withdrawal), Action::Send(deposit)];
                (Phase::Depositing, actions)
            }
            (Phase::Depositing, Input::Event(Event::Deposited { .. })) => {
                (Phase::Completed, vec![Action::Complete])
            }
            (
                Phase::Withdrawing,
                Input::Refused {
                    command: AccountCommand::Withdraw { .. },
                    error,
                },
            ) => {
                let mut undo = self.undo(Undo::WithdrawalRefused(error.clone()))?;
                undo.1.insert(0, Action::Cancel(Withdrawal));
                undo
            }
            (
                Phase::Depositing,
                Input::Refused {
                    command: AccountCommand::Deposit { .. },
                    error,
                },
            ) => self.undo(Undo::DepositRefused(error.clone()))?,
            (Phase::AwaitingApproval, Input::Timeout(Approval)) => self.undo(Undo::NoApproval)?,
            (Phase::Withdrawing, Input::Timeout(Withdrawal)) => self.undo(Undo::NotWithdrawn)?,
            // The withdrawal was in flight when the transfer was undone, or was sent again
            // after a crash: ask again, the source refunds a transfer once.
            (Phase::Undoing(undo), Input::Event(Event::Withdrawn { .. })) => {
                self.undo(undo.clone())?
            }
            (Phase::Undoing(undo), Input::Event(Event::TransferRefunded { cents, .. })) => {
                let from = &request?.from;
                let reason = format!("{undo}; {} refunded to {from}", Cents(*cents));
                (Phase::Failed(undo.clone()), vec![Action::Fail { reason }])
            }
            (Phase::Undoing(undo), Input::Event(Event::TransferCancelled { .. })) => {
                let reason = format!("{undo}; nothing was withdrawn");
                (Phase::Failed(undo.clone()), vec![Action::Fail { reason }])
            }
            // `CancelTransfer` is never refused; were it, the operators must look.
            (
                Phase::Undoing(undo),
                Input::Refused {
                    command: AccountCommand::CancelTransfer { .. },
                    error,
                },
            ) => {
                let reason = format!("{undo}; the source refused to undo it ({error})");
                (Phase::Failed(undo.clone()), vec![Action::Fail { reason }])
            }
            _ => return None,
        })
    }

    /// Undo the transfer for `why`: the source decides how ([`AccountCommand::CancelTransfer`]).
    fn undo(&self, why: Undo) -> Option<(Phase, Vec<Action<Self>>)> {
        let request = self.request.as_ref()?;
        let cancel = AccountCommand::CancelTransfer {
            account: request.from.clone(),
            transfer: request.transfer.clone(),
        };
        Some((Phase::Undoing(why), vec![Action::Send(cancel)]))
    }
}

/// Withdraw from the source, and give up unless the withdrawal is seen in time.
fn withdraw(from: &AccountId, transfer: &TransferRef, cents: u64) -> Vec<Action<Transfer>> {
    let withdraw = AccountCommand::Withdraw {
        account: from.clone(),
        cents,
        transfer: Some(transfer.clone()),
    };
    vec![
        Action::Send(withdraw),
        schedule(TransferTimeout::Withdrawal, WITHDRAWAL_WINDOW),
    ]
}

fn schedule(timeout: TransferTimeout, after: Duration) -> Action<Transfer> {
    Action::Schedule { timeout, after }
}
