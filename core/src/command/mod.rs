//! Command execution: load, decide, append with the expected version, retry on conflict.

mod error;
mod load;
mod options;
mod retry;

pub use error::CommandError;
pub use load::Loaded;
pub use options::CommandOptions;
pub use retry::RetryPolicy;

use std::time::Instant;

use tracing::Instrument;
use uuid::Uuid;

use crate::aggregate::{Aggregate, Command};
use crate::codec::{Codec, JsonCodec};
use crate::error::{Error, Result};
use crate::event::{DomainEvent, NewEvent};
use crate::names::StreamId;
use crate::store::{AppendRequest, AppendResult, EventStore, NoSnapshots, Snapshot, SnapshotStore};
use crate::version::ExpectedVersion;

/// What executing a command did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommandOutcome<A: Aggregate> {
    /// The events the command caused (for a replayed idempotent command: the events the first
    /// execution appended, read back from the store).
    pub events: Vec<A::Event>,
    /// The store's answer: versions, position (for read-your-writes) and whether it was a replay.
    pub append: AppendResult,
    /// How many times the decision was made (1 unless version conflicts forced retries).
    pub attempts: u32,
}

impl<A: Aggregate> CommandOutcome<A> {
    /// Whether this is the result of an earlier execution with the same idempotency key.
    pub fn is_replay(&self) -> bool {
        self.append.replayed
    }
}

/// Runs commands against aggregates stored in an [`EventStore`].
///
/// ```
/// # use foldline::{Aggregate, Command, CommandExecutor, DomainEvent, InMemoryEventStore};
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DomainEvent)]
/// # enum CounterEvent { Incremented { by: u32 } }
/// # #[derive(Debug, Command)]
/// # enum CounterCommand { Increment { #[foldline(id)] id: u32, by: u32 } }
/// # #[derive(Debug, thiserror::Error)] #[error("too big")] struct TooBig;
/// # #[derive(Default, Aggregate)]
/// # #[foldline(id = u32, command = CounterCommand, event = CounterEvent, error = TooBig)]
/// # struct Counter { total: u32 }
/// # impl Counter {
/// #     fn handle(&self, c: &CounterCommand) -> Result<Vec<CounterEvent>, TooBig> {
/// #         let CounterCommand::Increment { by, .. } = c;
/// #         if *by > 10 { return Err(TooBig) }
/// #         Ok(vec![CounterEvent::Incremented { by: *by }])
/// #     }
/// #     fn apply(&mut self, e: &CounterEvent) { let CounterEvent::Incremented { by } = e; self.total += by; }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let executor = CommandExecutor::new(InMemoryEventStore::new());
/// let outcome = executor.execute::<Counter>(CounterCommand::Increment { id: 1, by: 3 }).await?;
/// assert_eq!(outcome.append.current_version.get(), 1);
/// let counter = executor.load::<Counter>(&1).await?;
/// assert_eq!(counter.state.total, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CommandExecutor<S, N = NoSnapshots, C = JsonCodec> {
    store: S,
    snapshots: N,
    codec: C,
    retry: RetryPolicy,
}

impl<S: EventStore> CommandExecutor<S> {
    /// An executor over `store`, with no snapshots, JSON payloads and the default [`RetryPolicy`].
    pub fn new(store: S) -> Self {
        CommandExecutor {
            store,
            snapshots: NoSnapshots,
            codec: JsonCodec,
            retry: RetryPolicy::default(),
        }
    }
}

impl<S, N, C> CommandExecutor<S, N, C> {
    /// Keeps snapshots of aggregates that ask for them (`snapshot(every = N)`) in `snapshots`.
    pub fn with_snapshots<M: SnapshotStore>(self, snapshots: M) -> CommandExecutor<S, M, C> {
        CommandExecutor {
            store: self.store,
            snapshots,
            codec: self.codec,
            retry: self.retry,
        }
    }

    /// Encodes payloads and snapshots with `codec`.
    pub fn with_codec<D: Codec>(self, codec: D) -> CommandExecutor<S, N, D> {
        CommandExecutor {
            store: self.store,
            snapshots: self.snapshots,
            codec,
            retry: self.retry,
        }
    }

    /// Sets how version conflicts are retried.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The event store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }
}

impl<S: EventStore, N: SnapshotStore, C: Codec> CommandExecutor<S, N, C> {
    /// Loads aggregate `id`: its latest usable snapshot, then the events after it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if the id makes an invalid stream id; decode errors for stored
    /// events the code cannot read; store failures.
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A>> {
        let stream = StreamId::for_aggregate(A::NAME, id)?;
        load::load(&self.store, &self.snapshots, &self.codec, stream).await
    }

    /// Executes `command` with default [`CommandOptions`].
    ///
    /// # Errors
    ///
    /// As [`execute_with`](CommandExecutor::execute_with).
    pub async fn execute<A: Aggregate>(
        &self,
        command: A::Command,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        self.execute_with::<A>(command, CommandOptions::default())
            .await
    }

