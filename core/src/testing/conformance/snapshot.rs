//! Snapshot stores: the latest snapshot per stream, never replaced by an older one.

use super::fixture::{Fixture, same_payload};
use crate::names::StreamId;
use crate::store::{Snapshot, SnapshotStore};
use crate::version::Version;

fn snapshot(stream: &StreamId, version: u64, schema_version: u32, label: &str) -> Snapshot {
    let payload = serde_json::json!({ "label": label, "version": version });
    Snapshot::new(
        stream.clone(),
        Version::new(version),
        schema_version,
        payload.to_string().into_bytes(),
    )
}

/// Snapshots compare payloads as JSON values when both are JSON (see `same_payload`).
fn same(loaded: Option<&Snapshot>, saved: &Snapshot) -> bool {
    loaded.is_some_and(|l| {
        l.stream_id == saved.stream_id
            && l.version == saved.version
            && l.schema_version == saved.schema_version
            && same_payload(&l.payload, &saved.payload)
    })
}

async fn load<S: SnapshotStore>(fx: &Fixture, store: &S, stream: &StreamId) -> Option<Snapshot> {
    fx.ok(
        store.load_snapshot(stream).await,
        format_args!("loading the snapshot of `{stream}`"),
    )
}

async fn save<S: SnapshotStore>(fx: &Fixture, store: &S, snapshot: Snapshot) {
    let what = format!(
        "saving a snapshot of `{}` at {:?}",
        snapshot.stream_id, snapshot.version
    );
    fx.ok(store.save_snapshot(snapshot).await, what);
}

/// Loading the snapshot of a stream that has none gives `None`.
pub async fn snapshot_absent_is_none<S: SnapshotStore + Clone>(store: S) {
    let fx = Fixture::new("snapshot_absent_is_none");
    let stream = fx.stream("s");
    let loaded = load(&fx, &store, &stream).await;
    fx.check(loaded.is_none(), || {
        format!("a stream without snapshots should load None, got {loaded:?}")
    });
}

/// A saved snapshot loads back unchanged (stream, version, schema version, payload), and only
/// for its own stream.
pub async fn snapshot_save_then_load<S: SnapshotStore + Clone>(store: S) {
    let fx = Fixture::new("snapshot_save_then_load");
    let (stream, other) = (fx.stream("s"), fx.stream("other"));
    let saved = snapshot(&stream, 10, 7, "ten");
    save(&fx, &store, saved.clone()).await;
    let loaded = load(&fx, &store, &stream).await;
    fx.check(same(loaded.as_ref(), &saved), || {
        format!("the snapshot should load back as saved, {saved:?}, got {loaded:?}")
    });
    let loaded = load(&fx, &store, &other).await;
    fx.check(loaded.is_none(), || {
        format!("another stream's snapshot must not load for `{other}`, got {loaded:?}")
    });
}

/// A newer snapshot replaces an older one; an older one saved after a newer one is ignored.
pub async fn snapshot_older_does_not_replace_newer<S: SnapshotStore + Clone>(store: S) {
    let fx = Fixture::new("snapshot_older_does_not_replace_newer");
    let stream = fx.stream("s");
    save(&fx, &store, snapshot(&stream, 5, 1, "five")).await;
    let newer = snapshot(&stream, 20, 1, "twenty");
    save(&fx, &store, newer.clone()).await;
    let loaded = load(&fx, &store, &stream).await;
    fx.check(same(loaded.as_ref(), &newer), || {
        format!("a newer snapshot should replace an older one: expected {newer:?}, got {loaded:?}")
    });
    save(&fx, &store, snapshot(&stream, 15, 2, "fifteen")).await;
    let loaded = load(&fx, &store, &stream).await;
    fx.check(same(loaded.as_ref(), &newer), || {
        format!(
            "an older snapshot saved later must not replace a newer one: expected {newer:?}, \
             got {loaded:?}"
        )
    });
}
