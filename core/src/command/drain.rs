//! The task that decides an aggregate's queued commands (`queue.rs`): in groups, one append per
//! group.
//!
//! A group is consecutive commands without an idempotency key (up to [`MAX_GROUP`]), or one
//! command with a key (a key stands for one command's events, so it is never shared). Each
//! command of a group is decided on the state the ones before it left; the events of all of
//! them go in one append, expecting the version the group started from. So the group commits
//! whole or not at all, and a conflict decides the whole group again on the stored state.
//! Refusals and no-ops of a group are answered once its append is stored, as they were decided
//! on a state including the events before them.
//!
//! A store failure other than a conflict cannot be shared (errors are not `Clone`): each
//! command of the group is then run on its own, and gets its own answer.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use tokio::sync::oneshot;

use crate::aggregate::Aggregate;
use crate::codec::Codec;
use crate::error::Error;
use crate::event::{EventMetadata, NewEvent};
use crate::names::{IdempotencyKey, StreamId};
use crate::store::{AppendRequest, AppendResult, EventStore, SnapshotStore};
use crate::version::{ExpectedVersion, Version};

use super::queue::{Queued, Queues};
use super::{CommandError, CommandExecutor, CommandOutcome, Loaded};

/// Most commands in one group (one append).
pub(crate) const MAX_GROUP: usize = 256;

/// What a command waits for.
pub(crate) type Answer<A> = Result<CommandOutcome<A>, CommandError<<A as Aggregate>::Error>>;

/// A command in its aggregate's queue.
pub(crate) struct Waiting<A: Aggregate> {
    pub(crate) command: A::Command,
    pub(crate) metadata: EventMetadata,
    pub(crate) idempotency_key: Option<IdempotencyKey>,
    pub(crate) reply: oneshot::Sender<Answer<A>>,
}

/// What one command of a group decided.
enum Decision<A: Aggregate> {
    /// Events, in the group's append from `previous` (exclusive) to `current`; none (a no-op,
    /// `previous == current`) on the state at `previous`.
    Events {
        events: Vec<A::Event>,
        previous: Version,
        current: Version,
    },
    Rejected(A::Error),
    /// Its events could not be encoded: only this command fails.
    Failed(Error),
}

