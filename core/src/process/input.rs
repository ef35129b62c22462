//! What a process manager reacts to.

use std::fmt;

use super::ProcessManager;

/// Something that happened to an instance of a process manager `P`, which it decides on.
///
/// Not `#[non_exhaustive]` on purpose: a [`decide`](ProcessManager::decide) matches on it, and
/// a new kind of input must not fall silently into a wildcard arm.
pub enum Input<P: ProcessManager> {
    /// An event of the feed that [correlates](ProcessManager::correlate) to the instance.
    Event(P::Event),
    /// A command the instance sent was refused by its aggregate: the process can compensate.
    Refused {
        /// The command, as the instance decided it.
        command: P::Command,
        /// Why the aggregate refused it (the refusal's message).
        error: String,
    },
    /// A timeout the instance scheduled came due (and was not cancelled before).
    Timeout(P::Timeout),
}

impl<P: ProcessManager> Input<P> {
    /// What kind of input this is, for logs and the operators' views: `"event"`, `"refused"`
    /// or `"timeout"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Event(_) => "event",
            Input::Refused { .. } => "refused",
            Input::Timeout(_) => "timeout",
        }
    }
}

impl<P: ProcessManager> Clone for Input<P> {
    fn clone(&self) -> Self {
        match self {
            Input::Event(event) => Input::Event(event.clone()),
            Input::Refused { command, error } => Input::Refused {
                command: command.clone(),
                error: error.clone(),
            },
            Input::Timeout(timeout) => Input::Timeout(timeout.clone()),
        }
    }
}

impl<P: ProcessManager> PartialEq for Input<P>
where
    P::Event: PartialEq,
    P::Command: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Input::Event(a), Input::Event(b)) => a == b,
            (
                Input::Refused { command, error },
                Input::Refused {
                    command: other_command,
                    error: other_error,
                },
            ) => command == other_command && error == other_error,
            (Input::Timeout(a), Input::Timeout(b)) => a == b,
            _ => false,
        }
    }
}

impl<P: ProcessManager> fmt::Debug for Input<P>
where
    P::Event: fmt::Debug,
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Event(event) => f.debug_tuple("Event").field(event).finish(),
            Input::Refused { command, error } => f
                .debug_struct("Refused")
                .field("command", command)
                .field("error", error)
                .finish(),
            Input::Timeout(timeout) => f.debug_tuple("Timeout").field(timeout).finish(),
        }
    }
}
