//! Given some inputs, when another one, then these actions: process managers' decisions,
//! tested without a store.

use std::fmt::{self, Debug};

use crate::process::{Action, Input, Instance, ProcessManager};

/// A given/when/then test of one process manager's decisions: pure and synchronous, no store,
/// no runner. It applies the same rules as the runner ([`Instance`]): an input is decided on
/// the state before it and then folded in, a finished instance ignores its inputs, timeouts
/// stay pending until they fire or are cancelled.
///
/// ```
/// use std::time::Duration;
/// use foldline::testing::ProcessTest;
/// use foldline::{Action, Envelope, Input, ProcessManager, ProcessStatus};
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, foldline::DomainEvent)]
/// enum OrderEvent { Placed { order: u32 }, Paid { order: u32 } }
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// enum OrderCommand { Ship { order: u32 }, Cancel { order: u32 } }
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct PaymentDue;
///
/// #[derive(Debug, Default)]
/// struct Fulfilment { order: u32 }
///
/// impl ProcessManager for Fulfilment {
///     const NAME: &'static str = "fulfilment";
///     type Id = u32;
///     type Event = OrderEvent;
///     type Command = OrderCommand;
///     type Timeout = PaymentDue;
///
///     fn correlate(event: &Envelope<'_, OrderEvent>) -> Option<u32> {
///         match &event.event { OrderEvent::Placed { order } | OrderEvent::Paid { order } => Some(*order) }
///     }
///     fn decide(&self, input: &Input<Self>) -> Vec<Action<Self>> {
///         match input {
///             Input::Event(OrderEvent::Placed { .. }) => {
///                 vec![Action::Schedule { timeout: PaymentDue, after: Duration::from_secs(3600) }]
///             }
///             Input::Event(OrderEvent::Paid { order }) => {
///                 vec![Action::Cancel(PaymentDue), Action::Send(OrderCommand::Ship { order: *order }), Action::Complete]
///             }
///             Input::Timeout(PaymentDue) => vec![
///                 Action::Send(OrderCommand::Cancel { order: self.order }),
///                 Action::Fail { reason: "not paid in time".into() },
///             ],
///             Input::Refused { error, .. } => vec![Action::Fail { reason: error.clone() }],
///         }
///     }
///     fn evolve(&mut self, input: &Input<Self>) {
///         if let Input::Event(OrderEvent::Placed { order }) = input { self.order = *order; }
///     }
/// }
///
/// let placed = Input::Event(OrderEvent::Placed { order: 7 });
/// ProcessTest::<Fulfilment>::given([placed.clone()])
///     .when(Input::Timeout(PaymentDue))
///     .then_expect([
///         Action::Send(OrderCommand::Cancel { order: 7 }),
///         Action::Fail { reason: "not paid in time".into() },
///     ]);
///
/// let paid = ProcessTest::<Fulfilment>::given([placed.clone()])
///     .when(Input::Event(OrderEvent::Paid { order: 7 }))
///     .then_expect([
///         Action::Cancel(PaymentDue),
///         Action::Send(OrderCommand::Ship { order: 7 }),
///         Action::Complete,
///     ]);
/// assert_eq!(*paid.status(), ProcessStatus::Completed);
///
/// // A timeout that arrives after the instance completed is ignored, not decided.
/// ProcessTest::<Fulfilment>::given([placed, Input::Event(OrderEvent::Paid { order: 7 })])
///     .when(Input::Timeout(PaymentDue))
///     .then_ignored();
/// ```
pub struct ProcessTest<P: ProcessManager> {
    instance: Instance<P>,
}

impl<P: ProcessManager> ProcessTest<P> {
    /// A new instance that has decided on `inputs`, in order (their actions are applied, not
    /// checked).
    pub fn given(inputs: impl IntoIterator<Item = Input<P>>) -> Self {
        let mut instance = Instance::new();
        for input in inputs {
            instance.handle(&input);
        }
        ProcessTest { instance }
    }

    /// A new instance with no inputs yet.
    pub fn given_nothing() -> Self {
        Self::given([])
    }

    /// The instance the given inputs made.
    pub fn instance(&self) -> &Instance<P> {
        &self.instance
    }

    /// Decides on `input`.
    pub fn when(mut self, input: Input<P>) -> ProcessDecision<P> {
        let given = self.instance.decided();
        let actions = self.instance.handle(&input);
        ProcessDecision {
            instance: self.instance,
            given,
            input: input.kind(),
            actions,
        }
    }
}

impl<P: ProcessManager + Debug> Debug for ProcessTest<P>
where
    P::Timeout: Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessTest")
            .field("instance", &self.instance)
            .finish()
    }
}

