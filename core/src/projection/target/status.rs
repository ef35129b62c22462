//! What operators set for a projection, and what its projectors record about themselves.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::SlotId;
use crate::position::Checkpoint;

/// An operator's flags for a projection, honoured by every running projector of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProjectionControl {
    /// Projectors finish their current batch, then wait until this is cleared.
    pub paused: bool,
}

impl ProjectionControl {
    /// Flags with `paused` set as given.
    pub fn paused(paused: bool) -> Self {
        ProjectionControl { paused }
    }
}

/// What a projector records about itself in the target every few seconds (and when its state
/// changes), for `status` screens: an old heartbeat means the process is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProjectorHeartbeat {
    /// What it was doing.
    pub state: ProjectorState,
    /// The slot it was working on ([`SlotId::NONE`] before it picked one).
    pub slot: SlotId,
    /// Its checkpoint there.
    pub checkpoint: Checkpoint,
    /// Who recorded it (host and process, for finding it).
    pub owner: String,
    /// When it was recorded. A running projector records one at least every idle interval;
    /// an old heartbeat means the process is gone.
    pub at: SystemTime,
    /// Why it stopped, when `state` is [`ProjectorState::Failed`].
    pub error: Option<String>,
}

impl ProjectorHeartbeat {
    /// A heartbeat recorded now.
    pub fn new(state: ProjectorState, slot: SlotId, checkpoint: Checkpoint, owner: String) -> Self {
        ProjectorHeartbeat {
            state,
            slot,
            checkpoint,
            owner,
            at: SystemTime::now(),
            error: None,
        }
    }

    /// The same heartbeat with an error.
    pub fn with_error(mut self, error: String) -> Self {
        self.error = Some(error);
        self
    }
}

/// What a projector is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProjectorState {
    /// Catching up or following the feed.
    Running,
    /// Building a new slot beside the active one.
    Rebuilding,
    /// Waiting because an operator paused it.
    Paused,
    /// Waiting for another instance's lease.
    Standby,
    /// Interrupted by a failure it expects to pass (a lost connection, a restarting
    /// service): waiting to start again from the target's checkpoint (see
    /// [`ProjectorHeartbeat::error`]).
    Retrying,
    /// Shut down on request.
    Stopped,
    /// Stopped by an error (see [`ProjectorHeartbeat::error`]).
    Failed,
}

impl fmt::Display for ProjectorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProjectorState::Running => "running",
            ProjectorState::Rebuilding => "rebuilding",
            ProjectorState::Paused => "paused",
            ProjectorState::Standby => "standby",
            ProjectorState::Retrying => "retrying",
            ProjectorState::Stopped => "stopped",
            ProjectorState::Failed => "failed",
        })
    }
}
