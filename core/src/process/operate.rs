//! What operators do with an instance of a process manager: look at it whole
//! ([`ProcessRunner::inspect`]: every decision, what became of each command and timeout), and
//! carry its decisions out again once whatever stopped it is fixed ([`ProcessRunner::retry`]).

use std::fmt;
use std::time::SystemTime;

use uuid::Uuid;

use super::runner::Received;
use super::{
    Action, ActionIds, CommandDispatcher, Decision, Dispatched, Input, Instance, ProcessManager,
    ProcessRunner, Timer, TimerStore,
};
use crate::codec::Codec;
use crate::command::load::{READ_PAGE, check_next};
use crate::error::Result;
use crate::names::StreamId;
use crate::store::{AppendResult, EventStore};
use crate::version::Version;

/// An instance of a process manager as an operator sees it ([`ProcessRunner::inspect`]).
#[non_exhaustive]
pub struct InstanceReport<P: ProcessManager> {
    /// The instance's stream.
    pub stream: StreamId,
    /// The instance, every decision replayed: its status and pending timeouts.
    pub instance: Instance<P>,
    /// Its decisions, in the order they were recorded.
    pub decisions: Vec<DecisionReport<P>>,
    /// The timers the timer store holds for it, earliest first.
    pub timers: Vec<Timer>,
}

/// One decision of an instance, and what became of each of its actions.
#[non_exhaustive]
pub struct DecisionReport<P: ProcessManager> {
    /// The id of the decision's event: the causation id of the commands it sent.
    pub event_id: Uuid,
    /// Its version in the instance's stream (the first decision is 1).
    pub version: Version,
    /// When it was recorded.
    pub recorded_at: SystemTime,
    /// The correlation id it was recorded with, which its commands carry on.
    pub correlation_id: Option<Uuid>,
    /// The input and the actions decided.
    pub decision: Decision<P>,
    /// What became of each action, in the order of `decision.actions`.
    pub actions: Vec<ActionReport>,
}

/// What became of one action of a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActionReport {
    /// A command was to be sent.
    Send {
        /// Its idempotency key, command id and refusal id.
        ids: ActionIds,
        /// What its aggregate made of it.
        fate: CommandFate,
    },
    /// A timeout was scheduled.
    Schedule {
        /// The timer's id.
        timer_id: Uuid,
        /// When it was due as decided: the decision's time plus the delay.
        due_at: SystemTime,
        /// Whether it is still pending.
        fate: TimeoutFate,
    },
    /// A cancel, complete or fail: done with the decision itself.
    Done,
}

/// What an aggregate made of a command an instance sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandFate {
    /// Applied: the runner's store holds the command's idempotency key, with what it appended.
    Applied(AppendResult),
    /// Refused: the instance decided on the refusal (the decision at `version`).
    Refused {
        /// The aggregate's reason.
        error: String,
        /// The version of the decision about the refusal.
        version: Version,
    },
    /// Neither is recorded: the command was not sent yet, or a failure lost it before its
    /// aggregate decided (the input it came from may be in the dead-letter list), or its
    /// aggregate accepted it without appending anything (which stores no key), or it went to
    /// an aggregate in another store. [`retry`](ProcessRunner::retry) sends it.
    Unconfirmed,
}

/// Whether a scheduled timeout is still pending.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutFate {
    /// Pending: it wakes the instance when due, unless cancelled first.
    Pending {
        /// Whether the timer store holds its timer. Not: lost to a failure after the decision
        /// was recorded; [`retry`](ProcessRunner::retry) schedules it again.
        stored: bool,
    },
    /// It fired: the instance decided on it (the decision at `version`).
    Fired {
        /// The version of the decision about it.
        version: Version,
    },
    /// A later decision (at `version`) cancelled it.
    Cancelled {
        /// The version of the cancelling decision.
        version: Version,
    },
    /// The instance finished (in the decision at `version`) before it fired.
    Dropped {
        /// The version of the finishing decision.
        version: Version,
    },
}

