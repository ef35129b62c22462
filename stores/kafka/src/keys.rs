//! Idempotency keys: one append per key, whatever its stream.
//!
//! A key's record lives in `<prefix>.keys`, in the partition of the key itself (not of its
//! stream, so a key reused on another stream is found), written in the same transaction as
//! the events of the append that first used it. Within one store instance a key is *claimed*
//! before its append is queued: a second append with the key waits for the first and gets
//! its result, replayed, or takes the key over when the first failed (a failed append does
//! not use its key). The claims are this instance's: two instances appending with one key at
//! the same moment are not kept apart, and a key first used by another instance after this
//! one read the key's partition is not seen here (see the crate docs: keep a key's retries on
//! the instance owning its stream's partition, which the writers' group makes the common case).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use foldline::{AppendResult, DriverErrors, Error, IdempotencyKey};
use rdkafka::message::Message;
use tokio::sync::oneshot;

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::partitioner::partition_for_key;
use crate::records::KeyedAppend;
use crate::scan::{Visit, scan_decided};
use crate::topics::blocking;

/// The keys this instance knows, per partition of `<prefix>.keys`.
#[derive(Debug)]
pub(crate) struct KeyRegistry {
    options: KafkaStoreOptions,
    topic: String,
    partitions: u32,
    known: Mutex<HashMap<u32, KnownKeys>>,
    /// Partitions read already (a read happens once, under this lock).
    loaded: tokio::sync::Mutex<HashSet<u32>>,
}

#[derive(Debug, Default)]
struct KnownKeys {
    results: HashMap<IdempotencyKey, AppendResult>,
    /// Keys whose append is in flight, with who waits for its outcome.
    claimed: HashMap<IdempotencyKey, Vec<oneshot::Sender<()>>>,
}

/// What [`KeyRegistry::claim`] found.
#[derive(Debug)]
pub(crate) enum Claimed {
    /// The key is this append's to use.
    Fresh(KeyClaim),
    /// An earlier append used the key: its result, replayed.
    Replay(AppendResult),
}

impl KeyRegistry {
    pub(crate) fn new(options: KafkaStoreOptions, topic: String, partitions: u32) -> Arc<Self> {
        Arc::new(KeyRegistry {
            options,
            topic,
            partitions,
            known: Mutex::new(HashMap::new()),
            loaded: tokio::sync::Mutex::new(HashSet::new()),
        })
    }

    /// The partition of `<prefix>.keys` that holds `key`'s record.
    pub(crate) fn partition_of(&self, key: &IdempotencyKey) -> u32 {
        partition_for_key(key.as_str().as_bytes(), self.partitions)
    }

    /// Claims `key` for an append, or finds the result of the append that used it.
    pub(crate) async fn claim(self: &Arc<Self>, key: &IdempotencyKey) -> Result<Claimed, Error> {
        let partition = self.partition_of(key);
        self.load(partition).await?;
        loop {
            let outcome = {
                let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
                let keys = known.entry(partition).or_default();
                if let Some(result) = keys.results.get(key) {
                    return Ok(Claimed::Replay(result.clone().into_replayed()));
                }
                match keys.claimed.get_mut(key) {
                    Some(waiting) => {
                        let (notify, outcome) = oneshot::channel();
                        waiting.push(notify);
                        outcome
                    }
                    None => {
                        keys.claimed.insert(key.clone(), Vec::new());
                        return Ok(Claimed::Fresh(KeyClaim {
                            registry: Arc::clone(self),
                            key: key.clone(),
                            partition,
                            used: false,
                        }));
                    }
                }
            };
            // The append holding the key finished, one way or the other: look again.
            let _ = outcome.await;
        }
    }

    /// The stored result for `key`, read from its partition (on any instance).
    pub(crate) async fn find(&self, key: &IdempotencyKey) -> Result<Option<AppendResult>, Error> {
        let partition = self.partition_of(key);
        let (options, topic, key) = (self.options.clone(), self.topic.clone(), key.clone());
        blocking(move || {
            let mut found = None;
            read_keys(&options, &topic, partition, |stored, result| {
                if stored == key {
                    // The first record of a key is the first append's: no later one exists.
                    found = Some(result.into_replayed());
                    return Visit::Stop;
                }
                Visit::More
            })?;
            Ok(found)
        })
        .await
    }

    /// Forgets which partitions were read, so that the next claim in each reads it again
    /// (after a transaction whose outcome is unknown: its keys may be used after all).
    pub(crate) async fn forget_loaded(&self) {
        self.loaded.lock().await.clear();
    }

    /// Reads `partition` into the known keys, once.
    async fn load(&self, partition: u32) -> Result<(), Error> {
        let mut loaded = self.loaded.lock().await;
        if loaded.contains(&partition) {
            return Ok(());
        }
        let (options, topic) = (self.options.clone(), self.topic.clone());
        let stored = blocking(move || {
            let mut stored = HashMap::new();
            read_keys(&options, &topic, partition, |key, result| {
                stored.entry(key).or_insert(result);
                Visit::More
            })?;
            Ok(stored)
        })
        .await?;
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = known.entry(partition).or_default();
        for (key, result) in stored {
            keys.results.entry(key).or_insert(result);
        }
        loaded.insert(partition);
        Ok(())
    }

    fn settle(&self, partition: u32, key: &IdempotencyKey, result: Option<&AppendResult>) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = known.entry(partition).or_default();
        if let Some(result) = result {
            keys.results.insert(key.clone(), result.clone());
        }
        for waiting in keys.claimed.remove(key).unwrap_or_default() {
            let _ = waiting.send(());
        }
    }
}

/// Calls `each` with every committed key record of `partition`, oldest first, including those
/// of transactions already open when it starts (a dead writer's commit may be on its way:
/// missing it would append twice under one key).
fn read_keys(
    options: &KafkaStoreOptions,
    topic: &str,
    partition: u32,
    mut each: impl FnMut(IdempotencyKey, AppendResult) -> Visit,
) -> Result<(), Error> {
    scan_decided(options, topic, partition, 0, |message| {
        let (Some(key), Some(value)) = (message.key(), message.payload()) else {
            return Ok(Visit::More);
        };
        let key = IdempotencyKey::new(String::from_utf8_lossy(key).into_owned())?;
        let keyed: KeyedAppend = serde_json::from_slice(value).map_err(|e| {
            Kafka::corrupt(
                format!(
                    "reading idempotency key `{key}` at partition {partition}, offset {} of `{topic}`",
                    message.offset()
                ),
                Some(Box::new(e)),
            )
        })?;
        Ok(each(key, keyed.result))
    })
}

/// A key claimed for one append. [`used`](KeyClaim::used) once the append is committed;
/// dropped otherwise, which frees the key for the next append that has it.
#[derive(Debug)]
pub(crate) struct KeyClaim {
    registry: Arc<KeyRegistry>,
    key: IdempotencyKey,
    partition: u32,
    used: bool,
}

impl KeyClaim {
    /// The partition of `<prefix>.keys` the key's record goes to.
    pub(crate) fn partition(&self) -> u32 {
        self.partition
    }

    /// The append with this key was committed with `result`.
    pub(crate) fn used(mut self, result: &AppendResult) {
        self.used = true;
        self.registry
            .settle(self.partition, &self.key, Some(result));
    }
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        if !self.used {
            self.registry.settle(self.partition, &self.key, None);
        }
    }
}
