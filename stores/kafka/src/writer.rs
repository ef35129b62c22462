//! One writer per partition: a transactional producer whose `transactional.id` is the
//! partition's own (`<prefix>.writer.<partition>`), so whoever starts writing a partition
//! fences every earlier writer of it, including a zombie of a process that froze.
//!
//! Which partitions an instance writes is the writers' group's to say (`ownership.rs`): a
//! writer starts as soon as its partition is assigned, and stops taking appends the moment
//! the partition is revoked.
//!
//! Taking a partition: `init_transactions` (fences the earlier writer and resolves its open
//! transaction), then the catch-up barrier: the partition of `<prefix>.heads` (each stream's
//! version) read to its end, committed records only. It is compacted, so this grows with the
//! partition's streams, not its events. Only then are appends accepted. (Idempotency keys are
//! claimed before an append is queued: `keys.rs`.)
//!
//! Appending: appends waiting in the queue are taken together (group commit). Each is checked
//! on its own, in arrival order, against the index and the appends before it in the batch;
//! the accepted ones are produced in one transaction: their events, then each touched stream's
//! new head and each idempotency key's result. The index changes only once the transaction is
//! committed, and the next transaction begins only once this one has settled, committed or
//! aborted: its markers written in every partition it wrote to (`settle.rs`); one that does
//! not settle makes the writer take the partition again, and the take's marks decide its
//! records the way the coordinator did. An abortable failure aborts and fails the batch
//! (transient: retry, with an idempotency key to be sure); a fatal one (fenced:
//! another writer took the partition) fails it as `NotOwner` and gives the partition up until
//! the group assigns it again (or, while the group still assigns it here, for 10 s).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use foldline::{
    AppendRequest, AppendResult, BackendErrorKind, DriverErrors, Error, Position, StreamId, Version,
};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Kafka;
use crate::heads::{StreamEntry, read_heads};
use crate::keys::{Claimed, KeyClaim, KeyRegistry};
use crate::options::KafkaStoreOptions;
use crate::ownership::{Ownership, OwnershipListener, REJOIN_AFTER};
use crate::records::{self, KeyedAppend, StreamHead};
use crate::scan::wait_decided;
use crate::settle::{Decision, SETTLE_TIMEOUT, SettleProbe, Tails};
use crate::topics::{TopicNames, blocking, client_config};

/// How many appends may wait for a partition's writer before `append` waits for room.
const QUEUE_DEPTH: usize = 4096;

/// Most appends in one transaction.
const MAX_BATCH: usize = 512;

/// How long a partition this instance was fenced out of, while the group still assigns it
/// here, is left to whoever fenced it before this instance takes it back on the next append.
const GIVE_UP_FOR: Duration = Duration::from_secs(10);

/// The writers' `transaction.timeout.ms`: short, so a hung or dead owner holds every
/// `read_committed` reader back briefly (the brokers abort its transaction after this long).
pub(crate) const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a writer takes its partition again after a commit or an abort failed.
const UNKNOWN_OUTCOME: &str = "a transaction's outcome is unknown";

/// A partition writer's transactional producer.
type TxProducer = FutureProducer<WriterContext>;

/// A writer's producer's context: librdkafka's client errors (a broker's connection lost, a
/// connection closed for being idle) at debug level, since what matters of them reaches the
/// writer as failed deliveries and commits.
struct WriterContext;

impl ClientContext for WriterContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "a writer's producer");
    }
}

/// An append waiting for its partition's writer.
struct PendingAppend {
    request: AppendRequest,
    /// The partition of `<prefix>.keys` its idempotency key's record goes to (the key is
    /// claimed for it).
    key_partition: Option<u32>,
    /// The writer's take its key was looked up under.
    take: Option<u64>,
    reply: oneshot::Sender<Result<AppendResult, Error>>,
}

/// A partition writer's readiness: `Some(take)` once its `take`-th take passed the barrier.
type Readiness = Option<u64>;

/// The partitions this instance owns, and their writers.
#[derive(Debug)]
pub(crate) struct Writers {
    options: KafkaStoreOptions,
    names: TopicNames,
    keys: Arc<KeyRegistry>,
    ownership: Ownership,
    /// The partitions the writers' group assigns this instance; any other is another's.
    partitions: Mutex<HashMap<u32, Slot>>,
    /// Numbers the writer tasks, so a stopping one only marks its own slot.
    next_writer: AtomicU64,
    /// The runtime writers run on: the one of the first append (the group's callbacks come
    /// from a thread of their own).
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
    /// The partition count of the store's topics.
    partition_count: u32,
}

#[derive(Debug)]
enum Slot {
    /// A writer task (number `writer`) owns the partition.
    Writing {
        writer: u64,
        queue: mpsc::Sender<PendingAppend>,
        /// Set when the group revokes the partition: the writer takes no further batch.
        revoked: Arc<AtomicBool>,
        index: SharedIndex,
        /// Once the writer has fenced the previous one and passed its barrier: its take's
        /// number (`None` while it takes the partition).
        ready: watch::Receiver<Readiness>,
    },
    /// Another writer fenced this one out at `since`, though the group still assigns the
    /// partition here (the fencer is a zombie, or a process outside the group).
    Lost { since: Instant, why: String },
}