/// What an instance decided in a [`ProcessTest`]; assert on it with the `then_*` methods.
pub struct ProcessDecision<P: ProcessManager> {
    instance: Instance<P>,
    given: u64,
    input: &'static str,
    /// `None`: the instance ignored the input (it was finished, or the input a timeout no
    /// longer pending).
    actions: Option<Vec<Action<P>>>,
}

impl<P: ProcessManager> ProcessDecision<P> {
    /// Asserts the input was decided with exactly `expected`, in order; returns the instance
    /// after it.
    ///
    /// # Panics
    ///
    /// When the instance ignored the input (it was finished, or the input was a timeout not
    /// pending) or decided other actions; the message lists expected and decided actions.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = Action<P>>) -> Instance<P>
    where
        P::Command: PartialEq + Debug,
        P::Timeout: Debug,
    {
        let expected: Vec<Action<P>> = expected.into_iter().collect();
        match &self.actions {
            None => self.fail(format_args!(
                "was ignored: {}; expected {} action(s):\n{}",
                self.why_ignored(),
                expected.len(),
                list(&expected)
            )),
            Some(decided) if *decided != expected => self.fail(format_args!(
                "decided other actions.\nexpected {}:\n{}decided {}:\n{}",
                expected.len(),
                list(&expected),
                decided.len(),
                list(decided)
            )),
            Some(_) => self.instance,
        }
    }

    /// Asserts the input was ignored (the instance had finished, or the input was a timeout
    /// not pending); returns the instance.
    ///
    /// # Panics
    ///
    /// When the instance was still running and decided on the input.
    #[track_caller]
    pub fn then_ignored(self) -> Instance<P>
    where
        P::Command: Debug,
        P::Timeout: Debug,
    {
        match &self.actions {
            None => self.instance,
            Some(decided) => self.fail(format_args!(
                "was decided, not ignored: the instance is {}; decided {}:\n{}",
                self.instance.status(),
                decided.len(),
                list(decided)
            )),
        }
    }

    /// The actions decided (`None`: ignored), for assertions of your own.
    pub fn actions(&self) -> Option<&[Action<P>]> {
        self.actions.as_deref()
    }

    fn why_ignored(&self) -> String {
        if self.instance.status().is_finished() {
            format!("the instance is {}", self.instance.status())
        } else {
            "the timeout is not pending (never scheduled, cancelled, or fired already)".into()
        }
    }

    #[track_caller]
    fn fail(&self, what: fmt::Arguments<'_>) -> ! {
        panic!(
            "process manager `{}`, given {} input(s), when {}: {what}",
            P::NAME,
            self.given,
            self.input
        )
    }
}

impl<P: ProcessManager + Debug> Debug for ProcessDecision<P>
where
    P::Command: Debug,
    P::Timeout: Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessDecision")
            .field("instance", &self.instance)
            .field("input", &self.input)
            .field("actions", &self.actions)
            .finish()
    }
}

fn list<T: Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return "  (none)\n".to_owned();
    }
    items.iter().map(|item| format!("  {item:?}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::ProcessTest;
    use crate::process::testing::{Scripted, step};
    use crate::process::{Action, Input};

    #[test]
    fn passes_on_the_expected_actions() {
        let instance = ProcessTest::<Scripted>::given([step(4)])
            .when(step(5))
            .then_expect([Action::Send(5)]);
        assert_eq!(instance.decided(), 2);
    }

    #[test]
    #[should_panic(
        expected = "process manager `scripted`, given 1 input(s), when refused: \
                               decided other actions.\nexpected 1:\n  Send(6)\ndecided 1:\n  \
                               Send(5)"
    )]
    fn names_the_difference() {
        ProcessTest::<Scripted>::given([step(4)])
            .when(step(5))
            .then_expect([Action::Send(6)]);
    }

    #[test]
    #[should_panic(expected = "was ignored: the instance is failed: first")]
    fn says_when_a_finished_instance_ignored_the_input() {
        ProcessTest::<Scripted>::given([step(3)])
            .when(step(5))
            .then_expect([Action::Send(5)]);
    }

    #[test]
    #[should_panic(expected = "was ignored: the timeout is not pending")]
    fn says_when_a_timeout_was_not_pending() {
        ProcessTest::<Scripted>::given([step(1), step(2)])
            .when(Input::Timeout(10))
            .then_expect([Action::Send(10)]);
    }

    #[test]
    #[should_panic(expected = "was decided, not ignored: the instance is running")]
    fn says_when_a_running_instance_decided() {
        ProcessTest::<Scripted>::given_nothing()
            .when(step(5))
            .then_ignored();
    }
}
