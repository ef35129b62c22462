use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::position::Checkpoint;
use crate::store::{EventBatch, EventStore};

type BatchStream = Pin<Box<dyn Stream<Item = Result<EventBatch>> + Send>>;

/// A live view of a store's global feed: batches of committed events in store order, first
/// those already stored after the starting checkpoint, then new ones as they are committed.
///
/// After an `Err` the subscription ends (yields `None`); subscribe again from the last
/// checkpoint you processed.
///
/// # Cancel safety
///
/// [`next`](Subscription::next) is cancel safe: a read in progress lives inside the
/// subscription, not in the future `next` returns, so dropping that future (say, in a
/// `select!`) loses nothing and the next call carries on with the same read.
pub struct Subscription {
    inner: BatchStream,
}

impl Subscription {
    /// Wraps any stream of batches (for store implementations with their own feed reader).
    pub fn new(stream: impl Stream<Item = Result<EventBatch>> + Send + 'static) -> Self {
        Subscription {
            inner: Box::pin(stream),
        }
    }

    /// A subscription driven by repeated reads: `read(checkpoint)` returns the next batch
    /// after `checkpoint`; when a read comes back with no events and no newer checkpoint, the
    /// subscription waits until `changes` is updated (new commits) or `poll_interval` passes,
    /// then reads again. A batch with no events but a newer checkpoint is passed on.
    ///
    /// The change signal is marked seen *before* each read, so a commit between the read and
    /// the wait is never missed. If the sender of `changes` is dropped, the subscription falls
    /// back to polling alone.
    pub fn polling<F, Fut>(
        after: Checkpoint,
        read: F,
        changes: watch::Receiver<u64>,
        poll_interval: Duration,
    ) -> Self
    where
        F: FnMut(Checkpoint) -> Fut + Send + 'static,
        Fut: Future<Output = Result<EventBatch>> + Send + 'static,
    {
        struct State<F> {
            checkpoint: Checkpoint,
            read: F,
            changes: Option<watch::Receiver<u64>>,
            failed: bool,
        }
        let state = State {
            checkpoint: after,
            read,
            changes: Some(changes),
            failed: false,
        };
        let stream = futures_util::stream::unfold(state, move |mut state| async move {
            if state.failed {
                return None;
            }
            loop {
                if let Some(changes) = state.changes.as_mut() {
                    changes.borrow_and_update();
                }
                match (state.read)(state.checkpoint.clone()).await {
                    // Nothing new. (A batch without events whose checkpoint moves on, past
                    // what a partitioned store skips, such as Kafka's transaction markers, is
                    // passed on: a reader needs it to reach the head.)
                    Ok(batch)
                        if batch.is_empty()
                            && state.checkpoint.covers_checkpoint(&batch.checkpoint) => {}
                    Ok(batch) => {
                        state.checkpoint = batch.checkpoint.clone();
                        return Some((Ok(batch), state));
                    }
                    Err(error) => {
                        state.failed = true;
                        return Some((Err(error), state));
                    }
                }
                let sleep = tokio::time::sleep(poll_interval);
                match state.changes.as_mut() {
                    Some(changes) => tokio::select! {
                        changed = changes.changed() => {
                            if changed.is_err() {
                                state.changes = None;
                            }
                        }
                        () = sleep => {}
                    },
                    None => sleep.await,
                }
            }
        });
        Subscription::new(stream)
    }

    /// A [`polling`](Subscription::polling) subscription reading `store`'s feed with
    /// [`read_all`](EventStore::read_all), up to `batch` events at a time: how a store whose
    /// feed is read by queries (PostgreSQL, Kafka) follows it.
    pub fn polling_read_all<S: EventStore + Clone>(
        store: &S,
        after: Checkpoint,
        batch: usize,
        changes: watch::Receiver<u64>,
        poll_interval: Duration,
    ) -> Self {
        let store = store.clone();
        let read = move |checkpoint: Checkpoint| {
            let store = store.clone();
            async move { store.read_all(&checkpoint, batch).await }
        };
        Self::polling(after, read, changes, poll_interval)
    }

    /// The next batch; `None` once the subscription has ended.
    ///
    /// # Errors
    ///
    /// Whatever the store's read failed with; the subscription ends after it.
    pub async fn next(&mut self) -> Option<Result<EventBatch>> {
        futures_util::StreamExt::next(&mut self.inner).await
    }

    /// The next batch, or [`Error::Timeout`] if none arrives within `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], [`Error::Closed`] when the subscription has ended, or the store's error.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<EventBatch> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => Err(Error::Closed {
                what: "subscription",
            }),
            Err(_) => Err(Error::Timeout {
                what: "the next batch of events".into(),
                after: timeout,
            }),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<EventBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
