use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{
    Commit, CommitOutcome, DeadLetter, NewSlot, ProjectionControl, ProjectionTarget,
    ProjectorHeartbeat, SlotInfo, SlotState,
};
use crate::error::{Error, Result};
use crate::names::ProjectionName;
use crate::position::Checkpoint;
use crate::projection::target::SlotId;
use crate::store::StoreIdentity;

/// A read model an [`InMemoryTarget`] keeps: it applies one batch of writes at a time.
///
/// `foldline-redis` implements it for an in-memory keyspace that applies `RedisWrites`, so a
/// projection written for Redis runs unchanged without a server (tests, the embedded example).
pub trait MemoryModel: Default + Send + Sync + 'static {
    /// The batch of writes a projection's handler builds.
    type Writes: Default + Send + 'static;

    /// Applies one batch. Must not fail: model errors belong in the handler.
    fn apply(&mut self, writes: Self::Writes);
}

/// A [`ProjectionTarget`] in memory, with the same slots, leases, dead letters and control
/// flags as the real ones: for tests, and for examples that run without services.
///
/// Clones share the same data.
#[derive(Debug)]
pub struct InMemoryTarget<M> {
    inner: Arc<Mutex<HashMap<ProjectionName, Entry<M>>>>,
}

impl<M> Clone for InMemoryTarget<M> {
    fn clone(&self) -> Self {
        InMemoryTarget {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M> Default for InMemoryTarget<M> {
    fn default() -> Self {
        InMemoryTarget {
            inner: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct Entry<M> {
    slots: BTreeMap<SlotId, Slot<M>>,
    last_slot: SlotId,
    control: ProjectionControl,
    heartbeat: Option<ProjectorHeartbeat>,
}

impl<M> Default for Entry<M> {
    fn default() -> Self {
        Entry {
            slots: BTreeMap::new(),
            last_slot: SlotId::NONE,
            control: ProjectionControl::default(),
            heartbeat: None,
        }
    }
}

#[derive(Debug)]
struct Slot<M> {
    version: u32,
    state: SlotState,
    model: M,
    checkpoint: Checkpoint,
    dead_letters: Vec<DeadLetter>,
    lease: Option<(String, Instant)>,
    store: StoreIdentity,
}

impl<M: MemoryModel> InMemoryTarget<M> {
    /// An empty target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `read` on the active slot's model of `projection`; `None` when none is active.
    pub fn read<R>(&self, projection: &ProjectionName, read: impl FnOnce(&M) -> R) -> Option<R> {
        let inner = self.lock();
        let slot = inner
            .get(projection)?
            .slots
            .values()
            .find(|s| s.state == SlotState::Active)?;
        Some(read(&slot.model))
    }

    /// Runs `read` on the model of `slot` (active or not); `None` when the slot does not exist.
    pub fn read_slot<R>(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        read: impl FnOnce(&M) -> R,
    ) -> Option<R> {
        let inner = self.lock();
        let slot = inner.get(projection)?.slots.get(&slot)?;
        Some(read(&slot.model))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ProjectionName, Entry<M>>> {
        // Nothing here panics while holding the lock; recover the data if a caller's closure did.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on `slot` under the lock; `None` when the slot does not exist.
    fn find_slot<R>(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        f: impl FnOnce(&mut Slot<M>) -> R,
    ) -> Option<R> {
        let mut inner = self.lock();
        inner
            .get_mut(projection)
            .and_then(|p| p.slots.get_mut(&slot))
            .map(f)
    }

    /// [`find_slot`](Self::find_slot), with [`Error::SlotNotFound`] for a missing slot.
    fn with_slot<R>(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        f: impl FnOnce(&mut Slot<M>) -> R,
    ) -> Result<R> {
        self.find_slot(projection, slot, f)
            .ok_or_else(|| Error::SlotNotFound {
                projection: projection.clone(),
                slot,
            })
    }
}

impl<M: MemoryModel> ProjectionTarget for InMemoryTarget<M> {
    type Writes = M::Writes;

    async fn slots(&self, projection: &ProjectionName) -> Result<Vec<SlotInfo>> {
        let inner = self.lock();
        Ok(inner.get(projection).map_or_else(Vec::new, |p| {
            p.slots
                .iter()
                .map(|(n, s)| SlotInfo::new(*n, s.version, s.state, Some(s.store.clone())))
                .collect()
        }))
    }

    async fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> Result<SlotInfo> {
        let mut inner = self.lock();
        let entry = inner.entry(projection.clone()).or_default();
        if how == NewSlot::Resume {
            let building = entry.slots.iter().rev().find(|(_, s)| {
                s.state == SlotState::Building && s.version == version && s.store == *store
            });
            if let Some((n, s)) = building {
                return Ok(SlotInfo::new(*n, s.version, s.state, Some(s.store.clone())));
            }
        }
        entry.last_slot = entry.last_slot.next();
        let number = entry.last_slot;
        entry.slots.insert(
            number,
            Slot {
                version,
                state: SlotState::Building,
                model: M::default(),
                checkpoint: Checkpoint::START,
                dead_letters: Vec::new(),
                lease: None,
                store: store.clone(),
            },
        );
        Ok(SlotInfo::new(
            number,
            version,
            SlotState::Building,
            Some(store.clone()),
        ))
    }

    async fn activate(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        let mut inner = self.lock();
        let not_found = || Error::SlotNotFound {
            projection: projection.clone(),
            slot,
        };
        let entry = inner.get_mut(projection).ok_or_else(not_found)?;
        if !entry.slots.contains_key(&slot) {
            return Err(not_found());
        }
        for (n, s) in &mut entry.slots {
            if *n == slot {
                s.state = SlotState::Active;
            } else if s.state == SlotState::Active {
                s.state = SlotState::Retired;
            }
        }
        Ok(())
    }

    async fn drop_slot(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        let mut inner = self.lock();
        let Some(entry) = inner.get_mut(projection) else {
            return Ok(());
        };
        if entry
            .slots
            .get(&slot)
            .is_some_and(|s| s.state == SlotState::Active)
        {
            return Err(Error::SlotActive {
                projection: projection.clone(),
                slot,
            });
        }
        entry.slots.remove(&slot);
        Ok(())
    }

    async fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> Result<()> {
        self.with_slot(projection, slot, |s| {
            s.model = M::default();
            s.checkpoint = Checkpoint::START;
            s.dead_letters.clear();
            s.store = store.clone();
        })
    }

    async fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Option<Checkpoint>> {
        Ok(self.find_slot(projection, slot, |s| s.checkpoint.clone()))
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<Self::Writes>,
    ) -> Result<CommitOutcome> {
        let outcome = self.find_slot(projection, slot, |s| {
            if s.checkpoint != commit.expected {
                return CommitOutcome::Moved {
                    actual: Some(s.checkpoint.clone()),
                };
            }
            s.model.apply(commit.writes);
            s.checkpoint = commit.checkpoint;
            s.dead_letters
                .retain(|d| !commit.unpark.contains(&d.event_id));
            for letter in commit.park {
                if !s.dead_letters.iter().any(|d| d.event_id == letter.event_id) {
                    s.dead_letters.push(letter);
                }
            }
            CommitOutcome::Committed
        });
        Ok(outcome.unwrap_or(CommitOutcome::Moved { actual: None }))
    }

    async fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        self.with_slot(projection, slot, |s| {
            let now = Instant::now();
            match &s.lease {
                Some((holder, until)) if holder != owner && *until > now => false,
                _ => {
                    s.lease = Some((owner.to_owned(), now + ttl));
                    true
                }
            }
        })
    }

    async fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> Result<()> {
        self.find_slot(projection, slot, |s| {
            if s.lease.as_ref().is_some_and(|(holder, _)| holder == owner) {
                s.lease = None;
            }
        });
        Ok(())
    }

    async fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Vec<DeadLetter>> {
        Ok(self
            .find_slot(projection, slot, |s| s.dead_letters.clone())
            .unwrap_or_default())
    }

    async fn control(&self, projection: &ProjectionName) -> Result<ProjectionControl> {
        Ok(self
            .lock()
            .get(projection)
            .map(|p| p.control.clone())
            .unwrap_or_default())
    }

    async fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> Result<()> {
        self.lock().entry(projection.clone()).or_default().control = control;
        Ok(())
    }

    async fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        heartbeat: &ProjectorHeartbeat,
    ) -> Result<()> {
        self.lock().entry(projection.clone()).or_default().heartbeat = Some(heartbeat.clone());
        Ok(())
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        Ok(self
            .lock()
            .get(projection)
            .and_then(|p| p.heartbeat.clone()))
    }
}
