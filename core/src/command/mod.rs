//! Command execution: load, decide, append with the expected version, retry on conflict.

mod cache;
mod drain;
mod error;
pub(crate) mod load;
mod options;
mod queue;
mod retry;

pub use error::CommandError;
pub use load::Loaded;
pub use options::CommandOptions;
pub use retry::RetryPolicy;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use crate::aggregate::{Aggregate, Command};
use crate::codec::{Codec, JsonCodec};
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::names::StreamId;
use crate::store::{AppendResult, EventStore, NoSnapshots, Snapshot, SnapshotStore};
use crate::version::Version;

use cache::StateCache;
use drain::Waiting;
use queue::Queues;

/// What executing a command did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommandOutcome<A: Aggregate> {
    /// The events the command caused (for a replayed idempotent command: the events the first
    /// execution appended, read back from the store).
    pub events: Vec<A::Event>,
    /// The store's answer: this command's versions, a position (for read-your-writes: the
    /// position of the last event of the append that carried it, which other commands queued
    /// on the same aggregate may have shared, so at or after this command's own events) and
    /// whether it was a replay.
    pub append: AppendResult,
    /// How many times the decision was made (1 unless version conflicts forced retries; with
    /// a [cache](CommandExecutor::with_cache), a conflict on a stale cached state counts too,
    /// a refusal or no-op on a cached state decided again on the stored one does not).
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
///
/// Clones share the store, the snapshot store and the [cache](CommandExecutor::with_cache).
#[derive(Debug, Clone)]
pub struct CommandExecutor<S, N = NoSnapshots, C = JsonCodec> {
    store: S,
    snapshots: N,
    codec: C,
    retry: RetryPolicy,
    cache: Option<Arc<StateCache>>,
    /// Commands on one aggregate queue, decided in order by one task (shared by clones).
    queues: Arc<Queues>,
}

/// How many aggregates' states an executor caches unless told otherwise
/// ([`CommandExecutor::with_cache`]).
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

impl<S: EventStore> CommandExecutor<S> {
    /// An executor over `store`, with no snapshots, JSON payloads, the default [`RetryPolicy`]
    /// and a cache of [`DEFAULT_CACHE_CAPACITY`] aggregates' states
    /// ([`with_cache`](CommandExecutor::with_cache)).
    pub fn new(store: S) -> Self {
        CommandExecutor {
            store,
            snapshots: NoSnapshots,
            codec: JsonCodec,
            retry: RetryPolicy::default(),
            cache: Some(Arc::new(StateCache::new(DEFAULT_CACHE_CAPACITY))),
            queues: Arc::new(Queues::new()),
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
            cache: self.cache,
            queues: self.queues,
        }
    }

    /// Encodes payloads and snapshots with `codec`.
    pub fn with_codec<D: Codec>(self, codec: D) -> CommandExecutor<S, N, D> {
        CommandExecutor {
            store: self.store,
            snapshots: self.snapshots,
            codec,
            retry: self.retry,
            cache: self.cache,
            queues: self.queues,
        }
    }

