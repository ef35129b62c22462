//! `InMemoryTimerStore`: timers in a map, for tests and the embedded example.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::timer::{Timer, TimerStore};
use crate::error::Result;
use crate::names::StreamId;

/// A [`TimerStore`] in memory: clones share the timers; they are gone with the process.
#[derive(Clone, Debug, Default)]
pub struct InMemoryTimerStore {
    timers: Arc<Mutex<HashMap<Uuid, Stored>>>,
}

#[derive(Debug)]
struct Stored {
    timer: Timer,
    claimed_until: Option<SystemTime>,
}

impl InMemoryTimerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Stored>) -> T) -> T {
        f(&mut self.timers.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The timers, earliest first (ties by id, so the order is stable).
fn sorted<'a>(timers: impl Iterator<Item = &'a Stored>) -> Vec<Timer> {
    let mut found: Vec<Timer> = timers.map(|stored| stored.timer.clone()).collect();
    found.sort_by_key(|timer| (timer.due_at, timer.id));
    found
}

impl TimerStore for InMemoryTimerStore {
    async fn schedule(&self, timer: Timer) -> Result<()> {
        self.with(|timers| {
            timers.entry(timer.id).or_insert(Stored {
                timer,
                claimed_until: None,
            });
        });
        Ok(())
    }

    async fn cancel(&self, process: &str, instance: &StreamId, timeout: &[u8]) -> Result<u64> {
        Ok(self.with(|timers| {
            let before = timers.len();
            timers.retain(|_, stored| {
                let t = &stored.timer;
                !(t.process == process && t.instance == *instance && t.timeout == timeout)
            });
            (before - timers.len()) as u64
        }))
    }

    async fn cancel_all(&self, process: &str, instance: &StreamId) -> Result<u64> {
        Ok(self.with(|timers| {
            let before = timers.len();
            timers.retain(|_, stored| {
                !(stored.timer.process == process && stored.timer.instance == *instance)
            });
            (before - timers.len()) as u64
        }))
    }

    async fn claim_due(
        &self,
        process: &str,
        now: SystemTime,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Timer>> {
        Ok(self.with(|timers| {
            let mut due: Vec<&mut Stored> = timers
                .values_mut()
                .filter(|stored| {
                    stored.timer.process == process
                        && stored.timer.due_at <= now
                        && stored.claimed_until.is_none_or(|until| until <= now)
                })
                .collect();
            due.sort_by_key(|stored| (stored.timer.due_at, stored.timer.id));
            due.into_iter()
                .take(limit)
                .map(|stored| {
                    stored.claimed_until = Some(now + lease);
                    stored.timer.clone()
                })
                .collect()
        }))
    }

    async fn remove(&self, id: Uuid) -> Result<()> {
        self.with(|timers| timers.remove(&id));
        Ok(())
    }

    async fn pending(&self, process: &str, instance: &StreamId) -> Result<Vec<Timer>> {
        Ok(self.with(|timers| {
            sorted(timers.values().filter(|stored| {
                stored.timer.process == process && stored.timer.instance == *instance
            }))
        }))
    }

    async fn next_due(&self, process: &str) -> Result<Option<SystemTime>> {
        Ok(self.with(|timers| {
            timers
                .values()
                .filter(|stored| stored.timer.process == process)
                .map(|stored| stored.timer.due_at)
                .min()
        }))
    }
}
