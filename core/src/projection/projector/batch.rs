//! Turning a run of events into one batch of writes: decode, skip, handle.

use std::time::SystemTime;

use crate::codec::Codec;
use crate::error::BoxError;
use crate::event::RecordedEvent;
use crate::position::Checkpoint;
use crate::projection::{Envelope, FeedEvent, Projection};

/// Writes for a run of events, and the checkpoint after them.
pub(super) struct Built<W> {
    pub(super) writes: W,
    pub(super) checkpoint: Checkpoint,
    pub(super) applied: u64,
    pub(super) skipped: u64,
    pub(super) last_recorded_at: Option<SystemTime>,
}

/// The event at `index` of the run failed to decode or to be handled.
pub(super) struct Failed {
    pub(super) index: usize,
    pub(super) error: BoxError,
}

/// Handles `events` after `from` into one batch of writes. Events the checkpoint already
/// covers are skipped (a replay after a crash), as are events of types the projection does not
/// read. Stops at the first event that fails: its partial writes must not be committed.
pub(super) fn build<P: Projection, C: Codec>(
    projection: &P,
    codec: &C,
    events: &[RecordedEvent],
    from: &Checkpoint,
) -> Result<Built<P::Writes>, Failed> {
    let mut built = Built {
        writes: P::Writes::default(),
        checkpoint: from.clone(),
        applied: 0,
        skipped: 0,
        last_recorded_at: None,
    };
    for (index, recorded) in events.iter().enumerate() {
        if built.checkpoint.covers(&recorded.position) {
            built.skipped += 1;
            continue;
        }
        match handle_one(projection, codec, recorded, &mut built.writes) {
            Ok(true) => built.applied += 1,
            Ok(false) => built.skipped += 1,
            Err(error) => return Err(Failed { index, error }),
        }
        built.checkpoint.advance(recorded.position);
        built.last_recorded_at = Some(recorded.recorded_at);
    }
    Ok(built)
}

/// `Ok(false)` when the projection does not read this event's type. An event the store could
/// not read fails whatever the projection reads: its type may be one of them.
pub(super) fn handle_one<P: Projection, C: Codec>(
    projection: &P,
    codec: &C,
    recorded: &RecordedEvent,
    writes: &mut P::Writes,
) -> Result<bool, BoxError> {
    recorded.check_readable()?;
    let Some(event) = P::Event::from_recorded(recorded, codec)? else {
        return Ok(false);
    };
    projection.handle(Envelope::new(event, recorded), writes)?;
    Ok(true)
}
