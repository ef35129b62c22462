//! An instance's stream, which is both its inbox and its outbox: each decision is recorded
//! there with the input that caused it, before any of its commands is sent. Loading the stream
//! rebuilds the instance and tells which inputs it has decided on already, so a redelivered
//! input is recognized (and its decision's commands sent again, which their idempotency keys
//! make harmless) rather than decided twice.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Action, Input, Instance, ProcessManager};
use crate::codec::Codec;
use crate::command::load::{READ_PAGE, check_next};
use crate::error::{Error, Result};
use crate::event::{EventMetadata, NewEvent, RecordedEvent};
use crate::names::{EventType, StreamId};
use crate::store::{AppendRequest, EventStore};
use crate::version::{ExpectedVersion, Version};

/// The type of every event of an instance's stream: one decision.
pub const DECIDED: EventType = EventType::from_static("foldline.process.Decided");

/// The shape of [`DECIDED`]'s payload.
const SCHEMA_VERSION: u32 = 1;

/// The stream of instance `id` of `P`: `"{NAME}-{id}"`.
///
/// # Errors
///
/// [`Error::InvalidName`] when the id makes it an invalid stream id.
pub fn instance_stream<P: ProcessManager>(id: &P::Id) -> Result<StreamId> {
    StreamId::for_aggregate(P::NAME, id)
}

/// One decision of an instance: the input it was about (and that input's id) and the actions
/// decided.
pub struct Decision<P: ProcessManager> {
    /// The input's id: the triggering event's id, or the id the runner gave a refusal or a
    /// fired timer. An instance decides on an input id once.
    pub input_id: Uuid,
    /// What happened.
    pub input: Input<P>,
    /// What the instance decided to do about it.
    pub actions: Vec<Action<P>>,
}

