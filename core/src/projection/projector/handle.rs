use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{BackendError, BackendErrorKind, Error, Result};
use crate::names::ProjectionName;
use crate::position::{Checkpoint, Position};
use crate::projection::Projection;
use crate::projection::target::{ProjectorState, SlotId};

/// What a projector is doing: its slot, checkpoint and counts, updated after every batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectorProgress {
    /// The projection.
    pub projection: ProjectionName,
    /// The slot it works on ([`SlotId::NONE`] before it has picked one).
    pub slot: SlotId,
    /// Whether that slot is the one readers see.
    pub active: bool,
    /// What it is doing.
    pub state: ProjectorState,
    /// The checkpoint committed in the slot.
    pub checkpoint: Checkpoint,
    /// The store's head, as last sampled.
    pub head: Checkpoint,
    /// About how many events lie between `checkpoint` and `head`
    /// ([`Checkpoint::distance_to`]).
    pub lag_events: u64,
    /// Events handled since this projector started.
    pub applied: u64,
    /// Events skipped since it started: of types the projection does not read, or already
    /// covered by the checkpoint.
    pub skipped: u64,
    /// Events parked as dead letters since it started.
    pub dead_lettered: u64,
    /// Whether it has applied everything up to the head it saw when it started.
    pub caught_up: bool,
    /// While [`Retrying`](ProjectorState::Retrying) or once
    /// [`Failed`](ProjectorState::Failed): the failure, with its sources, as text.
    pub error: Option<String>,
}

impl ProjectorProgress {
    pub(crate) fn starting<P: Projection>() -> Self {
        ProjectorProgress {
            projection: P::NAME,
            slot: SlotId::NONE,
            active: false,
            state: ProjectorState::Standby,
            checkpoint: Checkpoint::START,
            head: Checkpoint::START,
            lag_events: 0,
            applied: 0,
            skipped: 0,
            dead_lettered: 0,
            caught_up: false,
            error: None,
        }
    }

    /// Whether the slot readers see has applied the event at `position`.
    pub fn is_visible(&self, position: &Position) -> bool {
        self.active && self.checkpoint.covers(position)
    }
}

/// A projector running in a task of its own ([`Projector::spawn`](super::Projector::spawn)).
pub struct ProjectorHandle {
    progress: watch::Receiver<ProjectorProgress>,
    /// Closed when the task ends. (`progress` is not: its sender lives in the projector, which
    /// this handle and every clone of the projector keep.)
    ended: watch::Receiver<()>,
    stop: Box<dyn Fn() + Send + Sync>,
    task: JoinHandle<Result<()>>,
}

impl ProjectorHandle {
    pub(crate) fn new(
        progress: watch::Receiver<ProjectorProgress>,
        ended: watch::Receiver<()>,
        stop: Box<dyn Fn() + Send + Sync>,
        task: JoinHandle<Result<()>>,
    ) -> Self {
        ProjectorHandle {
            progress,
            ended,
            stop,
            task,
        }
    }

    /// What the projector is doing now.
    pub fn progress(&self) -> ProjectorProgress {
        self.progress.borrow().clone()
    }

    /// A receiver of every progress update.
    pub fn watch(&self) -> watch::Receiver<ProjectorProgress> {
        self.progress.clone()
    }

    /// Waits until the event at `position` (say, from an append's
    /// [`AppendResult`](crate::AppendResult)) is visible in the slot readers see:
    /// read-your-writes.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not visible within `timeout`; [`Error::Closed`] when the
    /// projector stopped first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    pub async fn wait_for(&self, position: &Position, timeout: Duration) -> Result<()> {
        let mut progress = self.progress.clone();
        let mut ended = self.ended.clone();
        let visible = async {
            tokio::select! {
                biased;
                visible = progress.wait_for(|p| p.is_visible(position)) => visible.is_ok(),
                // Nothing is ever sent: this resolves when the task ends.
                _ = ended.changed() => false,
            }
        };
        match tokio::time::timeout(timeout, visible).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Closed { what: "projector" }),
            Err(_) => Err(Error::Timeout {
                what: format!(
                    "projection `{}` to reach {position}",
                    self.progress.borrow().projection
                ),
                after: timeout,
            }),
        }
    }

    /// Whether the projector's task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the projector to stop after its current batch and waits for it.
    ///
    /// # Errors
    ///
    /// The error the projector stopped with, if it failed before.
    ///
    /// # Cancel safety
    ///
    /// The stop is asked for before the first await: dropped, the projector still stops
    /// after its batch, but its result is not seen.
    pub async fn shutdown(self) -> Result<()> {
        (self.stop)();
        self.join().await
    }

    /// Waits for the projector to end (it only ends on an error or a shutdown).
    ///
    /// # Errors
    ///
    /// The error it stopped with.
    ///
    /// # Cancel safety
    ///
    /// Dropping it detaches the task, which runs on; its result is not seen.
    pub async fn join(self) -> Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(Error::Backend(BackendError::new(
                "projector",
                BackendErrorKind::Rejected,
                "running the projector task",
                Some(Box::new(join)),
            ))),
        }
    }

    /// Stops the task at once, at whatever point it is (as a crash would). Nothing is lost:
    /// the next projector resumes from the last commit.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl fmt::Debug for ProjectorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectorHandle")
            .field("progress", &*self.progress.borrow())
            .finish_non_exhaustive()
    }
}