/// Why an append cannot be queued.
enum Refused {
    /// The group assigns the partition to another instance (or to none yet).
    NotAssigned,
    /// Fenced out recently: why.
    Lost(String),
}

impl Writers {
    pub(crate) fn new(options: KafkaStoreOptions, names: TopicNames, partitions: u32) -> Arc<Self> {
        let keys = KeyRegistry::new(options.clone(), names.keys.clone(), partitions);
        let ownership = Ownership::new(options.clone(), names.clone());
        Arc::new(Writers {
            options,
            names,
            keys,
            ownership,
            partitions: Mutex::new(HashMap::new()),
            next_writer: AtomicU64::new(0),
            runtime: std::sync::OnceLock::new(),
            partition_count: partitions,
        })
    }

    /// Leaves the writers' group and stops every writer (the store is dropped).
    pub(crate) fn shutdown(&self) {
        self.ownership.leave();
        self.slots().clear();
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Slot>> {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The idempotency keys this instance knows.
    pub(crate) fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// Appends `request` through the writer of `partition`, joining the writers' group and
    /// starting the writer if needed.
    pub(crate) async fn append(
        self: &Arc<Self>,
        partition: u32,
        request: AppendRequest,
    ) -> Result<AppendResult, Error> {
        self.runtime.get_or_init(tokio::runtime::Handle::current);
        let listener: Weak<dyn OwnershipListener> = Arc::downgrade(self) as _;
        self.ownership.join(listener).await?;
        // Refused before the key is claimed: nothing to give back.
        let (queue, mut ready) = match self.queue(partition) {
            Ok(writer) => writer,
            Err(Refused::Lost(why)) => return Err(self.not_owner(partition, &why)),
            Err(Refused::NotAssigned) => {
                let why = match self.ownership.owner_of(partition).await {
                    Some(owner) => format!(
                        "the writers' group `{}` assigns it to {owner}",
                        self.ownership.group()
                    ),
                    None if self.ownership.nobody_owns_for_long().await => format!(
                        "the writers' group `{}` has assigned it to nobody for {} s: this \
                         instance is joining it again",
                        self.ownership.group(),
                        REJOIN_AFTER.as_secs()
                    ),
                    None => format!(
                        "the writers' group `{}` assigns it to another instance",
                        self.ownership.group()
                    ),
                };
                return Err(self.not_owner(partition, &why));
            }
        };
        // The key is looked up once the partition's writer has fenced the previous one: a
        // commit of that writer still on its way (it died committing) is decided by then, so
        // the lookup sees the key it used.
        let Ok(take) = ready.wait_for(Option::is_some).await.map(|ready| *ready) else {
            return Err(self.not_owner(partition, "its writer stopped"));
        };
        let claim = match request.idempotency_key() {
            Some(key) => match self.keys.claim(key).await? {
                Claimed::Replay(first) => return Ok(first),
                Claimed::Fresh(claim) => Some(claim),
            },
            None => None,
        };
        let (reply, result) = oneshot::channel();
        queue
            .send(PendingAppend {
                request,
                key_partition: claim.as_ref().map(KeyClaim::partition),
                take,
                reply,
            })
            .await
            .map_err(|_| self.not_owner(partition, "its writer stopped"))?;
        let result = result
            .await
            .map_err(|_| self.not_owner(partition, "its writer stopped"))?;
        // Committed: the key is used. Failed: the claim is dropped, and the key free again.
        if let (Some(claim), Ok(result)) = (claim, &result) {
            claim.used(result);
        }
        result
    }

    /// The queue of `partition`'s writer; a new writer when the partition is assigned and has
    /// none (or was lost long enough ago).
    fn queue(
        self: &Arc<Self>,
        partition: u32,
    ) -> Result<(mpsc::Sender<PendingAppend>, watch::Receiver<Readiness>), Refused> {
        let mut slots = self.slots();
        match slots.get(&partition) {
            None => return Err(Refused::NotAssigned),
            Some(Slot::Writing { queue, ready, .. }) if !queue.is_closed() => {
                return Ok((queue.clone(), ready.clone()));
            }
            Some(Slot::Lost { since, why }) if since.elapsed() < GIVE_UP_FOR => {
                return Err(Refused::Lost(why.clone()));
            }
            Some(_) => {}
        }
        Ok(self.start_writer(&mut slots, partition))
    }

    /// Starts a writer for `partition` (it fences earlier writers and passes the barrier
    /// before its first batch); its queue.
    fn start_writer(
        self: &Arc<Self>,
        slots: &mut HashMap<u32, Slot>,
        partition: u32,
    ) -> (mpsc::Sender<PendingAppend>, watch::Receiver<Readiness>) {
        let (queue, pending) = mpsc::channel(QUEUE_DEPTH);
        let revoked = Arc::new(AtomicBool::new(false));
        let index: SharedIndex = Arc::default();
        let (ready_sender, ready) = watch::channel(None);
        let number = self.next_writer.fetch_add(1, Ordering::Relaxed);
        slots.insert(
            partition,
            Slot::Writing {
                writer: number,
                queue: queue.clone(),
                revoked: Arc::clone(&revoked),
                index: Arc::clone(&index),
                ready: ready.clone(),
            },
        );
        let writer = PartitionWriter {
            writers: Arc::clone(self),
            partition,
            number,
            revoked,
            index,
            ready: ready_sender,
            take_again: Mutex::new(None),
            takes: AtomicU64::new(0),
        };
        match self.runtime.get() {
            Some(runtime) => drop(runtime.spawn(writer.run(pending))),
            None => drop(tokio::spawn(writer.run(pending))),
        }
        (queue, ready)
    }

    /// What this instance's writer of `partition` knows of `stream`: `None` when it has no
    /// writer there (not the owner) or the writer has not passed its barrier yet;
    /// `Some(None)` when the stream has no events.
    ///
    /// The owner's index is the truth for its partition, except in the moments after the
    /// group has moved the partition and before this instance has heard of it (its session
    /// expired while it was frozen or cut off): a read from the index then may miss the new
    /// owner's latest appends, as a read from a replica would. Appends are never affected:
    /// they are fenced.
    pub(crate) fn known_stream(
        &self,
        partition: u32,
        stream: &StreamId,
    ) -> Option<Option<StreamEntry>> {
        let slots = self.slots();
        match slots.get(&partition) {
            Some(Slot::Writing { revoked, index, .. }) if !revoked.load(Ordering::Acquire) => index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|index| index.streams.get(stream).copied()),
            _ => None,
        }
    }

    /// Writer `number` of `partition` was fenced out: the partition is refused for a while,
    /// unless the group has moved it (or a later writer has it) meanwhile.
    fn lost(&self, partition: u32, number: u64, why: String) {
        let mut slots = self.slots();
        if let Some(slot @ Slot::Writing { .. }) = slots.get_mut(&partition)
            && matches!(slot, Slot::Writing { writer, .. } if *writer == number)
        {
            *slot = Slot::Lost {
                since: Instant::now(),
                why,
            };
        }
    }

    fn not_owner(&self, partition: u32, why: &str) -> Error {
        Kafka::failure(
            BackendErrorKind::NotOwner,
            format!(
                "appending to partition {partition} of `{}`: this instance does not own it \
                 ({why}); retry",
                self.names.events
            ),
            None,
        )
    }
}

impl OwnershipListener for Writers {
    fn assigned(self: Arc<Self>, partitions: &[u32]) {
        let mut slots = self.slots();
        for partition in partitions {
            // Taken at once, not on the first append: fencing the previous owner ends its open
            // transaction now (a dead owner's would hold readers back until it timed out),
            // and the barrier is passed before appends arrive. Lost: the group gives it back
            // to this instance, so whoever fenced it has left.
            match slots.get(partition) {
                Some(Slot::Writing { queue, .. }) if !queue.is_closed() => {}
                _ => {
                    self.start_writer(&mut slots, *partition);
                }
            }
        }
    }

