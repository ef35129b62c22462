use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::names::StreamId;
use crate::version::Version;

/// An aggregate's encoded state after the event at `version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The version of the last event folded into the state.
    pub version: Version,
    /// The shape of `payload`: a snapshot whose schema version differs from the aggregate's
    /// current one is ignored (the state is rebuilt from events), never fatal.
    pub schema_version: u32,
    /// The encoded state.
    pub payload: Vec<u8>,
}

impl Snapshot {
    /// A snapshot of `stream_id` at `version`.
    pub fn new(
        stream_id: StreamId,
        version: Version,
        schema_version: u32,
        payload: Vec<u8>,
    ) -> Self {
        Snapshot {
            stream_id,
            version,
            schema_version,
            payload,
        }
    }
}

/// Where aggregate snapshots are kept, beside the events. Only the latest one per stream matters.
pub trait SnapshotStore: Send + Sync + 'static {
    /// The latest snapshot of `stream`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>>> + Send;

    /// Stores `snapshot`, replacing an older one of the same stream (a snapshot older than the
    /// stored one is ignored).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in effect: dropped, the snapshot may or may not be stored, and either is
    /// fine (a snapshot is an optimisation; loading falls back to the events).
    fn save_snapshot(&self, snapshot: Snapshot) -> impl Future<Output = Result<()>> + Send;
}

/// Snapshots switched off: loads nothing, stores nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSnapshots;

impl SnapshotStore for NoSnapshots {
    async fn load_snapshot(&self, _stream: &StreamId) -> Result<Option<Snapshot>> {
        Ok(None)
    }

    async fn save_snapshot(&self, _snapshot: Snapshot) -> Result<()> {
        Ok(())
    }
}
