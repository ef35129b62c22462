//! Group commit: one task per store coalesces concurrent appends into one transaction.
//!
//! Each append in a batch is checked on its own (expected version, idempotency key) in the
//! order it arrived, so a conflict fails only that append and two appends to one stream in one
//! batch are checked one after the other. The accepted events of the whole batch go in with one
//! multi-row `INSERT ... SELECT FROM unnest(...)`.
//!
//! Ordering across processes: before anything that assigns a transaction id, the batch takes a
//! transaction-scoped advisory lock per stream and per idempotency key, in one global order
//! (sorted keys, so no deadlocks). A later writer of the same stream therefore gets its xid only
//! after the earlier one committed, and the feed — ordered by `(xid, position)` — lists every
//! stream's events in version order. Row locks (`SELECT ... FOR UPDATE`) would not do: taking
//! one assigns the xid before waiting.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use foldline::{
    AppendRequest, AppendResult, BackendError, BackendErrorKind, Error, IdempotencyKey, StreamId,
    Version,
};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{BACKEND, backend, corrupt, is_connection_error, pool};
use crate::hash::stable_key;
use crate::rows::{append_result, position, to_i64, to_u64};
use crate::sql::Sql;

/// An append waiting for the writer, with where to send its result.
pub(crate) struct PendingAppend {
    pub(crate) request: AppendRequest,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, Error>>,
}

/// What the writer needs besides its queue.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) sql: Arc<Sql>,
    pub(crate) schema: String,
    pub(crate) channel: String,
    pub(crate) max_batch: usize,
}

impl Writer {
    /// Runs until every sender is gone (the store and all its clones were dropped).
    pub(crate) async fn run(self, mut queue: mpsc::Receiver<PendingAppend>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while queue.recv_many(&mut batch, self.max_batch).await > 0 {
            let appends = std::mem::take(&mut batch);
            let span = tracing::debug_span!("foldline.pg.group_commit", appends = appends.len());
            self.commit(appends).instrument(span).await;
        }
    }

    /// Commits one batch and answers every append in it.
    async fn commit(&self, appends: Vec<PendingAppend>) {
        let started = Instant::now();
        let count = appends.len();
        let (requests, replies): (Vec<_>, Vec<_>) =
            appends.into_iter().map(|p| (p.request, p.reply)).unzip();
        let results = match self.try_batch(&requests).await {
            Ok(results) => results,
            Err(BatchError::Rejected(_)) if requests.len() > 1 => {
                // One append carries something PostgreSQL refuses (say a `\u0000` in a JSON
                // string): commit them one by one so only that append fails.
                let mut results = Vec::with_capacity(requests.len());
                for request in &requests {
                    let single = std::slice::from_ref(request);
                    results.push(match self.try_batch(single).await {
                        Ok(mut one) => one.remove(0),
                        Err(error) => Err(error.into_error(request.stream(), 1)),
                    });
                }
                results
            }
            Err(error) => {
                let shared = error.shared();
                requests
                    .iter()
                    .map(|r| Err(shared.to_error(r.stream(), count)))
                    .collect()
            }
        };
        metrics::histogram!("foldline_pg_group_commit_appends").record(count as f64);
        metrics::histogram!("foldline_pg_group_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have given up waiting (its future dropped); nothing to do then.
            let _ = reply.send(result);
        }
    }

