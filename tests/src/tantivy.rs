//! The tantivy target as the tests use it: indexes of counters in a temporary directory of
//! each test's own ([`TantivyTestDir`]), and the probe the target conformance suite reads and
//! writes them with.
//!
//! The counter schema has two fields, in this order: `key` (`STRING | STORED`, the key field)
//! and `value` (u64, `INDEXED | STORED | FAST`).

use std::path::Path;
use std::time::Duration;

use ::tantivy::TantivyDocument;
use ::tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, Value};
use foldline::testing::target_conformance::TargetProbe;
use foldline::{
    Checkpoint, Commit, CommitOutcome, DeadLetter, NewSlot, ProjectionControl, ProjectionName,
    ProjectionTarget, ProjectorHeartbeat, Result, SlotId, SlotInfo, StoreIdentity,
};
use foldline_tantivy::{TantivyTarget, TantivyTargetOptions, TantivyTestDir, TantivyWrites};

/// The counter schema's key field.
pub const KEY: Field = Field::from_field_id(0);

/// The counter schema's value field.
pub const VALUE: Field = Field::from_field_id(1);

/// `key` (the key field) and `value`, in that order (so [`KEY`] and [`VALUE`] name them).
pub fn counter_schema() -> Schema {
    let mut schema = Schema::builder();
    let key = schema.add_text_field("key", STRING | STORED);
    let value = schema.add_u64_field("value", INDEXED | STORED | FAST);
    debug_assert_eq!((key, value), (KEY, VALUE));
    schema.build()
}

/// A counter document holding `value` (the target adds the key).
pub fn counter(value: u64) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_u64(VALUE, value);
    doc
}

/// The value of a counter document.
pub fn value_of(doc: &TantivyDocument) -> Option<u64> {
    doc.get_first(VALUE).and_then(|v| v.as_u64())
}

/// The key of a counter document.
pub fn key_of(doc: &TantivyDocument) -> Option<String> {
    doc.get_first(KEY)
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// A target of counters under `root`.
///
/// # Panics
///
/// Never: the counter schema's key field is valid.
pub fn open(root: &Path) -> TantivyTarget {
    TantivyTarget::new(TantivyTargetOptions::new(root, counter_schema(), "key"))
        .expect("the counter schema's key field is valid")
}

/// A temporary root directory, deleted on drop, with a target of counters over it.
#[derive(Debug)]
pub struct TestRoot {
    // Declared before `dir`, so the target is dropped before the directory is deleted.
    target: TantivyProbe,
    dir: TantivyTestDir,
}

impl TestRoot {
    /// A fresh root and a target over it.
    ///
    /// # Panics
    ///
    /// When no temporary directory can be made.
    pub fn new() -> Self {
        let dir = TantivyTestDir::create(counter_schema(), "key")
            .expect("a temporary directory for a tantivy test");
        let target = TantivyProbe(dir.target().clone());
        TestRoot { target, dir }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The target (the conformance probe around it).
    pub fn probe(&self) -> TantivyProbe {
        self.target.clone()
    }

    /// The target.
    pub fn target(&self) -> &TantivyTarget {
        &self.target.0
    }

    /// A second, independent target over the same root (as another process would open it).
    pub fn reopen(&self) -> TantivyTarget {
        open(self.dir.path())
    }
}

impl Default for TestRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// [`TantivyTarget`] with the conformance suite's [`TargetProbe`]: a counter is a document
/// keyed by its name with its value in [`VALUE`]. (A newtype: neither the trait nor the target
/// belongs to this crate.)
#[derive(Clone, Debug)]
pub struct TantivyProbe(pub TantivyTarget);

impl TargetProbe for TantivyProbe {
    fn put(writes: &mut TantivyWrites, key: &str, value: u64) {
        writes.upsert(key, counter(value));
    }

    async fn read(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        key: &str,
    ) -> Result<Option<u64>> {
        Ok(self
            .0
            .get(projection, slot, key)
            .await?
            .as_ref()
            .and_then(value_of))
    }
}

impl ProjectionTarget for TantivyProbe {
    type Writes = TantivyWrites;

    async fn slots(&self, projection: &ProjectionName) -> Result<Vec<SlotInfo>> {
        self.0.slots(projection).await
    }

    async fn create_slot(
        &self,
        projection: &ProjectionName,
        version: u32,
        how: NewSlot,
        store: &StoreIdentity,
    ) -> Result<SlotInfo> {
        self.0.create_slot(projection, version, how, store).await
    }

    async fn activate(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.0.activate(projection, slot).await
    }

    async fn drop_slot(&self, projection: &ProjectionName, slot: SlotId) -> Result<()> {
        self.0.drop_slot(projection, slot).await
    }

    async fn clear_slot(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        store: &StoreIdentity,
    ) -> Result<()> {
        self.0.clear_slot(projection, slot, store).await
    }

    async fn checkpoint(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Option<Checkpoint>> {
        self.0.checkpoint(projection, slot).await
    }

    async fn commit(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        commit: Commit<TantivyWrites>,
    ) -> Result<CommitOutcome> {
        self.0.commit(projection, slot, commit).await
    }

    async fn acquire_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool> {
        self.0.acquire_lease(projection, slot, owner, ttl).await
    }

    async fn release_lease(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
        owner: &str,
    ) -> Result<()> {
        self.0.release_lease(projection, slot, owner).await
    }

    async fn dead_letters(
        &self,
        projection: &ProjectionName,
        slot: SlotId,
    ) -> Result<Vec<DeadLetter>> {
        self.0.dead_letters(projection, slot).await
    }

    async fn control(&self, projection: &ProjectionName) -> Result<ProjectionControl> {
        self.0.control(projection).await
    }

    async fn set_control(
        &self,
        projection: &ProjectionName,
        control: ProjectionControl,
    ) -> Result<()> {
        self.0.set_control(projection, control).await
    }

    async fn record_heartbeat(
        &self,
        projection: &ProjectionName,
        status: &ProjectorHeartbeat,
    ) -> Result<()> {
        self.0.record_heartbeat(projection, status).await
    }

    async fn heartbeat(&self, projection: &ProjectionName) -> Result<Option<ProjectorHeartbeat>> {
        self.0.heartbeat(projection).await
    }
}
