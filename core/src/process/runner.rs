//! Carrying decisions out: the runner of a process manager, between the feed, the instances'
//! streams, the aggregates and the timers.

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::{
    Action, ActionIds, Input, Outcome, ProcessManager, RecordedDecision, StoredInstance, Timer,
    TimerStore,
};
use crate::codec::{Codec, JsonCodec};
use crate::command::CommandOptions;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::names::{EventType, StreamId};
use crate::projection::{Envelope, FeedEvent};
use crate::store::EventStore;

/// How many times a decision is tried again after another runner recorded one of the same
/// instance first.
const CONFLICT_ATTEMPTS: u32 = 5;

/// How many due timers one look claims.
const TIMER_BATCH: usize = 100;

/// What a timer's timeout is called in an error about decoding it (it is not an event).
const TIMER: EventType = EventType::from_static("foldline.process.Timer");

/// What an aggregate answered a process manager's command.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dispatched {
    /// Accepted (or a repeat of an accepted one: its idempotency key found it).
    Accepted,
    /// Refused, with the aggregate's reason: it comes back to the instance as
    /// [`Input::Refused`].
    Refused(String),
}

impl Dispatched {
    /// What a command executor's `result` means to a process manager: accepted, refused by
    /// the aggregate (its error's message), or a store failure that stops the runner (the
    /// input is handled again later, the command sent again under the same key).
    ///
    /// # Errors
    ///
    /// The store's error of a [`CommandError::Store`](crate::CommandError::Store).
    pub fn from_result<T, E: std::fmt::Display>(
        result: std::result::Result<T, crate::CommandError<E>>,
    ) -> Result<Self> {
        match result {
            Ok(_) => Ok(Dispatched::Accepted),
            Err(crate::CommandError::Rejected(error)) => Ok(Dispatched::Refused(error.to_string())),
            Err(crate::CommandError::Store(error)) => Err(error),
        }
    }
}

/// Sends a process manager's commands to their aggregates, each with the
/// [`CommandOptions`] the runner made for it: usually a `match` on the command that calls
/// [`CommandExecutor::execute_with`](crate::CommandExecutor::execute_with) with those
/// options, and answers [`Dispatched::from_result`] of its result (a
/// [`CommandError::Rejected`](crate::CommandError::Rejected) is [`Dispatched::Refused`]).
///
/// The options hold the idempotency key derived from the instance, the input and the action
/// ([`command_key`](super::command_key)), which makes sending again after a crash harmless, and the metadata that
/// lets `foldline trace` follow the process: the command's id (derived from the key), the
/// correlation id of the business transaction, and as causation id the id of the decision's
/// event in the instance's stream. Pass them on unchanged.
pub trait CommandDispatcher<C>: Send + Sync + 'static {
    /// Sends `command` with `options`.
    ///
    /// # Errors
    ///
    /// What keeps the command from being decided (the store unreachable): the runner stops
    /// on it, and the input is handled again later, the command sent again under the same
    /// key.
    fn dispatch(
        &self,
        command: &C,
        options: CommandOptions,
    ) -> impl Future<Output = Result<Dispatched>> + Send;
}

/// What [`ProcessRunner::handle_event`] did with an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handled {
    /// Inputs decided now and carried out (the event, and the refusals it led to).
    pub decided: u32,
    /// Inputs decided before (redelivered) whose actions were carried out again.
    pub redelivered: u32,
    /// Inputs for finished instances, ignored.
    pub ignored: u32,
}

/// Runs process manager `P`: hands it the events of the feed that correlate to an instance,
/// fires its due timers, records each decision in the instance's stream
/// ([`StoredInstance`]) and only then carries it out — commands sent under keys derived from
/// the input and the action's index, timeouts scheduled and cancelled in the [`TimerStore`].
/// A command refused comes back to the instance as an input. An input handled again after a
/// crash is recognized and its recorded actions carried out again, which appends nothing
/// twice: exactly once in effect.
pub struct ProcessRunner<P, S, D, T, C = JsonCodec> {
    pub(super) store: S,
    pub(super) dispatcher: D,
    pub(super) timers: T,
    pub(super) codec: C,
    process: PhantomData<fn() -> P>,
}

