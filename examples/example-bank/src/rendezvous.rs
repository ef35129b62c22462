//! A store wrapper that makes a version conflict happen on purpose.
//!
//! Two tellers depositing into one account at the same moment race: both load the account at
//! the same version, both decide, and only the first append can succeed. With an in-memory
//! store the race is over in microseconds and rarely happens by chance, so this wrapper makes
//! the first `parties` stream reads wait for each other: every racer has loaded the same version
//! before any of them appends. Everything else passes straight through to the wrapped store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use foldline::{
    AppendRequest, AppendResult, Checkpoint, EventBatch, EventStore, IdempotencyKey, RecordedEvent,
    StoreIdentity, StreamId, Subscription, Version,
};
use tokio::sync::Barrier;

/// Wraps a store so that its first `parties` calls to `read_stream` return together.
#[derive(Debug, Clone)]
pub struct Rendezvous<S> {
    inner: S,
    barrier: Arc<Barrier>,
    waiting: Arc<AtomicUsize>,
}

impl<S: EventStore> Rendezvous<S> {
    /// Wraps `inner`; the first `parties` stream reads wait until all of them have arrived.
    pub fn new(inner: S, parties: usize) -> Self {
        Rendezvous {
            inner,
            barrier: Arc::new(Barrier::new(parties)),
            waiting: Arc::new(AtomicUsize::new(parties)),
        }
    }
}

impl<S: EventStore> EventStore for Rendezvous<S> {
    async fn append(&self, request: AppendRequest) -> foldline::Result<AppendResult> {
        self.inner.append(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from: Version,
        limit: usize,
    ) -> foldline::Result<Vec<RecordedEvent>> {
        let events = self.inner.read_stream(stream, from, limit).await?;
        let first_reads = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if first_reads {
            self.barrier.wait().await;
        }
        Ok(events)
    }

    async fn read_all(&self, after: &Checkpoint, limit: usize) -> foldline::Result<EventBatch> {
        self.inner.read_all(after, limit).await
    }

    async fn subscribe(&self, after: Checkpoint) -> foldline::Result<Subscription> {
        self.inner.subscribe(after).await
    }

    async fn head(&self) -> foldline::Result<Checkpoint> {
        self.inner.head().await
    }

    async fn identity(&self) -> foldline::Result<StoreIdentity> {
        self.inner.identity().await
    }

    async fn find_idempotent(
        &self,
        key: &IdempotencyKey,
    ) -> foldline::Result<Option<AppendResult>> {
        self.inner.find_idempotent(key).await
    }
}