    /// Sets how version conflicts are retried.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Keeps the state of up to `capacity` aggregates in memory between commands, so a command
    /// on an aggregate this executor (or a clone of it) wrote to recently decides without
    /// reading the store. On by default ([`DEFAULT_CACHE_CAPACITY`]); `0` turns it off.
    ///
    /// It is on by default because it is always safe: the store's version check, not the
    /// cache, decides what is appended, and the rules below keep every answer one a load from
    /// the store could have given. What it costs, and when to turn it off or size it:
    ///
    /// - **Several processes writing the same aggregates** (no routing by aggregate id): an
    ///   entry another process made stale costs one wasted append (a conflict) and a load.
    ///   With most commands on aggregates another process just wrote, turn it off (`0`).
    /// - **Memory**: up to `capacity` folded states stay in memory; size it to the states'
    ///   size (large aggregates, small capacity).
    /// - **`apply` must be deterministic** (the same assumption snapshots make): a cached
    ///   state is the decided-on state with the new events applied in memory.
    ///
    /// What is cached is the state the executor holds after a command anyway: after an append,
    /// the decided-on state with the new events applied, at the version the append returned;
    /// after a refusal or a no-op, the state decided on. Nothing is cloned, so aggregates need
    /// not be `Clone`: the task deciding an aggregate's commands *takes* its entry out of the
    /// cache when it starts a group of commands and puts the final state back when the group
    /// is done (see [`execute_with`](CommandExecutor::execute_with)), so the next group finds
    /// the state the previous one left. The least recently used aggregates are evicted first.
    ///
    /// The store stays the authority; a cached state may be stale when another process (or
    /// another executor) appended to the aggregate since:
    ///
    /// - The append of a decision on a cached state still expects the cached version exactly,
    ///   so a stale entry ends in a version conflict. The entry is gone (it was taken), and the
    ///   command is decided again on the state loaded from the store, at once, without backoff
    ///   and without using up one of the [`RetryPolicy`]'s attempts. It does count in
    ///   [`CommandOutcome::attempts`].
    /// - A refusal or a no-op (no events) decided on a cached state may be an artifact of the
    ///   stale state (a withdrawal refused for a balance another process has since topped up),
    ///   so when no command of a group appends (nothing proves the cached state current), it
    ///   is never returned as is: the aggregate is loaded from the store and the group decided
    ///   again. When the group appends, the append's version check proves the state it was
    ///   decided on, and its refusals stand.
    ///
    /// The state cached after an append is the decided-on state with the command's events
    /// applied in memory, as for snapshots, so it equals the state folded from the stored
    /// events as long as events survive encoding unchanged (the same assumption snapshots make).
    /// Retries after a conflict, [`load`](CommandExecutor::load) and idempotent replays always
    /// read the store. Snapshots are taken as without a cache. A cache pays off when each
    /// aggregate is written mostly through one process (for example with requests routed by
    /// aggregate id); when several processes write the same aggregates at once, many entries
    /// are stale and each costs a wasted append.
    ///
    /// Counters, each labelled `aggregate`: `foldline_command_cache_hits_total` and
    /// `foldline_command_cache_misses_total` for first attempts; `foldline_command_cache_stale_total`
    /// for hits whose append conflicted; `foldline_command_cache_rechecks_total` for refusals
    /// and no-ops on a cached state decided again on the stored state.
    ///
    /// ```
    /// # use foldline::{CommandExecutor, InMemoryEventStore};
    /// let executor = CommandExecutor::new(InMemoryEventStore::new()).with_cache(10_000);
    /// # drop(executor);
    /// ```
    #[must_use]
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| Arc::new(StateCache::new(capacity)));
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

impl<S, N, C> CommandExecutor<S, N, C>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
    C: Codec + Clone,
{
    /// Executes `command` with default [`CommandOptions`].
    ///
    /// # Errors
    ///
    /// As [`execute_with`](CommandExecutor::execute_with).
    ///
    /// # Cancel safety
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
    /// attempts, with jittered backoff. With a [cache](CommandExecutor::with_cache), the first
    /// decision may be made on the cached state instead of a loaded one.
    ///
    /// Commands on the same aggregate through this executor and its clones queue, and one task
    /// decides them in arrival order, each on the state the ones before it left. The commands
    /// queued while an append is on its way form the next group: their events go in one
    /// append (a command with an idempotency key in one of its own), so a hot aggregate costs
    /// one store round trip per group, not per command, and commands of one process never race
    /// each other to a version conflict. The group commits whole or not at all; after a
    /// conflict (with a writer elsewhere: another process or executor) the whole group is
    /// decided again on the stored state. Each command's outcome names its own versions;
    /// refusals and no-ops of a group are returned once its append is stored. Commands on
    /// different aggregates never wait for each other.
    ///
    /// # Errors
    ///
    /// [`CommandError::Rejected`] when the aggregate refuses; [`CommandError::Store`] for store
    /// failures, decode errors, a stream whose stored events skip a version
    /// ([`Error::StreamGap`](crate::Error::StreamGap): nothing is appended), and a conflict
    /// that outlasted every retry.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once queued, a command is decided and appended by its aggregate's task
    /// whether or not the caller still waits (so dropping one caller never stops the other
    /// commands of its group). Give commands an idempotency key
    /// ([`CommandOptions::with_idempotency_key`]) and execute again: a repeat appends nothing
    /// and returns the first outcome.
    ///
    /// Needs a Tokio runtime (the aggregate's task is spawned on it).
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
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting::<A> {
            command,
            metadata: options.metadata.with_command_id(command_id),
            idempotency_key: options.idempotency_key,
            reply,
        };
        if self.queues.push(&stream, Box::new(waiting)) {
            // A task of its own: a caller that stops waiting (its future dropped) must not
            // stop the decisions and the append of the other commands of its group.
            tokio::spawn(
                self.clone()
                    .drain::<A>(stream.clone())
                    .instrument(tracing::Span::current()),
            );
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::CommandAbandoned { stream }.into()))
    }
}

