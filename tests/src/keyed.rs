//! Keyed appends for the exactly-once tests: each event carries its idempotency key in its
//! payload (`{"key": …}`), so what a store holds can be checked key by key against what its
//! writers were told.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use foldline::{
    AppendRequest, EventStore, EventType, ExpectedVersion, IdempotencyKey, NewEvent, StreamId,
    Version,
};

/// A one-event append to `stream` with idempotency key `key`, the key also in the payload.
pub fn keyed_append(stream: &StreamId, key: &str) -> anyhow::Result<AppendRequest> {
    let payload = serde_json::to_vec(&serde_json::json!({ "key": key }))?;
    Ok(AppendRequest::new(
        stream.clone(),
        ExpectedVersion::Any,
        vec![NewEvent::new(EventType::from_static("written"), 1, payload)],
    )
    .with_idempotency_key(IdempotencyKey::new(key)?))
}

/// The key in a payload written by [`keyed_append`].
pub fn key_of(payload: &[u8]) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_slice(payload)?;
    Ok(value["key"]
        .as_str()
        .context("no key in the payload")?
        .to_owned())
}

/// Every event of `streams`: key → (stream, version). Fails on a key stored twice, or on a
/// stream whose versions are not 1, 2, 3, …
pub async fn stored_keys<S: EventStore>(
    store: &S,
    streams: impl IntoIterator<Item = StreamId>,
) -> anyhow::Result<BTreeMap<String, (String, u64)>> {
    let mut stored = BTreeMap::new();
    for stream in streams {
        let events = store
            .read_stream(&stream, Version::new(1), 1_000_000)
            .await?;
        for (i, event) in events.iter().enumerate() {
            let version = event.stream_version.get();
            if version != i as u64 + 1 {
                // What stands there: the same record read twice, or two events at one version.
                let around: Vec<String> = events[i.saturating_sub(2)..(i + 2).min(events.len())]
                    .iter()
                    .map(|e| {
                        format!(
                            "v{} {} {} at {}",
                            e.stream_version,
                            e.event_id,
                            key_of(&e.payload).unwrap_or_default(),
                            e.position
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "{stream}: version {version} at place {}; around it: {}",
                    i + 1,
                    around.join(", ")
                );
            }
            let key = key_of(&event.payload)?;
            let again = stored.insert(key.clone(), (stream.to_string(), version));
            ensure!(again.is_none(), "key {key} stored twice");
        }
    }
    Ok(stored)
}

/// Every acknowledged append (key → (stream, version) it was acknowledged with) is stored at
/// that version.
pub fn check_acknowledged_stored(
    acks: &BTreeMap<String, (String, u64)>,
    stored: &BTreeMap<String, (String, u64)>,
) -> anyhow::Result<()> {
    for (key, at) in acks {
        ensure!(
            stored.get(key) == Some(at),
            "{key} acknowledged as {at:?}, stored as {:?}",
            stored.get(key)
        );
    }
    Ok(())
}

/// [`check_acknowledged_stored`], and nothing else is stored.
pub fn check_exactly_once(
    acks: &BTreeMap<String, (String, u64)>,
    stored: &BTreeMap<String, (String, u64)>,
) -> anyhow::Result<()> {
    check_acknowledged_stored(acks, stored)?;
    ensure!(
        stored.len() == acks.len(),
        "{} events stored, {} acknowledged",
        stored.len(),
        acks.len()
    );
    Ok(())
}