    fn revoked(self: Arc<Self>, partitions: &[u32]) {
        let mut slots = self.slots();
        for partition in partitions {
            if let Some(Slot::Writing { revoked, .. }) = slots.remove(partition) {
                revoked.store(true, Ordering::Release);
            }
        }
    }
}

/// The index a writer checks appends against, and reads of its streams use: each stream's
/// version and where its events are.
#[derive(Debug, Default)]
struct Index {
    streams: HashMap<StreamId, StreamEntry>,
}

/// A partition's index, shared by its writer (which builds and updates it) with the reads of
/// this instance: `None` until the writer has passed its barrier.
type SharedIndex = Arc<RwLock<Option<Index>>>;

struct PartitionWriter {
    writers: Arc<Writers>,
    partition: u32,
    /// This writer's number (see [`Writers::lost`]).
    number: u64,
    /// Set when the group revokes the partition.
    revoked: Arc<AtomicBool>,
    /// The index, published once the barrier is passed.
    index: SharedIndex,
    /// Told when the barrier is passed, with the take's number.
    ready: watch::Sender<Readiness>,
    /// How many times this writer took its partition.
    takes: AtomicU64,
    /// Why the partition must be taken again before the next transaction, if it must (see
    /// [`PartitionWriter::must_take_again`]).
    take_again: Mutex<Option<Retake>>,
}

/// Why a writer takes its partition again, and what its marks decide for the transaction that
/// did not settle.
struct Retake {
    why: &'static str,
    /// Where that transaction's records are known to be (their partitions' last offsets).
    tails: Tails,
    /// How it ended as far as the writer was told: what the marks decide where no partition
    /// shows its markers.
    told: Decision,
}

impl PartitionWriter {
    async fn run(self, mut queue: mpsc::Receiver<PendingAppend>) {
        let mut taken = match self.take(None).await {
            Ok(taken) => taken,
            Err(error) => {
                return self
                    .give_up(queue, &error, "could not take the partition")
                    .await;
            }
        };
        while let Some(first) = queue.recv().await {
            if self.revoked.load(Ordering::Acquire) {
                let _ = first.reply.send(Err(self.revoked_error()));
                return self.stop_revoked(queue).await;
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            if let Err(lost) = self.commit(&taken, batch).await {
                return self.give_up(queue, &lost, "gave the partition up").await;
            }
            // Only a commit gives a reason to take the partition again, so this is the one
            // place to look: at once, not before the next batch, so that a partition revoked
            // meanwhile is still resolved.
            if let Some(retake) = self.must_take_again() {
                match self.take_again(retake).await {
                    Ok(again) => taken = again,
                    Err(error) => {
                        return self
                            .give_up(queue, &error, "could not take the partition again")
                            .await;
                    }
                }
            }
        }
    }

    /// Takes the partition again, for `retake`'s reason. Appends wait meanwhile, and
    /// idempotency keys are read again: a key of an earlier transaction may be used after all.
    async fn take_again(&self, retake: Retake) -> Result<Taken, Error> {
        tracing::warn!(
            partition = self.partition,
            "{}: taking the partition again",
            retake.why
        );
        self.ready.send_replace(None);
        self.writers.keys.forget_loaded().await;
        self.take(Some(retake)).await
    }

    /// Why the partition must be taken again before the next transaction, if it must:
    ///
    /// - a transaction failed and could not be aborted: whether it committed is not known
    ///   here, so the index may be behind; taken again, the partition's writer resolves it and
    ///   the barrier rebuilds the index from what was committed;
    /// - a committed or aborted transaction did not settle (`settle.rs`): its markers may be
    ///   lost, and the next transaction of this producer would decide its records. Taken
    ///   again, the writer ends a transaction of marks in every partition a transaction of it
    ///   writes to (`mark_partitions`), committed or aborted as the coordinator decided the
    ///   unsettled one, which decides such records that way everywhere.
    fn must_take_again(&self) -> Option<Retake> {
        self.take_again
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Makes the writer take its partition again before its next transaction, for `why`: the
    /// transaction that wrote `tails` did not settle; the writer was `told` it ended so.
    fn take_again_for(&self, why: &'static str, tails: &Tails, told: Decision) {
        *self
            .take_again
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Retake {
            why,
            tails: tails.clone(),
            told,
        });
    }

    /// The group revoked the partition: every append still queued is refused.
    async fn stop_revoked(&self, mut queue: mpsc::Receiver<PendingAppend>) {
        queue.close();
        while let Some(pending) = queue.recv().await {
            let _ = pending.reply.send(Err(self.revoked_error()));
        }
    }

    fn revoked_error(&self) -> Error {
        self.writers.not_owner(
            self.partition,
            &format!(
                "the writers' group `{}` revoked it",
                self.writers.ownership.group()
            ),
        )
    }

    /// The partition is another writer's: marks it lost, and answers every append still
    /// queued with a retryable `NotOwner` naming why.
    async fn give_up(&self, mut queue: mpsc::Receiver<PendingAppend>, error: &Error, what: &str) {
        let why = foldline::error_chain(error, ": ");
        tracing::warn!(partition = self.partition, error = %why, "{what}");
        queue.close();
        while let Some(pending) = queue.recv().await {
            let _ = pending
                .reply
                .send(Err(self.writers.not_owner(self.partition, &why)));
        }
        self.writers.lost(self.partition, self.number, why);
    }

    /// Fences earlier writers of the partition and rebuilds the index (the barrier); after a
    /// `retake`, decides the transaction that did not settle as the coordinator did.
    async fn take(&self, retake: Option<Retake>) -> Result<Taken, Error> {
        let options = &self.writers.options;
        let names = &self.writers.names;
        let transactional_id = format!("{}.writer.{}", options.topic_prefix, self.partition);
        let context = || format!("taking partition {} of `{}`", self.partition, names.events);
        let producer: TxProducer = client_config(options)
            .set("transactional.id", &transactional_id)
            .set("enable.idempotence", "true")
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            )
            .set("message.timeout.ms", "10000")
            .set("linger.ms", "1")
            // The brokers' default: an event at the store's limit fits with its headers.
            .set("message.max.bytes", "1048588")
            .create_with_context(WriterContext)
            .map_err(|e| Kafka::error(context(), e))?;
        let timeout = options.timeout;
        let fencing = producer.clone();
        let fencing_context = context();
        blocking(move || {
            fencing
                .init_transactions(timeout)
                .map_err(|e| Kafka::error(fencing_context, e))
        })
        .await?;

        let probe = Arc::new(SettleProbe::new(options)?);
        let decision = match retake {
            None => Decision::Commit,
            Some(retake) => self.unsettled_decision(&probe, retake).await?,
        };
        self.mark_partitions(&producer, &probe, decision).await?;

        let (options, names, partition) = (options.clone(), names.clone(), self.partition);
        let index = blocking(move || {
            // A commit is answered once decided, before its markers reach the partitions: the
            // previous writer's last commit may not be readable yet. Wait for it.
            wait_decided(&options, &names.heads, partition)?;
            let mut index = Index::default();
            read_heads(&options, &names.heads, partition, 0, |stream, entry| {
                index.streams.insert(stream, entry);
            })?;
            Ok(index)
        })
        .await?;
        tracing::debug!(
            partition = self.partition,
            streams = index.streams.len(),
            "took the partition"
        );
        *self.index.write().unwrap_or_else(PoisonError::into_inner) = Some(index);
        let take = self.takes.fetch_add(1, Ordering::AcqRel) + 1;
        self.ready.send_replace(Some(take));
        Ok(Taken { producer, probe })
    }

