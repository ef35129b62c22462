//! Process managers of different types behind one object-safe trait, so the CLI can list their
//! instances, show one whole and retry one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foldline::{
    Action, ActionReport, Codec, CommandDispatcher, EventStore, Input, Instance, ProcessManager,
    ProcessRunner, ProcessStatus, Retried, StoredInstance, StreamId, TimerStore,
};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::registry::BoxFuture;

/// What the admin can do with a registered process manager; implemented for every
/// [`ProcessRunner`] (and an `Arc` of one, as a [`ProcessTarget`](foldline::ProcessTarget)
/// shares it).
///
/// Register its projector ([`ProcessProjection`](foldline::ProcessProjection) read into a
/// [`ProcessTarget`](foldline::ProcessTarget)) as a projection as well: `status`, `pause`,
/// `resume` and `dead-letters` then work on it under the process manager's name.
pub trait ManagedProcess: Send + Sync {
    /// The process manager's [`NAME`](ProcessManager::NAME): its instances' streams are
    /// `"{name}-{id}"`, and its projection has this name.
    fn name(&self) -> &'static str;
    /// The state of the instance whose stream is `stream`, cheaply (its stream and its timers).
    fn summary<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, foldline::Result<InstanceSummary>>;
    /// The instance whole: every decision, what became of each action, its timers.
    fn inspect<'a>(&'a self, stream: &'a StreamId)
    -> BoxFuture<'a, foldline::Result<InstanceView>>;
    /// Carries the instance's recorded decisions out again ([`ProcessRunner::retry`]).
    fn retry<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, foldline::Result<Retried>>;
    /// When the earliest timer of the process manager is due, if any.
    fn next_due(&self) -> BoxFuture<'_, foldline::Result<Option<SystemTime>>>;
}

/// The state of an instance of a process manager, as `processes` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstanceState {
    /// Not finished, and no timeout pending: it waits for an event (the outcome of a command
    /// it sent, say).
    Running,
    /// Not finished, with at least one timeout pending: it wakes when the timer is due, unless
    /// something comes first.
    Waiting,
    /// It completed.
    Completed,
    /// It failed (the reason is shown).
    Failed,
}

impl InstanceState {
    /// Every state, in the order `status` counts them.
    pub const ALL: [InstanceState; 4] = [
        InstanceState::Running,
        InstanceState::Waiting,
        InstanceState::Completed,
        InstanceState::Failed,
    ];

    /// `running`, `waiting`, `completed` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Running => "running",
            InstanceState::Waiting => "waiting",
            InstanceState::Completed => "completed",
            InstanceState::Failed => "failed",
        }
    }

    /// The state of `instance`, and the reason it failed.
    fn of<P: ProcessManager>(instance: &Instance<P>) -> (Self, Option<String>) {
        match instance.status() {
            ProcessStatus::Completed => (InstanceState::Completed, None),
            ProcessStatus::Failed { reason } => (InstanceState::Failed, Some(reason.clone())),
            _ if instance.pending_timeouts().is_empty() => (InstanceState::Running, None),
            _ => (InstanceState::Waiting, None),
        }
    }
}

/// An instance in a few fields ([`ManagedProcess::summary`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InstanceSummary {
    /// The process manager's name.
    pub process: &'static str,
    /// The instance's stream.
    pub stream: StreamId,
    /// Its state.
    pub state: InstanceState,
    /// Why it failed.
    pub reason: Option<String>,
    /// How many decisions it recorded (0: there is no such instance).
    pub decisions: u64,
    /// How many timeouts it has pending.
    pub pending_timeouts: usize,
    /// When the earliest timer of a pending timeout is due (none when the timer store holds
    /// none of them).
    pub next_due: Option<SystemTime>,
}

/// An instance whole ([`ManagedProcess::inspect`]): its decisions with the inputs and actions
/// as JSON (the admin does not know the process managers' types), and its timers.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct InstanceView {
    /// Its state in a few fields.
    pub summary: InstanceSummary,
    /// Its decisions, in order.
    pub decisions: Vec<DecisionView>,
    /// The timers the timer store holds for it, earliest first.
    pub timers: Vec<TimerView>,
}

/// One decision of an instance.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DecisionView {
    /// Its version in the instance's stream (1 for the first).
    pub version: u64,
    /// The id of its event.
    pub event_id: Uuid,
    /// When it was recorded.
    pub recorded_at: SystemTime,
    /// The correlation id it was recorded with.
    pub correlation_id: Option<Uuid>,
    /// The input's id: the triggering event's id, or the id the runner gave a refusal or a
    /// fired timer.
    pub input_id: Uuid,
    /// `event`, `refused` or `timeout`.
    pub input_kind: &'static str,
    /// The input: the event, `{"command", "error"}` for a refusal, the timeout.
    pub input: Value,
    /// The actions decided, in order.
    pub actions: Vec<ActionView>,
}

/// One action of a decision, and what became of it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ActionView {
    /// `send`, `schedule`, `cancel`, `complete` or `fail`.
    pub kind: &'static str,
    /// The command sent, the timeout scheduled or cancelled, the reason of a failure (`null`
    /// for `complete`).
    pub value: Value,
    /// A schedule's delay.
    pub after: Option<Duration>,
    /// What became of it.
    pub report: ActionReport,
}

/// A timer the timer store holds for an instance.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TimerView {
    /// Its id.
    pub id: Uuid,
    /// Its timeout, as JSON when it decodes (`null` when it does not).
    pub timeout: Value,
    /// When it is due.
    pub due_at: SystemTime,
}

