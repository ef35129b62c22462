use crate::aggregate::Aggregate;
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::event::RecordedEvent;
use crate::names::StreamId;
use crate::store::{EventStore, Snapshot, SnapshotStore};
use crate::version::Version;

/// Events read per round trip while folding a stream.
pub(crate) const READ_PAGE: usize = 1_000;

/// An aggregate's state as of `version` of its stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded<A> {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The folded state.
    pub state: A,
    /// The version of the last event folded in ([`Version::ZERO`] for a new aggregate).
    pub version: Version,
    /// The version of the snapshot loading started from, if one was used.
    pub snapshot_version: Option<Version>,
}

/// Loads `stream` into `A`: the latest usable snapshot, then every event after it.
///
/// The versions folded must follow each other from the snapshot's (or from 0): a stream that
/// skips one is refused with [`Error::StreamGap`] rather than folded into a state that misses
/// an event, which the next command would then append on top of. The check is here, not in
/// the stores, so that every store gets it; `read_stream` returns the rows as they are (the
/// admin CLI shows a damaged stream as it is).
pub(crate) async fn load<A, S, N, C>(
    store: &S,
    snapshots: &N,
    codec: &C,
    stream_id: StreamId,
) -> Result<Loaded<A>>
where
    A: Aggregate,
    S: EventStore,
    N: SnapshotStore,
    C: Codec,
{
    let mut loaded = Loaded {
        stream_id,
        state: A::default(),
        version: Version::ZERO,
        snapshot_version: None,
    };
    if A::SNAPSHOT_EVERY.is_some()
        && let Some(snapshot) = snapshots.load_snapshot(&loaded.stream_id).await?
        && let Some(state) = usable_snapshot::<A, C>(codec, &snapshot)
    {
        loaded.state = state;
        loaded.version = snapshot.version;
        loaded.snapshot_version = Some(snapshot.version);
    }
    loop {
        let page = store
            .read_stream(&loaded.stream_id, loaded.version.next(), READ_PAGE)
            .await?;
        let full = page.len() == READ_PAGE;
        for recorded in &page {
            check_next(&loaded.stream_id, loaded.version.next(), recorded)?;
            let event: A::Event = recorded.decode(codec)?;
            loaded.state.apply(&event);
            loaded.version = recorded.stream_version;
        }
        if !full {
            return Ok(loaded);
        }
    }
}

/// `Ok` if `recorded` is version `expected` of `stream`; [`Error::StreamGap`] if the stream
/// skips from the version before `expected` to `recorded`'s.
pub(crate) fn check_next(
    stream: &StreamId,
    expected: Version,
    recorded: &RecordedEvent,
) -> Result<()> {
    if recorded.stream_version == expected {
        return Ok(());
    }
    Err(Error::StreamGap {
        stream: stream.clone(),
        expected,
        found: recorded.stream_version,
    })
}

/// The snapshot's state if its schema is current and it decodes; otherwise `None`, and the
/// aggregate is rebuilt from its events (a stale snapshot is never fatal).
fn usable_snapshot<A: Aggregate, C: Codec>(codec: &C, snapshot: &Snapshot) -> Option<A> {
    if snapshot.schema_version != A::SNAPSHOT_VERSION {
        tracing::debug!(
            stream = %snapshot.stream_id,
            stored = snapshot.schema_version,
            current = A::SNAPSHOT_VERSION,
            "ignoring snapshot with a stale schema version"
        );
        return None;
    }
    match A::decode_snapshot(codec, &snapshot.payload) {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(
                stream = %snapshot.stream_id,
                version = %snapshot.version,
                error = %error,
                "ignoring snapshot that does not decode"
            );
            None
        }
    }
}