    /// One transaction for `requests`: `Ok` holds each append's own result (success, conflict
    /// or replay); `Err` means the transaction as a whole failed and nothing was written
    /// (unless the failure hit the commit itself: then the outcome is unknown).
    async fn try_batch(
        &self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, Error>>, BatchError> {
        let mut client = self.pool.get().await.map_err(BatchError::Pool)?;
        let tx = client.transaction().await.map_err(BatchError::from_pg)?;

        let plan = Plan::new(requests);
        let mut locks: Vec<i64> = plan
            .streams
            .iter()
            .map(|s| stable_key(&[b"stream", self.schema.as_bytes(), s.as_bytes()]))
            .chain(
                plan.keys
                    .iter()
                    .map(|k| stable_key(&[b"key", self.schema.as_bytes(), k.as_bytes()])),
            )
            .collect();
        locks.sort_unstable();
        locks.dedup();
        let lock = tx
            .prepare_cached(&self.sql.lock)
            .await
            .map_err(BatchError::from_pg)?;
        tx.execute(&lock, &[&locks])
            .await
            .map_err(BatchError::from_pg)?;

        let select_versions = tx
            .prepare_cached(&self.sql.select_versions)
            .await
            .map_err(BatchError::from_pg)?;
        let select_keys = tx
            .prepare_cached(&self.sql.select_keys)
            .await
            .map_err(BatchError::from_pg)?;
        let stream_params: [&(dyn ToSql + Sync); 1] = [&plan.streams];
        let key_params: [&(dyn ToSql + Sync); 1] = [&plan.keys];
        let (version_rows, key_rows) = tokio::try_join!(
            tx.query(&select_versions, &stream_params),
            tx.query(&select_keys, &key_params),
        )
        .map_err(BatchError::from_pg)?;

        let mut versions: HashMap<String, u64> = version_rows
            .iter()
            .map(|r| (r.get(0), to_u64(r.get(1))))
            .collect();
        let mut used_keys: HashMap<String, KeyUse> = HashMap::new();
        for row in &key_rows {
            let result = append_result(row).map_err(BatchError::Other)?;
            used_keys.insert(row.get(0), KeyUse::Stored(result));
        }

        let mut rows = EventRows::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        let mut changed: HashMap<&str, i64> = HashMap::new();
        for (index, request) in requests.iter().enumerate() {
            let key = request.idempotency_key().map(IdempotencyKey::as_str);
            if let Some(used) = key.and_then(|k| used_keys.get(k)) {
                outcomes.push(match used {
                    KeyUse::Stored(result) => Outcome::Replay(result.clone()),
                    KeyUse::InBatch(first) => Outcome::ReplayOf(*first),
                });
                continue;
            }
            let stream = request.stream().as_str();
            let actual = versions.get(stream).copied().unwrap_or(0);
            if !request.expected().allows(Version::new(actual)) {
                outcomes.push(Outcome::Conflict(actual));
                continue;
            }
            let current = actual + request.events().len() as u64;
            for (offset, event) in request.events().iter().enumerate() {
                rows.push(stream, actual + 1 + offset as u64, event)
                    .map_err(BatchError::Other)?;
            }
            if current > actual {
                versions.insert(stream.to_owned(), current);
                changed.insert(stream, to_i64(current));
            }
            if let Some(key) = key {
                used_keys.insert(key.to_owned(), KeyUse::InBatch(index));
            }
            outcomes.push(Outcome::Accepted {
                previous: actual,
                current,
            });
        }

        // Where each accepted append's last event landed.
        let mut positions: HashMap<(&str, i64), foldline::Position> = HashMap::new();
        let inserted = if rows.is_empty() {
            Vec::new()
        } else {
            let insert = tx
                .prepare_cached(&self.sql.insert_events)
                .await
                .map_err(BatchError::from_pg)?;
            tx.query(
                &insert,
                &[
                    &rows.stream_ids,
                    &rows.versions,
                    &rows.event_ids,
                    &rows.event_types,
                    &rows.schema_versions,
                    &rows.payloads,
                    &rows.metadata,
                ],
            )
            .await
            .map_err(BatchError::from_pg)?
        };
        for row in &inserted {
            positions.insert((row.get(0), row.get(1)), position(row.get(3), row.get(2)));
        }

        let mut results: Vec<Result<AppendResult, Error>> = Vec::with_capacity(requests.len());
        let mut replays = Vec::new();
        let mut keys = KeyRows::default();
        for (index, (request, outcome)) in requests.iter().zip(outcomes).enumerate() {
            results.push(match outcome {
                Outcome::Replay(result) => Ok(result),
                Outcome::ReplayOf(first) => {
                    replays.push((index, first));
                    Err(corrupt_batch()) // replaced below, once `first` has its result
                }
                Outcome::Conflict(actual) => Err(Error::Conflict {
                    stream: request.stream().clone(),
                    expected: request.expected(),
                    actual: Version::new(actual),
                }),
                Outcome::Accepted { previous, current } => {
                    let last = positions
                        .get(&(request.stream().as_str(), to_i64(current)))
                        .copied();
                    let result = AppendResult::new(
                        request.stream().clone(),
                        Version::new(previous),
                        Version::new(current),
                        last,
                    );
                    if let Some(key) = request.idempotency_key() {
                        keys.push(key, &result);
                    }
                    Ok(result)
                }
            });
        }
        for (index, first) in replays {
            if let Ok(result) = &results[first] {
                results[index] = Ok(result.clone().into_replayed());
            }
        }

        let upsert = tx
            .prepare_cached(&self.sql.upsert_streams)
            .await
            .map_err(BatchError::from_pg)?;
        let insert_keys = tx
            .prepare_cached(&self.sql.insert_keys)
            .await
            .map_err(BatchError::from_pg)?;
        let notify = tx
            .prepare_cached(&self.sql.notify)
            .await
            .map_err(BatchError::from_pg)?;
        let (stream_ids, stream_versions): (Vec<&str>, Vec<i64>) = changed.into_iter().unzip();
        tokio::try_join!(
            async {
                if stream_ids.is_empty() {
                    return Ok(0);
                }
                tx.execute(&upsert, &[&stream_ids, &stream_versions]).await
            },
            async {
                if keys.keys.is_empty() {
                    return Ok(0);
                }
                tx.execute(
                    &insert_keys,
                    &[
                        &keys.keys,
                        &keys.streams,
                        &keys.previous,
                        &keys.current,
                        &keys.xids,
                        &keys.positions,
                    ],
                )
                .await
            },
            async {
                if rows.is_empty() {
                    return Ok(0);
                }
                // Delivered at commit, to every store instance listening on this schema.
                tx.execute(&notify, &[&self.channel]).await
            },
        )
        .map_err(BatchError::from_pg)?;
        tx.commit().await.map_err(BatchError::from_pg)?;
        metrics::counter!("foldline_pg_events_appended_total").increment(rows.len() as u64);
        Ok(results)
    }
}

/// Streams and keys a batch touches, deduplicated.
struct Plan {
    streams: Vec<String>,
    keys: Vec<String>,
}

impl Plan {
    fn new(requests: &[AppendRequest]) -> Self {
        let mut streams: Vec<String> = requests
            .iter()
            .map(|r| r.stream().as_str().to_owned())
            .collect();
        streams.sort_unstable();
        streams.dedup();
        let mut keys: Vec<String> = requests
            .iter()
            .filter_map(|r| r.idempotency_key().map(|k| k.as_str().to_owned()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Plan { streams, keys }
    }
}

enum KeyUse {
    /// Used by an earlier, committed append.
    Stored(AppendResult),
    /// Used by the append at this index of the current batch.
    InBatch(usize),
}

/// What the checks decided for one append of a batch.
enum Outcome {
    /// Its key was used by an earlier, committed append: return that result.
    Replay(AppendResult),
    /// Its key was used by the append at this index of the same batch.
    ReplayOf(usize),
    /// The stream was at this version, not the expected one.
    Conflict(u64),
    /// Its events are in the insert.
    Accepted { previous: u64, current: u64 },
}

/// The accepted events of a batch as the columns of one multi-row insert.
#[derive(Default)]
struct EventRows<'a> {
    stream_ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i64>,
    payloads: Vec<&'a str>,
    metadata: Vec<String>,
}

impl<'a> EventRows<'a> {
    fn push(
        &mut self,
        stream: &'a str,
        version: u64,
        event: &'a foldline::NewEvent,
    ) -> Result<(), Error> {
        // Payloads were checked to be JSON before the append was queued (store.rs).
        let payload = std::str::from_utf8(&event.payload).map_err(|e| Error::InvalidPayload {
            stream: StreamId::from_static("invalid"),
            event_type: event.event_type.clone(),
            source: Box::new(e),
        })?;
        let metadata = serde_json::to_string(&event.metadata).map_err(|e| Error::Encode {
            what: format!("the metadata of event `{}`", event.event_type),
            source: Box::new(e),
        })?;
        self.stream_ids.push(stream);
        self.versions.push(to_i64(version));
        self.event_ids.push(event.event_id);
        self.event_types.push(event.event_type.as_str());
        self.schema_versions.push(i64::from(event.schema_version));
        self.payloads.push(payload);
        self.metadata.push(metadata);
        Ok(())
    }