    /// Executes `command`: load the aggregate, decide, append expecting the loaded version. On a
    /// version conflict the whole load-and-decide step runs again, up to the retry policy's
    /// attempts, with jittered backoff.
    ///
    /// # Errors
    ///
    /// [`CommandError::Rejected`] when the aggregate refuses; [`CommandError::Store`] for store
    /// failures, decode errors, and a conflict that outlasted every retry.
    pub async fn execute_with<A: Aggregate>(
        &self,
        command: A::Command,
        options: CommandOptions,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let span = tracing::info_span!(
            "foldline.command",
            aggregate = A::NAME,
            command = command.command_name(),
            id = %command.aggregate_id(),
            attempts = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .execute_in_span::<A>(command, options)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(o) if o.is_replay() => "replayed",
            Ok(_) => "ok",
            Err(CommandError::Rejected(_)) => "rejected",
            Err(e) if e.is_conflict() => "conflict",
            Err(_) => "error",
        };
        if let Ok(o) = &result {
            span.record("attempts", o.attempts);
        }
        metrics::counter!("foldline_commands_total", "aggregate" => A::NAME, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("foldline_command_seconds", "aggregate" => A::NAME)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn execute_in_span<A: Aggregate>(
        &self,
        command: A::Command,
        options: CommandOptions,
    ) -> Result<CommandOutcome<A>, CommandError<A::Error>> {
        let stream = StreamId::for_aggregate(A::NAME, command.aggregate_id())?;
        if let Some(key) = &options.idempotency_key
            && let Some(first) = self.store.find_idempotent(key).await?
        {
            return Ok(self.replayed::<A>(first).await?);
        }
        let command_id = options.command_id.unwrap_or_else(Uuid::now_v7);
        let metadata = options.metadata.clone().with_command_id(command_id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded =
                load::load::<A, _, _, _>(&self.store, &self.snapshots, &self.codec, stream.clone())
                    .await?;
            let events = loaded
                .state
                .handle(&command)
                .map_err(CommandError::Rejected)?;
            if events.is_empty() {
                let append = AppendResult {
                    stream_id: stream,
                    previous_version: loaded.version,
                    current_version: loaded.version,
                    position: None,
                    replayed: false,
                };
                return Ok(CommandOutcome {
                    events,
                    append,
                    attempts: attempt,
                });
            }
            let encoded = self.encode_events::<A>(&events, &metadata)?;
            let mut request = AppendRequest::new(
                stream.clone(),
                ExpectedVersion::Exact(loaded.version),
                encoded,
            );
            if let Some(key) = &options.idempotency_key {
                request = request.with_idempotency_key(key.clone());
            }
            match self.store.append(request).await {
                Ok(append) if append.replayed => return Ok(self.replayed::<A>(append).await?),
                Ok(append) => {
                    self.maybe_snapshot(loaded, &events, &append).await;
                    return Ok(CommandOutcome {
                        events,
                        append,
                        attempts: attempt,
                    });
                }
                Err(error) if error.is_conflict() && attempt < self.retry.max_attempts => {
                    metrics::counter!("foldline_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    tracing::debug!(attempt, %error, "version conflict, deciding again");
                    tokio::time::sleep(self.retry.delay_after(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn encode_events<A: Aggregate>(
        &self,
        events: &[A::Event],
        metadata: &crate::event::EventMetadata,
    ) -> Result<Vec<NewEvent>> {
        events
            .iter()
            .map(|event| {
                let event_type = event.event_type();
                let payload = event.encode(&self.codec).map_err(|source| Error::Encode {
                    what: format!("event `{event_type}`"),
                    source,
                })?;
                Ok(NewEvent::new(event_type, event.schema_version(), payload)
                    .with_metadata(metadata.clone()))
            })
            .collect()
    }

    /// The outcome of an earlier execution with the same idempotency key, its events read back.
    async fn replayed<A: Aggregate>(&self, first: AppendResult) -> Result<CommandOutcome<A>> {
        let count = usize::try_from(first.event_count()).unwrap_or(usize::MAX);
        let recorded = self
            .store
            .read_stream(&first.stream_id, first.first_version(), count)
            .await?;
        let events = recorded
            .iter()
            .map(|r| r.decode(&self.codec))
            .collect::<Result<Vec<_>>>()?;
        Ok(CommandOutcome {
            events,
            append: first,
            attempts: 0,
        })
    }

    /// Saves a snapshot when this append crossed a multiple of the aggregate's interval.
    /// Failures are logged, never returned: the events are committed and a snapshot is only an
    /// optimisation.
    async fn maybe_snapshot<A: Aggregate>(
        &self,
        mut loaded: Loaded<A>,
        events: &[A::Event],
        append: &AppendResult,
    ) {
        let Some(every) = A::SNAPSHOT_EVERY.filter(|n| *n > 0) else {
            return;
        };
        if append.previous_version.get() / every == append.current_version.get() / every {
            return;
        }
        for event in events {
            loaded.state.apply(event);
        }
        let payload = match loaded.state.encode_snapshot(&self.codec) {
            Ok(Some(payload)) => payload,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(stream = %append.stream_id, %error, "could not encode snapshot");
                return;
            }
        };
        let snapshot = Snapshot::new(
            append.stream_id.clone(),
            append.current_version,
            A::SNAPSHOT_VERSION,
            payload,
        );
        if let Err(error) = self.snapshots.save_snapshot(snapshot).await {
            tracing::warn!(stream = %append.stream_id, %error, "could not save snapshot");
        }
    }
}
