//! Command execution: load, decide, append with the expected version, retry on conflict.

mod cache;
mod error;
pub(crate) mod load;
mod options;
mod retry;
mod turns;

pub use error::CommandError;
pub use load::Loaded;
pub use options::CommandOptions;
pub use retry::RetryPolicy;

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;
use uuid::Uuid;

use crate::aggregate::{Aggregate, Command};
use crate::codec::{Codec, JsonCodec};
use crate::error::Result;
use crate::event::NewEvent;
use crate::names::StreamId;
use crate::store::{AppendRequest, AppendResult, EventStore, NoSnapshots, Snapshot, SnapshotStore};
use crate::version::ExpectedVersion;

use cache::StateCache;
use turns::Turns;

/// What executing a command did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommandOutcome<A: Aggregate> {
    /// The events the command caused (for a replayed idempotent command: the events the first
    /// execution appended, read back from the store).
    pub events: Vec<A::Event>,
    /// The store's answer: versions, position (for read-your-writes) and whether it was a replay.
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
    /// Commands on one aggregate take turns (shared by clones).
    turns: Arc<Turns>,
}

/// A decision and the state it was made on.
struct Decided<A: Aggregate> {
    loaded: Loaded<A>,
    decision: std::result::Result<Vec<A::Event>, A::Error>,
    /// Whether `loaded` came from the cache (and may be stale).
    from_cache: bool,
}