    /// How the transaction `retake` names ended: as a partition where its markers arrived
    /// shows it, or, where none did, as the writer was told.
    async fn unsettled_decision(
        &self,
        probe: &Arc<SettleProbe>,
        retake: Retake,
    ) -> Result<Decision, Error> {
        let told = retake.told;
        let (shown, undecided) = probe.decision(retake.tails, &self.writers.options).await?;
        // Records left undecided (their markers lost) are what the marks decide: counted in
        // the fault tests' output.
        let orphans = if undecided.is_empty() {
            String::new()
        } else {
            format!("; its records are undecided in {}", undecided.join(", "))
        };
        match shown {
            Some(shown) => {
                tracing::warn!(
                    partition = self.partition,
                    "the transaction that did not settle is {shown} where its markers arrived \
                     (the writer was told: {told}); the marks decide it so everywhere{orphans}"
                );
                Ok(shown)
            }
            None => {
                tracing::warn!(
                    partition = self.partition,
                    "no partition holds the markers of the transaction that did not settle; \
                     the marks decide it as the writer was told: {told}{orphans}"
                );
                Ok(told)
            }
        }
    }

    /// Writes a marker record (empty key, no value: readers skip it, `records::is_marker`)
    /// to this partition of `<prefix>.events` and `<prefix>.heads` and to every partition of
    /// `<prefix>.keys` (every topic a transaction of this writer writes to), before the
    /// barrier reads the heads, and ends that transaction as `decision` says. Its markers
    /// decide that way any record an earlier producer of this partition left undecided (a
    /// transaction whose markers the brokers lost: `must_take_again`); and the write,
    /// acknowledged by every in-sync replica, moves each partition's high watermark past
    /// everything before it, which a broker restarted after a crash was seen to leave behind
    /// committed records.
    async fn mark_partitions(
        &self,
        producer: &TxProducer,
        probe: &Arc<SettleProbe>,
        decision: Decision,
    ) -> Result<(), Error> {
        let names = &self.writers.names;
        let context = || {
            format!(
                "marking partition {} of `{}` and `{}`, and `{}`, before the barrier",
                self.partition, names.events, names.heads, names.keys
            )
        };
        producer
            .begin_transaction()
            .map_err(|e| Kafka::error(context(), e))?;
        let own = i32::try_from(self.partition).unwrap_or(i32::MAX);
        let keys = (0..self.writers.partition_count)
            .map(|k| (names.keys.as_str(), i32::try_from(k).unwrap_or(i32::MAX)));
        let mut deliveries = Vec::new();
        for (topic, partition) in [(names.events.as_str(), own), (names.heads.as_str(), own)]
            .into_iter()
            .chain(keys)
        {
            let record: FutureRecord<'_, str, Vec<u8>> =
                FutureRecord::to(topic).partition(partition).key("");
            let delivery = send(producer, record).map_err(|e| Kafka::error(context(), e))?;
            deliveries.push((topic, partition, delivery));
        }
        let mut tails = Tails::default();
        for (topic, partition, delivery) in deliveries {
            match delivered(delivery).await {
                Ok(offset) => tails.record(topic, partition, offset),
                Err(error) => {
                    // Not settled here: the take fails, and the next one marks again.
                    let _ = abort_transaction(producer, self.writers.options.timeout).await;
                    return Err(delivery_failed(context(), error));
                }
            }
        }
        let timeout = self.writers.options.timeout;
        match decision {
            Decision::Commit => commit_transaction(producer, timeout, context()).await?,
            Decision::Abort => abort_transaction(producer, timeout).await?,
        }
        // The marks' own markers lost would leave the records they decide undecided still.
        probe.settled(tails).await.map_err(|unsettled| {
            Kafka::failure(
                BackendErrorKind::Unavailable,
                format!("{}: the marks did not settle: {unsettled}", context()),
                None,
            )
        })
    }

