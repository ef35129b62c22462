//! What a process manager decides to do, and the idempotency key of each command it sends.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use super::ProcessManager;
use crate::command::CommandOptions;
use crate::error::Result;
use crate::names::IdempotencyKey;

/// One thing an instance of a process manager `P` decided to do about an input.
#[non_exhaustive]
pub enum Action<P: ProcessManager> {
    /// Send a command to an aggregate. A refusal comes back as [`Input::Refused`](super::Input::Refused).
    Send(P::Command),
    /// Wake the instance with `timeout` after `after`, unless cancelled first. Delivered late
    /// rather than never after downtime.
    Schedule {
        /// What the instance is woken up with.
        timeout: P::Timeout,
        /// How long from the decision.
        after: Duration,
    },
    /// Cancel every pending timeout equal to this one.
    Cancel(P::Timeout),
    /// The process is done: later inputs are ignored, pending timeouts cancelled.
    Complete,
    /// The process failed for `reason` (after compensating, or when it cannot): later inputs
    /// are ignored, pending timeouts cancelled.
    Fail {
        /// Why, for the operators.
        reason: String,
    },
}

/// The idempotency key of the command an instance of `P` sends as action `index` (from 0) of
/// its decision about the input `input` (the triggering event's id, or the id the runner gave
/// a refusal or a timeout): the same for every re-send of that command after a crash, so the
/// aggregate appends its events once.
///
/// ```
/// # use foldline::{command_key, ProcessManager};
/// # use uuid::Uuid;
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, foldline::DomainEvent)]
/// # enum Ev { Happened }
/// # #[derive(Default)] struct Transfer;
/// # impl ProcessManager for Transfer {
/// #     const NAME: &'static str = "transfer";
/// #     type Id = String; type Event = Ev; type Command = (); type Timeout = ();
/// #     fn correlate(_: &foldline::Envelope<'_, Ev>) -> Option<String> { None }
/// #     fn decide(&self, _: &foldline::Input<Self>) -> Vec<foldline::Action<Self>> { vec![] }
/// #     fn evolve(&mut self, _: &foldline::Input<Self>) {}
/// # }
/// let input = Uuid::now_v7();
/// let key = command_key::<Transfer>(input, 1)?;
/// assert_eq!(key.as_str(), format!("transfer:{input}:1"));
/// assert_eq!(key, command_key::<Transfer>(input, 1)?);
/// # Ok::<(), foldline::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidName`](crate::Error::InvalidName) when `P::NAME` makes the key too long or
/// holds a character keys may not (it never does for a name of letters, digits, `-`, `_` and
/// `.` up to 80 characters).
pub fn command_key<P: ProcessManager>(input: Uuid, index: usize) -> Result<IdempotencyKey> {
    IdempotencyKey::new(format!("{}:{input}:{index}", P::NAME))
}

/// The ids a runner derives for action `index` (from 0) of the decision about input
/// `input_id`: the same every time the decision is carried out, which is what makes carrying
/// it out again harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActionIds {
    /// The idempotency key of the command the action sends ([`command_key`]).
    pub key: IdempotencyKey,
    /// The command id its events carry in their metadata.
    pub command_id: Uuid,
    /// The input id of its refusal, when its aggregate refuses it: the instance decides on
    /// that id once.
    pub refusal_id: Uuid,
    /// The id of the timer the action schedules.
    pub timer_id: Uuid,
}

impl ActionIds {
    /// The ids of action `index` of the decision of a `P` about input `input_id`.
    ///
    /// # Errors
    ///
    /// As [`command_key`].
    pub fn of<P: ProcessManager>(input_id: Uuid, index: usize) -> Result<Self> {
        let key = command_key::<P>(input_id, index)?;
        Ok(ActionIds {
            command_id: derived_id(key.as_str(), "command"),
            refusal_id: derived_id(key.as_str(), "refused"),
            timer_id: derived_id(&format!("{}:{input_id}:{index}", P::NAME), "timer"),
            key,
        })
    }

    /// The options the command is sent with, by the decision whose event is `decision_id`
    /// in business transaction `correlation_id`: its key, its id, and what `foldline trace`
    /// follows (the correlation, and the decision as causation).
    pub fn command_options(
        &self,
        decision_id: Uuid,
        correlation_id: Option<Uuid>,
    ) -> CommandOptions {
        let options = CommandOptions::new()
            .with_command_id(self.command_id)
            .with_causation_id(decision_id)
            .with_idempotency_key(self.key.clone());
        match correlation_id {
            Some(correlation_id) => options.with_correlation_id(correlation_id),
            None => options,
        }
    }
}

/// The ids a runner derives, from what caused them (UUID v5 in this namespace), so that a
/// crash and a retry make the same ones.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f6c_646c_696e_652d_7072_6f63_6573_7321);

/// An id derived from `name` and what it is for (`"refused"`, `"timer"`, `"command"`): the
/// same every time.
fn derived_id(name: &str, what: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{what}:{name}").as_bytes())
}

impl<P: ProcessManager> Action<P> {
    /// What kind of action this is, for logs and the operators' views: `"send"`,
    /// `"schedule"`, `"cancel"`, `"complete"` or `"fail"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Send(_) => "send",
            Action::Schedule { .. } => "schedule",
            Action::Cancel(_) => "cancel",
            Action::Complete => "complete",
            Action::Fail { .. } => "fail",
        }
    }
}

impl<P: ProcessManager> Clone for Action<P> {
    fn clone(&self) -> Self {
        match self {
            Action::Send(command) => Action::Send(command.clone()),
            Action::Schedule { timeout, after } => Action::Schedule {
                timeout: timeout.clone(),
                after: *after,
            },
            Action::Cancel(timeout) => Action::Cancel(timeout.clone()),
            Action::Complete => Action::Complete,
            Action::Fail { reason } => Action::Fail {
                reason: reason.clone(),
            },
        }
    }
}

impl<P: ProcessManager> PartialEq for Action<P>
where
    P::Command: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Action::Send(a), Action::Send(b)) => a == b,
            (
                Action::Schedule { timeout, after },
                Action::Schedule {
                    timeout: other_timeout,
                    after: other_after,
                },
            ) => timeout == other_timeout && after == other_after,
            (Action::Cancel(a), Action::Cancel(b)) => a == b,
            (Action::Complete, Action::Complete) => true,
            (Action::Fail { reason }, Action::Fail { reason: other }) => reason == other,
            _ => false,
        }
    }
}

impl<P: ProcessManager> fmt::Debug for Action<P>
where
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send(command) => f.debug_tuple("Send").field(command).finish(),
            Action::Schedule { timeout, after } => f
                .debug_struct("Schedule")
                .field("timeout", timeout)
                .field("after", after)
                .finish(),
            Action::Cancel(timeout) => f.debug_tuple("Cancel").field(timeout).finish(),
            Action::Complete => f.write_str("Complete"),
            Action::Fail { reason } => f.debug_struct("Fail").field("reason", reason).finish(),
        }
    }
}
