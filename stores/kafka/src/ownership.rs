//! Which partitions this instance may write: the ones Kafka's consumer-group protocol assigns
//! it in the store's writers' group (`<prefix>.writers`).
//!
//! An instance joins the group on its first append (instances that only read never join, so
//! the admin CLI and projectors take no partitions). A consumer subscribed to the events topic,
//! with every assigned partition paused at once (it never fetches: the group is used for its
//! assignment only, and commits no offsets), is polled by a thread of its own. The
//! `cooperative-sticky` assignor moves only the partitions that must move when an instance
//! joins or leaves.
//!
//! - **Assigned**: the partition may be written; its writer starts at once (fencing the previous
//!   owner, passing the barrier).
//! - **Revoked** (another instance joined, this one is leaving) or **lost** (this instance
//!   missed its session: frozen, cut off): appends stop at once, before the partition is handed
//!   over. An append already committing finishes, or fails as fenced when the new owner's
//!   `init_transactions` comes first; either way its outcome is what the caller is told.
//!
//! The group decides who *may* write; fencing by `transactional.id` makes it safe when two
//! instances believe they own one partition (a zombie that has not noticed its revocation yet):
//! the later writer fences the earlier one, whose appends then fail.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use foldline::{BackendErrorKind, DriverErrors, Error};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::topic_partition_list::TopicPartitionList;
use tokio::sync::watch;

use crate::error::Kafka;
use crate::options::KafkaStoreOptions;
use crate::topics::{ShortConsumer, TopicNames, blocking, client_config};

/// How often the group's thread polls its consumer (serving rebalances and heartbeats).
const POLL_EVERY: Duration = Duration::from_millis(50);

/// How long an owner found in the group is reused for `NotOwner` errors.
const OWNERS_FRESH_FOR: Duration = Duration::from_secs(1);

/// How long appends may find their partition assigned to nobody in the group, with no
/// assignment or revocation for this instance meanwhile, before it leaves and joins again.
/// librdkafka's member was seen to stay out of the group for over 90 s after the broker froze
/// past the session timeout (every partition unowned, every append `NotOwner`).
pub(crate) const REJOIN_AFTER: Duration = Duration::from_secs(30);

/// What the group says about the partitions; told to whoever registered with [`Ownership::watch`].
pub(crate) trait OwnershipListener: Send + Sync + 'static {
    /// `partitions` are this instance's now, in addition to the ones it had.
    fn assigned(self: Arc<Self>, partitions: &[u32]);
    /// `partitions` are no longer this instance's: stop appending to them at once.
    fn revoked(self: Arc<Self>, partitions: &[u32]);
}

/// This instance's membership in the writers' group of a store.
pub(crate) struct Ownership {
    options: KafkaStoreOptions,
    names: TopicNames,
    group: String,
    /// The group's thread, once joined.
    member: Mutex<Option<Member>>,
    /// How many assignments and revocations the group has handed this instance so far.
    generation: watch::Sender<u64>,
    /// The partitions of the events topic and their owners, from the group, with when.
    owners: Mutex<Option<(Instant, BTreeMap<u32, String>)>>,
    /// Since when appends have found their partition owned by nobody, and the generation
    /// then (see [`REJOIN_AFTER`]).
    unowned_since: Mutex<Option<(Instant, u64)>>,
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ownership")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The group's thread and how to stop it.
struct Member {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Tells the thread to close its consumer and end; the thread, to wait for (once).
    fn stop(&mut self) -> Option<JoinHandle<()>> {
        self.stop.store(true, Ordering::Release);
        self.thread.take()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Not joined: closing the consumer (leaving the group) may take a round trip, which
        // must not block whoever drops the store. The thread ends on its own.
        drop(self.stop());
    }
}

impl Ownership {
    pub(crate) fn new(options: KafkaStoreOptions, names: TopicNames) -> Self {
        let group = format!("{}.writers", options.topic_prefix);
        Ownership {
            options,
            names,
            group,
            member: Mutex::new(None),
            generation: watch::channel(0).0,
            owners: Mutex::new(None),
            unowned_since: Mutex::new(None),
        }
    }

