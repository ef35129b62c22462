//! A batch's appends as the column arrays of multi-row `INSERT ... SELECT FROM unnest(...)`.

use foldline::{AppendRequest, AppendResult, Error, IdempotencyKey, NewEvent, StreamId};
use uuid::Uuid;

use crate::rows::to_i64;

/// Streams and keys a batch touches, sorted and deduplicated.
pub(super) struct Plan {
    pub(super) streams: Vec<String>,
    pub(super) keys: Vec<String>,
}

impl Plan {
    pub(super) fn new(requests: &[AppendRequest]) -> Self {
        let mut streams: Vec<String> = requests
            .iter()
            .map(|r| r.stream().as_str().to_owned())
            .collect();
        streams.sort_unstable();
        streams.dedup();
        let mut keys: Vec<String> = requests
            .iter()
            .filter_map(|r| r.idempotency_key().map(|k| k.as_str().to_owned()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Plan { streams, keys }
    }
}

/// The accepted events of a batch.
#[derive(Default)]
pub(super) struct EventRows<'a> {
    pub(super) stream_ids: Vec<&'a str>,
    pub(super) versions: Vec<i64>,
    pub(super) event_ids: Vec<Uuid>,
    pub(super) event_types: Vec<&'a str>,
    pub(super) schema_versions: Vec<i64>,
    pub(super) payloads: Vec<&'a str>,
    pub(super) metadata: Vec<String>,
}

impl<'a> EventRows<'a> {
    /// Adds the events of one append to `stream`, whose version is `actual`: all of them, or
    /// none when one cannot be encoded.
    pub(super) fn push_append(
        &mut self,
        stream: &'a StreamId,
        actual: u64,
        events: &'a [NewEvent],
    ) -> Result<(), Error> {
        let before = self.len();
        for (version, event) in (actual + 1..).zip(events) {
            if let Err(error) = self.push(stream, version, event) {
                self.truncate(before);
                return Err(error);
            }
        }
        Ok(())
    }

    fn push(
        &mut self,
        stream: &'a StreamId,
        version: u64,
        event: &'a NewEvent,
    ) -> Result<(), Error> {
        // Checked before the append was queued (`jsonb.rs`); should a payload still not be
        // UTF-8, only its own append fails.
        let payload = std::str::from_utf8(&event.payload).map_err(|e| Error::InvalidPayload {
            stream: stream.clone(),
            event_type: event.event_type.clone(),
            source: Box::new(e),
        })?;
        let metadata = serde_json::to_string(&event.metadata).map_err(|e| Error::Encode {
            what: format!("the metadata of event `{}`", event.event_type),
            source: Box::new(e),
        })?;
        self.stream_ids.push(stream.as_str());
        self.versions.push(to_i64(version));
        self.event_ids.push(event.event_id);
        self.event_types.push(event.event_type.as_str());
        self.schema_versions.push(i64::from(event.schema_version));
        self.payloads.push(payload);
        self.metadata.push(metadata);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.stream_ids.truncate(len);
        self.versions.truncate(len);
        self.event_ids.truncate(len);
        self.event_types.truncate(len);
        self.schema_versions.truncate(len);
        self.payloads.truncate(len);
        self.metadata.truncate(len);
    }

    pub(super) fn len(&self) -> usize {
        self.versions.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

/// Idempotency keys to record with the batch (their positions are looked up in SQL).
#[derive(Default)]
pub(super) struct KeyRows<'a> {
    pub(super) keys: Vec<&'a str>,
    pub(super) streams: Vec<&'a str>,
    pub(super) previous: Vec<i64>,
    pub(super) current: Vec<i64>,
}

impl<'a> KeyRows<'a> {
    pub(super) fn push(&mut self, key: &'a IdempotencyKey, result: &'a AppendResult) {
        self.keys.push(key.as_str());
        self.streams.push(result.stream_id.as_str());
        self.previous.push(to_i64(result.previous_version.get()));
        self.current.push(to_i64(result.current_version.get()));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
