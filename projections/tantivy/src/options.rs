//! How to open a [`TantivyTarget`](crate::TantivyTarget): where, which schema, which key.

use std::path::{Path, PathBuf};

use tantivy::schema::Schema;

/// tantivy refuses a writer with less memory per indexing thread than this (15 MB).
pub(crate) const MIN_WRITER_MEMORY: usize = 15_000_000;

/// The writer memory when none is set: 50 MB.
pub const DEFAULT_WRITER_MEMORY: usize = 50_000_000;

/// The environment variable [`TantivyTargetOptions::from_env`] reads the root directory from.
pub const ENV_DIR: &str = "FOLDLINE_TANTIVY_DIR";

/// Options of a [`TantivyTarget`](crate::TantivyTarget): the root directory, the schema of
/// every index under it, and the field documents are keyed by.
///
/// ```
/// use foldline_tantivy::TantivyTargetOptions;
/// use tantivy::schema::{Schema, STORED, STRING, TEXT};
///
/// let mut schema = Schema::builder();
/// schema.add_text_field("id", STRING | STORED);
/// schema.add_text_field("title", TEXT | STORED);
/// let options = TantivyTargetOptions::new("/var/lib/app/search", schema.build(), "id")
///     .with_writer_memory(100_000_000);
/// assert_eq!(options.writer_memory(), 100_000_000);
/// ```
#[derive(Clone, Debug)]
pub struct TantivyTargetOptions {
    root: PathBuf,
    schema: Schema,
    key_field: String,
    writer_memory: usize,
}

impl TantivyTargetOptions {
    /// Indexes under `root` (one directory per projection, one index per slot), with
    /// `schema`, keyed by the field `key_field`.
    ///
    /// The key field must make each key exactly one term: a text field declared `STRING`
    /// (indexed, tokenizer `raw`) or an indexed u64 field. That is checked by
    /// [`TantivyTarget::new`](crate::TantivyTarget::new).
    pub fn new(root: impl Into<PathBuf>, schema: Schema, key_field: &str) -> Self {
        TantivyTargetOptions {
            root: root.into(),
            schema,
            key_field: key_field.to_owned(),
            writer_memory: DEFAULT_WRITER_MEMORY,
        }
    }

    /// Options for indexes under the directory in [`ENV_DIR`] (`FOLDLINE_TANTIVY_DIR`), as
    /// [`new`](TantivyTargetOptions::new) makes them; `None` when the variable is unset or
    /// empty.
    ///
    /// There is no default directory: an index belongs where the application keeps its data,
    /// so the caller decides what no directory means (a temporary one, an error).
    ///
    /// ```
    /// use foldline_tantivy::{ENV_DIR, TantivyTargetOptions};
    /// use tantivy::schema::{Schema, STORED, STRING};
    ///
    /// let mut schema = Schema::builder();
    /// schema.add_text_field("id", STRING | STORED);
    /// let root = match TantivyTargetOptions::from_env(schema.build(), "id") {
    ///     Some(options) => options.root().to_owned(),
    ///     None => std::env::temp_dir().join("search"),
    /// };
    /// # let _ = (root, ENV_DIR);
    /// ```
    pub fn from_env(schema: Schema, key_field: &str) -> Option<Self> {
        let root = std::env::var_os(ENV_DIR).filter(|dir| !dir.is_empty())?;
        Some(Self::new(root, schema, key_field))
    }

    /// The memory each open slot's writer may buffer before it writes a segment, in bytes
    /// (default [`DEFAULT_WRITER_MEMORY`]). tantivy needs at least 15 MB; less is raised to that.
    /// The writer splits it over up to one indexing thread per core, 15 MB each at least.
    pub fn with_writer_memory(mut self, bytes: usize) -> Self {
        self.writer_memory = bytes.max(MIN_WRITER_MEMORY);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The schema of every index.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The name of the key field.
    pub fn key_field(&self) -> &str {
        &self.key_field
    }

    /// The writer memory of each open slot, in bytes.
    pub fn writer_memory(&self) -> usize {
        self.writer_memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_memory_is_at_least_tantivys_minimum() {
        let options = TantivyTargetOptions::new("/x", Schema::builder().build(), "id");
        assert_eq!(options.writer_memory(), DEFAULT_WRITER_MEMORY);
        assert_eq!(
            options.with_writer_memory(1_000).writer_memory(),
            MIN_WRITER_MEMORY
        );
    }
}
