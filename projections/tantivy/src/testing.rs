//! Test support (feature `testing`): a temporary root directory per test.

use std::path::Path;

use foldline::Result;
use tantivy::schema::Schema;
use tempfile::TempDir;

use crate::error::io_error;
use crate::options::TantivyTargetOptions;
use crate::target::TantivyTarget;

/// A temporary root directory `foldline-tantivy-<random>`, with a target over it. Dropping
/// it deletes the directory and every index in it, so tests never see each other's indexes.
///
/// ```
/// use foldline::{NewSlot, ProjectionName, ProjectionTarget, SlotId, StoreIdentity};
/// use foldline_tantivy::TantivyTestDir;
/// use tantivy::schema::{Schema, STORED, STRING};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let mut schema = Schema::builder();
/// schema.add_text_field("id", STRING | STORED);
/// let test = TantivyTestDir::create(schema.build(), "id")?;
/// let books = ProjectionName::new("books")?;
/// let slot = test.target().create_slot(&books, 1, NewSlot::Fresh, &StoreIdentity::new("example")).await?;
/// assert_eq!(slot.slot, SlotId::new(1));
/// assert!(test.path().join("books").is_dir());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TantivyTestDir {
    // Declared before `dir`, so the target (its writers and readers) is dropped before the
    // directory is deleted.
    target: TantivyTarget,
    dir: TempDir,
}

impl TantivyTestDir {
    /// Creates a temporary directory and a target over it, with `schema`, keyed by
    /// `key_field`, and the other options at their defaults.
    ///
    /// # Errors
    ///
    /// When no temporary directory can be made, or as
    /// [`TantivyTarget::new`] (a key field it cannot key documents by).
    pub fn create(schema: Schema, key_field: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("foldline-tantivy-")
            .tempdir()
            .map_err(|e| io_error("creating a temporary directory for a test", e))?;
        let target = TantivyTarget::new(TantivyTargetOptions::new(dir.path(), schema, key_field))?;
        Ok(TantivyTestDir { target, dir })
    }

    /// The target over the directory.
    pub fn target(&self) -> &TantivyTarget {
        &self.target
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A second, independent target over the same directory, with the same options, as
    /// another process would open it.
    ///
    /// # Errors
    ///
    /// As [`TantivyTarget::new`].
    pub fn open_another(&self) -> Result<TantivyTarget> {
        TantivyTarget::new(self.target.options().clone())
    }
}