impl<P, S, D, T, C> ManagedProcess for ProcessRunner<P, S, D, T, C>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
    C: Codec,
{
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn summary<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, foldline::Result<InstanceSummary>> {
        Box::pin(async move {
            let stored =
                StoredInstance::<P>::load_stream(self.store(), self.codec(), stream.clone())
                    .await?;
            let timers = self.timers().pending(P::NAME, stream).await?;
            let pending = stored.instance.pending_timeouts();
            // The timers of timeouts still pending (a fired or cancelled one's timer may
            // linger until a runner drops it).
            let next_due = timers
                .iter()
                .filter(|timer| {
                    self.codec()
                        .decode::<P::Timeout>(&timer.timeout)
                        .is_ok_and(|timeout| pending.contains(&timeout))
                })
                .map(|timer| timer.due_at)
                .min();
            let (state, reason) = InstanceState::of(&stored.instance);
            Ok(InstanceSummary {
                process: P::NAME,
                stream: stream.clone(),
                state,
                reason,
                decisions: stored.version.get(),
                pending_timeouts: pending.len(),
                next_due,
            })
        })
    }

    fn inspect<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, foldline::Result<InstanceView>> {
        Box::pin(async move {
            let report = ProcessRunner::inspect(self, stream).await?;
            let (state, reason) = InstanceState::of(&report.instance);
            let pending = report.instance.pending_timeouts();
            let next_due = report
                .decisions
                .iter()
                .flat_map(|d| &d.actions)
                .filter_map(|action| match action {
                    ActionReport::Schedule {
                        timer_id,
                        fate: foldline::TimeoutFate::Pending { stored: true },
                        ..
                    } => report.timers.iter().find(|t| t.id == *timer_id),
                    _ => None,
                })
                .map(|timer| timer.due_at)
                .min();
            let summary = InstanceSummary {
                process: P::NAME,
                stream: stream.clone(),
                state,
                reason,
                decisions: report.decisions.last().map_or(0, |d| d.version.get()),
                pending_timeouts: pending.len(),
                next_due,
            };
            let decisions = report
                .decisions
                .iter()
                .map(|decided| {
                    let decision = &decided.decision;
                    Ok(DecisionView {
                        version: decided.version.get(),
                        event_id: decided.event_id,
                        recorded_at: decided.recorded_at,
                        correlation_id: decided.correlation_id,
                        input_id: decision.input_id,
                        input_kind: decision.input.kind(),
                        input: input_json(&decision.input)?,
                        actions: decision
                            .actions
                            .iter()
                            .zip(&decided.actions)
                            .map(|(action, report)| action_view(action, report))
                            .collect::<foldline::Result<_>>()?,
                    })
                })
                .collect::<foldline::Result<_>>()?;
            let timers = report
                .timers
                .iter()
                .map(|timer| TimerView {
                    id: timer.id,
                    timeout: self
                        .codec()
                        .decode::<P::Timeout>(&timer.timeout)
                        .ok()
                        .and_then(|timeout| serde_json::to_value(timeout).ok())
                        .unwrap_or(Value::Null),
                    due_at: timer.due_at,
                })
                .collect();
            Ok(InstanceView {
                summary,
                decisions,
                timers,
            })
        })
    }

    fn retry<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, foldline::Result<Retried>> {
        Box::pin(ProcessRunner::retry(self, stream))
    }

    fn next_due(&self) -> BoxFuture<'_, foldline::Result<Option<SystemTime>>> {
        Box::pin(self.timers().next_due(P::NAME))
    }
}

impl<M: ManagedProcess + ?Sized> ManagedProcess for Arc<M> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn summary<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, foldline::Result<InstanceSummary>> {
        (**self).summary(stream)
    }

    fn inspect<'a>(
        &'a self,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, foldline::Result<InstanceView>> {
        (**self).inspect(stream)
    }

    fn retry<'a>(&'a self, stream: &'a StreamId) -> BoxFuture<'a, foldline::Result<Retried>> {
        (**self).retry(stream)
    }

    fn next_due(&self) -> BoxFuture<'_, foldline::Result<Option<SystemTime>>> {
        (**self).next_due()
    }
}

/// `value` as JSON, for the operators' views.
fn to_json<V: Serialize, P: ProcessManager>(value: &V, what: &str) -> foldline::Result<Value> {
    serde_json::to_value(value).map_err(|source| foldline::Error::Encode {
        what: format!("{what} of process `{}` as JSON", P::NAME),
        source: source.into(),
    })
}

fn input_json<P: ProcessManager>(input: &Input<P>) -> foldline::Result<Value> {
    Ok(match input {
        Input::Event(event) => to_json::<_, P>(event, "an event")?,
        Input::Refused { command, error } => {
            json!({ "command": to_json::<_, P>(command, "a command")?, "error": error })
        }
        Input::Timeout(timeout) => to_json::<_, P>(timeout, "a timeout")?,
    })
}

fn action_view<P: ProcessManager>(
    action: &Action<P>,
    report: &ActionReport,
) -> foldline::Result<ActionView> {
    let (value, after) = match action {
        Action::Send(command) => (to_json::<_, P>(command, "a command")?, None),
        Action::Schedule { timeout, after } => {
            (to_json::<_, P>(timeout, "a timeout")?, Some(*after))
        }
        Action::Cancel(timeout) => (to_json::<_, P>(timeout, "a timeout")?, None),
        Action::Fail { reason } => (Value::String(reason.clone()), None),
        _ => (Value::Null, None),
    };
    Ok(ActionView {
        kind: action.kind(),
        value,
        after,
        report: report.clone(),
    })
}