/// What [`ProcessRunner::retry`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retried {
    /// The decisions carried out again (every decision of the instance).
    pub decisions: usize,
    /// Commands applied before (the store holds their idempotency keys): not sent again.
    pub applied_before: usize,
    /// Commands refused before (the instance decided on the refusal): not sent again, so that
    /// what the instance did about the refusal (a compensation) is not undone.
    pub refused_before: usize,
    /// Commands sent and accepted now.
    pub accepted: usize,
    /// Commands sent and refused now: the instance decided on each refusal and that
    /// decision was carried out.
    pub refused: usize,
    /// Pending timeouts whose timer was missing, scheduled again (due when first decided:
    /// at once when that has passed).
    pub timers_scheduled: usize,
    /// Timers removed: those of timeouts that fired already, and every timer of a finished
    /// instance.
    pub timers_removed: usize,
}

impl<P, S, D, T, C> ProcessRunner<P, S, D, T, C>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
    C: Codec,
{
    /// The store the runner records decisions in (and where it looks for its commands'
    /// idempotency keys).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The timer store the runner keeps timers in.
    pub fn timers(&self) -> &T {
        &self.timers
    }

    /// The codec of the decisions' and timers' payloads.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The instance whose stream is `stream`, whole: its status, every decision with what
    /// became of each command (applied, refused, or neither recorded) and timeout (pending,
    /// fired, cancelled, dropped), and the timers the timer store holds for it. An instance
    /// that decided nothing yet has no decisions.
    ///
    /// # Errors
    ///
    /// The store's and the timer store's errors;
    /// [`Error::StreamGap`](crate::Error::StreamGap) when the stream's versions skip one;
    /// [`Error::UnknownEventType`](crate::Error::UnknownEventType) or
    /// [`Error::Decode`](crate::Error::Decode) for an event that is not a decision of `P`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn inspect(&self, stream: &StreamId) -> Result<InstanceReport<P>> {
        let mut instance = Instance::<P>::new();
        let mut decisions = Vec::new();
        let mut version = Version::ZERO;
        loop {
            let page = self
                .store
                .read_stream(stream, version.next(), READ_PAGE)
                .await?;
            let full = page.len() == READ_PAGE;
            for recorded in &page {
                check_next(stream, version.next(), recorded)?;
                let decision = Decision::<P>::decode(recorded, &self.codec)?;
                instance.replay(&decision.input, &decision.actions);
                version = recorded.stream_version;
                let actions = decision
                    .actions
                    .iter()
                    .enumerate()
                    .map(|(index, action)| {
                        let ids = ActionIds::of::<P>(decision.input_id, index)?;
                        Ok(match action {
                            Action::Send(_) => ActionReport::Send {
                                ids,
                                fate: CommandFate::Unconfirmed,
                            },
                            Action::Schedule { after, .. } => ActionReport::Schedule {
                                timer_id: ids.timer_id,
                                due_at: recorded.recorded_at + *after,
                                fate: TimeoutFate::Pending { stored: false },
                            },
                            _ => ActionReport::Done,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                decisions.push(DecisionReport {
                    event_id: recorded.event_id,
                    version,
                    recorded_at: recorded.recorded_at,
                    correlation_id: recorded.metadata.correlation_id,
                    decision,
                    actions,
                });
            }
            if !full {
                break;
            }
        }
        let timers = self.timers.pending(P::NAME, stream).await?;
        follow_timeouts(&mut decisions, &timers);
        self.follow_commands(&mut decisions).await?;
        Ok(InstanceReport {
            stream: stream.clone(),
            instance,
            decisions,
            timers,
        })
    }

    /// Sets the fate of every command: refused when the instance decided on its refusal,
    /// applied when the store holds its key.
    async fn follow_commands(&self, decisions: &mut [DecisionReport<P>]) -> Result<()> {
        let refusals: Vec<(Uuid, Version, String)> = decisions
            .iter()
            .filter_map(|d| match &d.decision.input {
                Input::Refused { error, .. } => {
                    Some((d.decision.input_id, d.version, error.clone()))
                }
                _ => None,
            })
            .collect();
        for report in decisions.iter_mut().flat_map(|d| d.actions.iter_mut()) {
            let ActionReport::Send { ids, fate } = report else {
                continue;
            };
            *fate = match refusals.iter().find(|(id, ..)| *id == ids.refusal_id) {
                Some((_, version, error)) => CommandFate::Refused {
                    error: error.clone(),
                    version: *version,
                },
                None => match self.store.find_idempotent(&ids.key).await? {
                    Some(applied) => CommandFate::Applied(applied),
                    None => CommandFate::Unconfirmed,
                },
            };
        }
        Ok(())
    }

    /// Carries out the recorded decisions of the instance whose stream is `stream` again, in
    /// order: what an operator does once whatever stopped the instance is fixed (a command
    /// that failed, an input parked as a dead letter after its decision was recorded).
    ///
    /// - A command is sent again, with the options the runner gave it (its idempotency key,
    ///   command id, correlation and causation), unless the store holds its key already
    ///   (applied) or the instance decided on its refusal (sending it again could undo a
    ///   compensation). A command refused now is decided on by the instance as a refusal,
    ///   and that decision carried out, as the runner does.
    /// - A pending timeout whose timer is missing is scheduled again, due when it was first
    ///   due (at once when that has passed); the timers of timeouts that fired already are
    ///   removed, and every timer of a finished instance.
    ///
    /// Nothing is decided again and nothing happens twice: running it again, or while a
    /// runner handles the instance, is harmless.
    ///
    /// # Errors
    ///
    /// As [`inspect`](Self::inspect), and the dispatcher's errors (what it sent stays sent:
    /// retry again once the failure is fixed).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a command sent may be applied without being counted. Retry again.
    pub async fn retry(&self, stream: &StreamId) -> Result<Retried> {
        let report = self.inspect(stream).await?;
        let now = SystemTime::now();
        let mut retried = Retried {
            decisions: report.decisions.len(),
            ..Retried::default()
        };
        for decided in &report.decisions {
            for (action, outcome) in decided.decision.actions.iter().zip(&decided.actions) {
                match (action, outcome) {
                    (Action::Send(command), ActionReport::Send { ids, fate }) => match fate {
                        CommandFate::Applied(_) => retried.applied_before += 1,
                        CommandFate::Refused { .. } => retried.refused_before += 1,
                        CommandFate::Unconfirmed => {
                            if self.send_again(stream, decided, command, ids, now).await? {
                                retried.accepted += 1;
                            } else {
                                retried.refused += 1;
                            }
                        }
                    },
                    (
                        Action::Schedule { timeout, .. },
                        ActionReport::Schedule {
                            timer_id,
                            due_at,
                            fate: TimeoutFate::Pending { stored: false },
                        },
                    ) => {
                        let timer = Timer::new(
                            *timer_id,
                            P::NAME,
                            stream.clone(),
                            self.encode_timeout(timeout)?,
                            *due_at,
                        );
                        self.timers.schedule(timer).await?;
                        retried.timers_scheduled += 1;
                    }
                    _ => {}
                }
            }
        }
        if report.instance.status().is_finished() {
            let removed = self.timers.cancel_all(P::NAME, stream).await?;
            retried.timers_removed += usize::try_from(removed).unwrap_or(usize::MAX);
        } else {
            for timer in &report.timers {
                if report
                    .decisions
                    .iter()
                    .any(|d| d.decision.input_id == timer.id)
                {
                    self.timers.remove(timer.id).await?;
                    retried.timers_removed += 1;
                }
            }
        }
        Ok(retried)
    }

    /// Sends `command` of `decided` again with the options the runner gave it; on a refusal,
    /// the instance decides on it. Whether it was accepted.
    async fn send_again(
        &self,
        stream: &StreamId,
        decided: &DecisionReport<P>,
        command: &P::Command,
        ids: &ActionIds,
        now: SystemTime,
    ) -> Result<bool> {
        let options = ids.command_options(decided.event_id, decided.correlation_id);
        match self.dispatcher.dispatch(command, options).await? {
            Dispatched::Accepted => Ok(true),
            Dispatched::Refused(error) => {
                let refusal = Received {
                    id: ids.refusal_id,
                    correlation_id: decided.correlation_id,
                };
                let input = Input::Refused {
                    command: command.clone(),
                    error,
                };
                self.handle_input(stream.clone(), refusal, input, now)
                    .await?;
                Ok(false)
            }
        }
    }
}

/// Sets the fate of every scheduled timeout, by the rules [`Instance`] folds decisions with:
/// a fired timeout consumes the earliest pending one equal to it, a cancel every equal one, a
/// finishing action all of them (and a timeout scheduled after it in the same decision).
fn follow_timeouts<P: ProcessManager>(decisions: &mut [DecisionReport<P>], timers: &[Timer]) {
    // (decision, action) of each pending timeout, in the order scheduled.
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut finished = false;
    for d in 0..decisions.len() {
        let version = decisions[d].version;
        let mut fates: Vec<((usize, usize), TimeoutFate)> = Vec::new();
        if let Input::Timeout(fired) = &decisions[d].decision.input
            && let Some(at) = pending
                .iter()
                .position(|origin| timeout_of(decisions, *origin) == Some(fired))
        {
            fates.push((pending.remove(at), TimeoutFate::Fired { version }));
        }
        for a in 0..decisions[d].decision.actions.len() {
            match &decisions[d].decision.actions[a] {
                Action::Schedule { .. } if !finished => pending.push((d, a)),
                Action::Schedule { .. } => {
                    fates.push(((d, a), TimeoutFate::Dropped { version }));
                }
                Action::Cancel(cancelled) => {
                    let (gone, kept): (Vec<_>, Vec<_>) = pending
                        .iter()
                        .partition(|origin| timeout_of(decisions, **origin) == Some(cancelled));
                    pending = kept;
                    fates.extend(
                        gone.into_iter()
                            .map(|o| (o, TimeoutFate::Cancelled { version })),
                    );
                }
                Action::Complete | Action::Fail { .. } => {
                    finished = true;
                    fates.extend(
                        pending
                            .drain(..)
                            .map(|o| (o, TimeoutFate::Dropped { version })),
                    );
                }
                _ => {}
            }
        }
        for ((d, a), fate) in fates {
            set_fate(&mut decisions[d].actions[a], fate);
        }
    }
    for (d, a) in pending {
        let stored = match &decisions[d].actions[a] {
            ActionReport::Schedule { timer_id, .. } => timers.iter().any(|t| t.id == *timer_id),
            _ => false,
        };
        set_fate(
            &mut decisions[d].actions[a],
            TimeoutFate::Pending { stored },
        );
    }
}

/// The timeout action `a` of decision `d` schedules.
fn timeout_of<P: ProcessManager>(
    decisions: &[DecisionReport<P>],
    (d, a): (usize, usize),
) -> Option<&P::Timeout> {
    match &decisions[d].decision.actions[a] {
        Action::Schedule { timeout, .. } => Some(timeout),
        _ => None,
    }
}

fn set_fate(report: &mut ActionReport, new: TimeoutFate) {
    if let ActionReport::Schedule { fate, .. } = report {
        *fate = new;
    }
}

impl<P: ProcessManager> fmt::Debug for InstanceReport<P>
where
    P: fmt::Debug,
    P::Event: fmt::Debug,
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceReport")
            .field("stream", &self.stream)
            .field("instance", &self.instance)
            .field("decisions", &self.decisions)
            .field("timers", &self.timers)
            .finish()
    }
}

impl<P: ProcessManager> fmt::Debug for DecisionReport<P>
where
    P::Event: fmt::Debug,
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionReport")
            .field("event_id", &self.event_id)
            .field("version", &self.version)
            .field("recorded_at", &self.recorded_at)
            .field("correlation_id", &self.correlation_id)
            .field("decision", &self.decision)
            .field("actions", &self.actions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, SystemTime};

    use uuid::Uuid;

    use super::{ActionIds, ActionReport, CommandFate, InstanceReport, Retried, TimeoutFate};
    use crate::command::CommandOptions;
    use crate::error::{Error, Result};
    use crate::event::NewEvent;
    use crate::names::{EventType, StreamId};
    use crate::process::runner::Received;
    use crate::process::testing::{Scripted, step};
    use crate::process::{
        Action, CommandDispatcher, Dispatched, InMemoryTimerStore, Input, ProcessRunner,
        TimerStore, instance_stream,
    };
    use crate::store::{AppendRequest, EventStore, InMemoryEventStore};
    use crate::version::{ExpectedVersion, Version};

    /// Applies a command by appending an event under its key; refuses each command in
    /// `refuse_once` the first time; fails every command in `failing`.
    #[derive(Clone, Default)]
    struct Recording {
        store: InMemoryEventStore,
        sent: Arc<Mutex<Vec<(u32, CommandOptions)>>>,
        refuse_once: Arc<Mutex<HashSet<u32>>>,
        failing: Arc<Mutex<HashSet<u32>>>,
    }

    impl CommandDispatcher<u32> for Recording {
        async fn dispatch(&self, command: &u32, options: CommandOptions) -> Result<Dispatched> {
            let lock = |set: &Mutex<HashSet<u32>>| {
                set.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains(command)
            };
            if lock(&self.failing) {
                return Err(Error::Closed {
                    what: "the test's aggregate",
                });
            }
            self.sent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((*command, options.clone()));
            if self
                .refuse_once
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(command)
            {
                return Ok(Dispatched::Refused(format!("not {command} now")));
            }
            let event = NewEvent::new(EventType::from_static("Done"), 1, b"{}".to_vec());
            let mut request = AppendRequest::new(
                StreamId::new(format!("command-{command}"))?,
                ExpectedVersion::Any,
                vec![event],
            );
            if let Some(key) = options.idempotency_key() {
                request = request.with_idempotency_key(key.clone());
            }
            self.store.append(request).await?;
            Ok(Dispatched::Accepted)
        }
    }

    type Runner = ProcessRunner<Scripted, InMemoryEventStore, Recording, InMemoryTimerStore>;

    async fn handle(runner: &Runner, stream: &StreamId, input: Input<Scripted>) -> Result<()> {
        let received = Received {
            id: Uuid::now_v7(),
            correlation_id: Some(Uuid::from_u128(7)),
        };
        runner
            .handle_input(stream.clone(), received, input, SystemTime::now())
            .await
            .map(|_| ())
    }

    fn sends(report: &InstanceReport<Scripted>) -> Vec<(u32, CommandFate)> {
        report
            .decisions
            .iter()
            .flat_map(|d| d.decision.actions.iter().zip(&d.actions))
            .filter_map(|(action, outcome)| match (action, outcome) {
                (Action::Send(n), ActionReport::Send { fate, .. }) => Some((*n, fate.clone())),
                _ => None,
            })
            .collect()
    }

    fn schedules(report: &InstanceReport<Scripted>) -> Vec<(u32, TimeoutFate)> {
        report
            .decisions
            .iter()
            .flat_map(|d| d.decision.actions.iter().zip(&d.actions))
            .filter_map(|(action, outcome)| match (action, outcome) {
                (Action::Schedule { timeout, .. }, ActionReport::Schedule { fate, .. }) => {
                    Some((*timeout, fate.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn inspect_follows_every_command_and_timeout_and_retry_sends_what_is_unconfirmed() {
        let store = InMemoryEventStore::new();
        let dispatcher = Recording {
            store: store.clone(),
            ..Recording::default()
        };
        let timers = InMemoryTimerStore::new();
        let runner = ProcessRunner::new(store.clone(), dispatcher.clone(), timers.clone());
        let stream = instance_stream::<Scripted>(&1).unwrap();
        dispatcher.refuse_once.lock().unwrap().insert(6);
        dispatcher.failing.lock().unwrap().insert(8);

        handle(&runner, &stream, step(1)).await.unwrap(); // schedules 10, 11, 10
        handle(&runner, &stream, step(5)).await.unwrap(); // sends 5
        handle(&runner, &stream, step(6)).await.unwrap(); // 6 refused, then sent again
        handle(&runner, &stream, step(2)).await.unwrap(); // cancels the 10s
        let later = SystemTime::now() + Duration::from_secs(2);
        assert_eq!(
            runner
                .fire_due(later, 10, Duration::from_secs(30))
                .await
                .unwrap(),
            1
        );
        let failed = handle(&runner, &stream, step(8)).await.unwrap_err(); // 8 fails
        assert!(matches!(failed, Error::Closed { .. }), "{failed}");

        let report = runner.inspect(&stream).await.unwrap();
        assert_eq!(report.decisions.len(), 7);
        let refusal = report.decisions[3].version;
        assert!(matches!(
            sends(&report).as_slice(),
            [
                (5, CommandFate::Applied(_)),
                (6, CommandFate::Refused { version, .. }),
                (6, CommandFate::Applied(_)),
                (8, CommandFate::Unconfirmed),
            ] if *version == refusal
        ));
        let cancelled = TimeoutFate::Cancelled {
            version: Version::new(5),
        };
        assert_eq!(
            schedules(&report),
            [
                (10, cancelled.clone()),
                (
                    11,
                    TimeoutFate::Fired {
                        version: Version::new(6)
                    }
                ),
                (10, cancelled),
                (11, TimeoutFate::Pending { stored: true }),
            ]
        );

        // The ids are the runner's: the options it sent and the timer it keeps.
        let sent = dispatcher.sent.lock().unwrap().clone();
        let five = &report.decisions[1];
        let ids = ActionIds::of::<Scripted>(five.decision.input_id, 0).unwrap();
        let (_, options) = sent.iter().find(|(n, _)| *n == 5).unwrap();
        assert_eq!(options.idempotency_key(), Some(&ids.key));
        assert_eq!(options.command_id, Some(ids.command_id));
        assert_eq!(options.metadata.causation_id, Some(five.event_id));
        assert_eq!(options.metadata.correlation_id, Some(Uuid::from_u128(7)));
        let refused = &report.decisions[2];
        let ids = ActionIds::of::<Scripted>(refused.decision.input_id, 0).unwrap();
        assert_eq!(report.decisions[3].decision.input_id, ids.refusal_id);
        let fired = &report.decisions[5];
        let ids = ActionIds::of::<Scripted>(fired.decision.input_id, 0).unwrap();
        assert_eq!(
            report.timers.iter().map(|t| t.id).collect::<Vec<_>>(),
            [ids.timer_id]
        );

        // Fixed, the retry sends 8 alone, and again nothing.
        dispatcher.failing.lock().unwrap().clear();
        let head = store.head().await.unwrap();
        let retried = runner.retry(&stream).await.unwrap();
        assert_eq!(
            retried,
            Retried {
                decisions: 7,
                applied_before: 2,
                refused_before: 1,
                accepted: 1,
                ..Retried::default()
            }
        );
        assert_eq!(dispatcher.sent.lock().unwrap().last().unwrap().0, 8);
        assert_ne!(store.head().await.unwrap(), head);
        let head = store.head().await.unwrap();
        let again = runner.retry(&stream).await.unwrap();
        assert_eq!((again.accepted, again.applied_before), (0, 3));
        assert_eq!(store.head().await.unwrap(), head, "a second retry appended");

        // A lost timer is scheduled again, due as first decided.
        let lost = report.timers[0].clone();
        timers.remove(lost.id).await.unwrap();
        let report = runner.inspect(&stream).await.unwrap();
        assert_eq!(
            schedules(&report)[3].1,
            TimeoutFate::Pending { stored: false }
        );
        assert_eq!(runner.retry(&stream).await.unwrap().timers_scheduled, 1);
        let restored = timers.pending("scripted", &stream).await.unwrap();
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].id, lost.id);
        let ActionReport::Schedule { due_at, .. } = &report.decisions[5].actions[0] else {
            panic!("the fired timeout's decision schedules 11");
        };
        assert_eq!(restored[0].due_at, *due_at);

        // Finished, its timeouts are dropped and a retry leaves no timer.
        handle(&runner, &stream, step(3)).await.unwrap();
        let report = runner.inspect(&stream).await.unwrap();
        let finished = report.decisions.last().unwrap().version;
        assert_eq!(
            schedules(&report)[3].1,
            TimeoutFate::Dropped { version: finished }
        );
        assert_eq!(
            schedules(&report)[4].1,
            TimeoutFate::Dropped { version: finished }
        );
        runner.retry(&stream).await.unwrap();
        assert!(
            timers
                .pending("scripted", &stream)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
