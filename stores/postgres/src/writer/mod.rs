//! Group commit: one task per store coalesces concurrent appends into transactions.
//!
//! Appends wait in a bounded queue. The writer takes everything queued (up to `max_batch`) as
//! one batch and commits it in one transaction (`batch.rs`; a batch of one append without an
//! idempotency key in one round trip, `single.rs`), with up to `max_in_flight`
//! transactions at once, so a new batch is built while earlier ones wait for their commit to
//! reach the disk. Each append in a batch is checked on its own (expected version, idempotency
//! key) in the order it arrived, so a conflict fails only that append, and two appends to one
//! stream in one batch are checked one after the other.
//!
//! An append fails only for its own reasons. What the client decides about one append before
//! the insert (a version conflict, an event that cannot be encoded) is that append's result,
//! and the rest of its batch goes on (`batch.rs`). Payloads and metadata the server would refuse
//! never get this far: the store checks them before queueing (`jsonb.rs`). For what no check
//! can see (an event id already stored, an event beyond `jsonb`'s size, a character a
//! non-UTF-8 database cannot hold), the server refuses a statement, which fails the whole
//! transaction without saying which row caused it: the writer then commits each half of the
//! batch on its own, the earlier half first, and halves again whatever is refused, until the
//! culprit is alone and gets the server's error (`Writer::commit_or_split`). Its neighbours
//! are committed in about two transactions per halving, in arrival order; each halving counts
//! in the `foldline_pg_group_commit_splits_total` metric. A failure that is no
//! one append's doing (no connection, a lost one) goes to every append of the batch, and is
//! transient; if it interrupted the `COMMIT`, each append may or may not have been written.
//!
//! Ordering across transactions and processes: before anything that assigns a transaction id,
//! a batch takes a transaction-scoped advisory lock per stream and per idempotency key, in one
//! global order (sorted keys, so no deadlocks). A later writer of the same stream therefore gets
//! its xid only after the earlier one committed, and the feed — ordered by `(xid, position)` —
//! lists every stream's events in version order. Row locks (`SELECT ... FOR UPDATE`) would not
//! do: taking one assigns the xid before waiting.

