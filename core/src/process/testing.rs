//! What the unit tests of process managers share.

use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::error::Result;
use crate::event::RecordedEvent;
use crate::projection::FeedEvent;

/// An event type the feed never holds: for process managers whose tests feed them other
/// inputs only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Never {}

impl FeedEvent for Never {
    fn from_recorded<C: Codec>(_recorded: &RecordedEvent, _codec: &C) -> Result<Option<Self>> {
        Ok(None)
    }
}