    fn len(&self) -> usize {
        self.versions.len()
    }

    fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// Idempotency keys to record, as the columns of one multi-row insert.
#[derive(Default)]
struct KeyRows {
    keys: Vec<String>,
    streams: Vec<String>,
    previous: Vec<i64>,
    current: Vec<i64>,
    xids: Vec<Option<i64>>,
    positions: Vec<Option<i64>>,
}

impl KeyRows {
    fn push(&mut self, key: &IdempotencyKey, result: &AppendResult) {
        self.keys.push(key.as_str().to_owned());
        self.streams.push(result.stream_id.as_str().to_owned());
        self.previous.push(to_i64(result.previous_version.get()));
        self.current.push(to_i64(result.current_version.get()));
        self.xids.push(result.position.map(|p| to_i64(p.major())));
        self.positions
            .push(result.position.map(|p| to_i64(p.minor())));
    }
}

fn corrupt_batch() -> Error {
    corrupt("a group commit lost track of an append")
}

/// Why a whole batch failed.
enum BatchError {
    /// No connection could be had.
    Pool(deadpool_postgres::PoolError),
    /// The connection failed or the server is going away: transient.
    Connection(tokio_postgres::Error),
    /// The server refused a statement (a constraint, a malformed value).
    Rejected(tokio_postgres::Error),
    /// Anything else, already a foldline error.
    Other(Error),
}

impl BatchError {
    fn from_pg(error: tokio_postgres::Error) -> Self {
        if is_connection_error(&error) {
            BatchError::Connection(error)
        } else {
            BatchError::Rejected(error)
        }
    }

