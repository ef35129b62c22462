//! [`TantivyTarget`]: the [`ProjectionTarget`] that keeps read models in tantivy indexes on disk.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foldline::{
    Checkpoint, Commit, CommitOutcome, DeadLetter, DriverErrors, Error, NewSlot, ProjectionControl,
    ProjectionName, ProjectionTarget, ProjectorHeartbeat, Result, SlotId, SlotInfo, SlotState,
    StoreIdentity,
};
use tantivy::{Index, TantivyDocument};
use tracing::Instrument;

use crate::error::Tantivy;
use crate::index::{Payload, SlotIndex, blocking, is_not_owner};
use crate::layout::{CONTROL, Lease, ProjectionDir, STATUS, SlotMeta};
use crate::options::TantivyTargetOptions;
use crate::refusal::rejected;
use crate::schema::KeyField;
use crate::search::TantivySearcher;
use crate::writes::TantivyWrites;

/// A [`ProjectionTarget`] that keeps each projection's read model in tantivy indexes under a
/// root directory, one index per slot, with the checkpoint in each commit's payload.
///
/// Clones share the open indexes. Open one `TantivyTarget` per root and schema in a process:
/// it holds each slot's writer open after the first write, and tantivy's writer lock keeps
/// any other writer (another process, or another `TantivyTarget` on the same root) out of that
/// slot until [`release_lease`](ProjectionTarget::release_lease),
/// [`release_writer`](TantivyTarget::release_writer) or drop. Such a writer gets an
/// [`Error::Backend`] of kind [`NotOwner`](foldline::BackendErrorKind::NotOwner)
/// (transient) instead of writing.
///
/// Every tantivy and file-system call runs on tokio's blocking pool (`spawn_blocking`); the
/// futures need a tokio runtime. All methods are cancel safe in the sense that the work they
/// started runs to its end even if the future is dropped: a dropped `commit` may or may not
/// have been stored — read [`checkpoint`](ProjectionTarget::checkpoint) to know.
///
/// Dropping the last clone closes the writers it holds, which waits for their indexing
/// threads on the dropping thread (briefly, unless a merge is running); to close them on the
/// blocking pool instead, call [`release_writer`](TantivyTarget::release_writer) or
/// [`release_lease`](ProjectionTarget::release_lease) first.
#[derive(Clone)]
pub struct TantivyTarget {
    inner: Arc<Inner>,
}

struct Inner {
    options: TantivyTargetOptions,
    key: KeyField,
    /// One cell per slot this target touched. A cell's async mutex serialises the slot's
    /// writes in this process; its guard travels into the blocking task, so a cancelled
    /// caller cannot let a second write start before the first ends.
    cells: Mutex<HashMap<(ProjectionName, SlotId), SharedCell>>,
}

type SharedCell = Arc<tokio::sync::Mutex<Cell>>;

/// A slot as this target holds it: nothing yet, or its open index.
#[derive(Default)]
struct Cell {
    index: Option<SlotIndex>,
}

