//! tantivy projection target for [foldline]: full-text read models, each commit
//! storing a batch of documents together with the checkpoint it leads to, exactly once in
//! effect.
//!
//! A projection's handler fills a [`TantivyWrites`] batch (upserts and deletes by key);
//! [`TantivyTarget`] commits it with the checkpoint in the same tantivy commit, only if the
//! slot's checkpoint is still the one the batch started from; [`TantivySearcher`] reads
//! whichever slot is active.
//!
//! # Quick start
//!
//! ```
//! use foldline::{
//!     Checkpoint, Commit, NewSlot, Position, ProjectionName, ProjectionTarget, StoreIdentity,
//! };
//! use foldline_tantivy::{TantivyTarget, TantivyTargetOptions, TantivyWrites};
//! use tantivy::TantivyDocument;
//! use tantivy::schema::{STORED, STRING, Schema, TEXT};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> foldline::Result<()> {
//! # let dir = tempfile::tempdir().expect("a temporary directory");
//! let mut schema = Schema::builder();
//! schema.add_text_field("id", STRING | STORED); // the key: one exact term per document
//! let title = schema.add_text_field("title", TEXT | STORED);
//! let options = TantivyTargetOptions::new(dir.path(), schema.build(), "id");
//! let target = TantivyTarget::new(options)?;
//!
//! let books = ProjectionName::new("books")?;
//! // The store whose feed the slot is built from (a projector passes its store's identity).
//! let store = StoreIdentity::new("example");
//! let slot = target.create_slot(&books, 1, NewSlot::Resume, &store).await?.slot;
//!
//! // What a projection's handler builds for a batch of events:
//! let mut writes = TantivyWrites::new();
//! let mut doc = TantivyDocument::new();
//! doc.add_text(title, "The Left Hand of Darkness");
//! writes.upsert("book-1", doc);
//!
//! let mut checkpoint = Checkpoint::START;
//! checkpoint.advance(Position::new(0, 0, 1));
//! target
//!     .commit(&books, slot, Commit::new(Checkpoint::START, checkpoint.clone(), writes))
//!     .await?;
//! assert_eq!(target.checkpoint(&books, slot).await?, Some(checkpoint));
//!
//! target.activate(&books, slot).await?;
//! let hits = target.searcher(&books).search("darkness", &["title"], 10).await?;
//! assert_eq!(hits.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! - **Layout.** Under the root, one directory per projection:
//!   ```text
//!   <root>/<projection>/
//!     ACTIVE          the active slot's number (the alias; replaced by one atomic rename)
//!     next_slot       the next slot's number (numbers are never reused)
//!     control.json    the operator's flags        status.json   the last projector report
//!     .lock           locked while slots are created, activated, dropped or leased
//!     slot-<n>/       a tantivy index, plus slot.json (version, state, key field) and
//!                     lease.json (owner, expiry)
//!   ```
//!   Small files are written to a temporary name, synced and renamed into place.
//! - **Checkpoints** are the tantivy commit payload (JSON: the checkpoint and the slot's dead
//!   letters), so documents, checkpoint and dead letters commit atomically. Each commit deletes
//!   by key term and adds, for every write, then `prepare_commit`, `set_payload`, `commit`; a
//!   failure before the commit rolls the writer back and stores nothing.
//! - **Conditional commits.** Each open slot has one writer, cached in the target; tantivy's
//!   writer lock keeps other processes out, and a per-slot async mutex serialises commits in
//!   this one, so comparing the last payload's checkpoint with the expected one and committing
//!   cannot interleave with another commit. A stale `expected` stores nothing and returns
//!   [`CommitOutcome::Moved`](foldline::CommitOutcome::Moved).
//! - **Blue/green.** Readers resolve `ACTIVE` on every read; dropping a slot renames its
//!   directory away first, so a projector still writing to it sees `Moved { actual: None }`.
//! - **Off the runtime.** Every tantivy call (writes, commits, reloads, searches) and every
//!   file-system call runs on tokio's blocking pool.
//! - **Errors** are `foldline::Error`s: tantivy and I/O failures are
//!   [`Error::Backend`](foldline::Error::Backend) (a busy writer lock is
//!   [`NotOwner`](foldline::BackendErrorKind::NotOwner)); what this crate refuses (a key field
//!   that is not one exact term, a document whose key field holds another key) carries a
//!   [`TantivyTargetError`] as its source.
//!
//! # Feature flags
//!
//! - `testing`: [`TantivyTestDir`], a temporary root directory per test with a target over
//!   it, deleted afterwards.
//!
//! It builds tantivy with `mmap` (indexes on disk) and `lz4-compression` (the doc store's
//! compressor) only; enable more in your own `tantivy` dependency — for instance `stemmer` or
//! `stopwords` for the tokenizers your schema names.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]
// Every fallible function returns `foldline::Error`, whose size is the core crate's to decide.
#![allow(clippy::result_large_err)]

mod error;
mod index;
mod layout;
mod options;
mod refusal;
mod schema;
mod search;
mod target;
#[cfg(feature = "testing")]
mod testing;
mod writes;

pub use options::{DEFAULT_WRITER_MEMORY, ENV_DIR, TantivyTargetOptions};
pub use refusal::TantivyTargetError;
pub use search::TantivySearcher;
pub use target::TantivyTarget;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub use testing::TantivyTestDir;
pub use writes::{TantivyOp, TantivyWrites};
