//! Slots: the builds of a projection a target keeps side by side.

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::ProjectionName;
use crate::store::StoreIdentity;

/// A slot's number: which build of a projection it is, unique per projection and growing
/// (1, 2, 3, …). A type of its own so it is never mixed up with the projection version that
/// sits beside it in [`SlotInfo`]. Displays and serializes as the bare number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SlotId(u32);

impl SlotId {
    /// No slot: what a projector shows before it has picked one. Targets number slots from 1.
    pub const NONE: SlotId = SlotId(0);

    /// The slot numbered `number`.
    pub const fn new(number: u32) -> Self {
        SlotId(number)
    }

    /// The slot's number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The number a target gives the slot it creates after this one.
    #[must_use]
    pub const fn next(self) -> SlotId {
        SlotId(self.0.saturating_add(1))
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SlotId {
    type Err = ParseIntError;

    fn from_str(number: &str) -> Result<Self, Self::Err> {
        number.parse().map(SlotId)
    }
}

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
    pub slot: SlotId,
    /// The projection version that builds it.
    pub version: u32,
    /// Where it is in its life.
    pub state: SlotState,
    /// The store whose feed it is built from (`None`: created before foldline recorded
    /// stores). Its checkpoint means something in that store's feed only.
    pub store: Option<StoreIdentity>,
}

impl SlotInfo {
    /// Describes a slot built from `store` (for target implementations).
    pub fn new(slot: SlotId, version: u32, state: SlotState, store: Option<StoreIdentity>) -> Self {
        SlotInfo {
            slot,
            version,
            state,
            store,
        }
    }

    /// Whether the slot was built from `store`.
    pub fn built_from(&self, store: &StoreIdentity) -> bool {
        self.store.as_ref() == Some(store)
    }

    /// `Ok` when the slot was built from `store`, else [`Error::StoreMismatch`] naming both.
    ///
    /// # Errors
    ///
    /// [`Error::StoreMismatch`] when the slot records another store, or none.
    pub fn check_store(&self, projection: &ProjectionName, store: &StoreIdentity) -> Result<()> {
        if self.built_from(store) {
            return Ok(());
        }
        Err(Error::StoreMismatch {
            projection: projection.clone(),
            slot: self.slot,
            recorded: self.store.clone(),
            current: store.clone(),
        })
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