/// How a decision is stored (the payload of [`DECIDED`]).
#[derive(Serialize, Deserialize)]
struct Stored<E, C, T> {
    input_id: Uuid,
    input: StoredInput<E, C, T>,
    actions: Vec<StoredAction<C, T>>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredInput<E, C, T> {
    Event { event: E },
    Refused { command: C, error: String },
    Timeout { timeout: T },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum StoredAction<C, T> {
    Send { command: C },
    Schedule { timeout: T, after_ms: u64 },
    Cancel { timeout: T },
    Complete,
    Fail { reason: String },
}

type StoredOf<P> = Stored<
    <P as ProcessManager>::Event,
    <P as ProcessManager>::Command,
    <P as ProcessManager>::Timeout,
>;

impl<P: ProcessManager> Decision<P> {
    /// The decision as an event of the instance's stream, caused by its input (the
    /// metadata's causation id) and in `correlation_id`'s business transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the codec cannot encode the input or an action.
    pub fn encode<C: Codec>(&self, codec: &C, correlation_id: Option<Uuid>) -> Result<NewEvent> {
        encode(
            self.input_id,
            &self.input,
            &self.actions,
            codec,
            correlation_id,
        )
    }

    /// The decision `recorded` holds.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownEventType`] for an event that is not a decision;
    /// [`Error::Decode`] when its payload does not decode into `P`'s types.
    pub fn decode<C: Codec>(recorded: &RecordedEvent, codec: &C) -> Result<Self> {
        if recorded.event_type != DECIDED || recorded.schema_version != SCHEMA_VERSION {
            return Err(Error::UnknownEventType {
                stream: recorded.stream_id.clone(),
                version: recorded.stream_version,
                event_type: recorded.event_type.clone(),
                schema_version: recorded.schema_version,
            });
        }
        let stored: StoredOf<P> =
            codec
                .decode(&recorded.payload)
                .map_err(|source| Error::Decode {
                    stream: recorded.stream_id.clone(),
                    version: recorded.stream_version,
                    event_type: recorded.event_type.clone(),
                    schema_version: recorded.schema_version,
                    source,
                })?;
        Ok(Decision {
            input_id: stored.input_id,
            input: match stored.input {
                StoredInput::Event { event } => Input::Event(event),
                StoredInput::Refused { command, error } => Input::Refused { command, error },
                StoredInput::Timeout { timeout } => Input::Timeout(timeout),
            },
            actions: stored.actions.into_iter().map(action).collect(),
        })
    }
}

/// A decision as an event of the instance's stream, encoded through references: nothing of
/// the input or the actions is copied.
fn encode<P: ProcessManager, C: Codec>(
    input_id: Uuid,
    input: &Input<P>,
    actions: &[Action<P>],
    codec: &C,
    correlation_id: Option<Uuid>,
) -> Result<NewEvent> {
    let stored: Stored<&P::Event, &P::Command, &P::Timeout> = Stored {
        input_id,
        input: match input {
            Input::Event(event) => StoredInput::Event { event },
            Input::Refused { command, error } => StoredInput::Refused {
                command,
                error: error.clone(),
            },
            Input::Timeout(timeout) => StoredInput::Timeout { timeout },
        },
        actions: actions.iter().map(stored_action).collect(),
    };
    let payload = codec.encode(&stored).map_err(|source| Error::Encode {
        what: format!("a decision of process `{}`", P::NAME),
        source,
    })?;
    let mut metadata = EventMetadata::new().with_causation_id(input_id);
    if let Some(correlation_id) = correlation_id {
        metadata = metadata.with_correlation_id(correlation_id);
    }
    Ok(NewEvent::new(DECIDED, SCHEMA_VERSION, payload).with_metadata(metadata))
}

fn stored_action<P: ProcessManager>(action: &Action<P>) -> StoredAction<&P::Command, &P::Timeout> {
    match action {
        Action::Send(command) => StoredAction::Send { command },
        Action::Schedule { timeout, after } => StoredAction::Schedule {
            timeout,
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        },
        Action::Cancel(timeout) => StoredAction::Cancel { timeout },
        Action::Complete => StoredAction::Complete,
        Action::Fail { reason } => StoredAction::Fail {
            reason: reason.clone(),
        },
    }
}

fn action<P: ProcessManager>(stored: StoredAction<P::Command, P::Timeout>) -> Action<P> {
    match stored {
        StoredAction::Send { command } => Action::Send(command),
        StoredAction::Schedule { timeout, after_ms } => Action::Schedule {
            timeout,
            after: Duration::from_millis(after_ms),
        },
        StoredAction::Cancel { timeout } => Action::Cancel(timeout),
        StoredAction::Complete => Action::Complete,
        StoredAction::Fail { reason } => Action::Fail { reason },
    }
}

/// An instance as its stream holds it: rebuilt from its decisions, with its stream's version
/// (what the next decision is appended after) and the inputs it decided on.
pub struct StoredInstance<P: ProcessManager> {
    /// The instance's stream.
    pub stream: StreamId,
    /// The instance, every recorded decision replayed ([`Instance::replay`]).
    pub instance: Instance<P>,
    /// The stream's version: 0 for an instance that has decided nothing yet.
    pub version: Version,
    /// The correlation id of its latest decision: the business transaction it serves, which
    /// its refusals and timeouts carry on.
    pub correlation_id: Option<Uuid>,
    decided: HashMap<Uuid, RecordedDecision<P>>,
}

/// A decision as the instance's stream holds it: what to carry out, and what the commands it
/// sends say caused them.
pub struct RecordedDecision<P: ProcessManager> {
    /// The id of the decision's event: the causation id of the commands it sends.
    pub event_id: Uuid,
    /// The correlation id it was recorded with, which its commands carry on.
    pub correlation_id: Option<Uuid>,
    /// The actions decided.
    pub actions: Vec<Action<P>>,
}

impl<P: ProcessManager> Clone for RecordedDecision<P> {
    fn clone(&self) -> Self {
        RecordedDecision {
            event_id: self.event_id,
            correlation_id: self.correlation_id,
            actions: self.actions.clone(),
        }
    }
}

impl<P: ProcessManager> StoredInstance<P> {
    /// The decision about input `input_id`, if the instance decided on it already.
    pub fn decided(&self, input_id: Uuid) -> Option<&RecordedDecision<P>> {
        self.decided.get(&input_id)
    }

    /// Loads instance `id` of `P` from `store`.
    ///
    /// # Errors
    ///
    /// The store's errors; [`Error::StreamGap`] when the stream's versions skip one;
    /// [`Error::UnknownEventType`] or [`Error::Decode`] for an event that is not a decision
    /// of `P`.
    pub async fn load<S: EventStore, C: Codec>(store: &S, codec: &C, id: &P::Id) -> Result<Self> {
        Self::load_stream(store, codec, instance_stream::<P>(id)?).await
    }

    /// Loads the instance of `P` whose stream is `stream` (a timer names its instance so).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub async fn load_stream<S: EventStore, C: Codec>(
        store: &S,
        codec: &C,
        stream: StreamId,
    ) -> Result<Self> {
        let mut loaded = StoredInstance {
            stream,
            instance: Instance::new(),
            version: Version::ZERO,
            correlation_id: None,
            decided: HashMap::new(),
        };
        loop {
            let page = store
                .read_stream(&loaded.stream, loaded.version.next(), READ_PAGE)
                .await?;
            let full = page.len() == READ_PAGE;
            for recorded in &page {
                check_next(&loaded.stream, loaded.version.next(), recorded)?;
                let decision = Decision::<P>::decode(recorded, codec)?;
                loaded.instance.replay(&decision.input, &decision.actions);
                let correlation_id = recorded.metadata.correlation_id;
                loaded.decided.insert(
                    decision.input_id,
                    RecordedDecision {
                        event_id: recorded.event_id,
                        correlation_id,
                        actions: decision.actions,
                    },
                );
                loaded.correlation_id = correlation_id.or(loaded.correlation_id);
                loaded.version = recorded.stream_version;
            }
            if !full {
                return Ok(loaded);
            }
        }
    }

    /// Decides on `input` (id `input_id`, in business transaction `correlation_id`) and
    /// records the decision after the loaded version, unless the instance decided on that
    /// input before or ignores it; returns the instance after it and what to carry out
    /// ([`Outcome`]).
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another runner recorded a decision of this instance since it
    /// was loaded: load it again and retry. The codec's and the store's errors. On an error
    /// the instance is consumed (it had decided, but nothing was stored): load it again.
    pub async fn decide<S: EventStore, C: Codec>(
        mut self,
        store: &S,
        codec: &C,
        input_id: Uuid,
        input: &Input<P>,
        correlation_id: Option<Uuid>,
    ) -> Result<(Self, Outcome<P>)> {
        if let Some(recorded) = self.decided.get(&input_id) {
            let recorded = recorded.clone();
            return Ok((self, Outcome::Redelivered(recorded)));
        }
        let Some(actions) = self.instance.handle(input) else {
            return Ok((self, Outcome::Ignored));
        };
        let event = encode(input_id, input, &actions, codec, correlation_id)?;
        let event_id = event.event_id;
        let request = AppendRequest::new(
            self.stream.clone(),
            ExpectedVersion::Exact(self.version),
            vec![event],
        );
        let appended = store.append(request).await?;
        self.version = appended.current_version;
        self.correlation_id = correlation_id.or(self.correlation_id);
        let recorded = RecordedDecision {
            event_id,
            correlation_id,
            actions,
        };
        self.decided.insert(input_id, recorded.clone());
        Ok((self, Outcome::Decided(recorded)))
    }
}

/// What [`StoredInstance::decide`] found to do.
pub enum Outcome<P: ProcessManager> {
    /// Decided now, and recorded: carry its actions out.
    Decided(RecordedDecision<P>),
    /// Decided before (the input came again, after a crash or from a second runner): carry
    /// the recorded actions out again; their commands' idempotency keys make that harmless.
    Redelivered(RecordedDecision<P>),
    /// Ignored (the instance is finished, or the input is a timeout no longer pending):
    /// count it; nothing is recorded.
    Ignored,
}

impl<P: ProcessManager> fmt::Debug for Decision<P>
where
    P::Event: fmt::Debug,
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("input_id", &self.input_id)
            .field("input", &self.input)
            .field("actions", &self.actions)
            .finish()
    }
}

