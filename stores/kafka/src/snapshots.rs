//! Aggregate snapshots ([`SnapshotStore`]) in the compacted topic `<prefix>.snapshots`: key =
//! stream id, in the stream's partition; the state as the record's value, its version and
//! schema version in headers.
//!
//! A snapshot is not part of the events' transaction: saving is one plain idempotent produce.
//! A snapshot lost (a failed produce, a crash before it was sent) only makes the next load
//! read more events. Loading scans the stream's partition of the snapshots topic for the
//! newest snapshot of the stream: its cost grows with the snapshots in that partition since
//! the cleaner last compacted it (about one per stream of the partition once compacted), not
//! with the stream's events.

use foldline::{DriverErrors, Error, Snapshot, SnapshotStore, StreamId, Version};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::OnceCell;

use crate::error::Kafka;
use crate::records::{SCHEMA_VERSION, VERSION};
use crate::scan::{Visit, scan};
use crate::store::KafkaEventStore;
use crate::topics::{blocking, client_config};

/// The producer snapshots are saved with, created on the first save and shared by the store's
/// clones (a producer holds connections and threads: one per save would be slow).
#[derive(Default)]
pub(crate) struct SnapshotProducer(OnceCell<FutureProducer>);

impl std::fmt::Debug for SnapshotProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SnapshotProducer")
            .field(&if self.0.initialized() {
                "created"
            } else {
                "not yet"
            })
            .finish()
    }
}

impl SnapshotProducer {
    async fn get(&self, store: &KafkaEventStore) -> Result<&FutureProducer, Error> {
        self.0
            .get_or_try_init(|| async {
                let timeout = store.options().timeout.as_millis().max(1).to_string();
                client_config(store.options())
                    // Idempotent: a retried send never writes the snapshot twice.
                    .set("enable.idempotence", "true")
                    .set("message.timeout.ms", timeout)
                    .create()
                    .map_err(|e| Kafka::error("creating the snapshot producer", e))
            })
            .await
    }
}

/// Kafka keeps the snapshots in `<prefix>.snapshots`, compacted, beside the events topic: see
/// the module documentation of the crate.
///
/// - **Saving** is one idempotent produce, outside the events' transactions, waited for until
///   the brokers acknowledge it. Snapshots larger than the brokers' `message.max.bytes`
///   (about 1 MB by default) are refused ([`Error::Backend`]). A failed or lost save costs a
///   longer load, nothing else.
/// - **Loading** scans the stream's partition of the snapshots topic and keeps the snapshot
///   of the highest version (so an older snapshot saved after a newer one is ignored). The
///   cleaner keeps only the last record per stream: should an older snapshot be saved after
///   a newer one (two processes saving the same stream), compaction may leave the older one,
///   which again only costs a longer load. Cost: the records of the partition since it was
///   last compacted.
impl SnapshotStore for KafkaEventStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, Error> {
        let partition = self.partition_of(stream);
        let options = self.options().clone();
        let topic = self.topic_names().snapshots.clone();
        let stream = stream.clone();
        blocking(move || {
            let mut newest: Option<Snapshot> = None;
            scan(&options, &topic, partition, 0, |message| {
                if message.key() != Some(stream.as_str().as_bytes()) {
                    return Ok(Visit::More);
                }
                let header = |name: &str| {
                    message
                        .headers()?
                        .iter()
                        .filter(|h| h.key == name)
                        .last()
                        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u64>().ok())
                };
                let (Some(version), Some(schema_version)) = (
                    header(VERSION),
                    header(SCHEMA_VERSION).and_then(|v| u32::try_from(v).ok()),
                ) else {
                    // Not one foldline wrote: a snapshot is an optimisation, so it is skipped
                    // (the state is rebuilt from the events), never fatal.
                    tracing::warn!(
                        %stream,
                        topic = %topic,
                        offset = message.offset(),
                        "skipping a snapshot record without a readable version"
                    );
                    return Ok(Visit::More);
                };
                if newest.as_ref().is_none_or(|n| n.version.get() <= version) {
                    newest = Some(Snapshot::new(
                        stream.clone(),
                        Version::new(version),
                        schema_version,
                        message.payload().unwrap_or_default().to_vec(),
                    ));
                }
                Ok(Visit::More)
            })?;
            Ok(newest)
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), Error> {
        let context = || format!("saving the snapshot of `{}`", snapshot.stream_id);
        let producer = self.snapshot_producer().get(self).await?;
        let partition = i32::try_from(self.partition_of(&snapshot.stream_id)).unwrap_or(i32::MAX);
        let version = snapshot.version.get().to_string();
        let schema_version = snapshot.schema_version.to_string();
        let headers = OwnedHeaders::new_with_capacity(2)
            .insert(Header {
                key: VERSION,
                value: Some(&version),
            })
            .insert(Header {
                key: SCHEMA_VERSION,
                value: Some(&schema_version),
            });
        let record = FutureRecord::to(&self.topic_names().snapshots)
            .partition(partition)
            .key(snapshot.stream_id.as_str())
            .payload(&snapshot.payload)
            .headers(headers);
        producer
            .send(record, self.options().timeout)
            .await
            .map_err(|(e, _)| Kafka::error(context(), e))?;
        Ok(())
    }
}
