//! Transfers between wallets as a process manager, for the tests that kill its runner: a
//! [`Wallet`] aggregate that can hold a transfer back (a semantic lock), and the [`Transfer`]
//! process that moves money between two wallets and compensates when a step is refused or
//! nothing happens in time.
//!
//! Compensation goes through the source wallet ([`WalletCommand::CancelTransfer`]), which
//! decides from its own events: money it withdrew for the transfer comes back, and a transfer
//! it has not withdrawn for yet can no longer withdraw. So a timeout that races a withdrawal
//! still in flight cannot lose or create money. Wallets never refuse a repeat on their own:
//! every movement is recorded as it comes, so a command carried out twice shows as two events
//! ([`check_effects`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use foldline::{
    Action, Aggregate, Command, CommandDispatcher, CommandExecutor, CommandOptions, Dispatched,
    DomainEvent, Envelope, EventStore, Input, ProcessManager,
};
use serde::{Deserialize, Serialize};

/// What happens to wallets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, DomainEvent)]
pub enum WalletEvent {
    /// Opened with a first balance.
    Opened {
        /// Which wallet.
        wallet: String,
        /// Its first balance, in cents.
        cents: u64,
    },
    /// Closed: it refuses withdrawals and deposits from now on.
    Closed {
        /// Which wallet.
        wallet: String,
    },
    /// A transfer from this wallet was requested.
    TransferRequested {
        /// The transfer.
        transfer: String,
        /// This wallet.
        from: String,
        /// Where the money goes.
        to: String,
        /// How much, in cents.
        cents: u64,
        /// Whether it waits for [`WalletEvent::TransferApproved`] before the deposit.
        needs_approval: bool,
    },
    /// The source wallet's owner approved the transfer.
    TransferApproved {
        /// The transfer.
        transfer: String,
    },
    /// Money went out for a transfer.
    Withdrawn {
        /// This wallet.
        wallet: String,
        /// The transfer.
        transfer: String,
        /// How much, in cents.
        cents: u64,
    },
    /// Money came in from a transfer.
    Deposited {
        /// This wallet.
        wallet: String,
        /// The transfer.
        transfer: String,
        /// How much, in cents.
        cents: u64,
    },
    /// The transfer was called off at its source: what was withdrawn for it came back.
    TransferCancelled {
        /// This wallet.
        wallet: String,
        /// The transfer.
        transfer: String,
        /// How much came back, in cents (0 when nothing had been withdrawn).
        refunded: u64,
    },
}

/// What a wallet is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Command)]
pub enum WalletCommand {
    /// Open it with `cents`.
    Open {
        /// Which wallet.
        #[foldline(id)]
        wallet: String,
        /// Its first balance.
        cents: u64,
    },
    /// Close it.
    Close {
        /// Which wallet.
        #[foldline(id)]
        wallet: String,
    },
    /// Ask for a transfer from it.
    RequestTransfer {
        /// The source wallet.
        #[foldline(id)]
        wallet: String,
        /// The transfer.
        transfer: String,
        /// Where the money goes.
        to: String,
        /// How much.
        cents: u64,
        /// Whether it waits for an approval.
        needs_approval: bool,
    },
    /// Approve a transfer from it.
    Approve {
        /// The source wallet.
        #[foldline(id)]
        wallet: String,
        /// The transfer.
        transfer: String,
    },
    /// Take money out for a transfer.
    Withdraw {
        /// Which wallet.
        #[foldline(id)]
        wallet: String,
        /// The transfer.
        transfer: String,
        /// How much.
        cents: u64,
    },
    /// Put money in for a transfer.
    Deposit {
        /// Which wallet.
        #[foldline(id)]
        wallet: String,
        /// The transfer.
        transfer: String,
        /// How much.
        cents: u64,
    },
    /// Call a transfer off at its source: refund what was withdrawn for it, and refuse any
    /// later withdrawal for it. Never refused.
    CancelTransfer {
        /// The source wallet.
        #[foldline(id)]
        wallet: String,
        /// The transfer.
        transfer: String,
    },
}

