//! Committing a batch: its writes and the slot's new checkpoint in one `MULTI … EXEC`, on a
//! connection of the slot's own that `WATCH`es the checkpoint.
//!
//! A Lua script did every commit before; Redis spent about 60 % more CPU interpreting it than
//! running the same commands queued in a transaction (`bench/`, `redis-projection`). The
//! check the script made (is the checkpoint still the expected one?) is now `WATCH`: the
//! pipeline that commits ends by watching the checkpoint again and reading it, so the next
//! commit knows the checkpoint it starts from without a round trip of its own (a separate
//! `WATCH` round trip cost 10 % of the benchmark's throughput), and its `EXEC` runs only if
//! nothing wrote the checkpoint since that read: another projector's commit, a drop or a clear
//! of the slot.
//!
//! `WATCH` belongs to a connection, so each slot commits on a [`MultiplexedConnection`] of its
//! own, which does not reconnect by itself: a connection that failed is replaced, and its
//! watch with it, before anything is sent again. Commits that park or release dead letters
//! (rare: a poison event) still run `lua/commit.lua` on that connection: parking orders the
//! letter after the last one, which a transaction cannot read and write in one step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use foldline::{
    BackendErrorKind, Checkpoint, Commit, CommitOutcome, DeadLetter, DriverErrors, ProjectionName,
    Result, SlotId,
};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Pipeline, Script, ScriptInvocation, ToRedisArgs, Value,
};
use uuid::Uuid;

use crate::error::Redis;
use crate::keys::RedisSlotKeys;
use crate::writes::{RedisOp, RedisWrites};

/// How many times a commit starts again when its `EXEC` was refused although the checkpoint
/// reads back as the expected one (something wrote the same checkpoint again).
const EXEC_ATTEMPTS: usize = 3;

/// The commit path of a [`RedisTarget`](crate::RedisTarget) and its clones: one line per slot.
pub(crate) struct Committer {
    client: Client,
    config: AsyncConnectionConfig,
    /// Commits that touch dead letters.
    script: Script,
    lines: Mutex<HashMap<(ProjectionName, SlotId), SharedLine>>,
    rejected: AtomicU64,
}

/// A slot's line, locked by the commit using it (commits of one slot take turns).
type SharedLine = Arc<tokio::sync::Mutex<Line>>;

/// A slot's commit connection and what it knows of the slot's checkpoint.
#[derive(Default)]
struct Line {
    /// Opened by the slot's first commit, and again after a failure.
    conn: Option<MultiplexedConnection>,
    /// The checkpoint read on `conn` right after its `WATCH` (inner `None`: absent, the slot
    /// was dropped or is being cleared); `None` when `conn` watches nothing.
    watched: Option<Option<String>>,
}

/// The dead letters a commit parks and releases.
struct Letters<'a> {
    park: &'a [DeadLetter],
    unpark: &'a [Uuid],
}

/// What one attempt on the line found.
enum Applied {
    /// Committed; Redis refused these operations (index from 0, its message).
    Stored(Vec<(usize, String)>),
    /// The checkpoint is not the expected one; nothing was written.
    Moved(Option<String>),
}

impl Committer {
    pub(crate) fn new(client: Client, config: AsyncConnectionConfig) -> Self {
        Committer {
            client,
            config,
            script: Script::new(include_str!("lua/commit.lua")),
            lines: Mutex::default(),
            rejected: AtomicU64::new(0),
        }
    }