impl<S: EventStore> CommandExecutor<S> {
    /// An executor over `store`, with no snapshots, JSON payloads and the default [`RetryPolicy`].
    pub fn new(store: S) -> Self {
        CommandExecutor {
            store,
            snapshots: NoSnapshots,
            codec: JsonCodec,
            retry: RetryPolicy::default(),
            cache: None,
            turns: Arc::new(Turns::new()),
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
            turns: self.turns,
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
            turns: self.turns,
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
    /// reading the store. `0` turns the cache off, which is the default.
    ///
    /// What is cached is the state the executor holds after a command anyway: after an append,
    /// the decided-on state with the new events applied, at the version the append returned;
    /// after a refusal or a no-op, the state decided on. Nothing is cloned, so aggregates need
    /// not be `Clone`: a command *takes* its aggregate's entry out of the cache when it starts
    /// and puts its final state back when it ends. Commands on one aggregate take turns (see
    /// [`execute_with`](CommandExecutor::execute_with)), so the next one finds the state the
    /// previous one left. The least recently used aggregates are evicted first.
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
    ///   so it is never returned as is: the aggregate is loaded from the store and the command
    ///   decided again. Only a refusal or no-op decided on loaded state is returned.
    /// - A command cancelled (its future dropped) after taking the entry leaves none behind;
    ///   the next command loads from the store.
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
    /// Commands on the same aggregate through this executor and its clones take turns, in
    /// arrival order: each waits until the one before it has appended (or failed), so they never
    /// race each other to a version conflict and a reload; with a cache, each decides on the
    /// state the previous one left. Conflicts come only from writers elsewhere (other processes,
    /// other executors). Commands on different aggregates never wait for each other.
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
    /// Not cancel safe: dropped after its append reached the store, the command's events may
    /// still be written ([`EventStore::append`]). Give commands an idempotency key
    /// ([`CommandOptions::with_idempotency_key`]) and execute again: a repeat appends nothing
    /// and returns the first outcome.
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
        // Held to the end: the next command on this aggregate decides after this one.
        let _turn = self.turns.take(&stream).await;
        let mut attempt = 0;
        let mut max_attempts = self.retry.max_attempts;
        loop {
            attempt += 1;
            // Only the first attempt looks in the cache: a retry follows a conflict, after which
            // the store is asked.
            let Decided {
                loaded,
                decision,
                from_cache,
            } = self.decide::<A>(&stream, &command, attempt == 1).await?;
            let events = match decision {
                Ok(events) => events,
                Err(rejection) => {
                    self.cache_state(loaded);
                    return Err(CommandError::Rejected(rejection));
                }
            };
            if events.is_empty() {
                let append = AppendResult {
                    stream_id: stream,
                    previous_version: loaded.version,
                    current_version: loaded.version,
                    position: None,
                    replayed: false,
                };
                self.cache_state(loaded);
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
                    self.after_append(loaded, &events, &append).await;
                    return Ok(CommandOutcome {
                        events,
                        append,
                        attempts: attempt,
                    });
                }
                Err(error) if error.is_conflict() && from_cache => {
                    // Not contention: the cached state was stale. Decide again on the stored
                    // state at once, with an extra attempt.
                    metrics::counter!("foldline_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    metrics::counter!("foldline_command_cache_stale_total", "aggregate" => A::NAME)
                        .increment(1);
                    tracing::debug!(%error, "cached state was stale, deciding again");
                    max_attempts = max_attempts.saturating_add(1);
                }
                Err(error) if error.is_conflict() && attempt < max_attempts => {
                    metrics::counter!("foldline_command_conflicts_total", "aggregate" => A::NAME)
                        .increment(1);
                    tracing::debug!(attempt, %error, "version conflict, deciding again");
                    tokio::time::sleep(self.retry.delay_after(attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Decides `command` on the cached state (when `use_cache` and the cache holds it) or on
    /// the state loaded from the store. A refusal or no-op on a cached state is not trusted: it
    /// is decided again on the loaded state.
    async fn decide<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        use_cache: bool,
    ) -> Result<Decided<A>> {
        let cached = match &self.cache {
            Some(cache) if use_cache => cache.take::<A>(stream),
            _ => None,
        };
        if let Some(loaded) = cached {
            match loaded.state.handle(command) {
                Ok(events) if !events.is_empty() => {
                    return Ok(Decided {
                        loaded,
                        decision: Ok(events),
                        from_cache: true,
                    });
                }
                _ => {
                    metrics::counter!("foldline_command_cache_rechecks_total", "aggregate" => A::NAME)
                        .increment(1);
                    tracing::debug!("refusal or no-op on a cached state, deciding again");
                }
            }
        }
        let loaded = self.load_stream::<A>(stream).await?;
        let decision = loaded.state.handle(command);
        Ok(Decided {
            loaded,
            decision,
            from_cache: false,
        })
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

    /// Brings `loaded` up to the append, if a snapshot is due or there is a cache: saves the
    /// snapshot and caches the state. Snapshot failures are logged, never returned: the events
    /// are committed and a snapshot is only an optimisation.
    async fn after_append<A: Aggregate>(
        &self,
        mut loaded: Loaded<A>,
        events: &[A::Event],
        append: &AppendResult,
    ) {
        let snapshot_due = A::SNAPSHOT_EVERY.filter(|n| *n > 0).is_some_and(|every| {
            append.previous_version.get() / every != append.current_version.get() / every
        });
        if !snapshot_due && self.cache.is_none() {
            return;
        }
        for event in events {
            loaded.state.apply(event);
        }
        loaded.version = append.current_version;
        let snapshot = if snapshot_due {
            self.encode_snapshot(&loaded.state, append)
        } else {
            None
        };
        self.cache_state(loaded);
        if let Some(snapshot) = snapshot
            && let Err(error) = self.snapshots.save_snapshot(snapshot).await
        {
            tracing::warn!(stream = %append.stream_id, %error, "could not save snapshot");
        }
    }

    /// A snapshot of `state` at the version `append` reached, unless the aggregate does not
    /// encode one or encoding fails (logged).
    fn encode_snapshot<A: Aggregate>(&self, state: &A, append: &AppendResult) -> Option<Snapshot> {
        let payload = match state.encode_snapshot(&self.codec) {
            Ok(payload) => payload?,
            Err(error) => {
                tracing::warn!(stream = %append.stream_id, %error, "could not encode snapshot");
                return None;
            }
        };
        Some(Snapshot::new(
            append.stream_id.clone(),
            append.current_version,
            A::SNAPSHOT_VERSION,
            payload,
        ))
    }
}
