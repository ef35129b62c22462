//! Slots: the builds of a projection a target keeps side by side.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which slot [`ProjectionTarget::create_slot`](super::ProjectionTarget::create_slot) returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewSlot {
    /// Resume the newest unfinished build of the version, or start one.
    Resume,
    /// Always start a new build.
    Fresh,
}

/// One build of a projection in a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SlotInfo {
    /// The slot's number, unique per projection and growing.
    pub slot: u32,
    /// The projection version that builds it.
    pub version: u32,
    /// Where it is in its life.
    pub state: SlotState,
}

impl SlotInfo {
    /// Describes a slot (for target implementations).
    pub fn new(slot: u32, version: u32, state: SlotState) -> Self {
        SlotInfo {
            slot,
            version,
            state,
        }
    }
}

/// Where a slot is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SlotState {
    /// Being built; readers do not see it.
    Building,
    /// What readers see.
    Active,
    /// Replaced by a newer active slot; about to be dropped.
    Retired,
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SlotState::Building => "building",
            SlotState::Active => "active",
            SlotState::Retired => "retired",
        })
    }
}