impl fmt::Debug for TantivyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TantivyTarget")
            .field("root", &self.inner.options.root())
            .field("key_field", &self.inner.options.key_field())
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// The slot's index, opened on first use; `None` when the slot does not exist (a vanished
    /// slot's writer is closed).
    fn index(
        &mut self,
        dir: &ProjectionDir,
        slot: SlotId,
        inner: &Inner,
    ) -> Result<Option<&mut SlotIndex>> {
        let path = dir.slot_dir(slot);
        if !path.is_dir() {
            self.index = None;
            return Ok(None);
        }
        if self.index.is_none() {
            let label = format!("slot {slot} of projection `{}`", dir.projection());
            match SlotIndex::open(path.clone(), slot, label, inner.options.schema()) {
                Ok(index) => self.index = Some(index),
                Err(_) if !path.is_dir() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(self.index.as_mut())
    }

    /// The payload of the slot's last commit; `None` when the slot does not exist (or was
    /// dropped while it was read).
    fn committed(
        &mut self,
        dir: &ProjectionDir,
        slot: SlotId,
        inner: &Inner,
    ) -> Result<Option<Payload>> {
        let Some(index) = self.index(dir, slot, inner)? else {
            return Ok(None);
        };
        match index.committed() {
            Ok(payload) => Ok(Some(payload)),
            Err(_) if !index.exists() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl TantivyTarget {
    /// A target over `options.root()`. Does no I/O: directories are created on first use.
    ///
    /// # Errors
    ///
    /// An [`Error::Backend`] of kind [`Rejected`](foldline::BackendErrorKind::Rejected) whose
    /// source is a [`TantivyTargetError`](crate::TantivyTargetError) when the key field is
    /// missing from the schema, not indexed, tokenized, or neither text nor u64.
    pub fn new(options: TantivyTargetOptions) -> Result<Self> {
        let key = KeyField::check(options.schema(), options.key_field())
            .map_err(|why| rejected("checking the schema of a tantivy target", why))?;
        Ok(TantivyTarget {
            inner: Arc::new(Inner {
                options,
                key,
                cells: Mutex::default(),
            }),
        })
    }

    /// The options the target was opened with.
    pub fn options(&self) -> &TantivyTargetOptions {
        &self.inner.options
    }

    /// A searcher over the active slot of `projection`, following every
    /// [`activate`](ProjectionTarget::activate). Keep it (and clone it): each searcher opens
    /// readers of its own.
    pub fn searcher(&self, projection: &ProjectionName) -> TantivySearcher {
        TantivySearcher::new(self.inner.options.root(), projection.clone())
    }

    /// The document with key `key` in `slot` of `projection` as last committed (any slot,
    /// active or not); `None` when there is none or the slot does not exist.
    ///
    /// # Errors
    ///
    /// A rejected key (not a u64 for a u64 key field); failures to read the index.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> Result<Option<TantivyDocument>> {
        let key = key.to_owned();
        self.with_cell(projection, slot, move |cell, dir, inner| {
            match cell.index(dir, slot, inner)? {
                Some(index) => index.get(&inner.key, &key),
                None => Ok(None),
            }
        })
        .await
    }

    /// Closes this target's writer of `slot` (if open), releasing tantivy's lock so another
    /// process can write the slot. The next write through this target opens it again.
    ///
    /// # Errors
    ///
    /// Only when the runtime shuts down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped, the writer is closed or stays open; either is consistent.
    pub async fn release_writer(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.with_cell(projection, slot, |cell, _, _| {
            if let Some(index) = &mut cell.index {
                index.close_writer();
            }
            Ok(())
        })
        .await
    }

    fn dir(&self, projection: &ProjectionName) -> ProjectionDir {
        ProjectionDir::new(self.inner.options.root(), projection)
    }

    fn cell(&self, projection: &ProjectionName, slot: SlotId) -> SharedCell {
        let mut cells = self
            .inner
            .cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry((projection.clone(), slot)).or_default())
    }

    fn forget_cell(&self, projection: &ProjectionName, slot: SlotId) {
        self.inner
            .cells
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(projection.clone(), slot));
    }

    /// Runs `work` on the blocking pool with `slot`'s cell locked.
    async fn with_cell<T, F>(&self, projection: &ProjectionName, slot: SlotId, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Cell, &ProjectionDir, &Inner) -> Result<T> + Send + 'static,
    {
        let mut cell = self.cell(projection, slot).lock_owned().await;
        let dir = self.dir(projection);
        let inner = Arc::clone(&self.inner);
        blocking(move || work(&mut cell, &dir, &inner)).await
    }

    /// Runs `work` on the blocking pool.
    async fn with_dir<T, F>(&self, projection: &ProjectionName, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ProjectionDir, &Inner) -> Result<T> + Send + 'static,
    {
        let dir = self.dir(projection);
        let inner = Arc::clone(&self.inner);
        blocking(move || work(&dir, &inner)).await
    }
}

/// A slot's state: `ACTIVE` names the active one; of the others, a slot that was never active
/// is building and one that was is retired.
fn state_of(slot: SlotId, meta: &SlotMeta, active: Option<SlotId>) -> SlotState {
    if active == Some(slot) {
        SlotState::Active
    } else if meta.state == SlotState::Building {
        SlotState::Building
    } else {
        SlotState::Retired
    }
}

fn slot_not_found(dir: &ProjectionDir, slot: SlotId) -> Error {
    Error::SlotNotFound {
        projection: dir.projection().clone(),
        slot,
    }
}

impl ProjectionTarget for TantivyTarget {
    type Writes = TantivyWrites;

    async fn slots(&self, projection: &ProjectionName) -> Result<Vec<SlotInfo>> {
        self.with_dir(projection, |dir, _| {
            let active = dir.active()?;
            let mut slots = Vec::new();
            for n in dir.slot_numbers()? {
                // A slot dropped since the listing has no slot.json any more: skip it.
                if let Some(meta) = dir.slot_meta(n)? {
                    let state = state_of(n, &meta, active);
                    slots.push(SlotInfo::new(n, meta.version, state, meta.store));
                }
            }
            Ok(slots)
        })
        .await
    }

    async fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> Result<SlotInfo> {
        let store = store.clone();
        self.with_dir(projection, move |dir, inner| {
            let lock = dir.lock()?;
            dir.remove_leftovers(&lock);
            let numbers = dir.slot_numbers()?;
            if how == NewSlot::Resume {
                let active = dir.active()?;
                for &n in numbers.iter().rev() {
                    if let Some(meta) = dir.slot_meta(n)?
                        && meta.version == version
                        && meta.store.as_ref() == Some(&store)
                        && state_of(n, &meta, active) == SlotState::Building
                    {
                        return Ok(SlotInfo::new(n, version, SlotState::Building, meta.store));
                    }
                }
            }
            let after_existing = numbers.last().map_or(SlotId::new(1), |n| n.next());
            let slot = dir.next_slot(&lock)?.max(after_existing);
            // Taken before the slot exists: a crash from here on never reuses the number.
            dir.set_next_slot(slot.next(), &lock)?;
            let build = dir.creating_dir(slot, &lock)?;
            let label = || format!("creating slot {slot} of projection `{}`", dir.projection());
            Index::create_in_dir(&build, inner.options.schema().clone())
                .map_err(|e| Tantivy::error(label(), e))?;
            let meta = SlotMeta {
                version,
                state: SlotState::Building,
                key_field: inner.options.key_field().to_owned(),
                store: Some(store.clone()),
            };
            dir.write_slot_meta(&build, &meta)?;
            dir.publish(&build, slot, &lock)?;
            tracing::debug!(projection = %dir.projection(), slot = slot.get(), version, "created slot");
            Ok(SlotInfo::new(slot, version, SlotState::Building, Some(store)))
        })
        .await
    }

    async fn activate(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.with_dir(projection, move |dir, _| {
            if !dir.slot_dir(slot).is_dir() {
                return Err(slot_not_found(dir, slot));
            }
            let lock = dir.lock()?;
            let mut meta = dir
                .slot_meta(slot)?
                .ok_or_else(|| slot_not_found(dir, slot))?;
            let previous = dir.active()?;
            // The switch readers see: one rename.
            dir.set_active(slot, &lock)?;
            // Bookkeeping for `slots` (ACTIVE wins over these if a crash comes between).
            if let Some(old) = previous.filter(|old| *old != slot)
                && let Some(mut old_meta) = dir.slot_meta(old)?
            {
                old_meta.state = SlotState::Retired;
                dir.write_slot_meta(&dir.slot_dir(old), &old_meta)?;
            }
            meta.state = SlotState::Active;
            dir.write_slot_meta(&dir.slot_dir(slot), &meta)?;
            tracing::debug!(projection = %dir.projection(), slot = slot.get(), ?previous, "activated slot");
            Ok(())
        })
        .await
    }

    async fn drop_slot(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.with_cell(projection, slot, move |cell, dir, _| {
            if !dir.slot_dir(slot).is_dir() {
                return Ok(());
            }
            let lock = dir.lock()?;
            if dir.active()? == Some(slot) {
                return Err(Error::SlotActive {
                    projection: dir.projection().clone(),
                    slot,
                });
            }
            // Close our writer first (a commit of ours cannot be running: we hold the cell),
            // then take the whole slot, checkpoint included, away in one rename.
            cell.index = None;
            dir.remove_slot(slot, &lock)?;
            tracing::debug!(projection = %dir.projection(), slot = slot.get(), "dropped slot");
            Ok(())
        })
        .await?;
        self.forget_cell(projection, slot);
        Ok(())
    }

    async fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> Result<()> {
        let store = store.clone();
        self.with_cell(projection, slot, move |cell, dir, inner| {
            let index = cell
                .index(dir, slot, inner)?
                .ok_or_else(|| slot_not_found(dir, slot))?;
            index.clear(inner.options.writer_memory())?;
            // Recorded after the checkpoint is back at the start: a crash between leaves an
            // empty slot naming the old store (refused until cleared again), never the old
            // store's checkpoint under the new store's name.
            let _lock = dir.lock()?;
            let mut meta = dir
                .slot_meta(slot)?
                .ok_or_else(|| slot_not_found(dir, slot))?;
            meta.store = Some(store);
            dir.write_slot_meta(&dir.slot_dir(slot), &meta)
        })
        .await
    }

    async fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Option<Checkpoint>> {
        self.with_cell(projection, slot, move |cell, dir, inner| {
            Ok(cell
                .committed(dir, slot, inner)?
                .map(|payload| payload.checkpoint().clone()))
        })
        .await
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<Self::Writes>,
    ) -> Result<CommitOutcome> {
        let span = tracing::info_span!(
            "tantivy.commit",
            projection = %projection,
            slot = slot.get(),
            writes = commit.writes.len(),
            park = commit.park.len(),
            unpark = commit.unpark.len(),
            checkpoint = %commit.checkpoint,
        );
        self.with_cell(projection, slot, move |cell, dir, inner| {
            let Some(index) = cell.index(dir, slot, inner)? else {
                return Ok(CommitOutcome::Moved { actual: None });
            };
            let outcome = index.commit(
                &inner.key,
                inner.options.schema(),
                inner.options.writer_memory(),
                commit,
            )?;
            if let CommitOutcome::Moved { actual } = &outcome {
                tracing::debug!(actual = ?actual, "checkpoint moved: nothing stored");
            }
            Ok(outcome)
        })
        .instrument(span)
        .await
    }

    /// Takes or renews the lease in `<slot>/lease.json` (owner and wall-clock expiry, compared
    /// under the projection's lock file), and opens the slot's writer for the holder: a lease
    /// is only granted if this target can also take tantivy's writer lock, so `Ok(false)` also
    /// when another process (or another `TantivyTarget`) holds the slot's writer.
    async fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        let owner = owner.to_owned();
        self.with_cell(projection, slot, move |cell, dir, inner| {
            if !dir.slot_dir(slot).is_dir() {
                return Err(slot_not_found(dir, slot));
            }
            let lock = dir.lock()?;
            let index = cell
                .index(dir, slot, inner)?
                .ok_or_else(|| slot_not_found(dir, slot))?;
            if let Some(lease) = dir.lease(slot)?
                && lease.owner != owner
                && lease.is_live()
            {
                return Ok(false);
            }
            match index.open_writer(inner.options.writer_memory()) {
                Ok(()) => {}
                Err(e) if is_not_owner(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
            dir.set_lease(slot, &Lease::new(&owner, ttl), &lock)?;
            Ok(true)
        })
        .await
    }

    /// Removes `<slot>/lease.json` if `owner` holds it, and closes this target's writer of
    /// the slot, so the next owner (maybe in another process) can open it.
    async fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> Result<()> {
        let owner = owner.to_owned();
        self.with_cell(projection, slot, move |cell, dir, _| {
            if !dir.slot_dir(slot).is_dir() {
                return Ok(());
            }
            let lock = dir.lock()?;
            if dir.lease(slot)?.is_some_and(|lease| lease.owner == owner) {
                dir.remove_lease(slot, &lock)?;
                if let Some(index) = &mut cell.index {
                    index.close_writer();
                }
            }
            Ok(())
        })
        .await
    }

    async fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Vec<DeadLetter>> {
        self.with_cell(projection, slot, move |cell, dir, inner| {
            Ok(cell
                .committed(dir, slot, inner)?
                .map(Payload::into_dead_letters)
                .unwrap_or_default())
        })
        .await
    }

    async fn control(&self, projection: &ProjectionName) -> Result<ProjectionControl> {
        self.with_dir(projection, |dir, _| {
            Ok(dir.read_file(CONTROL)?.unwrap_or_default())
        })
        .await
    }

    async fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> Result<()> {
        self.with_dir(projection, move |dir, _| dir.write_file(CONTROL, &control))
            .await
    }

    async fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        heartbeat: &ProjectorHeartbeat,
    ) -> Result<()> {
        let heartbeat = heartbeat.clone();
        self.with_dir(projection, move |dir, _| dir.write_file(STATUS, &heartbeat))
            .await
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        self.with_dir(projection, |dir, _| dir.read_file(STATUS))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<TantivyTarget>();
        send_sync::<TantivySearcher>();
        send_sync::<TantivyWrites>();
        send_sync::<TantivyTargetOptions>();
    }

    #[test]
    fn only_never_activated_slots_are_building() {
        let meta = |state| SlotMeta {
            version: 1,
            state,
            key_field: "id".into(),
            store: None,
        };
        assert_eq!(
            state_of(
                SlotId::new(2),
                &meta(SlotState::Building),
                Some(SlotId::new(2))
            ),
            SlotState::Active
        );
        assert_eq!(
            state_of(
                SlotId::new(2),
                &meta(SlotState::Building),
                Some(SlotId::new(1))
            ),
            SlotState::Building
        );
        // Marked active, but ACTIVE moved on (a crash between the switch and the bookkeeping).
        assert_eq!(
            state_of(
                SlotId::new(2),
                &meta(SlotState::Active),
                Some(SlotId::new(3))
            ),
            SlotState::Retired
        );
        assert_eq!(
            state_of(SlotId::new(2), &meta(SlotState::Retired), None),
            SlotState::Retired
        );
    }
}
