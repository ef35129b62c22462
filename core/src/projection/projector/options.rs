use std::time::Duration;

/// How a [`Projector`](super::Projector) runs: batch size, retries, poison policy, lease.
///
/// The defaults suit a projection target on the same network: batches of up to 500 events,
/// a failing event tried 3 times (50 ms, then 100 ms apart) before the projector stops, a
/// 10-second lease renewed every few seconds, control flags checked every second.
#[derive(Clone, Debug)]
pub struct ProjectorOptions {
    pub(crate) batch_size: usize,
    pub(crate) poison: PoisonPolicy,
    pub(crate) max_attempts: u32,
    pub(crate) retry_delay: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) idle_interval: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) give_up_after: Option<Duration>,
    pub(crate) owner: String,
}

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            batch_size: 500,
            poison: PoisonPolicy::Stop,
            max_attempts: 3,
            retry_delay: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(10),
            idle_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            give_up_after: None,
            owner: default_owner(),
        }
    }
}

impl ProjectorOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events per commit at most (default 500). Bigger batches mean fewer commits (faster
    /// catch-up); smaller ones mean less work redone after a crash.
    pub fn with_batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// What to do with an event whose handler keeps failing (default [`PoisonPolicy::Stop`]).
    pub fn with_poison_policy(mut self, policy: PoisonPolicy) -> Self {
        self.poison = policy;
        self
    }

    /// How many times a failing event is tried before the poison policy applies (default 3),
    /// and the delay before the first retry (default 50 ms; doubling after each).
    pub fn with_retries(mut self, attempts: u32, first_delay: Duration) -> Self {
        self.max_attempts = attempts.max(1);
        self.retry_delay = first_delay;
        self
    }

    /// How long a slot's lease lasts without renewal (default 10 s). A crashed projector's
    /// slot is taken over by a standby instance after at most this long.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// How often an idle or paused projector checks the operator's flags, renews its lease,
    /// reports its status and samples the store's head (default 1 s).
    pub fn with_idle_interval(mut self, interval: Duration) -> Self {
        self.idle_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The longest wait between attempts after the store or target failed (default 5 s).
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Stop with the error once the store or target has been failing for this long (default:
    /// never; the projector keeps retrying and its lag shows the outage).
    pub fn with_give_up_after(mut self, after: Duration) -> Self {
        self.give_up_after = Some(after);
        self
    }

    /// The name this projector holds leases and reports status under (default:
    /// `<host>-<pid>-<random>`).
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// The name this projector holds leases and reports status under.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// What a projector does with an event its handler keeps failing on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoisonPolicy {
    /// Stop with [`Error::PoisonEvent`](crate::Error::PoisonEvent) naming the event; the
    /// checkpoint stays before it, so a fixed handler resumes there.
    #[default]
    Stop,
    /// Park the event in the target's dead-letter list, atomically with moving the checkpoint
    /// past it, and go on. Retry or discard it later (the admin's `dead-letters`).
    DeadLetter,
}

/// How [`Projector::rebuild`](super::Projector::rebuild) rebuilds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebuildMode {
    /// Build a new slot beside the active one, which keeps serving reads; switch the alias
    /// once it has caught up, then drop the old slot.
    #[default]
    BlueGreen,
    /// Empty the active slot and rebuild it where it is: readers see a partial read model
    /// until it has caught up.
    InPlace,
}

fn default_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}