impl<S, N, C> CommandExecutor<S, N, C>
where
    S: EventStore + Clone,
    N: SnapshotStore + Clone,
    C: Codec + Clone,
{
    /// Decides `stream`'s queued commands until its queue is empty.
    pub(crate) async fn drain<A: Aggregate>(self, stream: StreamId) {
        // Should this task stop early all the same (a panic outside a group), the queue goes
        // with it rather than waiting forever for a task.
        let mut guard = Abandon {
            queues: &self.queues,
            stream: &stream,
            emptied: false,
        };
        loop {
            let queued = self.queues.take(&stream, MAX_GROUP);
            if queued.is_empty() {
                guard.emptied = true;
                return;
            }
            let mut waiting: VecDeque<Waiting<A>> = queued
                .into_iter()
                // Another aggregate type under the same stream name (two sharing a `NAME`)
                // cannot be decided here: its command is dropped, and its caller told.
                .filter_map(|q: Queued| q.downcast::<Waiting<A>>().ok().map(|w| *w))
                .collect();
            while let Some(first) = waiting.pop_front() {
                let mut group = vec![first];
                if group[0].idempotency_key.is_none() {
                    while waiting
                        .front()
                        .is_some_and(|next| next.idempotency_key.is_none())
                    {
                        group.extend(waiting.pop_front());
                    }
                }
                // A panic in the aggregate fails the group it was deciding (their callers get
                // `Error::CommandAbandoned`), not the commands queued after it.
                let decided = AssertUnwindSafe(self.run_group(&stream, group))
                    .catch_unwind()
                    .await;
                if decided.is_err() {
                    tracing::error!(
                        stream = %stream,
                        "the aggregate panicked deciding a group of commands; they were abandoned"
                    );
                }
            }
        }
    }

    /// Decides and appends one group, and answers each of its commands.
    async fn run_group<A: Aggregate>(&self, stream: &StreamId, group: Vec<Waiting<A>>) {
        let mut attempt = 0;
        let mut max_attempts = self.retry.max_attempts;
        let mut use_cache = true;
        loop {
            attempt += 1;
            // Only the first attempt looks in the cache: a retry follows a conflict, after
            // which the store is asked.
            let cached = match &self.cache {
                Some(cache) if use_cache => cache.take::<A>(stream),
                _ => None,
            };
            use_cache = false;
            let from_cache = cached.is_some();
            let mut loaded = match cached {
                Some(loaded) => loaded,
                None => match self.load_stream::<A>(stream).await {
                    Ok(loaded) => loaded,
                    Err(error) => return self.alone_or_fail(stream, group, error).await,
                },
            };
            let started_at = loaded.version;
            let (decisions, encoded) = self.decide_group(&mut loaded, &group);

            if encoded.is_empty() {
                if from_cache {
                    // A refusal or no-op on a cached state may be an artifact of a stale
                    // state: decide again on the stored one (not counted as an attempt).
                    metrics::counter!("foldline_command_cache_rechecks_total", "aggregate" => A::NAME)
                        .increment(1);
                    tracing::debug!("refusals or no-ops on a cached state, deciding again");
                    attempt -= 1;
                    continue;
                }
                self.cache_state(loaded);
                return answer(stream, group, decisions, None, attempt);
            }

            let mut request =
                AppendRequest::new(stream.clone(), ExpectedVersion::Exact(started_at), encoded);
            if let [one] = group.as_slice()
                && let Some(key) = &one.idempotency_key
            {
                request = request.with_idempotency_key(key.clone());
            }
            match self.store.append(request).await {
                Ok(append) if append.replayed => {
                    // Only a group of one command carries a key.
                    let answer = self.replayed::<A>(append).await.map_err(CommandError::from);
                    if let Some(waiting) = group.into_iter().next() {
                        let _ = waiting.reply.send(answer);
                    }
                    return;
                }
                Ok(append) => {
                    let snapshot = self.snapshot_if_due::<A>(&loaded, started_at);
                    self.cache_state(loaded);
                    if let Some(snapshot) = snapshot
                        && let Err(error) = self.snapshots.save_snapshot(snapshot).await
                    {
                        tracing::warn!(stream = %stream, %error, "could not save snapshot");
                    }
                    return answer(stream, group, decisions, Some(&append), attempt);
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
                Err(error) => return self.alone_or_fail(stream, group, error).await,
            }
        }
    }

    /// Decides each command of `group` on `loaded`, applying the events of each before the
    /// next; what each decided, and the encoded events of all.
    fn decide_group<A: Aggregate>(
        &self,
        loaded: &mut Loaded<A>,
        group: &[Waiting<A>],
    ) -> (Vec<Decision<A>>, Vec<NewEvent>) {
        let mut decisions = Vec::with_capacity(group.len());
        let mut encoded = Vec::new();
        for waiting in group {
            let decision = match loaded.state.handle(&waiting.command) {
                Ok(events) => match self.encode_events::<A>(&events, &waiting.metadata) {
                    Ok(new) => {
                        encoded.extend(new);
                        let previous = loaded.version;
                        for event in &events {
                            loaded.state.apply(event);
                        }
                        loaded.version = Version::new(previous.get() + events.len() as u64);
                        Decision::Events {
                            events,
                            previous,
                            current: loaded.version,
                        }
                    }
                    Err(error) => Decision::Failed(error),
                },
                Err(rejection) => Decision::Rejected(rejection),
            };
            decisions.push(decision);
        }
        (decisions, encoded)
    }

    /// Answers a group whose load or append failed with `error`: a conflict (every retry spent)
    /// goes to each command; any other error to the only command, or each command is run on
    /// its own to get its own answer.
    async fn alone_or_fail<A: Aggregate>(
        &self,
        stream: &StreamId,
        group: Vec<Waiting<A>>,
        error: Error,
    ) {
        if let Error::Conflict {
            stream: conflicted,
            expected,
            actual,
        } = &error
        {
            for waiting in group {
                let conflict = Error::Conflict {
                    stream: conflicted.clone(),
                    expected: *expected,
                    actual: *actual,
                };
                let _ = waiting.reply.send(Err(conflict.into()));
            }
            return;
        }
        if group.len() == 1 {
            if let Some(waiting) = group.into_iter().next() {
                let _ = waiting.reply.send(Err(error.into()));
            }
            return;
        }
        tracing::debug!(%error, commands = group.len(), "a group failed; running each command alone");
        for waiting in group {
            Box::pin(self.run_group(stream, vec![waiting])).await;
        }
    }

    /// The snapshot of `loaded` to save when its version crossed a multiple of the
    /// aggregate's `snapshot(every = N)` since `previous`.
    fn snapshot_if_due<A: Aggregate>(
        &self,
        loaded: &Loaded<A>,
        previous: Version,
    ) -> Option<crate::store::Snapshot> {
        let due = A::SNAPSHOT_EVERY
            .filter(|n| *n > 0)
            .is_some_and(|every| previous.get() / every != loaded.version.get() / every);
        if due {
            self.encode_snapshot(&loaded.state, &loaded.stream_id, loaded.version)
        } else {
            None
        }
    }
}

/// Ends a stream's queue when its task stops before emptying it.
struct Abandon<'a> {
    queues: &'a Queues,
    stream: &'a StreamId,
    emptied: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.emptied {
            self.queues.abandon(self.stream);
        }
    }
}

/// Sends each command of `group` its answer: `append` is the group's stored append (`None`
/// when no command decided events).
fn answer<A: Aggregate>(
    stream: &StreamId,
    group: Vec<Waiting<A>>,
    decisions: Vec<Decision<A>>,
    append: Option<&AppendResult>,
    attempts: u32,
) {
    for (waiting, decision) in group.into_iter().zip(decisions) {
        let answer = match decision {
            Decision::Events {
                events,
                previous,
                current,
            } => Ok(CommandOutcome {
                // A no-op has no position: nothing of it was appended.
                append: AppendResult {
                    stream_id: stream.clone(),
                    previous_version: previous,
                    current_version: current,
                    position: append
                        .filter(|_| !events.is_empty())
                        .and_then(|a| a.position),
                    replayed: false,
                },
                events,
                attempts,
            }),
            Decision::Rejected(rejection) => Err(CommandError::Rejected(rejection)),
            Decision::Failed(error) => Err(CommandError::Store(error)),
        };
        // The caller may have given up waiting (its future dropped); nothing to do then.
        let _ = waiting.reply.send(answer);
    }
}