/// Why a wallet refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// Not open, or closed.
    #[error("the wallet is closed")]
    Closed,
    /// Not enough money.
    #[error("insufficient funds")]
    Insufficient,
    /// A withdrawal for a transfer called off.
    #[error("the transfer was cancelled")]
    Cancelled,
}

/// A wallet: its balance, whether it is open, and what it withdrew for which transfer.
#[derive(Debug, Default, Aggregate)]
#[foldline(id = String, command = WalletCommand, event = WalletEvent, error = WalletError)]
pub struct Wallet {
    open: bool,
    balance: u64,
    withdrawn: HashMap<String, u64>,
    cancelled: HashSet<String>,
}

impl Wallet {
    fn handle(&self, command: &WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        use WalletCommand as C;
        use WalletEvent as E;
        Ok(match command.clone() {
            C::Open { wallet, cents } => vec![E::Opened { wallet, cents }],
            C::CancelTransfer { wallet, transfer } => {
                let refunded = if self.cancelled.contains(&transfer) {
                    0
                } else {
                    self.withdrawn.get(&transfer).copied().unwrap_or(0)
                };
                vec![E::TransferCancelled {
                    wallet,
                    transfer,
                    refunded,
                }]
            }
            // A request is only a record: a closed wallet refuses the withdrawal.
            C::RequestTransfer {
                wallet,
                transfer,
                to,
                cents,
                needs_approval,
            } => vec![E::TransferRequested {
                transfer,
                from: wallet,
                to,
                cents,
                needs_approval,
            }],
            C::Approve { transfer, .. } => vec![E::TransferApproved { transfer }],
            _ if !self.open => return Err(WalletError::Closed),
            C::Close { wallet } => vec![E::Closed { wallet }],
            C::Withdraw { transfer, .. } if self.cancelled.contains(&transfer) => {
                return Err(WalletError::Cancelled);
            }
            C::Withdraw { cents, .. } if cents > self.balance => {
                return Err(WalletError::Insufficient);
            }
            C::Withdraw {
                wallet,
                transfer,
                cents,
            } => vec![E::Withdrawn {
                wallet,
                transfer,
                cents,
            }],
            C::Deposit {
                wallet,
                transfer,
                cents,
            } => vec![E::Deposited {
                wallet,
                transfer,
                cents,
            }],
        })
    }

    fn apply(&mut self, event: &WalletEvent) {
        match event {
            WalletEvent::Opened { cents, .. } => (self.open, self.balance) = (true, *cents),
            WalletEvent::Closed { .. } => self.open = false,
            WalletEvent::Withdrawn {
                transfer, cents, ..
            } => {
                self.balance -= cents;
                *self.withdrawn.entry(transfer.clone()).or_default() += cents;
            }
            WalletEvent::Deposited { cents, .. } => self.balance += cents,
            WalletEvent::TransferCancelled {
                transfer, refunded, ..
            } => {
                self.balance += refunded;
                self.cancelled.insert(transfer.clone());
            }
            WalletEvent::TransferRequested { .. } | WalletEvent::TransferApproved { .. } => {}
        }
    }
}

/// The timeout of a transfer: nothing moved it on in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stuck;

/// How long a transfer may wait for its withdrawal (and approval) before it is called off.
pub const STUCK_AFTER: Duration = Duration::from_secs(3);

/// request → withdraw from the source → (approved) → deposit into the target → completed;
/// a refused step, or no deposit decided within [`STUCK_AFTER`] → the source cancels the
/// transfer (refunding what it withdrew) → failed.
#[derive(Debug, Default)]
pub struct Transfer {
    id: String,
    from: String,
    to: String,
    cents: u64,
    needs_approval: bool,
    approved: bool,
    withdrawn: bool,
}