impl<P, S, D, T> ProcessRunner<P, S, D, T>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
{
    /// A runner recording in `store`, sending through `dispatcher`, keeping timers in
    /// `timers`, JSON payloads.
    pub fn new(store: S, dispatcher: D, timers: T) -> Self {
        ProcessRunner {
            store,
            dispatcher,
            timers,
            codec: JsonCodec,
            process: PhantomData,
        }
    }
}

impl<P, S, D, T, C> ProcessRunner<P, S, D, T, C>
where
    P: ProcessManager,
    S: EventStore,
    D: CommandDispatcher<P::Command>,
    T: TimerStore,
    C: Codec,
{
    /// Handles one event of the feed: nothing when it is not one of `P`'s events or
    /// correlates to no instance; otherwise the instance decides on it (once: by its event
    /// id), and the decision is carried out.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for an event of `P`'s types that does not decode; the store's,
    /// dispatcher's and timer store's errors (handle the event again: nothing is done twice).
    pub async fn handle_event(&self, recorded: &RecordedEvent) -> Result<Handled> {
        let Some(event) = P::Event::from_recorded(recorded, &self.codec)? else {
            return Ok(Handled::default());
        };
        let Some(id) = P::correlate(&Envelope::new(event.clone(), recorded)) else {
            return Ok(Handled::default());
        };
        let stream = super::instance_stream::<P>(&id)?;
        let input = Input::Event(event);
        let received = Received::of(recorded);
        self.handle_input(stream, received, input, SystemTime::now())
            .await
    }

    /// Fires up to `limit` of `P`'s timers due at `now`, claimed for `lease`: each is decided
    /// on by its instance (once: by the timer's id) and carried out, then removed. A timer
    /// whose timeout the instance no longer has pending (cancelled, or the instance finished)
    /// is removed without firing. How many timers fired.
    ///
    /// # Errors
    ///
    /// As [`handle_event`](Self::handle_event); the timers not yet removed fire once their
    /// lease ends.
    pub async fn fire_due(&self, now: SystemTime, limit: usize, lease: Duration) -> Result<usize> {
        let due = self.timers.claim_due(P::NAME, now, limit, lease).await?;
        let mut fired = 0;
        for timer in due {
            let timeout: P::Timeout =
                self.codec
                    .decode(&timer.timeout)
                    .map_err(|source| Error::Decode {
                        stream: timer.instance.clone(),
                        version: crate::version::Version::ZERO,
                        event_type: TIMER,
                        schema_version: 1,
                        source,
                    })?;
            let stored =
                StoredInstance::<P>::load_stream(&self.store, &self.codec, timer.instance.clone())
                    .await?;
            // The instance ignores a timeout no longer pending (cancelled, or the instance
            // finished): the timer is dropped unfired. One edge remains: a decision carried
            // out again after a crash can schedule again a timeout a later decision
            // cancelled; that timer fires only while an equal timeout is pending again, and
            // then early.
            let received = Received {
                id: timer.id,
                correlation_id: stored.correlation_id,
            };
            let handled = self
                .decide_and_carry_out(stored, received, Input::Timeout(timeout), now)
                .await?;
            if handled.decided + handled.redelivered > 0 {
                fired += 1;
            }
            self.timers.remove(timer.id).await?;
        }
        Ok(fired)
    }

    /// Fires `P`'s timers as they come due, until the future is dropped: it looks every `poll`
    /// at the most, sooner when the next timer is due sooner, and claims the due ones for
    /// `lease` (a runner that dies holding one leaves it to the others when the lease ends:
    /// late rather than never). Several runners may run it at once; each timer fires once.
    /// A transient failure (the store unreachable) is logged and tried again after `poll`.
    ///
    /// # Errors
    ///
    /// The first failure that is not transient (a timeout that no longer decodes, an
    /// instance's stream that is not one).
    pub async fn run_timers(&self, poll: Duration, lease: Duration) -> Result<()> {
        loop {
            let wait = match self.fire_due(SystemTime::now(), TIMER_BATCH, lease).await {
                Ok(fired) if fired == TIMER_BATCH => Duration::ZERO,
                Ok(_) => match self.timers.next_due(P::NAME).await {
                    // Due already but not claimable: another runner holds it.
                    Ok(Some(due)) => due
                        .duration_since(SystemTime::now())
                        .map_or(poll, |until| until.min(poll)),
                    Ok(None) => poll,
                    Err(error) if error.is_transient() => self.timer_trouble(&error, poll),
                    Err(error) => return Err(error),
                },
                Err(error) if error.is_transient() => self.timer_trouble(&error, poll),
                Err(error) => return Err(error),
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn timer_trouble(&self, error: &Error, poll: Duration) -> Duration {
        tracing::warn!(
            process = P::NAME,
            error = %crate::error::error_chain(error, ": "),
            "firing timers failed; trying again"
        );
        poll
    }

    /// Loads the instance of `stream`, decides on `input` and carries the decisions out.
    pub(crate) async fn handle_input(
        &self,
        stream: StreamId,
        received: Received,
        input: Input<P>,
        now: SystemTime,
    ) -> Result<Handled> {
        let loaded = StoredInstance::load_stream(&self.store, &self.codec, stream).await?;
        self.decide_and_carry_out(loaded, received, input, now)
            .await
    }

    /// Decides on `input` (and on the refusals its commands meet) and carries the decisions
    /// out, starting from the instance as `loaded` (loaded again only after a conflict).
    async fn decide_and_carry_out(
        &self,
        loaded: StoredInstance<P>,
        received: Received,
        input: Input<P>,
        now: SystemTime,
    ) -> Result<Handled> {
        let stream = loaded.stream.clone();
        let mut instance = Some(loaded);
        let mut handled = Handled::default();
        let mut inputs = VecDeque::from([(received, input)]);
        while let Some((received, input)) = inputs.pop_front() {
            let (stored, outcome) = self
                .decide(instance.take(), &stream, received, &input)
                .await?;
            match &outcome {
                Outcome::Decided(_) => handled.decided += 1,
                Outcome::Redelivered(_) => handled.redelivered += 1,
                Outcome::Ignored => {
                    handled.ignored += 1;
                    metrics::counter!("foldline_process_ignored_inputs_total", "process" => P::NAME)
                        .increment(1);
                }
            }
            if let Outcome::Decided(decision) | Outcome::Redelivered(decision) = outcome {
                let RecordedDecision {
                    event_id,
                    correlation_id,
                    actions,
                } = decision;
                let cause = Cause {
                    input_id: received.id,
                    decision_id: event_id,
                    correlation_id,
                };
                for (index, action) in actions.into_iter().enumerate() {
                    if let Some(refused) =
                        self.carry_out(&stored, cause, index, action, now).await?
                    {
                        inputs.push_back(refused);
                    }
                }
            }
            instance = Some(stored);
        }
        Ok(handled)
    }

    /// Loads the instance of `stream` (unless it is `loaded` already) and decides; loaded
    /// again and decided again after a conflict with another runner.
    async fn decide(
        &self,
        mut loaded: Option<StoredInstance<P>>,
        stream: &StreamId,
        received: Received,
        input: &Input<P>,
    ) -> Result<(StoredInstance<P>, Outcome<P>)> {
        let mut attempt = 1;
        loop {
            let stored = match loaded.take() {
                Some(stored) => stored,
                None => {
                    StoredInstance::<P>::load_stream(&self.store, &self.codec, stream.clone())
                        .await?
                }
            };
            let decided = stored.decide(
                &self.store,
                &self.codec,
                received.id,
                input,
                received.correlation_id,
            );
            match decided.await {
                Ok(decided) => return Ok(decided),
                Err(error) if error.is_conflict() && attempt < CONFLICT_ATTEMPTS => attempt += 1,
                Err(error) => return Err(error),
            }
        }
    }

    /// Carries out action `index` of the decision `cause` names, for instance `stored`; the
    /// refusal to decide on next, when a command was refused.
    async fn carry_out(
        &self,
        stored: &StoredInstance<P>,
        cause: Cause,
        index: usize,
        action: Action<P>,
        now: SystemTime,
    ) -> Result<Option<(Received, Input<P>)>> {
        let stream = &stored.stream;
        match action {
            Action::Send(command) => {
                let ids = ActionIds::of::<P>(cause.input_id, index)?;
                let refusal = Received {
                    id: ids.refusal_id,
                    correlation_id: cause.correlation_id,
                };
                // Refused before, and decided on: never sent again. An idempotency key finds
                // accepted commands only, so a refused one sent again is decided again, and
                // may pass now (the account opened since) after the instance compensated.
                // The refusal goes back to the instance, which finds it decided already and
                // carries the recorded decision out again.
                if stored.decided(refusal.id).is_some() {
                    let error = String::from("(refused before)");
                    return Ok(Some((refusal, Input::Refused { command, error })));
                }
                let options = ids.command_options(cause.decision_id, cause.correlation_id);
                match self.dispatcher.dispatch(&command, options).await? {
                    Dispatched::Accepted => Ok(None),
                    Dispatched::Refused(error) => {
                        Ok(Some((refusal, Input::Refused { command, error })))
                    }
                }
            }
            Action::Schedule { timeout, after } => {
                let timer = Timer::new(
                    ActionIds::of::<P>(cause.input_id, index)?.timer_id,
                    P::NAME,
                    stream.clone(),
                    self.encode_timeout(&timeout)?,
                    now + after,
                );
                self.timers.schedule(timer).await?;
                Ok(None)
            }
            Action::Cancel(timeout) => {
                let encoded = self.encode_timeout(&timeout)?;
                self.timers.cancel(P::NAME, stream, &encoded).await?;
                Ok(None)
            }
            Action::Complete | Action::Fail { .. } => {
                self.timers.cancel_all(P::NAME, stream).await?;
                Ok(None)
            }
        }
    }

    pub(super) fn encode_timeout(&self, timeout: &P::Timeout) -> Result<Vec<u8>> {
        self.codec.encode(timeout).map_err(|source| Error::Encode {
            what: format!("a timeout of process `{}`", P::NAME),
            source,
        })
    }
}

impl<P, S, D, T, C> std::fmt::Debug for ProcessRunner<P, S, D, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRunner")
            .field("process", &std::any::type_name::<P>())
            .finish_non_exhaustive()
    }
}

/// An input as it reached the runner: its id (an instance decides on an id once) and the
/// business transaction it belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Received {
    pub(crate) id: Uuid,
    pub(crate) correlation_id: Option<Uuid>,
}

impl Received {
    /// An event of the feed: its id, and its correlation id (its own id when it has none: it
    /// starts a business transaction).
    pub(crate) fn of(recorded: &RecordedEvent) -> Self {
        Received {
            id: recorded.event_id,
            correlation_id: Some(
                recorded
                    .metadata
                    .correlation_id
                    .unwrap_or(recorded.event_id),
            ),
        }
    }
}

/// What the actions of one decision carry: the input decided on (their ids derive from it),
/// the decision's event (their commands' causation) and its correlation.
#[derive(Clone, Copy)]
struct Cause {
    input_id: Uuid,
    decision_id: Uuid,
    correlation_id: Option<Uuid>,
}
