//! Waking subscribers after commits, outside the appending transactions.
//!
//! A `NOTIFY` inside a transaction takes a cluster-wide lock at commit that every notifying
//! commit waits for in turn, so with it in the appending transactions, commits of concurrent
//! batches were serialized behind one another. Here each committed batch only marks the
//! channel dirty; one task sends `pg_notify` in a transaction of its own, and commits made
//! while it runs share the next one. A notification is only a wake-up: subscribers read the
//! feed (which decides what is visible) and poll at their interval when none comes, so one
//! lost between a commit and a crash costs at most that interval.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use foldline::BoxError;
use tokio::sync::Notify;

/// Longest wait before sending again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Marks the store's channel dirty after commits; a task of its own notifies.
#[derive(Debug)]
pub(crate) struct Notifier {
    dirty: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

impl Notifier {
    /// Starts the task sending `NOTIFY channel` on connections from `pool`.
    pub(crate) fn start(pool: Pool, channel: String) -> Self {
        let dirty = Arc::new(Notify::new());
        let task = tokio::spawn(run(pool, channel, Arc::clone(&dirty))).abort_handle();
        Notifier { dirty, task }
    }

    /// Events were committed: subscribers get a notification after this call, not
    /// necessarily one per call.
    pub(crate) fn committed(&self) {
        // Stores a permit when the task is busy: commits during a send share the next one.
        self.dirty.notify_one();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: Pool, channel: String, dirty: Arc<Notify>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        dirty.notified().await;
        loop {
            match notify(&pool, &channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(50);
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, "could not notify subscribers; retrying");
                    drop(error);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn notify(pool: &Pool, channel: &str) -> Result<(), BoxError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached("SELECT pg_notify($1, '')").await?;
    client.execute(&statement, &[&channel]).await?;
    Ok(())
}