impl Transfer {
    /// Whether the deposit can go once the money is out (`withdrawn`) and, where needed, the
    /// transfer is `approved`.
    fn ready(&self, withdrawn: bool, approved: bool) -> bool {
        withdrawn && (approved || !self.needs_approval)
    }

    /// The deposit, when the input that makes the transfer `ready` now is the one that does
    /// (so it is sent once).
    fn deposit_if(&self, ready_now: bool) -> Vec<Action<Self>> {
        if !ready_now || self.ready(self.withdrawn, self.approved) {
            return Vec::new();
        }
        vec![
            Action::Cancel(Stuck),
            Action::Send(WalletCommand::Deposit {
                wallet: self.to.clone(),
                transfer: self.id.clone(),
                cents: self.cents,
            }),
        ]
    }

    fn call_off(&self, reason: String) -> Vec<Action<Self>> {
        vec![
            Action::Send(WalletCommand::CancelTransfer {
                wallet: self.from.clone(),
                transfer: self.id.clone(),
            }),
            Action::Fail { reason },
        ]
    }
}

impl ProcessManager for Transfer {
    const NAME: &'static str = "transfer";
    type Id = String;
    type Event = WalletEvent;
    type Command = WalletCommand;
    type Timeout = Stuck;

    fn correlate(event: &Envelope<'_, WalletEvent>) -> Option<String> {
        match &event.event {
            WalletEvent::TransferRequested { transfer, .. }
            | WalletEvent::TransferApproved { transfer }
            | WalletEvent::Withdrawn { transfer, .. }
            | WalletEvent::Deposited { transfer, .. } => Some(transfer.clone()),
            // Its own compensation, not an input.
            WalletEvent::TransferCancelled { .. }
            | WalletEvent::Opened { .. }
            | WalletEvent::Closed { .. } => None,
        }
    }

    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
        match input {
            Input::Event(WalletEvent::TransferRequested {
                transfer,
                from,
                cents,
                ..
            }) => vec![
                Action::Send(WalletCommand::Withdraw {
                    wallet: from.clone(),
                    transfer: transfer.clone(),
                    cents: *cents,
                }),
                Action::Schedule {
                    timeout: Stuck,
                    after: STUCK_AFTER,
                },
            ],
            Input::Event(WalletEvent::Withdrawn { .. }) => {
                self.deposit_if(self.ready(true, self.approved))
            }
            Input::Event(WalletEvent::TransferApproved { .. }) => {
                self.deposit_if(self.ready(self.withdrawn, true))
            }
            Input::Event(WalletEvent::Deposited { .. }) => vec![Action::Complete],
            Input::Refused { error, .. } => self.call_off(format!("refused: {error}")),
            Input::Timeout(Stuck) => self.call_off("no progress in time".into()),
            Input::Event(_) => Vec::new(),
        }
    }

    fn evolve(&mut self, input: &Input<Self>) {
        match input {
            Input::Event(WalletEvent::TransferRequested {
                transfer,
                from,
                to,
                cents,
                needs_approval,
            }) => {
                self.id = transfer.clone();
                (self.from, self.to) = (from.clone(), to.clone());
                (self.cents, self.needs_approval) = (*cents, *needs_approval);
            }
            Input::Event(WalletEvent::Withdrawn { .. }) => self.withdrawn = true,
            Input::Event(WalletEvent::TransferApproved { .. }) => self.approved = true,
            _ => {}
        }
    }
}

/// Sends a transfer's commands to the wallets through an executor.
#[derive(Clone, Debug)]
pub struct Wallets<S: EventStore + Clone> {
    executor: CommandExecutor<S>,
}

impl<S: EventStore + Clone> Wallets<S> {
    /// Commands through `executor`.
    pub fn new(executor: CommandExecutor<S>) -> Self {
        Wallets { executor }
    }
}

impl<S: EventStore + Clone> CommandDispatcher<WalletCommand> for Wallets<S> {
    async fn dispatch(
        &self,
        command: &WalletCommand,
        options: CommandOptions,
    ) -> foldline::Result<Dispatched> {
        Dispatched::from_result(
            self.executor
                .execute_with::<Wallet>(command.clone(), options)
                .await,
        )
    }
}

