//! Given some events, when a command, then these events (or this error).

use std::fmt::{self, Debug, Write as _};

use crate::aggregate::{Aggregate, Command};
use crate::event::DomainEvent;

/// A given/when/then test of one aggregate's decisions: pure and synchronous, no store.
///
/// [`given`](AggregateTest::given) folds past events into a fresh state with
/// [`Aggregate::apply`]; [`when`](AggregateTest::when) decides on a command with
/// [`Aggregate::handle`]; the `then_*` methods of the returned [`Decision`] assert on the
/// outcome and panic with a message that names the aggregate, the command and the difference.
///
/// ```
/// use foldline::testing::AggregateTest;
/// use foldline::{Aggregate, Command, DomainEvent};
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DomainEvent)]
/// enum AccountEvent {
///     Opened { owner: String },
///     Deposited { cents: u64 },
/// }
///
/// #[derive(Debug, Command)]
/// enum AccountCommand {
///     Open { #[foldline(id)] account: String, owner: String },
///     Deposit { #[foldline(id)] account: String, cents: u64 },
/// }
///
/// #[derive(Debug, PartialEq, thiserror::Error)]
/// enum AccountError {
///     #[error("the account is not open")]
///     NotOpen,
/// }
///
/// #[derive(Debug, Default, Aggregate)]
/// #[foldline(id = String, command = AccountCommand, event = AccountEvent, error = AccountError)]
/// struct Account { open: bool, balance: u64 }
///
/// impl Account {
///     fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
///         match command {
///             AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
///             AccountCommand::Deposit { .. } if !self.open => Err(AccountError::NotOpen),
///             AccountCommand::Deposit { cents, .. } => Ok(vec![AccountEvent::Deposited { cents: *cents }]),
///         }
///     }
///     fn apply(&mut self, event: &AccountEvent) {
///         match event {
///             AccountEvent::Opened { .. } => self.open = true,
///             AccountEvent::Deposited { cents } => self.balance += cents,
///         }
///     }
/// }
///
/// let account = AggregateTest::<Account>::given(vec![AccountEvent::Opened { owner: "Ada".into() }])
///     .when(AccountCommand::Deposit { account: "a1".into(), cents: 250 })
///     .then_expect(vec![AccountEvent::Deposited { cents: 250 }]);
/// assert_eq!(account.balance, 250); // the state after the new events
///
/// AggregateTest::<Account>::given_no_events()
///     .when(AccountCommand::Open { account: "a1".into(), owner: "Ada".into() })
///     .then_expect(vec![AccountEvent::Opened { owner: "Ada".into() }]);
///
/// AggregateTest::<Account>::given_no_events()
///     .when(AccountCommand::Deposit { account: "a1".into(), cents: 250 })
///     .then_expect_error(|e| *e == AccountError::NotOpen);
/// ```
pub struct AggregateTest<A: Aggregate> {
    state: A,
    given: usize,
}

impl<A: Aggregate> AggregateTest<A> {
    /// A fresh aggregate with `events` folded into it, in order.
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        let mut test = Self::given_no_events();
        for event in events {
            test.state.apply(&event);
            test.given += 1;
        }
        test
    }

    /// A fresh aggregate ([`Default`]) with no history.
    pub fn given_no_events() -> Self {
        AggregateTest {
            state: A::default(),
            given: 0,
        }
    }

    /// The state the given events folded into.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides on `command` in the given state.
    pub fn when(self, command: A::Command) -> Decision<A> {
        let result = self.state.handle(&command);
        Decision {
            state: self.state,
            given: self.given,
            command: command.command_name(),
            result,
        }
    }
}

impl<A: Aggregate + Debug> Debug for AggregateTest<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateTest")
            .field("state", &self.state)
            .field("given", &self.given)
            .finish()
    }
}

/// What an aggregate decided in an [`AggregateTest`]; assert on it with the `then_*` methods.
pub struct Decision<A: Aggregate> {
    state: A,
    given: usize,
    command: &'static str,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Decision<A> {
    /// Asserts the command produced exactly `expected`, in order; returns the state with
    /// them applied.
    ///
    /// # Panics
    ///
    /// When the command was refused or produced other events; the message lists expected
    /// and produced events side by side.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
    {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let produced = match &self.result {
            Ok(produced) => produced,
            Err(error) => self.fail(format_args!(
                "was refused with `{error}` ({error:?}), expected {} event(s):\n{}",
                expected.len(),
                list(&expected)
            )),
        };
        if *produced != expected {
            self.fail(format_args!(
                "produced other events than expected (- expected, + produced):\n{}",
                diff(&expected, produced)
            ));
        }
        self.into_state()
    }

