//! Reading the feed ahead of the handler: a task pulls the store's pages into a bounded
//! channel, so reading overlaps committing; [`ReadAhead`] gathers them into batches.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::Result;
use crate::event::RecordedEvent;
use crate::position::Checkpoint;
use crate::store::{EventBatch, Subscription};

/// The fewest pages read ahead of the handler, so reading overlaps committing.
const READ_AHEAD: usize = 4;

/// The read side of the loop on a slot: the pages the reader task sends, and the events read
/// but not committed yet.
pub(super) struct ReadAhead {
    /// Declared first so that it is dropped first: the reader is aborted, then its channel
    /// closed.
    _reader: AbortOnDrop,
    pages: mpsc::Receiver<Result<EventBatch>>,
    /// Events read but not committed yet, and a checkpoint covering all of them (the
    /// store's pages may cover more than their events).
    pending: VecDeque<RecordedEvent>,
    read_through: Checkpoint,
}

impl ReadAhead {
    /// Starts the reader task on `subscription`, which reads the feed after `from`.
    pub(super) fn start(subscription: Subscription, from: &Checkpoint, batch_size: usize) -> Self {
        let (sender, pages) = mpsc::channel(read_ahead_pages(batch_size));
        let reader = AbortOnDrop(tokio::spawn(
            read_ahead(subscription, sender).instrument(tracing::Span::current()),
        ));
        ReadAhead {
            _reader: reader,
            pages,
            pending: VecDeque::new(),
            read_through: from.clone(),
        }
    }

    /// Whether nothing was read beyond `checkpoint`: no events pending, and no page that
    /// moves the checkpoint further.
    pub(super) fn is_idle(&self, checkpoint: &Checkpoint) -> bool {
        self.pending.is_empty() && checkpoint.covers_checkpoint(&self.read_through)
    }

    /// The next page from the reader; `None` once the reader has ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`mpsc::Receiver::recv`]: a page not returned stays in the channel.
    pub(super) async fn recv(&mut self) -> Option<Result<EventBatch>> {
        self.pages.recv().await
    }

    /// Adds a page read from the store to the pending events.
    pub(super) fn absorb(&mut self, page: EventBatch) {
        for position in page.checkpoint.positions() {
            self.read_through.advance(*position);
        }
        self.pending.extend(page.events);
    }

    /// Fills the batch up to `batch_size` events: with what is read already, and while
    /// behind `head` (the head seen at the start), waiting for the pages the reader is
    /// fetching (full batches mean fewer commits, which dominate the cost of a catch-up).
    pub(super) async fn fill(&mut self, batch_size: usize, head: &Checkpoint) -> Result<()> {
        while self.pending.len() < batch_size {
            let page = match self.pages.try_recv() {
                Ok(page) => page,
                Err(mpsc::error::TryRecvError::Empty)
                    if !self.read_through.covers_checkpoint(head) =>
                {
                    match self.pages.recv().await {
                        Some(page) => page,
                        None => break,
                    }
                }
                Err(_) => break,
            };
            self.absorb(page?);
        }
        Ok(())
    }

    /// Takes up to `batch_size` pending events, with the checkpoint read through when they
    /// are the last ones pending.
    pub(super) fn take(&mut self, batch_size: usize) -> (Vec<RecordedEvent>, Option<&Checkpoint>) {
        let take = self.pending.len().min(batch_size);
        let events: Vec<RecordedEvent> = self.pending.drain(..take).collect();
        // The store's checkpoint only goes with the last event read.
        let through = self.pending.is_empty().then_some(&self.read_through);
        (events, through)
    }
}

/// Pages read ahead of the handler: enough to fill the next batch while this one commits
/// (stores read pages of 500–1000 events), few enough to bound memory.
fn read_ahead_pages(batch_size: usize) -> usize {
    (batch_size / 250).clamp(READ_AHEAD, 64)
}

/// Pulls batches from the store's subscription into the bounded channel.
async fn read_ahead(mut subscription: Subscription, sender: mpsc::Sender<Result<EventBatch>>) {
    while let Some(batch) = subscription.next().await {
        let failed = batch.is_err();
        if sender.send(batch).await.is_err() || failed {
            return;
        }
    }
}

/// Aborts the read-ahead task when the loop that consumes it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
