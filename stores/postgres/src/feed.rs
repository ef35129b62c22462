//! The global feed: `read_all`, `head` and `subscribe`, woken by LISTEN/NOTIFY (the writer's
//! notifier, `writer/notify.rs`, sends them).
//!
//! Positions are allocated before commit, so transactions commit out of position order, and a
//! reader asking for `position > last` would skip an event whose transaction commits after a
//! later position was read. The feed is therefore ordered by `(xid, position)` and only shows
//! events of transactions below the visibility horizon, `pg_snapshot_xmin(pg_current_snapshot())`:
//! every transaction there has finished, so nothing can appear behind a checkpoint later. The
//! cost: a transaction left open anywhere on the server, or prepared and never finished, holds
//! the feed back ([`ManagedStore::feed_held_back`](foldline::ManagedStore::feed_held_back)
//! names it and counts the events waiting behind it).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldline::{Checkpoint, DriverErrors, Error, EventBatch, Subscription};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::Postgres;
use crate::rows::{position, recorded_event, to_i64};
use crate::store::PgEventStore;

/// Events a subscription reads per round trip.
const SUBSCRIPTION_BATCH: usize = 1_000;
/// Longest wait between attempts to re-establish the LISTEN connection.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The `(xid, position)` after which `after` resumes.
fn resume_point(after: &Checkpoint) -> Result<(i64, i64), Error> {
    match after.positions() {
        [] => Ok((0, 0)),
        [p] if p.partition() == 0 => Ok((to_i64(p.major()), to_i64(p.minor()))),
        _ => Err(Error::InvalidCheckpoint {
            value: after.to_string(),
        }),
    }
}

pub(crate) async fn read_all(
    store: &PgEventStore,
    after: &Checkpoint,
    limit: usize,
) -> Result<EventBatch, Error> {
    let (xid, last) = resume_point(after)?;
    let context = || format!("reading the global feed after {after}");
    let client = store.client(&context()).await?;
    let statement = client
        .prepare_cached(&store.inner.sql.read_all)
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    let limit_param = i64::try_from(limit).unwrap_or(i64::MAX);
    let params: [&(dyn ToSql + Sync); 3] = [&xid, &last, &limit_param];
    // Rows are decoded as they arrive, while the server still produces the rest of the page.
    let rows = client
        .query_raw(&statement, params)
        .await
        .map_err(|e| Postgres::error(context(), e))?;
    futures_util::pin_mut!(rows);
    let mut events = Vec::with_capacity(limit.min(SUBSCRIPTION_BATCH));
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Postgres::error(context(), e))?
    {
        events.push(recorded_event(&row)?);
    }
    let mut checkpoint = after.clone();
    if let Some(event) = events.last() {
        checkpoint.advance(event.position);
    }
    Ok(EventBatch::new(events, checkpoint))
}

pub(crate) async fn head(store: &PgEventStore) -> Result<Checkpoint, Error> {
    let context = "reading the head of the global feed";
    let client = store.client(context).await?;
    let statement = client
        .prepare_cached(&store.inner.sql.head)
        .await
        .map_err(|e| Postgres::error(context, e))?;
    let row = client
        .query_opt(&statement, &[])
        .await
        .map_err(|e| Postgres::error(context, e))?;
    let mut head = Checkpoint::START;
    if let Some(row) = row {
        head.advance(position(row.get(0), row.get(1)));
    }
    Ok(head)
}

pub(crate) async fn subscribe(
    store: &PgEventStore,
    after: Checkpoint,
) -> Result<Subscription, Error> {
    resume_point(&after)?;
    Ok(Subscription::polling_read_all(
        store,
        after,
        SUBSCRIPTION_BATCH,
        store.inner.listener.subscribe(),
        store.inner.options.poll_interval,
    ))
}

/// One LISTEN connection per store, started by the first subscription and kept (reconnecting
/// with backoff) until the store is dropped. Every notification, and every reconnection (a
/// commit may have been missed meanwhile), bumps a counter subscribers watch.
#[derive(Debug)]
pub(crate) struct Listener {
    config: tokio_postgres::Config,
    channel: String,
    state: Mutex<Option<(Arc<watch::Sender<u64>>, AbortHandle)>>,
}

impl Listener {
    pub(crate) fn new(config: tokio_postgres::Config, channel: String) -> Self {
        Listener {
            config,
            channel,
            state: Mutex::new(None),
        }
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (changes, _) = state.get_or_insert_with(|| {
            let changes = Arc::new(watch::channel(0).0);
            let task = tokio::spawn(listen(
                self.config.clone(),
                self.channel.clone(),
                changes.clone(),
            ));
            (changes, task.abort_handle())
        });
        changes.subscribe()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some((_, task)) = self
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

async fn listen(config: tokio_postgres::Config, channel: String, changes: Arc<watch::Sender<u64>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let notify = changes.clone();
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let driver = tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => notify.send_modify(|n| *n += 1),
                            Ok(_) => {}
                            Err(error) => return Err(error),
                        }
                    }
                    Ok(())
                });
                match client.batch_execute(&format!("LISTEN {channel}")).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        // Commits may have happened while we were not listening.
                        changes.send_modify(|n| *n += 1);
                        let ended = driver.await;
                        tracing::warn!(?ended, "the LISTEN connection ended; reconnecting");
                    }
                    Err(error) => {
                        driver.abort();
                        tracing::warn!(%error, "could not LISTEN for new events; retrying");
                    }
                }
                drop(client);
            }
            Err(error) => {
                tracing::warn!(%error, "could not open the LISTEN connection; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