    /// Checks each append of `batch`, commits the accepted ones in one transaction, replies.
    /// `Err` when the partition is lost (fenced, or a fatal producer error): the writer stops.
    async fn commit(&self, taken: &Taken, batch: Vec<PendingAppend>) -> Result<(), Error> {
        let producer = &taken.producer;
        let batch = self.refuse_stale_keys(batch);
        let plan = {
            let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
            let empty = Index::default();
            plan(index.as_ref().unwrap_or(&empty), batch)
        };
        if plan.accepted.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        match self.write(taken, &plan).await {
            Ok(Written {
                results,
                heads,
                tails,
            }) => {
                metrics::histogram!("foldline_kafka_transaction_appends")
                    .record(plan.accepted.len() as f64);
                metrics::histogram!("foldline_kafka_transaction_seconds")
                    .record(started.elapsed().as_secs_f64());
                if let Some(index) = self
                    .index
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    index.streams.extend(heads);
                }
                for (append, result) in plan.accepted.into_iter().zip(results) {
                    let _ = append.reply.send(Ok(result));
                }
                for (append, answer) in plan.deferred {
                    let _ = append.reply.send(answer);
                }
                self.settle(&taken.probe, tails).await;
                Ok(())
            }
            Err(error) => {
                // A fenced producer fails its queued records (`PurgeQueue`) before the commit
                // says so: ask it whether it is done for.
                let error = match producer.client().fatal_error() {
                    Some((code, reason)) => Kafka::failure(
                        BackendErrorKind::NotOwner,
                        format!(
                            "committing: another writer took the partition ({code:?}: {reason})"
                        ),
                        None,
                    ),
                    None => error,
                };
                let fatal = matches!(
                    &error,
                    Error::Backend(e) if e.kind() == BackendErrorKind::NotOwner
                );
                let message = foldline::error_chain(&error, ": ");
                // The deferred answers were about versions that are not written after all: those
                // appends fail as the batch did, and are checked again when retried.
                let deferred = plan.deferred.into_iter().map(|(append, _)| append);
                for append in plan.accepted.into_iter().chain(deferred) {
                    let _ = append.reply.send(Err(self.failed(&error, &message)));
                }
                if fatal { Err(error) } else { Ok(()) }
            }
        }
    }