    /// The writers' group's id (`<prefix>.writers`).
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Joins the writers' group unless this instance already has, and waits for its first
    /// assignment (possibly empty, when other instances hold every partition). The group
    /// reports to `listener` from then on, until [`leave`](Self::leave).
    pub(crate) async fn join(&self, listener: Weak<dyn OwnershipListener>) -> Result<(), Error> {
        let mut generation = self.generation.subscribe();
        {
            let mut member = self.member.lock().unwrap_or_else(PoisonError::into_inner);
            if member.is_none() {
                *member = Some(self.start(listener)?);
            }
        }
        let timeout = self.options.timeout.max(self.options.session_timeout);
        let joined = tokio::time::timeout(timeout, generation.wait_for(|g| *g > 0)).await;
        match joined {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Kafka::failure(
                BackendErrorKind::Unavailable,
                format!(
                    "joining the writers' group `{}`: no partitions assigned within {} s",
                    self.group,
                    timeout.as_secs()
                ),
                None,
            )),
        }
    }

    /// Notes that an append found its partition owned by nobody in the group; `true` when that
    /// has lasted [`REJOIN_AFTER`] with no assignment or revocation for this instance: then
    /// this instance leaves the group (its old consumer closed first, so that nothing it
    /// revokes can reach the new one's writers), and the next append joins it again.
    pub(crate) async fn nobody_owns_for_long(&self) -> bool {
        let generation = *self.generation.borrow();
        let stalled = {
            let mut since = self
                .unowned_since
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match *since {
                // One caller rejoins; the clock starts again for the others.
                Some((when, seen)) if seen == generation && when.elapsed() >= REJOIN_AFTER => {
                    *since = None;
                    true
                }
                Some((_, seen)) if seen == generation => false,
                _ => {
                    *since = Some((Instant::now(), generation));
                    false
                }
            }
        };
        if !stalled {
            return false;
        }
        // Stopped but kept in place until its thread is done, so that no append starts a new
        // member meanwhile.
        let old = self
            .member
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .and_then(Member::stop);
        tracing::warn!(
            group = %self.group,
            "no member of the writers' group has owned this instance's partitions for {} s: \
             joining it again",
            REJOIN_AFTER.as_secs()
        );
        if let Some(thread) = old {
            // Closing the stuck consumer may wait for the brokers: off the async runtime.
            let _ = blocking(move || {
                let _ = thread.join();
                Ok(())
            })
            .await;
        }
        self.member
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        true
    }

    /// Leaves the group: the thread closes its consumer, and the partitions go to the others.
    pub(crate) fn leave(&self) {
        self.member
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn start(&self, listener: Weak<dyn OwnershipListener>) -> Result<Member, Error> {
        let context = || format!("joining the writers' group `{}`", self.group);
        let mut config = client_config(&self.options);
        config
            .set("group.id", &self.group)
            .set("client.id", client_id())
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                self.options.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (self.options.session_timeout.as_millis() / 5)
                    .max(100)
                    .to_string(),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            // A broker just restarted may answer a metadata request without the events topic;
            // an assignment computed then holds none of its partitions, and librdkafka computes
            // the next only when its metadata shows the topic again: at the next refresh
            // (5 minutes by default, during which every append would be refused as
            // `NotOwner`). Seen once in about 25 single-broker restarts.
            .set("topic.metadata.refresh.interval.ms", "5000");
        if let Some(id) = &self.options.member_id {
            config.set("group.instance.id", id);
        }
        let events = self.names.events.clone();
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(GroupContext {
                events: events.clone(),
                listener,
                generation: self.generation.clone(),
            })
            .map_err(|e| Kafka::error(context(), e))?;
        consumer
            .subscribe(&[&events])
            .map_err(|e| Kafka::error(context(), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let group = self.group.clone();
        let thread = std::thread::Builder::new()
            .name(format!(
                "foldline-kafka-group-{}",
                self.options.topic_prefix
            ))
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    // Every partition is paused: a poll only serves the group's callbacks.
                    if let Some(Err(error)) = consumer.poll(POLL_EVERY) {
                        tracing::warn!(group = %group, %error, "writers' group");
                    }
                }
                // Dropping the consumer closes it: it leaves the group (revoking everything).
                drop(consumer);
            })
            .map_err(|e| {
                Kafka::failure(
                    BackendErrorKind::Unavailable,
                    format!("{}: starting its thread", context()),
                    Some(Box::new(e)),
                )
            })?;
        Ok(Member {
            stop,
            thread: Some(thread),
        })
    }