mod batch;
mod columns;
mod notify;
mod single;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use foldline::{AppendRequest, AppendResult, BackendErrorKind, DriverErrors, Error, StreamId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use crate::error::{Postgres, is_connection_error, pool};
use crate::sql::Sql;

pub(crate) use notify::Notifier;

/// An append waiting for the writer, with where to send its result.
pub(crate) struct PendingAppend {
    pub(crate) request: AppendRequest,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, Error>>,
}

/// The group-commit writer of one store instance.
pub(crate) struct Writer {
    pub(crate) pool: Pool,
    pub(crate) sql: Arc<Sql>,
    pub(crate) schema: String,
    /// Wakes subscribers after commits (outside the appending transactions).
    pub(crate) notifier: Notifier,
    pub(crate) max_batch: usize,
    pub(crate) max_in_flight: usize,
}

impl Writer {
    /// Runs until every sender is gone (the store and all its clones were dropped); batches
    /// still committing then finish on their own.
    pub(crate) async fn run(self, mut queue: mpsc::Receiver<PendingAppend>) {
        let in_flight = Arc::new(Semaphore::new(self.max_in_flight));
        let writer = Arc::new(self);
        loop {
            // Wait for a free transaction slot first: meanwhile appends pile up in the queue
            // and the next batch takes them all.
            let Ok(slot) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let mut appends = Vec::with_capacity(writer.max_batch);
            if queue.recv_many(&mut appends, writer.max_batch).await == 0 {
                return;
            }
            let writer = writer.clone();
            let span = tracing::debug_span!("foldline.pg.group_commit", appends = appends.len());
            tokio::spawn(
                async move {
                    writer.commit(appends).await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
    }

    /// Commits one batch and answers every append in it.
    async fn commit(&self, appends: Vec<PendingAppend>) {
        let started = Instant::now();
        let count = appends.len();
        let (requests, replies): (Vec<_>, Vec<_>) =
            appends.into_iter().map(|p| (p.request, p.reply)).unzip();
        let results = self.commit_or_split(&requests).await;
        metrics::histogram!("foldline_pg_group_commit_appends").record(count as f64);
        metrics::histogram!("foldline_pg_group_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have given up waiting (its future dropped); nothing to do then.
            let _ = reply.send(result);
        }
    }

    /// Commits `requests` in one transaction; should the server refuse it, commits each half
    /// the same way, the earlier half first.
    ///
    /// A refusal fails a whole transaction, and the server does not say which row caused it: a
    /// value the checks before queueing missed, an event id already stored. Halving until the
    /// culprit is alone fails only its append, keeps arrival order (which the version checks
    /// rely on), and commits its neighbours in a few transactions of their own: about two per
    /// halving, rather than one per append of a batch of up to `max_batch`. Other failures (no
    /// connection, a lost one) are not any one append's doing, and every append of the part
    /// shares them.
    fn commit_or_split<'a>(
        &'a self,
        requests: &'a [AppendRequest],
    ) -> BoxFuture<'a, Vec<Result<AppendResult, Error>>> {
        async move {
            match self.try_batch(requests).await {
                Ok(results) => results,
                Err(BatchError::Rejected(error)) if requests.len() > 1 => {
                    tracing::debug!(
                        appends = requests.len(),
                        %error,
                        "the server refused a group commit; committing each half on its own"
                    );
                    metrics::counter!("foldline_pg_group_commit_splits_total").increment(1);
                    let (earlier, later) = requests.split_at(requests.len() / 2);
                    let mut results = self.commit_or_split(earlier).await;
                    results.extend(self.commit_or_split(later).await);
                    results
                }
                Err(error) if requests.len() == 1 => {
                    vec![Err(error.into_error(requests[0].stream(), 1))]
                }
                Err(error) => {
                    let shared = error.shared();
                    requests
                        .iter()
                        .map(|r| Err(shared.to_error(r.stream(), requests.len())))
                        .collect()
                }
            }
        }
        .boxed()
    }

    /// One transaction on a pooled connection. After a failure the connection may be inside
    /// an aborted transaction: it is rolled back, or dropped from the pool if even that fails.
    async fn try_batch(
        &self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, Error>>, BatchError> {
        let client = self.pool.get().await.map_err(BatchError::Pool)?;
        let outcome = match single::fits(requests) {
            Some((request, expected)) => single::run(self, &client, request, expected).await,
            None => batch::run(self, &client, requests).await,
        };
        if outcome.is_err() && client.batch_execute("ROLLBACK").await.is_err() {
            drop(deadpool_postgres::Object::take(client));
        }
        outcome
    }
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
            BatchError::Connection(e) | BatchError::Rejected(e) => Postgres::error(context, e),
            BatchError::Other(e) => e,
        }
    }

    /// A form every append of the batch can get a copy of.
    fn shared(self) -> SharedBatchError {
        match self {
            // As `error::pool`: a failed connection attempt is the driver's error itself.
            BatchError::Pool(deadpool_postgres::PoolError::Backend(e)) => SharedBatchError {
                kind: Postgres::classify(&e),
                cause: Arc::new(e),
            },
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
        Postgres::failure(
            self.kind,
            context(stream, batch),
            Some(Box::new(SharedCause(self.cause.clone()))),
        )
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

#[cfg(test)]
mod tests {
    use foldline::{BackendErrorKind, Error, StreamId};
    use tokio_postgres::NoTls;

    use super::BatchError;

    /// Every cause of `error`, outermost first.
    fn causes(error: &Error) -> Vec<String> {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        causes
    }

    /// A batch that got no connection hands every append the driver's error, classified, and
    /// not the pool's wrapper, whose message repeats the driver's.
    #[tokio::test]
    async fn failed_connection_is_shared_as_the_drivers_error() {
        // Nothing listens on port 1.
        let refused = tokio_postgres::connect("host=127.0.0.1 port=1 user=postgres", NoTls)
            .await
            .map(|_| ())
            .unwrap_err();
        let driver = refused.to_string();
        let stream = StreamId::new("s-1").unwrap();
        let error = BatchError::Pool(deadpool_postgres::PoolError::Backend(refused))
            .shared()
            .to_error(&stream, 3);
        let Error::Backend(backend) = &error else {
            panic!("{error:?}");
        };
        assert_eq!(backend.kind(), BackendErrorKind::Unavailable);
        let causes = causes(&error);
        assert_eq!(causes.first(), Some(&driver), "{causes:?}");
        assert_eq!(
            causes.iter().filter(|c| c.contains(&driver)).count(),
            1,
            "the driver's message is printed once: {causes:?}"
        );
    }
}
