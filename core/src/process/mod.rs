//! Process managers (sagas): a business process that spans aggregates, coordinated by pure
//! decisions. The trait's docs say how it works.

mod action;
mod input;
mod instance;
mod operate;
mod projection;
mod record;
mod runner;
mod timer;
mod timer_memory;

#[cfg(test)]
pub(crate) mod testing;

pub use action::{Action, ActionIds, command_key};
pub use input::Input;
pub use instance::{Instance, ProcessStatus};
pub use operate::{
    ActionReport, CommandFate, DecisionReport, InstanceReport, Retried, TimeoutFate,
};
pub use projection::{ProcessInputs, ProcessProjection, ProcessTarget};
pub use record::{DECIDED, Decision, Outcome, RecordedDecision, StoredInstance, instance_stream};
pub use runner::{CommandDispatcher, Dispatched, Handled, ProcessRunner};
pub use timer::{Timer, TimerStore};
pub use timer_memory::InMemoryTimerStore;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aggregate::AggregateId;
use crate::projection::{Envelope, FeedEvent};

/// A business process across aggregates: the state of one instance, how an event finds its
/// instance, and the pure decisions that move it on.
///
/// A process manager is the state of one instance of a process (a transfer, an order). It
/// reacts to [`Input`]s — an event of the feed that [correlates](ProcessManager::correlate) to
/// the instance, a command of its own that an aggregate refused, a timeout it scheduled — by
/// deciding [`Action`]s: send a command, schedule or cancel a timeout, complete, fail.
/// Deciding is pure and synchronous, as an aggregate's is: no I/O, no clock, no randomness, so
/// a decision can be replayed from the instance's stream and tested without a store
/// (`foldline::testing::ProcessTest`). What a runner does with the actions (record them in
/// the instance's own stream, then send the commands with the idempotency keys
/// [`command_key`] derives) is what makes their effects happen exactly once.
///
/// [`Instance`] applies the rules every runner and test shares: an input is decided on the
/// state before it, then folded in ([`ProcessManager::evolve`]); [`Action::Complete`] and
/// [`Action::Fail`] finish the instance, and a finished instance ignores its inputs; scheduled
/// timeouts stay pending until they fire, are cancelled, or the instance finishes.
///
/// Usually derived: `#[derive(ProcessManager)]` takes the name and the associated types from
/// `#[foldline(name = "...", id = .., event = .., command = .., timeout = ..)]` (`timeout`
/// defaults to `()`), checks the name when it expands, and forwards `correlate`, `decide` and
/// `evolve` to inherent functions you write:
///
/// ```
/// use foldline::{Action, Envelope, Input, ProcessManager};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, foldline::DomainEvent)]
/// # enum OrderEvent { Paid { order: u32 } }
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # enum OrderCommand { Ship { order: u32 } }
///
/// #[derive(Default, ProcessManager)]
/// #[foldline(name = "shipping", id = u32, event = OrderEvent, command = OrderCommand)]
/// struct Shipping;
///
/// impl Shipping {
///     fn correlate(event: &Envelope<'_, OrderEvent>) -> Option<u32> {
///         let OrderEvent::Paid { order } = &event.event;
///         Some(*order)
///     }
///
///     fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
///         match input {
///             Input::Event(OrderEvent::Paid { order }) => {
///                 vec![Action::Send(OrderCommand::Ship { order: *order }), Action::Complete]
///             }
///             Input::Refused { error, .. } => vec![Action::Fail { reason: error.clone() }],
///             Input::Timeout(()) => Vec::new(),
///         }
///     }
///
///     fn evolve(&mut self, _: &Input<Self>) {}
/// }
///
/// assert_eq!(Shipping::NAME, "shipping");
/// ```
///
/// Implemented by hand, and driven through [`Instance`]:
///
/// ```
/// use std::time::Duration;
/// use foldline::{Envelope, ProcessManager, Input, Action, Instance, ProcessStatus};
///
/// /// The events a transfer reacts to (in an application: the accounts' own event types).
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, foldline::DomainEvent)]
/// enum BankEvent {
///     TransferRequested { transfer: String, from: String, to: String, cents: u64 },
///     Withdrawn { transfer: String, cents: u64 },
///     Deposited { transfer: String, cents: u64 },
/// }
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum BankCommand {
///     Withdraw { account: String, transfer: String, cents: u64 },
///     Deposit { account: String, transfer: String, cents: u64 },
/// }
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum TransferTimeout { Stuck }
///
/// #[derive(Default)]
/// struct Transfer { from: String, to: String, cents: u64 }
///
/// impl ProcessManager for Transfer {
///     const NAME: &'static str = "transfer";
///     type Id = String;
///     type Event = BankEvent;
///     type Command = BankCommand;
///     type Timeout = TransferTimeout;
///
///     fn correlate(event: &Envelope<'_, BankEvent>) -> Option<String> {
///         match &event.event {
///             BankEvent::TransferRequested { transfer, .. }
///             | BankEvent::Withdrawn { transfer, .. }
///             | BankEvent::Deposited { transfer, .. } => Some(transfer.clone()),
///         }
///     }
///
///     fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
///         match input {
///             Input::Event(BankEvent::TransferRequested { transfer, from, cents, .. }) => vec![
///                 Action::Send(BankCommand::Withdraw {
///                     account: from.clone(), transfer: transfer.clone(), cents: *cents,
///                 }),
///                 Action::Schedule { timeout: TransferTimeout::Stuck, after: Duration::from_secs(60) },
///             ],
///             Input::Event(BankEvent::Withdrawn { transfer, cents }) => vec![
///                 Action::Send(BankCommand::Deposit {
///                     account: self.to.clone(), transfer: transfer.clone(), cents: *cents,
///                 }),
///             ],
///             Input::Event(BankEvent::Deposited { .. }) => {
///                 vec![Action::Cancel(TransferTimeout::Stuck), Action::Complete]
///             }
///             Input::Refused { error, .. } => vec![Action::Fail { reason: error.clone() }],
///             Input::Timeout(TransferTimeout::Stuck) => {
///                 vec![Action::Fail { reason: "no progress in 60 s".into() }]
///             }
///         }
///     }
///
///     fn evolve(&mut self, input: &Input<Self>) {
///         if let Input::Event(BankEvent::TransferRequested { from, to, cents, .. }) = input {
///             (self.from, self.to, self.cents) = (from.clone(), to.clone(), *cents);
///         }
///     }
/// }
///
/// let mut transfer = Instance::<Transfer>::new();
/// let requested = BankEvent::TransferRequested {
///     transfer: "t1".into(), from: "a".into(), to: "b".into(), cents: 500,
/// };
/// let actions = transfer.handle(&Input::Event(requested)).expect("running");
/// assert_eq!(actions.len(), 2);
/// assert_eq!(transfer.pending_timeouts(), [TransferTimeout::Stuck]);
///
/// transfer.handle(&Input::Event(BankEvent::Withdrawn { transfer: "t1".into(), cents: 500 }));
/// let last = transfer.handle(&Input::Event(BankEvent::Deposited { transfer: "t1".into(), cents: 500 }));
/// assert_eq!(last, Some(vec![Action::Cancel(TransferTimeout::Stuck), Action::Complete]));
/// assert_eq!(*transfer.status(), ProcessStatus::Completed);
/// assert!(transfer.pending_timeouts().is_empty());
///
/// // A finished instance ignores what still arrives.
/// assert_eq!(transfer.handle(&Input::Timeout(TransferTimeout::Stuck)), None);
/// assert_eq!(transfer.ignored(), 1);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a foldline process manager",
    note = "derive it with `#[derive(foldline::ProcessManager)]` and `#[foldline(name = \"..\", id = .., event = .., command = ..)]`, or implement it: a NAME, its Id, the Event it reacts to, the Command and Timeout it decides, and `correlate`, `decide`, `evolve`"
)]
pub trait ProcessManager: Default + Send + Sync + Sized + 'static {
    /// The process's name: its instances' streams are named `"{NAME}-{id}"`, the
    /// idempotency keys of its commands start with it, and it names its runner's projection
    /// ([`ProcessProjection`]), so it follows the rules of a [`ProjectionName`](crate::ProjectionName)
    /// (lowercase letters, digits and `_`; checked when the projection is compiled).
    const NAME: &'static str;

    /// An instance's identity (a transfer's id).
    type Id: AggregateId;

    /// The events of the feed it reacts to: a [`DomainEvent`](crate::DomainEvent) type (or
    /// another [`FeedEvent`]). Recorded in the instance's stream with each decision, so it is
    /// serde too.
    type Event: FeedEvent + Serialize + DeserializeOwned + Clone + Sync;

    /// The commands it sends to aggregates (recorded with the decision that sent them).
    type Command: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// What it can be woken up with when nothing happens in time. Cancelling a timeout
    /// cancels the pending ones equal to it.
    type Timeout: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static;

    /// The instance `event` concerns, or `None` when it concerns none: the event is not an
    /// input of this process.
    fn correlate(event: &Envelope<'_, Self::Event>) -> Option<Self::Id>;

    /// What to do about `input`, decided on the state before it.
    fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>>;

    /// Folds `input` into the state, after [`decide`](ProcessManager::decide) has seen it.
    /// Must not fail: the input happened.
    fn evolve(&mut self, input: &Input<Self>);
}