    /// Who owns `partition` according to the group (`client <id> at <host>`); `None` when the
    /// group does not say (a rebalance in progress). An owner found is reused for a second; a
    /// partition found with no owner is looked up again, as the rebalance that left it
    /// unassigned (a cooperative one hands partitions over in two steps) may have ended since.
    pub(crate) async fn owner_of(&self, partition: u32) -> Option<String> {
        {
            let owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((when, owners)) = owners.as_ref()
                && when.elapsed() < OWNERS_FRESH_FOR
                && let Some(owner) = owners.get(&partition)
            {
                return Some(owner.clone());
            }
        }
        let (options, group, events) = (
            self.options.clone(),
            self.group.clone(),
            self.names.events.clone(),
        );
        let looked_up = blocking(move || owners(&options, &group, &events)).await;
        match looked_up {
            Ok(owners) => {
                let owner = owners.get(&partition).cloned();
                *self.owners.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), owners));
                owner
            }
            Err(error) => {
                tracing::debug!(error = %foldline::error_chain(&error, ": "), "looking up the writers' group");
                None
            }
        }
    }
}

/// The client id members of the group show: host and process, for people reading an error.
fn client_id() -> String {
    format!("foldline-writer-pid{}", std::process::id())
}

/// The consumer's callbacks: rebalances, told to the listener.
struct GroupContext {
    events: String,
    listener: Weak<dyn OwnershipListener>,
    generation: watch::Sender<u64>,
}

impl GroupContext {
    fn partitions(&self, list: &TopicPartitionList) -> Vec<u32> {
        list.elements()
            .iter()
            .filter(|e| e.topic() == self.events)
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect()
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Before the partitions are handed over: appends stop now.
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = self.partitions(list);
            tracing::debug!(?partitions, "writers' group: revoked");
            if let Some(listener) = self.listener.upgrade() {
                listener.revoked(&partitions);
            }
            self.generation.send_modify(|g| *g += 1);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // The group is for the assignment only: never fetch.
            if let Err(error) = consumer.pause(list) {
                tracing::warn!(%error, "writers' group: pausing the assigned partitions");
            }
            let partitions = self.partitions(list);
            tracing::debug!(?partitions, "writers' group: assigned");
            if let Some(listener) = self.listener.upgrade() {
                listener.assigned(&partitions);
            }
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// Each partition of `events` and its owner in `group`, from the group's description.
fn owners(
    options: &KafkaStoreOptions,
    group: &str,
    events: &str,
) -> Result<BTreeMap<u32, String>, Error> {
    let context = || format!("describing the writers' group `{group}`");
    let consumer = client_config(options)
        .create()
        .map(ShortConsumer::new)
        .map_err(|e| Kafka::error(context(), e))?;
    let list = consumer
        .fetch_group_list(Some(group), options.timeout)
        .map_err(|e| Kafka::error(context(), e))?;
    let mut owners = BTreeMap::new();
    for found in list.groups() {
        for member in found.members() {
            let Some(assignment) = member.assignment() else {
                continue;
            };
            let who = format!(
                "client `{}` at {}",
                member.client_id(),
                member.client_host().trim_start_matches('/')
            );
            for (topic, partitions) in parse_assignment(assignment).unwrap_or_default() {
                if topic == events {
                    for partition in partitions {
                        owners.insert(partition, who.clone());
                    }
                }
            }
        }
    }
    Ok(owners)
}

/// The topics and partitions of a member's assignment in the consumer protocol's encoding
/// (`ConsumerProtocolAssignment`: version, then per topic its name and partitions, then user
/// data); `None` when it does not parse.
fn parse_assignment(bytes: &[u8]) -> Option<HashMap<String, Vec<u32>>> {
    let mut reader = Reader(bytes);
    let _version = reader.i16()?;
    let mut assignment = HashMap::new();
    for _ in 0..reader.i32()? {
        let len = usize::try_from(reader.i16()?).ok()?;
        let topic = String::from_utf8(reader.take(len)?.to_vec()).ok()?;
        let count = reader.i32()?;
        let mut partitions = Vec::with_capacity(usize::try_from(count).ok()?.min(4096));
        for _ in 0..count {
            partitions.push(u32::try_from(reader.i32()?).ok()?);
        }
        assignment.insert(topic, partitions);
    }
    Some(assignment)
}

/// Big-endian reads off a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assignment_parses_as_the_consumer_protocol_encodes_it() {
        let mut bytes = vec![0, 1]; // version 1
        bytes.extend(1_i32.to_be_bytes()); // one topic
        bytes.extend(8_i16.to_be_bytes());
        bytes.extend(b"s.events");
        bytes.extend(2_i32.to_be_bytes());
        bytes.extend(3_i32.to_be_bytes());
        bytes.extend(5_i32.to_be_bytes());
        bytes.extend((-1_i32).to_be_bytes()); // no user data
        let assignment = parse_assignment(&bytes).expect("parses");
        assert_eq!(assignment.get("s.events"), Some(&vec![3, 5]));
        assert_eq!(parse_assignment(&bytes[..9]), None);
    }
}