    /// The error an append of a failed batch gets: the batch's own kind, naming the partition.
    fn failed(&self, error: &Error, message: &str) -> Error {
        let kind = match error {
            Error::Backend(e) => e.kind(),
            _ => BackendErrorKind::Unavailable,
        };
        Kafka::failure(
            kind,
            format!(
                "appending to partition {} of `{}`: {message}",
                self.partition, self.writers.names.events
            ),
            None,
        )
    }

    /// Produces the plan's records in one transaction and commits it; the accepted appends'
    /// results, in order.
    async fn write(&self, taken: &Taken, plan: &Plan) -> Result<Written, Error> {
        let producer = &taken.producer;
        let names = &self.writers.names;
        let timeout = self.writers.options.timeout;
        let partition = i32::try_from(self.partition).unwrap_or(i32::MAX);
        let context = || {
            format!(
                "writing a transaction to partition {} of `{}`",
                self.partition, names.events
            )
        };
        // A producer that cannot begin a transaction is done for: give the partition up.
        producer.begin_transaction().map_err(|e| {
            Kafka::failure(
                BackendErrorKind::NotOwner,
                format!("{}: the producer cannot begin one", context()),
                Some(Box::new(e)),
            )
        })?;
        // Where the transaction's records went, as far as known: what settling it checks,
        // whether it is committed or aborted.
        let mut tails = Tails::default();
        let outcome = async {
            let now = records::now_millis();
            // The events, all sent at once.
            let mut deliveries: Vec<Vec<DeliveryFuture>> = Vec::with_capacity(plan.accepted.len());
            // The heads' and keys' records, awaited before the commit.
            let mut side: Vec<(&str, i32, DeliveryFuture)> = Vec::new();
            for (append, previous) in plan.accepted.iter().zip(&plan.previous) {
                let stream = append.request.stream();
                let mut version = *previous;
                let mut futures = Vec::with_capacity(append.request.events().len());
                for event in append.request.events() {
                    version = version.next();
                    let record = FutureRecord::to(&names.events)
                        .partition(partition)
                        .key(stream.as_str())
                        .payload(&event.payload)
                        .timestamp(now)
                        .headers(records::event_headers(event, version));
                    futures.push(send(producer, record).map_err(|e| Kafka::error(context(), e))?);
                }
                deliveries.push(futures);
            }
            // The events' offsets make the results (their positions) and the streams' heads.
            let mut failed: Option<Error> = None;
            let mut results = Vec::with_capacity(plan.accepted.len());
            let mut heads: HashMap<StreamId, StreamEntry> = HashMap::new();
            for (((append, previous), known), futures) in plan
                .accepted
                .iter()
                .zip(&plan.previous)
                .zip(&plan.known)
                .zip(deliveries)
            {
                // Every delivery is awaited, failed ones or not: `tails` must hold every record
                // written, for the abort to settle (`abort`).
                let (mut first, mut last) = (None, None);
                for future in futures {
                    match delivered(future).await {
                        Ok(offset) => {
                            tails.record(&names.events, partition, offset);
                            first = first.or(Some(offset));
                            last = Some(offset);
                        }
                        Err(e) => {
                            failed.get_or_insert_with(|| delivery_failed(context(), e));
                        }
                    }
                }
                if failed.is_some() {
                    continue;
                }
                let stream = append.request.stream();
                let current = Version::new(previous.get() + append.request.events().len() as u64);
                let head = heads.entry(stream.clone()).or_insert(StreamEntry {
                    version: *previous,
                    first_offset: known.and_then(|k| k.first_offset),
                    last_offset: known.and_then(|k| k.last_offset),
                });
                if *previous == Version::ZERO {
                    head.first_offset = first;
                }
                head.version = current;
                head.last_offset = last.or(head.last_offset);
                results.push(AppendResult::new(
                    stream.clone(),
                    *previous,
                    current,
                    last.map(|o| Position::new(self.partition, u64::try_from(o).unwrap_or(0), 0)),
                ));
            }
            if let Some(error) = failed {
                return Err(error);
            }
            for (stream, head) in &heads {
                let value = serde_json::to_vec(&StreamHead {
                    version: head.version.get(),
                    first_offset: head.first_offset,
                    last_offset: head.last_offset,
                })
                .map_err(|e| encode(e, "a stream head"))?;
                let record = FutureRecord::to(&names.heads)
                    .partition(partition)
                    .key(stream.as_str())
                    .payload(&value)
                    .timestamp(now);
                let delivery = send(producer, record).map_err(|e| Kafka::error(context(), e))?;
                side.push((&names.heads, partition, delivery));
            }
            // The keys' results, which hold those positions; flushed by the commit too.
            for (append, result) in plan.accepted.iter().zip(&results) {
                let (Some(key), Some(key_partition)) =
                    (append.request.idempotency_key(), append.key_partition)
                else {
                    continue;
                };
                let key_partition = i32::try_from(key_partition).unwrap_or(i32::MAX);
                let value = serde_json::to_vec(&KeyedAppend {
                    result: result.clone(),
                })
                .map_err(|e| encode(e, "an idempotency key's result"))?;
                let record = FutureRecord::to(&names.keys)
                    .partition(key_partition)
                    .key(key.as_str())
                    .payload(&value)
                    .timestamp(now);
                let delivery = send(producer, record).map_err(|e| Kafka::error(context(), e))?;
                side.push((&names.keys, key_partition, delivery));
            }
            // Every record delivered before the commit: rdkafka's `commit_transaction` first
            // flushes, and a flush that finds records in flight blocks in a poll whose
            // delivery report the producer's own polling thread takes, until the next event
            // (about 100 ms per transaction, measured).
            for (topic, partition, future) in side {
                match delivered(future).await {
                    Ok(offset) => tails.record(topic, partition, offset),
                    Err(e) => {
                        failed.get_or_insert_with(|| delivery_failed(context(), e));
                    }
                }
            }
            if let Some(error) = failed {
                return Err(error);
            }
            Ok::<_, Error>(Written {
                results,
                heads,
                tails: tails.clone(),
            })
        }
        .await;
        match outcome {
            Ok(results) => {
                let committed =
                    commit_transaction(producer, timeout, "committing a transaction".into()).await;
                match committed {
                    Ok(()) => Ok(results),
                    Err(error) => {
                        // A commit that failed may still have been committed (the broker wrote
                        // its markers, then went down before answering; an abort afterwards can
                        // even succeed): the index cannot tell, so the partition is taken again
                        // and the index rebuilt from what was committed, whatever the abort says.
                        // Seen as two events at one version after a broker was killed.
                        self.take_again_for(UNKNOWN_OUTCOME, &tails, Decision::Abort);
                        self.abort(taken, &tails).await;
                        Err(error)
                    }
                }
            }
            Err(error) => {
                self.abort(taken, &tails).await;
                Err(error)
            }
        }
    }