    /// Asserts the command was accepted but produced no events; returns the state.
    ///
    /// # Panics
    ///
    /// When the command was refused or produced events.
    #[track_caller]
    pub fn then_expect_no_events(self) -> A {
        match &self.result {
            Ok(produced) if produced.is_empty() => {}
            Ok(produced) => self.fail(format_args!(
                "produced {} event(s) ({}), expected none",
                produced.len(),
                types(produced)
            )),
            Err(error) => self.fail(format_args!(
                "was refused with `{error}` ({error:?}), expected no events and no error"
            )),
        }
        self.into_state()
    }

    /// Asserts the command was refused with an error for which `matches` holds (for
    /// example `|e| matches!(e, AccountError::NotOpen)`); returns the error.
    ///
    /// # Panics
    ///
    /// When the command was accepted, or refused with an error `matches` rejects.
    #[track_caller]
    pub fn then_expect_error(self, matches: impl FnOnce(&A::Error) -> bool) -> A::Error {
        let error = self.into_error();
        if !matches(&error.1) {
            error.0.fail(format_args!(
                "was refused with an unexpected error: `{}` ({:?})",
                error.1, error.1
            ));
        }
        error.1
    }

    /// Asserts the command was refused with an error that displays as `message`; returns
    /// the error.
    ///
    /// # Panics
    ///
    /// When the command was accepted, or refused with another message.
    #[track_caller]
    pub fn then_expect_error_message(self, message: &str) -> A::Error {
        let (context, error) = self.into_error();
        let shown = error.to_string();
        if shown != message {
            context.fail(format_args!(
                "was refused with another message:\n- {message}\n+ {shown}\n({error:?})"
            ));
        }
        error
    }

    /// Hands the outcome to `check` for assertions of your own.
    pub fn then(self, check: impl FnOnce(Result<&[A::Event], &A::Error>)) {
        check(self.result());
    }

    /// The outcome: the produced events, or the aggregate's error.
    pub fn result(&self) -> Result<&[A::Event], &A::Error> {
        self.result.as_deref()
    }

    /// The outcome, owned.
    pub fn into_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }

    /// The state the command was decided in (the given events folded).
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The given state with the produced events applied (unchanged if the command was refused).
    fn into_state(self) -> A {
        let mut state = self.state;
        if let Ok(events) = &self.result {
            for event in events {
                state.apply(event);
            }
        }
        state
    }

    #[track_caller]
    fn into_error(self) -> (Context, A::Error) {
        let context = Context {
            aggregate: A::NAME,
            command: self.command,
            given: self.given,
        };
        match self.result {
            Err(error) => (context, error),
            Ok(produced) => context.fail(format_args!(
                "was accepted with {} event(s) ({}), expected it to be refused",
                produced.len(),
                types(&produced)
            )),
        }
    }

    #[track_caller]
    fn fail(&self, what: impl fmt::Display) -> ! {
        Context {
            aggregate: A::NAME,
            command: self.command,
            given: self.given,
        }
        .fail(what)
    }
}

impl<A> Debug for Decision<A>
where
    A: Aggregate + Debug,
    A::Event: Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("command", &self.command)
            .field("state", &self.state)
            .field("result", &self.result)
            .finish()
    }
}

/// What a failure message opens with.
struct Context {
    aggregate: &'static str,
    command: &'static str,
    given: usize,
}

impl Context {
    #[track_caller]
    fn fail(&self, what: impl fmt::Display) -> ! {
        panic!(
            "AggregateTest<{}>: command `{}` (after {} given event(s)) {what}",
            self.aggregate, self.command, self.given
        )
    }
}

/// The events' type names, for messages that cannot assume `Debug`.
fn types<E: DomainEvent>(events: &[E]) -> String {
    let names: Vec<String> = events.iter().map(|e| e.event_type().to_string()).collect();
    names.join(", ")
}