/// What the wallets' events say happened to each transfer, and to the money.
#[derive(Debug, Default)]
pub struct Effects {
    /// Each wallet's balance.
    pub balances: BTreeMap<String, u64>,
    /// Per transfer, how many times each movement happened: (withdrawn, deposited,
    /// cancelled) events, and the cents net taken from the source.
    pub transfers: BTreeMap<String, TransferEffects>,
}

/// The movements of one transfer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferEffects {
    /// `Withdrawn` events.
    pub withdrawals: u32,
    /// `Deposited` events.
    pub deposits: u32,
    /// `TransferCancelled` events.
    pub cancellations: u32,
    /// Cents withdrawn minus cents refunded.
    pub kept_from_source: i64,
    /// Cents deposited.
    pub deposited: u64,
}

/// Folds every wallet event of `events` into [`Effects`].
pub fn effects<'a>(events: impl IntoIterator<Item = &'a WalletEvent>) -> Effects {
    let mut effects = Effects::default();
    for event in events {
        match event {
            WalletEvent::Opened { wallet, cents } => {
                effects.balances.insert(wallet.clone(), *cents);
            }
            WalletEvent::Withdrawn {
                wallet,
                transfer,
                cents,
            } => {
                *effects.balances.entry(wallet.clone()).or_default() -= cents;
                let t = effects.transfers.entry(transfer.clone()).or_default();
                t.withdrawals += 1;
                t.kept_from_source += i64::try_from(*cents).unwrap_or(i64::MAX);
            }
            WalletEvent::Deposited {
                wallet,
                transfer,
                cents,
            } => {
                *effects.balances.entry(wallet.clone()).or_default() += cents;
                let t = effects.transfers.entry(transfer.clone()).or_default();
                t.deposits += 1;
                t.deposited += cents;
            }
            WalletEvent::TransferCancelled {
                wallet,
                transfer,
                refunded,
            } => {
                *effects.balances.entry(wallet.clone()).or_default() += refunded;
                let t = effects.transfers.entry(transfer.clone()).or_default();
                t.cancellations += 1;
                t.kept_from_source -= i64::try_from(*refunded).unwrap_or(i64::MAX);
            }
            WalletEvent::Closed { .. }
            | WalletEvent::TransferRequested { .. }
            | WalletEvent::TransferApproved { .. } => {}
        }
    }
    effects
}

/// Checks one transfer's movements against how it ended: completed → withdrawn once and
/// deposited once, the same amount, never cancelled; failed → nothing kept from the source,
/// nothing deposited, cancelled once. A description of what is wrong, if anything.
pub fn check_effects(completed: bool, cents: u64, effects: &TransferEffects) -> Option<String> {
    let cents_signed = i64::try_from(cents).unwrap_or(i64::MAX);
    let expected = if completed {
        TransferEffects {
            withdrawals: 1,
            deposits: 1,
            cancellations: 0,
            kept_from_source: cents_signed,
            deposited: cents,
        }
    } else {
        TransferEffects {
            withdrawals: effects.withdrawals.min(1),
            deposits: 0,
            cancellations: 1,
            kept_from_source: 0,
            deposited: 0,
        }
    };
    (*effects != expected).then(|| {
        format!(
            "{}: expected {expected:?}, the wallets recorded {effects:?}",
            if completed { "completed" } else { "failed" }
        )
    })
}

#[cfg(test)]
mod tests {
    use foldline::testing::{AggregateTest, ProcessTest};
    use foldline::{Action, Input};

    use super::*;

    fn requested(needs_approval: bool) -> Input<Transfer> {
        Input::Event(WalletEvent::TransferRequested {
            transfer: "t".into(),
            from: "a".into(),
            to: "b".into(),
            cents: 5,
            needs_approval,
        })
    }