    fn into_error(self, stream: &StreamId, batch: usize) -> Error {
        let context = context(stream, batch);
        match self {
            BatchError::Pool(e) => pool(context, e),
            BatchError::Connection(e) | BatchError::Rejected(e) => backend(context, e),
            BatchError::Other(e) => e,
        }
    }

    /// A form every append of the batch can get a copy of.
    fn shared(self) -> SharedBatchError {
        match self {
            BatchError::Pool(e) => SharedBatchError {
                kind: BackendErrorKind::Unavailable,
                cause: Arc::new(e),
            },
            BatchError::Connection(e) => SharedBatchError {
                kind: BackendErrorKind::Unavailable,
                cause: Arc::new(e),
            },
            BatchError::Rejected(e) => SharedBatchError {
                kind: BackendErrorKind::Rejected,
                cause: Arc::new(e),
            },
            BatchError::Other(e) => {
                let kind = match &e {
                    Error::Backend(b) => b.kind(),
                    _ => BackendErrorKind::Corrupt,
                };
                SharedBatchError {
                    kind,
                    cause: Arc::new(e),
                }
            }
        }
    }
}

fn context(stream: &StreamId, batch: usize) -> String {
    if batch > 1 {
        format!("appending to `{stream}` (in a group commit of {batch} appends)")
    } else {
        format!("appending to `{stream}`")
    }
}

/// One batch failure, handed to every append of the batch with its cause kept as the source.
struct SharedBatchError {
    kind: BackendErrorKind,
    cause: Arc<dyn StdError + Send + Sync>,
}

impl SharedBatchError {
    fn to_error(&self, stream: &StreamId, batch: usize) -> Error {
        Error::Backend(BackendError::new(
            BACKEND,
            self.kind,
            context(stream, batch),
            Some(Box::new(SharedCause(self.cause.clone()))),
        ))
    }
}

/// An error shared by several appends: displays and chains like the original.
struct SharedCause(Arc<dyn StdError + Send + Sync>);

impl fmt::Debug for SharedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl StdError for SharedCause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}
