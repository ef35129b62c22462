//! The batch of writes a projection's handler builds for a tantivy index.

use tantivy::TantivyDocument;

/// A batch of writes to one tantivy index, in order: what a projection's handler builds and
/// [`TantivyTarget`](crate::TantivyTarget) commits together with the checkpoint.
///
/// It is plain data: a handler's unit test can inspect [`ops`](TantivyWrites::ops) without an
/// index.
///
/// Documents are identified by their key, held in the target's key field. An
/// [`upsert`](TantivyWrites::upsert) replaces every document with that key (delete by term,
/// then add), so replaying an event never duplicates a document.
///
/// ```
/// use foldline_tantivy::{TantivyOp, TantivyWrites};
/// use tantivy::TantivyDocument;
/// use tantivy::schema::{Schema, STORED, STRING, TEXT};
///
/// let mut schema = Schema::builder();
/// let _id = schema.add_text_field("id", STRING | STORED);
/// let title = schema.add_text_field("title", TEXT | STORED);
///
/// let mut writes = TantivyWrites::default();
/// let mut doc = TantivyDocument::new();
/// doc.add_text(title, "Dune");
/// writes.upsert("book-1", doc); // the target adds "book-1" to `id`
/// writes.delete("book-2");
/// assert_eq!(writes.len(), 2);
/// assert!(matches!(&writes.ops()[1], TantivyOp::Delete { key } if key == "book-2"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TantivyWrites {
    ops: Vec<TantivyOp>,
}

/// One write of a [`TantivyWrites`] batch.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TantivyOp {
    /// Replaces every document with key `key` by `doc`.
    Upsert {
        /// The document's key.
        key: String,
        /// The document.
        doc: TantivyDocument,
    },
    /// Deletes every document with key `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl TantivyOp {
    /// The key the write is about.
    pub fn key(&self) -> &str {
        match self {
            TantivyOp::Upsert { key, .. } | TantivyOp::Delete { key } => key,
        }
    }
}

impl TantivyWrites {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `doc` under `key`, replacing any document with that key.
    ///
    /// The key field is the target's: when `doc` has no value there, the target adds `key`;
    /// when it holds another value, the commit is refused
    /// ([`TantivyTargetError::KeyMismatch`](crate::TantivyTargetError::KeyMismatch)) and
    /// nothing of it is stored. For a u64 key field, `key` is the number in decimal.
    pub fn upsert(&mut self, key: impl Into<String>, doc: TantivyDocument) {
        self.ops.push(TantivyOp::Upsert {
            key: key.into(),
            doc,
        });
    }

    /// Deletes the document with key `key` (nothing when there is none).
    pub fn delete(&mut self, key: impl Into<String>) {
        self.ops.push(TantivyOp::Delete { key: key.into() });
    }

    /// The writes, in order.
    pub fn ops(&self) -> &[TantivyOp] {
        &self.ops
    }

    /// Takes the writes out, in order.
    pub fn into_ops(self) -> Vec<TantivyOp> {
        self.ops
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl Extend<TantivyOp> for TantivyWrites {
    fn extend<I: IntoIterator<Item = TantivyOp>>(&mut self, ops: I) {
        self.ops.extend(ops);
    }
}