    /// Writes refused by Redis in committed batches, since the target connected.
    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Forgets the slot's line (after it was dropped): its connection closes.
    pub(crate) fn forget(&self, projection: &ProjectionName, slot: SlotId) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(projection.clone(), slot));
    }

    pub(crate) async fn commit(
        &self,
        keys: &RedisSlotKeys,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<RedisWrites>,
    ) -> Result<CommitOutcome> {
        let doing = || format!("committing to slot {slot} of projection `{projection}`");
        let expected = commit.expected.to_string();
        let next = commit.checkpoint.to_string();
        let Commit {
            writes,
            park,
            unpark,
            ..
        } = commit;
        let ops = writes.into_ops();
        let line = self.line(projection, slot);
        let mut line = line.lock().await;
        let applied = if park.is_empty() && unpark.is_empty() {
            self.exec(&mut line, keys, &expected, &next, &ops).await
        } else {
            let letters = Letters {
                park: &park,
                unpark: &unpark,
            };
            self.run_script(&mut line, keys, &expected, &next, &ops, letters)
                .await
        };
        let applied = applied.map_err(|e| {
            // The outcome is unknown and so is the watch: start again on a new connection.
            *line = Line::default();
            e.into_error(doing())
        })?;
        drop(line);
        match applied {
            Applied::Moved(actual) => Ok(CommitOutcome::Moved {
                actual: actual
                    .map(|text| parse_checkpoint(&text, projection, slot))
                    .transpose()?,
            }),
            Applied::Stored(refusals) => {
                self.report_refusals(projection, slot, &ops, &refusals);
                Ok(CommitOutcome::Committed)
            }
        }
    }

    fn line(&self, projection: &ProjectionName, slot: SlotId) -> SharedLine {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(lines.entry((projection.clone(), slot)).or_default())
    }

    async fn connection(&self, line: &mut Line) -> Result<MultiplexedConnection, Failure> {
        if let Some(conn) = &line.conn {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(Failure::Driver)?;
        line.watched = None;
        Ok(line.conn.insert(conn).clone())
    }

    /// The plain commit: `MULTI`, the writes, the new checkpoint, `EXEC`, then `WATCH` and
    /// `GET` of the checkpoint for the next commit, all in one round trip.
    async fn exec(
        &self,
        line: &mut Line,
        keys: &RedisSlotKeys,
        expected: &str,
        next: &str,
        ops: &[RedisOp],
    ) -> Result<Applied, Failure> {
        let checkpoint = keys.checkpoint();
        for _ in 0..EXEC_ATTEMPTS {
            let mut conn = self.connection(line).await?;
            let watched = match line.watched.take() {
                // Read right after the last commit: if it is not the expected one, it may
                // have changed since; read it again.
                Some(watched) if watched.as_deref() == Some(expected) => watched,
                _ => watch(&mut conn, &checkpoint).await?,
            };
            if watched.as_deref() != Some(expected) {
                line.watched = Some(watched.clone());
                return Ok(Applied::Moved(watched));
            }

            let mut pipe = redis::pipe();
            pipe.ignore_errors().cmd("MULTI");
            with_full_keys(keys, ops, |key, op| {
                pipe.cmd(op.command()).arg(key);
                push_values(&mut pipe, op);
            });
            pipe.cmd("SET").arg(&checkpoint).arg(next);
            pipe.cmd("EXEC");
            pipe.cmd("WATCH").arg(&checkpoint);
            pipe.cmd("GET").arg(&checkpoint);
            let mut replies: Vec<Value> =
                pipe.query_async(&mut conn).await.map_err(Failure::Driver)?;

            // MULTI, a QUEUED per write and for the checkpoint, EXEC, WATCH, GET.
            if replies.len() != ops.len() + 5 {
                return Err(Failure::Reply);
            }
            let now = replies.pop().ok_or(Failure::Reply)?;
            line.watched = Some(redis::from_redis_value(now).map_err(|_| Failure::Reply)?);
            match replies.swap_remove(ops.len() + 2) {
                Value::Array(results) if results.len() == ops.len() + 1 => {
                    return stored(results);
                }
                // Something wrote the checkpoint after the watch: what now depends on what
                // it is now (read just above).
                Value::Nil => {}
                Value::ServerError(error) => return Err(Failure::Driver(error.into())),
                _ => return Err(Failure::Reply),
            }
        }
        Err(Failure::KeptChanging)
    }

    /// A commit that parks or releases dead letters: the whole of it in `lua/commit.lua`.
    async fn run_script(
        &self,
        line: &mut Line,
        keys: &RedisSlotKeys,
        expected: &str,
        next: &str,
        ops: &[RedisOp],
        letters: Letters<'_>,
    ) -> Result<Applied, Failure> {
        let mut conn = self.connection(line).await?;
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(keys.checkpoint())
            .key(keys.dead())
            .key(keys.dead_order())
            .arg(expected)
            .arg(next)
            .arg(ops.len());
        with_full_keys(keys, ops, |key, op| {
            invocation.key(key).arg(op.command());
            push_values(&mut invocation, op);
        });
        invocation.arg(letters.unpark.len());
        for id in letters.unpark {
            invocation.arg(id.to_string());
        }
        invocation.arg(letters.park.len());
        for letter in letters.park {
            let json = serde_json::to_string(letter)
                .map_err(|e| Failure::Encoding(letter.event_id.to_string(), Box::new(e)))?;
            invocation.arg(letter.event_id.to_string()).arg(json);
        }
        let reply: Vec<Value> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(Failure::Driver)?;
        // The script wrote the checkpoint, which spoiled any watch of this connection.
        line.watched = None;

        let mut reply = reply.into_iter();
        match reply.next() {
            Some(Value::Int(1)) => {}
            Some(Value::Int(0)) => {
                let actual = reply.next().unwrap_or(Value::Nil);
                return Ok(Applied::Moved(
                    redis::from_redis_value(actual).map_err(|_| Failure::Reply)?,
                ));
            }
            _ => return Err(Failure::Reply),
        }
        let mut refusals = Vec::new();
        while let (Some(index), Some(error)) = (reply.next(), reply.next()) {
            let index: usize = redis::from_redis_value(index).map_err(|_| Failure::Reply)?;
            let error: String = redis::from_redis_value(error).map_err(|_| Failure::Reply)?;
            refusals.push((index.checked_sub(1).ok_or(Failure::Reply)?, error));
        }
        Ok(Applied::Stored(refusals))
    }

    /// Logs and counts the writes Redis refused in a committed batch.
    fn report_refusals(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        ops: &[RedisOp],
        refusals: &[(usize, String)],
    ) {
        if refusals.is_empty() {
            return;
        }
        for (index, error) in refusals {
            let op = ops.get(*index);
            tracing::error!(
                %projection,
                slot = slot.get(),
                op = index + 1,
                command = op.map_or("?", RedisOp::command),
                key = op.map_or("?", RedisOp::key),
                error,
                "Redis refused a write of a committed batch; the rest of the batch and the \
                 checkpoint were stored"
            );
        }
        let rejected = refusals.len() as u64;
        self.rejected.fetch_add(rejected, Ordering::Relaxed);
        metrics::counter!(
            "foldline_redis_rejected_writes_total",
            "projection" => projection.to_string()
        )
        .increment(rejected);
    }
}