    /// Waits until the transaction just committed is settled (`settle.rs`); if it is not, the
    /// partition is taken again before the next transaction.
    async fn settle(&self, probe: &Arc<SettleProbe>, tails: Tails) {
        let Err(unsettled) = probe.settled(tails.clone()).await else {
            return;
        };
        tracing::warn!(
            partition = self.partition,
            %unsettled,
            "a committed transaction did not settle in {SETTLE_TIMEOUT:?}"
        );
        self.take_again_for(
            "a committed transaction did not settle",
            &tails,
            Decision::Commit,
        );
    }

    /// The appends of `batch` fit to commit: an append whose idempotency key was looked up
    /// under an earlier take of the partition is refused, retryable, since that take's
    /// producer may have committed the key since (a commit found undecided, then decided by
    /// the new take's marker); sent again, its key is looked up anew.
    fn refuse_stale_keys(&self, batch: Vec<PendingAppend>) -> Vec<PendingAppend> {
        let current = Some(self.takes.load(Ordering::Acquire));
        let (fit, stale): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|pending| pending.key_partition.is_none() || pending.take == current);
        for pending in stale {
            let error = Kafka::failure(
                BackendErrorKind::Unavailable,
                format!(
                    "appending to partition {} of `{}`: the partition was taken again since \
                     the append's idempotency key was looked up; send it again",
                    self.partition, self.writers.names.events
                ),
                None,
            );
            let _ = pending.reply.send(Err(error));
        }
        fit
    }

    /// Aborts the open transaction, which wrote `tails`, and waits until the abort has
    /// settled. A transaction that cannot be aborted (a fenced producer cannot: it is done)
    /// has an unknown outcome; one whose abort does not settle may have lost its markers. For
    /// both the partition is taken again before the next transaction.
    async fn abort(&self, taken: &Taken, tails: &Tails) {
        match abort_transaction(&taken.producer, self.writers.options.timeout).await {
            Err(error) => {
                tracing::debug!(partition = self.partition, error = %foldline::error_chain(&error, ": "), "could not abort");
                self.take_again_for(UNKNOWN_OUTCOME, tails, Decision::Abort);
            }
            Ok(()) => {
                if let Err(unsettled) = taken.probe.settled(tails.clone()).await {
                    tracing::warn!(
                        partition = self.partition,
                        %unsettled,
                        "an aborted transaction did not settle in {SETTLE_TIMEOUT:?}"
                    );
                    self.take_again_for(
                        "an aborted transaction did not settle",
                        tails,
                        Decision::Abort,
                    );
                }
            }
        }
    }
}