impl<P: ProcessManager> fmt::Debug for RecordedDecision<P>
where
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedDecision")
            .field("event_id", &self.event_id)
            .field("correlation_id", &self.correlation_id)
            .field("actions", &self.actions)
            .finish()
    }
}

impl<P: ProcessManager + fmt::Debug> fmt::Debug for StoredInstance<P>
where
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredInstance")
            .field("stream", &self.stream)
            .field("instance", &self.instance)
            .field("version", &self.version)
            .field("decided", &self.decided.len())
            .finish()
    }
}

impl<P: ProcessManager> fmt::Debug for Outcome<P>
where
    P::Command: fmt::Debug,
    P::Timeout: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Decided(recorded) => f.debug_tuple("Decided").field(recorded).finish(),
            Outcome::Redelivered(recorded) => f.debug_tuple("Redelivered").field(recorded).finish(),
            Outcome::Ignored => f.write_str("Ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{Outcome, StoredInstance, instance_stream};
    use crate::codec::JsonCodec;
    use crate::error::Error;
    use crate::event::NewEvent;
    use crate::names::EventType;
    use crate::process::testing::{Scripted, step};
    use crate::process::{Action, ProcessStatus};
    use crate::store::{AppendRequest, EventStore, InMemoryEventStore};
    use crate::version::{ExpectedVersion, Version};

    async fn load(store: &InMemoryEventStore, id: u32) -> StoredInstance<Scripted> {
        StoredInstance::load(store, &JsonCodec, &id).await.unwrap()
    }

    async fn decide(
        stored: StoredInstance<Scripted>,
        store: &InMemoryEventStore,
        input_id: Uuid,
        n: u32,
    ) -> (StoredInstance<Scripted>, Outcome<Scripted>) {
        stored
            .decide(store, &JsonCodec, input_id, &step(n), None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn decisions_are_recorded_and_the_instance_loads_back_from_them() {
        let store = InMemoryEventStore::new();
        let mut stored = load(&store, 1).await;
        let mut ids = Vec::new();
        for n in [1, 11, 2, 5] {
            let id = Uuid::now_v7();
            ids.push(id);
            let (next, outcome) = decide(stored, &store, id, n).await;
            assert!(matches!(outcome, Outcome::Decided(_)), "{outcome:?}");
            stored = next;
        }
        assert_eq!(stored.version, Version::new(4));

        let loaded = load(&store, 1).await;
        assert_eq!(loaded.version, Version::new(4));
        assert_eq!(loaded.instance.state().seen, [1, 11, 2, 5]);
        assert_eq!(loaded.instance.pending_timeouts(), [11, 11]);
        assert_eq!(loaded.instance.decided(), 4);
        let last = loaded.decided(ids[3]).expect("decided");
        assert_eq!(last.actions, [Action::Send(5)]);
        assert_eq!(last.event_id, stored.decided(ids[3]).unwrap().event_id);
        assert!(loaded.decided(Uuid::now_v7()).is_none());
        let stream = instance_stream::<Scripted>(&1).unwrap();
        assert_eq!(stream.as_str(), "scripted-1");
    }

    #[tokio::test]
    async fn a_decision_is_caused_by_its_input_and_carries_its_correlation_on() {
        let store = InMemoryEventStore::new();
        let (input, correlation) = (Uuid::now_v7(), Uuid::now_v7());
        let (stored, outcome) = load(&store, 1)
            .await
            .decide(&store, &JsonCodec, input, &step(5), Some(correlation))
            .await
            .unwrap();
        let Outcome::Decided(decided) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(decided.correlation_id, Some(correlation));
        assert_eq!(stored.correlation_id, Some(correlation));
        let recorded = store
            .read_stream(&stored.stream, Version::new(1), 10)
            .await
            .unwrap();
        assert_eq!(recorded[0].event_id, decided.event_id);
        assert_eq!(recorded[0].metadata.causation_id, Some(input));
        assert_eq!(recorded[0].metadata.correlation_id, Some(correlation));
        // Loaded back, the instance knows its correlation and the decision's event.
        let loaded = load(&store, 1).await;
        assert_eq!(loaded.correlation_id, Some(correlation));
        assert_eq!(loaded.decided(input).unwrap().event_id, decided.event_id);
    }

    #[tokio::test]
    async fn a_redelivered_input_is_not_decided_again() {
        let store = InMemoryEventStore::new();
        let input = Uuid::now_v7();
        let (stored, first) = decide(load(&store, 1).await, &store, input, 5).await;
        assert!(matches!(first, Outcome::Decided(ref d) if d.actions == [Action::Send(5)]));
        // The same input again, on the instance in hand and on one loaded anew.
        let (stored, again) = decide(stored, &store, input, 5).await;
        assert!(matches!(again, Outcome::Redelivered(ref d) if d.actions == [Action::Send(5)]));
        let (_, reloaded) = decide(load(&store, 1).await, &store, input, 5).await;
        assert!(matches!(reloaded, Outcome::Redelivered(_)), "{reloaded:?}");
        assert_eq!(stored.version, Version::new(1));
        assert_eq!(load(&store, 1).await.version, Version::new(1));
    }

    #[tokio::test]
    async fn two_runners_deciding_on_one_instance_conflict_and_the_loser_loads_again() {
        let store = InMemoryEventStore::new();
        let (first, second) = (load(&store, 1).await, load(&store, 1).await);
        let (_, decided) = decide(first, &store, Uuid::now_v7(), 5).await;
        assert!(matches!(decided, Outcome::Decided(_)));
        let lost = second
            .decide(&store, &JsonCodec, Uuid::now_v7(), &step(6), None)
            .await
            .unwrap_err();
        assert!(lost.is_conflict(), "{lost}");
        let (again, decided) = decide(load(&store, 1).await, &store, Uuid::now_v7(), 6).await;
        assert!(matches!(decided, Outcome::Decided(_)));
        assert_eq!(again.instance.state().seen, [5, 6]);
        assert_eq!(again.version, Version::new(2));
    }

    #[tokio::test]
    async fn a_finished_instance_ignores_its_inputs_and_records_nothing() {
        let store = InMemoryEventStore::new();
        let (stored, _) = decide(load(&store, 1).await, &store, Uuid::now_v7(), 3).await;
        assert!(matches!(
            stored.instance.status(),
            ProcessStatus::Failed { .. }
        ));
        let (stored, outcome) = decide(stored, &store, Uuid::now_v7(), 5).await;
        assert!(matches!(outcome, Outcome::Ignored));
        assert_eq!(stored.instance.ignored(), 1);
        assert_eq!(load(&store, 1).await.version, Version::new(1));
    }

    #[tokio::test]
    async fn an_event_that_is_not_a_decision_is_refused_by_type() {
        let store = InMemoryEventStore::new();
        let stray = NewEvent::new(EventType::from_static("Stray"), 1, b"{}".to_vec());
        let stream = instance_stream::<Scripted>(&1).unwrap();
        store
            .append(AppendRequest::new(
                stream,
                ExpectedVersion::Any,
                vec![stray],
            ))
            .await
            .unwrap();
        let error = StoredInstance::<Scripted>::load(&store, &JsonCodec, &1)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, Error::UnknownEventType { event_type, .. } if event_type.as_str() == "Stray"),
            "{error}"
        );
    }
}