/// `WATCH`es the checkpoint on `conn` (and nothing else: a commit that found it moved left
/// its watch) and reads it.
async fn watch(
    conn: &mut MultiplexedConnection,
    checkpoint: &str,
) -> Result<Option<String>, Failure> {
    let ((), (), value): ((), (), Option<String>) = redis::pipe()
        .cmd("UNWATCH")
        .cmd("WATCH")
        .arg(checkpoint)
        .cmd("GET")
        .arg(checkpoint)
        .query_async(conn)
        .await
        .map_err(Failure::Driver)?;
    Ok(value)
}

/// The refusals among the replies of a transaction's writes; the last reply is the
/// checkpoint's `SET`, which must have worked.
fn stored(mut results: Vec<Value>) -> Result<Applied, Failure> {
    if let Some(Value::ServerError(error)) = results.pop() {
        return Err(Failure::Driver(error.into()));
    }
    let refusals = results
        .into_iter()
        .enumerate()
        .filter_map(|(index, reply)| match reply {
            Value::ServerError(error) => Some((index, error.to_string())),
            _ => None,
        })
        .collect();
    Ok(Applied::Stored(refusals))
}

/// Calls `each` with every op and its full key: the slot's data prefix and the op's own key,
/// written into one buffer (the callee copies it).
fn with_full_keys(keys: &RedisSlotKeys, ops: &[RedisOp], mut each: impl FnMut(&str, &RedisOp)) {
    let mut key = keys.data_prefix();
    let prefix_len = key.len();
    for op in ops {
        key.truncate(prefix_len);
        key.push_str(op.key());
        each(&key, op);
    }
}

/// Where an operation's values go: a transaction's pipeline or the script's arguments.
trait Args {
    fn push<T: ToRedisArgs>(&mut self, arg: T);
}

impl Args for Pipeline {
    fn push<T: ToRedisArgs>(&mut self, arg: T) {
        self.arg(arg);
    }
}

impl Args for ScriptInvocation<'_> {
    fn push<T: ToRedisArgs>(&mut self, arg: T) {
        self.arg(arg);
    }
}

/// The arguments of `op` after its key.
fn push_values(args: &mut impl Args, op: &RedisOp) {
    match op {
        RedisOp::Set { value, .. } => args.push(value),
        RedisOp::Del { .. } => {}
        RedisOp::IncrBy { by, .. } => args.push(by),
        RedisOp::HSet { field, value, .. } => {
            args.push(field);
            args.push(value);
        }
        RedisOp::HDel { field, .. } => args.push(field),
        RedisOp::HIncrBy { field, by, .. } => {
            args.push(field);
            args.push(by);
        }
        RedisOp::SAdd { member, .. } | RedisOp::SRem { member, .. } => args.push(member),
        // The shortest text that reads back as the same f64.
        RedisOp::ZAdd { member, score, .. } => {
            args.push(score);
            args.push(member);
        }
        RedisOp::ZRem { member, .. } => args.push(member),
    }
}

/// Why a commit failed, before it knows what it was doing (for the error's context).
enum Failure {
    Driver(redis::RedisError),
    Reply,
    Encoding(String, foldline::BoxError),
    KeptChanging,
}

impl Failure {
    fn into_error(self, doing: String) -> foldline::Error {
        match self {
            Failure::Driver(error) => Redis::error(doing, error),
            Failure::Reply => Redis::corrupt(format!("{doing}: unexpected reply"), None),
            Failure::Encoding(event_id, source) => Redis::corrupt(
                format!("{doing}: encoding the dead letter of event {event_id}"),
                Some(source),
            ),
            Failure::KeptChanging => Redis::failure(
                BackendErrorKind::Unavailable,
                format!(
                    "{doing}: the checkpoint was written again {EXEC_ATTEMPTS} times while \
                     committing"
                ),
                None,
            ),
        }
    }
}

pub(crate) fn parse_checkpoint(
    text: &str,
    projection: &ProjectionName,
    slot: SlotId,
) -> Result<Checkpoint> {
    text.parse().map_err(|e: foldline::Error| {
        Redis::corrupt(
            format!("reading the checkpoint of slot {slot} of projection `{projection}`"),
            Some(Box::new(e)),
        )
    })
}