    fn withdrawn() -> Input<Transfer> {
        Input::Event(WalletEvent::Withdrawn {
            wallet: "a".into(),
            transfer: "t".into(),
            cents: 5,
        })
    }

    fn approved() -> Input<Transfer> {
        Input::Event(WalletEvent::TransferApproved {
            transfer: "t".into(),
        })
    }

    fn deposit() -> [Action<Transfer>; 2] {
        [
            Action::Cancel(Stuck),
            Action::Send(WalletCommand::Deposit {
                wallet: "b".into(),
                transfer: "t".into(),
                cents: 5,
            }),
        ]
    }

    fn call_off(reason: &str) -> [Action<Transfer>; 2] {
        [
            Action::Send(WalletCommand::CancelTransfer {
                wallet: "a".into(),
                transfer: "t".into(),
            }),
            Action::Fail {
                reason: reason.into(),
            },
        ]
    }

    #[test]
    fn a_transfer_withdraws_then_deposits_once_ready() {
        ProcessTest::<Transfer>::given_nothing()
            .when(requested(false))
            .then_expect([
                Action::Send(WalletCommand::Withdraw {
                    wallet: "a".into(),
                    transfer: "t".into(),
                    cents: 5,
                }),
                Action::Schedule {
                    timeout: Stuck,
                    after: STUCK_AFTER,
                },
            ]);
        ProcessTest::<Transfer>::given([requested(false)])
            .when(withdrawn())
            .then_expect(deposit());
        // Waiting for an approval: the deposit goes with whichever comes last.
        ProcessTest::<Transfer>::given([requested(true)])
            .when(withdrawn())
            .then_expect([]);
        ProcessTest::<Transfer>::given([requested(true), withdrawn()])
            .when(approved())
            .then_expect(deposit());
        ProcessTest::<Transfer>::given([requested(true), approved()])
            .when(withdrawn())
            .then_expect(deposit());
    }

    #[test]
    fn a_refusal_or_a_timeout_calls_the_transfer_off_at_its_source() {
        let refused = Input::Refused {
            command: WalletCommand::Deposit {
                wallet: "b".into(),
                transfer: "t".into(),
                cents: 5,
            },
            error: "the wallet is closed".into(),
        };
        ProcessTest::<Transfer>::given([requested(false), withdrawn()])
            .when(refused)
            .then_expect(call_off("refused: the wallet is closed"));
        ProcessTest::<Transfer>::given([requested(true), withdrawn()])
            .when(Input::Timeout(Stuck))
            .then_expect(call_off("no progress in time"));
        // Once the deposit is sent, its timeout is cancelled: a late one is ignored.
        ProcessTest::<Transfer>::given([requested(false), withdrawn()])
            .when(Input::Timeout(Stuck))
            .then_ignored();
    }

    #[test]
    fn a_cancelled_transfer_refunds_what_it_took_and_takes_nothing_more() {
        let opened = WalletEvent::Opened {
            wallet: "a".into(),
            cents: 10,
        };
        let took = WalletEvent::Withdrawn {
            wallet: "a".into(),
            transfer: "t".into(),
            cents: 5,
        };
        let cancel = WalletCommand::CancelTransfer {
            wallet: "a".into(),
            transfer: "t".into(),
        };
        let cancelled = |refunded| WalletEvent::TransferCancelled {
            wallet: "a".into(),
            transfer: "t".into(),
            refunded,
        };
        AggregateTest::<Wallet>::given([opened.clone(), took])
            .when(cancel.clone())
            .then_expect([cancelled(5)]);
        AggregateTest::<Wallet>::given([opened.clone()])
            .when(cancel)
            .then_expect([cancelled(0)]);
        AggregateTest::<Wallet>::given([opened, cancelled(0)])
            .when(WalletCommand::Withdraw {
                wallet: "a".into(),
                transfer: "t".into(),
                cents: 5,
            })
            .then_expect_error(|e| *e == WalletError::Cancelled);
    }
}