/// Aborts `producer`'s open transaction, off the async runtime.
async fn abort_transaction(producer: &TxProducer, timeout: Duration) -> Result<(), Error> {
    let aborter = producer.clone();
    blocking(move || {
        aborter
            .abort_transaction(timeout)
            .map_err(|e| Kafka::error("aborting a transaction", e))
    })
    .await
}

/// Commits `producer`'s open transaction, off the async runtime (librdkafka blocks until the
/// coordinator answers or `timeout` passes).
async fn commit_transaction(
    producer: &TxProducer,
    timeout: Duration,
    context: String,
) -> Result<(), Error> {
    let committer = producer.clone();
    blocking(move || {
        committer
            .commit_transaction(timeout)
            .map_err(|e| Kafka::error(context, e))
    })
    .await
}

/// Enqueues `record`.
fn send(
    producer: &TxProducer,
    record: FutureRecord<'_, str, Vec<u8>>,
) -> Result<DeliveryFuture, KafkaError> {
    producer.send_result(record).map_err(|(e, _)| e)
}

/// Waits for a record's delivery: its offset.
async fn delivered(future: DeliveryFuture) -> Result<i64, KafkaError> {
    match future.await {
        Ok(Ok(delivery)) => Ok(delivery.offset),
        Ok(Err((error, _))) => Err(error),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// The error of a record that was not delivered. A record purged from the producer's queue
/// was never written: its transaction is aborted (the brokers became unreachable, or the
/// transaction timed out), so the append failed whole and may be retried; a fenced producer's
/// purge is told apart by the caller, which asks the producer for its fatal state.
fn delivery_failed(context: String, error: KafkaError) -> Error {
    match error {
        KafkaError::MessageProduction(
            RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
        ) => Kafka::failure(
            BackendErrorKind::Unavailable,
            format!(
                "{context}: the transaction was aborted before its records were written; retry"
            ),
            Some(Box::new(error)),
        ),
        other => Kafka::error(context, other),
    }
}

fn encode(error: serde_json::Error, what: &str) -> Error {
    Error::Encode {
        what: what.to_owned(),
        source: Box::new(error),
    }
}

/// What a take gives a writer: its producer, and the probe that sees its transactions settle.
struct Taken {
    producer: TxProducer,
    probe: Arc<SettleProbe>,
}

/// A committed transaction: the accepted appends' results, the streams' new heads, and the
/// last offset it wrote in each partition.
struct Written {
    results: Vec<AppendResult>,
    heads: HashMap<StreamId, StreamEntry>,
    tails: Tails,
}

/// A batch checked against the index: what is written.
struct Plan {
    /// The appends to write, in arrival order.
    accepted: Vec<PendingAppend>,
    /// Each accepted append's stream version before it.
    previous: Vec<Version>,
    /// What the index held of each accepted append's stream.
    known: Vec<Option<StreamEntry>>,
    /// Appends answered from the versions earlier appends of the batch leave (a conflict with
    /// one of them, an empty append after one): answered once the transaction is decided, so
    /// that the version they name is committed and a read after the answer sees it.
    deferred: Vec<(PendingAppend, Result<AppendResult, Error>)>,
}

/// Checks each append in arrival order: conflicts with the index are answered at once; the
/// rest is accepted, each against the versions the earlier ones leave.
fn plan(index: &Index, batch: Vec<PendingAppend>) -> Plan {
    let mut plan = Plan {
        accepted: Vec::new(),
        previous: Vec::new(),
        known: Vec::new(),
        deferred: Vec::new(),
    };
    let mut versions: HashMap<StreamId, Version> = HashMap::new();
    for pending in batch {
        let stream = pending.request.stream();
        let known = index.streams.get(stream).copied();
        let in_batch = versions.get(stream).copied();
        let actual = in_batch
            .or(known.map(|k| k.version))
            .unwrap_or(Version::ZERO);
        let expected = pending.request.expected();
        let count = pending.request.events().len() as u64;
        let answer = if !expected.allows(actual) {
            Some(Err(Error::Conflict {
                stream: stream.clone(),
                expected,
                actual,
            }))
        } else if count == 0 && pending.key_partition.is_none() {
            // Nothing to write, nothing to remember.
            Some(Ok(AppendResult::new(stream.clone(), actual, actual, None)))
        } else {
            None
        };
        match answer {
            Some(answer) if in_batch.is_some() => plan.deferred.push((pending, answer)),
            Some(answer) => {
                let _ = pending.reply.send(answer);
            }
            None => {
                versions.insert(stream.clone(), Version::new(actual.get() + count));
                plan.previous.push(actual);
                plan.known.push(known);
                plan.accepted.push(pending);
            }
        }
    }
    plan
}