fn list<E: Debug>(events: &[E]) -> String {
    let mut out = String::new();
    for (i, event) in events.iter().enumerate() {
        let _ = writeln!(out, "  [{i}] {event:?}");
    }
    out
}

/// Expected and produced events position by position: `=` same, `-` expected, `+` produced.
fn diff<E: PartialEq + Debug>(expected: &[E], produced: &[E]) -> String {
    let mut out = String::new();
    for i in 0..expected.len().max(produced.len()) {
        match (expected.get(i), produced.get(i)) {
            (Some(e), Some(p)) if e == p => {
                let _ = writeln!(out, "  = [{i}] {e:?}");
            }
            (e, p) => {
                if let Some(e) = e {
                    let _ = writeln!(out, "  - [{i}] {e:?}");
                }
                if let Some(p) = p {
                    let _ = writeln!(out, "  + [{i}] {p:?}");
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;
    use crate::codec::Codec;
    use crate::error::BoxError;
    use crate::event::DecodeError;
    use crate::names::EventType;

    #[derive(Debug, Clone, PartialEq)]
    enum CounterEvent {
        Added(u32),
        Reset,
    }

    impl DomainEvent for CounterEvent {
        const TYPES: &'static [(&'static str, u32)] = &[("Added", 1), ("Reset", 1)];

        fn event_type(&self) -> EventType {
            match self {
                CounterEvent::Added(_) => EventType::from_static("Added"),
                CounterEvent::Reset => EventType::from_static("Reset"),
            }
        }

        fn schema_version(&self) -> u32 {
            1
        }

        fn encode<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, BoxError> {
            match self {
                CounterEvent::Added(n) => codec.encode(n),
                CounterEvent::Reset => codec.encode(&()),
            }
        }

        fn decode<C: Codec>(
            codec: &C,
            event_type: &str,
            _schema_version: u32,
            payload: &[u8],
        ) -> Result<Self, DecodeError> {
            match event_type {
                "Added" => codec
                    .decode(payload)
                    .map(CounterEvent::Added)
                    .map_err(DecodeError::Payload),
                "Reset" => Ok(CounterEvent::Reset),
                other => Err(DecodeError::UnknownType {
                    event_type: other.to_owned(),
                }),
            }
        }
    }

    enum CounterCommand {
        Add(u32),
        Reset,
        Nothing,
    }

    impl Command for CounterCommand {
        type Id = u32;

        fn aggregate_id(&self) -> &u32 {
            &1
        }

        fn command_name(&self) -> &'static str {
            match self {
                CounterCommand::Add(_) => "Add",
                CounterCommand::Reset => "Reset",
                CounterCommand::Nothing => "Nothing",
            }
        }
    }

    #[derive(Debug, PartialEq, thiserror::Error)]
    enum CounterError {
        #[error("the counter would pass {0}")]
        TooBig(u32),
        #[error("the counter is already zero")]
        AlreadyZero,
    }

    #[derive(Debug, Default)]
    struct Counter {
        total: u32,
    }

    impl Aggregate for Counter {
        const NAME: &'static str = "counter";
        type Id = u32;
        type Command = CounterCommand;
        type Event = CounterEvent;
        type Error = CounterError;

        fn handle(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, CounterError> {
            match command {
                CounterCommand::Add(n) if self.total + n > 10 => Err(CounterError::TooBig(10)),
                // Adding goes in steps of at most 3.
                CounterCommand::Add(n) => Ok((0..*n)
                    .step_by(3)
                    .map(|done| CounterEvent::Added((n - done).min(3)))
                    .collect()),
                CounterCommand::Reset if self.total == 0 => Err(CounterError::AlreadyZero),
                CounterCommand::Reset => Ok(vec![CounterEvent::Reset]),
                CounterCommand::Nothing => Ok(Vec::new()),
            }
        }

        fn apply(&mut self, event: &CounterEvent) {
            match event {
                CounterEvent::Added(n) => self.total += n,
                CounterEvent::Reset => self.total = 0,
            }
        }
    }

    fn panic_message(f: impl FnOnce()) -> String {
        let panic = catch_unwind(AssertUnwindSafe(f)).expect_err("the assertion should fail");
        panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| panic.downcast_ref::<&str>().unwrap_or(&"").to_string())
    }

    #[test]
    fn given_events_are_folded() {
        let test =
            AggregateTest::<Counter>::given([CounterEvent::Added(2), CounterEvent::Added(3)]);
        assert_eq!(test.state().total, 5);
        assert_eq!(AggregateTest::<Counter>::given_no_events().state().total, 0);
    }

    #[test]
    fn then_expect_passes_and_returns_the_new_state() {
        let counter = AggregateTest::<Counter>::given([CounterEvent::Added(1)])
            .when(CounterCommand::Add(5))
            .then_expect([CounterEvent::Added(3), CounterEvent::Added(2)]);
        assert_eq!(counter.total, 6);
    }

    #[test]
    fn then_expect_shows_a_diff() {
        let message = panic_message(|| {
            AggregateTest::<Counter>::given([CounterEvent::Added(1)])
                .when(CounterCommand::Add(7))
                .then_expect([CounterEvent::Added(3), CounterEvent::Added(4)]);
        });
        assert!(
            message.starts_with(
                "AggregateTest<counter>: command `Add` (after 1 given event(s)) produced other \
                 events than expected"
            ),
            "{message}"
        );
        assert!(message.contains("  = [0] Added(3)\n"), "{message}");
        assert!(
            message.contains("  - [1] Added(4)\n  + [1] Added(3)\n"),
            "{message}"
        );
        assert!(message.contains("  + [2] Added(1)\n"), "{message}");
    }

    #[test]
    fn then_expect_fails_on_a_refusal() {
        let message = panic_message(|| {
            AggregateTest::<Counter>::given_no_events()
                .when(CounterCommand::Add(11))
                .then_expect([CounterEvent::Added(3)]);
        });
        assert!(
            message.contains("was refused with `the counter would pass 10` (TooBig(10))"),
            "{message}"
        );
    }

    #[test]
    fn then_expect_no_events() {
        let counter = AggregateTest::<Counter>::given([CounterEvent::Added(4)])
            .when(CounterCommand::Nothing)
            .then_expect_no_events();
        assert_eq!(counter.total, 4);
        let message = panic_message(|| {
            AggregateTest::<Counter>::given([CounterEvent::Added(4)])
                .when(CounterCommand::Reset)
                .then_expect_no_events();
        });
        assert!(
            message.contains("produced 1 event(s) (Reset), expected none"),
            "{message}"
        );
    }

    #[test]
    fn then_expect_error_passes_and_returns_the_error() {
        let error = AggregateTest::<Counter>::given([CounterEvent::Added(9)])
            .when(CounterCommand::Add(2))
            .then_expect_error(|e| matches!(e, CounterError::TooBig(_)));
        assert_eq!(error, CounterError::TooBig(10));
        AggregateTest::<Counter>::given_no_events()
            .when(CounterCommand::Reset)
            .then_expect_error_message("the counter is already zero");
    }

    #[test]
    fn then_expect_error_fails_on_acceptance_or_another_error() {
        let message = panic_message(|| {
            AggregateTest::<Counter>::given_no_events()
                .when(CounterCommand::Add(4))
                .then_expect_error(|_| true);
        });
        assert!(
            message
                .contains("was accepted with 2 event(s) (Added, Added), expected it to be refused"),
            "{message}"
        );
        let message = panic_message(|| {
            AggregateTest::<Counter>::given_no_events()
                .when(CounterCommand::Reset)
                .then_expect_error(|e| matches!(e, CounterError::TooBig(_)));
        });
        assert!(
            message.contains("unexpected error: `the counter is already zero` (AlreadyZero)"),
            "{message}"
        );
        let message = panic_message(|| {
            AggregateTest::<Counter>::given_no_events()
                .when(CounterCommand::Reset)
                .then_expect_error_message("the counter is empty");
        });
        assert!(
            message.contains("- the counter is empty\n+ the counter is already zero"),
            "{message}"
        );
    }

    #[test]
    fn custom_assertions_see_the_result() {
        let decision = AggregateTest::<Counter>::given_no_events().when(CounterCommand::Add(4));
        assert_eq!(decision.state().total, 0);
        assert_eq!(decision.result().map(<[_]>::len), Ok(2));
        decision.then(|result| assert!(result.is_ok_and(|events| events.len() == 2)));
        let result = AggregateTest::<Counter>::given_no_events()
            .when(CounterCommand::Reset)
            .into_result();
        assert_eq!(result, Err(CounterError::AlreadyZero));
    }
}