impl<S: EventStore, N: SnapshotStore, C: Codec> CommandExecutor<S, N, C> {
    /// Loads aggregate `id`: its latest usable snapshot, then the events after it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) if the id makes an invalid stream id;
    /// decode errors for stored events the code cannot read;
    /// [`Error::StreamGap`](crate::Error::StreamGap) when the stored events skip a version
    /// (damaged data); store failures.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn load<A: Aggregate>(&self, id: &A::Id) -> Result<Loaded<A>> {
        let stream = StreamId::for_aggregate(A::NAME, id)?;
        load::load(&self.store, &self.snapshots, &self.codec, stream).await
    }

    async fn load_stream<A: Aggregate>(&self, stream: &StreamId) -> Result<Loaded<A>> {
        load::load(&self.store, &self.snapshots, &self.codec, stream.clone()).await
    }

    /// Puts `loaded` in the cache, if there is one.
    fn cache_state<A: Aggregate>(&self, loaded: Loaded<A>) {
        if let Some(cache) = &self.cache {
            cache.put(loaded);
        }
    }

    fn encode_events<A: Aggregate>(
        &self,
        events: &[A::Event],
        metadata: &crate::event::EventMetadata,
    ) -> Result<Vec<NewEvent>> {
        events
            .iter()
            .map(|event| Ok(NewEvent::encode(event, &self.codec)?.with_metadata(metadata.clone())))
            .collect()
    }

    /// The outcome of an earlier execution with the same idempotency key, its events read back.
    async fn replayed<A: Aggregate>(&self, first: AppendResult) -> Result<CommandOutcome<A>> {
        let count = usize::try_from(first.event_count()).unwrap_or(usize::MAX);
        let recorded = self
            .store
            .read_stream(&first.stream_id, first.first_version(), count)
            .await?;
        // A gap would put a later append's event in the place of a missing one.
        let mut expected = first.first_version();
        let mut events = Vec::with_capacity(recorded.len());
        for r in &recorded {
            load::check_next(&first.stream_id, expected, r)?;
            events.push(r.decode(&self.codec)?);
            expected = expected.next();
        }
        Ok(CommandOutcome {
            events,
            append: first,
            attempts: 0,
        })
    }

    /// A snapshot of `state` of `stream` at `version`, unless the aggregate does not encode
    /// one or encoding fails (logged).
    fn encode_snapshot<A: Aggregate>(
        &self,
        state: &A,
        stream: &StreamId,
        version: Version,
    ) -> Option<Snapshot> {
        let payload = match state.encode_snapshot(&self.codec) {
            Ok(payload) => payload?,
            Err(error) => {
                tracing::warn!(stream = %stream, %error, "could not encode snapshot");
                return None;
            }
        };
        Some(Snapshot::new(
            stream.clone(),
            version,
            A::SNAPSHOT_VERSION,
            payload,
        ))
    }
}
