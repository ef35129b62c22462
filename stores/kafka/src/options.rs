//! `KafkaStoreOptions`: where the brokers are, which topics, how many partitions.

use std::time::Duration;

use foldline::{Error, NameKind, StoreLimits};

/// The environment variable [`KafkaStoreOptions::from_env`] reads: a comma-separated list of
/// `host:port` bootstrap brokers.
pub const ENV_BROKERS: &str = "FOLDLINE_KAFKA_BROKERS";

/// The brokers used when [`ENV_BROKERS`] (`FOLDLINE_KAFKA_BROKERS`) is not set.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// The topic prefix used unless [`with_topic_prefix`](KafkaStoreOptions::with_topic_prefix)
/// names another.
pub const DEFAULT_TOPIC_PREFIX: &str = "foldline";

/// The default largest event (payload plus metadata), in bytes: what fits in a record under
/// the brokers' default `message.max.bytes` (1 048 588) with room for the key and headers.
pub const MAX_EVENT_BYTES: usize = 1_000_000;

/// Settings of a [`KafkaEventStore`](crate::KafkaEventStore): a builder with documented
/// defaults.
///
/// ```
/// use foldline_kafka::KafkaStoreOptions;
///
/// let options = KafkaStoreOptions::from_brokers("kafka-1:9092,kafka-2:9092")
///     .with_topic_prefix("bank")?
///     .with_partitions(16)
///     .with_replication_factor(3);
/// assert_eq!(options.topic_prefix(), "bank");
/// assert_eq!(options.partitions(), 16);
/// # Ok::<(), foldline::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct KafkaStoreOptions {
    pub(crate) brokers: String,
    pub(crate) topic_prefix: String,
    pub(crate) partitions: u32,
    pub(crate) replication_factor: Option<u16>,
    pub(crate) timeout: Duration,
    pub(crate) limits: StoreLimits,
    pub(crate) session_timeout: Duration,
    pub(crate) member_id: Option<String>,
    pub(crate) create_topics: bool,
}

impl KafkaStoreOptions {
    /// Options for the brokers in `brokers` (`host:port`, comma-separated), with the defaults:
    /// topic prefix [`DEFAULT_TOPIC_PREFIX`], 8 partitions, the brokers' default replication
    /// factor, 10 s for the brokers to answer, a 10 s writers' group session, no static
    /// member id.
    pub fn from_brokers(brokers: impl Into<String>) -> Self {
        KafkaStoreOptions {
            brokers: brokers.into(),
            topic_prefix: DEFAULT_TOPIC_PREFIX.to_owned(),
            partitions: 8,
            replication_factor: None,
            timeout: Duration::from_secs(10),
            limits: StoreLimits::default().with_max_event_bytes(MAX_EVENT_BYTES),
            session_timeout: Duration::from_secs(10),
            member_id: None,
            create_topics: true,
        }
    }

    /// Options for the brokers in [`ENV_BROKERS`], else [`DEFAULT_BROKERS`].
    pub fn from_env() -> Self {
        let brokers = std::env::var(ENV_BROKERS)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BROKERS.to_owned());
        Self::from_brokers(brokers)
    }

    /// The prefix of the store's topics (`<prefix>.events`, `<prefix>.meta`, …): letters,
    /// digits, `_`, `.` and `-`, at most 64 characters. One prefix is one store.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a prefix Kafka would refuse in a topic name.
    pub fn with_topic_prefix(mut self, prefix: impl Into<String>) -> Result<Self, Error> {
        self.topic_prefix = NameKind::KeyPrefix.validate(prefix.into())?;
        Ok(self)
    }

    /// How many partitions the events topic is created with (at least 1; default 8). Fixed at
    /// creation: the partition of a stream is the hash of its id modulo this count, so a store
    /// refuses to start on a topic whose count has changed since.
    #[must_use]
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// The replication factor of the topics the store creates (default: the brokers'
    /// `default.replication.factor`).
    #[must_use]
    pub fn with_replication_factor(mut self, factor: u16) -> Self {
        self.replication_factor = Some(factor.max(1));
        self
    }

    /// How long a request may wait for the brokers before it fails as a timeout (default
    /// 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The limits appends are checked against before anything is sent (default: events up to
    /// [`MAX_EVENT_BYTES`]). Raise the brokers' and the topic's `message.max.bytes` before
    /// raising the event limit.
    #[must_use]
    pub fn with_limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long the writers' group waits for a silent instance (crashed, frozen, cut off)
    /// before its partitions go to the others (the group's `session.timeout.ms`; default 10 s,
    /// the brokers accept 6 s to 5 min unless configured otherwise). Shorter moves partitions
    /// of a dead instance sooner; too short moves them away from a live one under a long pause.
    #[must_use]
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// A stable name for this instance in the writers' group (Kafka's static membership,
    /// `group.instance.id`): an instance restarted under the same name gets its partitions
    /// back at once, without waiting for the session of its previous run to expire. Each
    /// running instance needs its own name (e.g. the pod's name): a second instance under the
    /// same name fences the first out of the group.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name Kafka would refuse.
    pub fn with_member_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.member_id = Some(NameKind::KeyPrefix.validate(id.into())?);
        Ok(self)
    }

    /// Whether [`KafkaEventStore::connect`](crate::KafkaEventStore::connect) creates the
    /// store's topics where they are missing (default: yes). Tools that must not create a
    /// store a mistyped prefix names (the admin CLI, a read-only service) turn it off: `connect`
    /// then fails with [`Error::StoreNotFound`] and creates nothing.
    pub fn with_topic_creation(mut self, create: bool) -> Self {
        self.create_topics = create;
        self
    }

    /// The bootstrap brokers.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The prefix of the store's topics.
    pub fn topic_prefix(&self) -> &str {
        &self.topic_prefix
    }

    /// The partition count the events topic is created with.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }
}
