//! Durable timers: the timeouts process managers schedule, kept by a [`TimerStore`] until they
//! fire or are cancelled.

use std::future::Future;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::error::Result;
use crate::names::StreamId;

/// A timeout an instance of a process manager scheduled, as a [`TimerStore`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timer {
    /// Its identity, derived by the runner from the decision that scheduled it, so that
    /// scheduling it again after a crash stores nothing new, and its firing, recorded in the
    /// instance's stream under this id, is recognized if it comes again.
    pub id: Uuid,
    /// The process manager's [`NAME`](super::ProcessManager::NAME).
    pub process: String,
    /// The instance's stream.
    pub instance: StreamId,
    /// The timeout, encoded by the runner's codec: what the instance is woken up with, and
    /// what a cancel compares (byte for byte).
    pub timeout: Vec<u8>,
    /// When it is due.
    pub due_at: SystemTime,
}

impl Timer {
    /// A timer of instance `instance` of `process`, due at `due_at`.
    pub fn new(
        id: Uuid,
        process: impl Into<String>,
        instance: StreamId,
        timeout: Vec<u8>,
        due_at: SystemTime,
    ) -> Self {
        Timer {
            id,
            process: process.into(),
            instance,
            timeout,
            due_at,
        }
    }
}

/// Where the timeouts of process managers wait until they are due. Runners of the same
/// process manager, in any number of processes, share it: a due timer is *claimed* by one of
/// them for a lease, fired (recorded in the instance's stream), then removed; a runner that
/// dies holding it loses the lease, and another fires it later. Late rather than never, and
/// the instance's stream makes a second firing a no-op.
///
/// Every time is the caller's (`now`), so a store never needs a clock and tests can move time.
/// `foldline::testing::timers` has the conformance cases every implementation must pass.
pub trait TimerStore: Send + Sync + 'static {
    /// Stores `timer`. A timer whose id is stored already stays as it is (a decision run again
    /// after a crash schedules the same timers again).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn schedule(&self, timer: Timer) -> impl Future<Output = Result<()>> + Send;

    /// Removes the pending timers of `instance` of `process` whose encoded timeout is
    /// `timeout`; how many there were.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn cancel(
        &self,
        process: &str,
        instance: &StreamId,
        timeout: &[u8],
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Removes every pending timer of `instance` of `process` (it finished); how many there
    /// were.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn cancel_all(
        &self,
        process: &str,
        instance: &StreamId,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Claims up to `limit` timers of `process` due at `now` (earliest first) and not claimed
    /// by anyone else whose lease lasts past `now`: each is leased to the caller until
    /// `now + lease`. Two callers at once never get the same timer.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn claim_due(
        &self,
        process: &str,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Timer>>> + Send;

    /// Removes timer `id` (fired, its firing recorded); nothing when it is gone already.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn remove(&self, id: Uuid) -> impl Future<Output = Result<()>> + Send;

    /// The pending timers of `instance` of `process`, earliest first (claimed or not).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn pending(
        &self,
        process: &str,
        instance: &StreamId,
    ) -> impl Future<Output = Result<Vec<Timer>>> + Send;

    /// When the earliest pending timer of `process` is due (claimed or not), if any: how long
    /// a runner may sleep.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`](crate::Error::Backend) when the service fails.
    fn next_due(&self, process: &str) -> impl Future<Output = Result<Option<SystemTime>>> + Send;
}
