//! One slot's tantivy index: its reader, its writer, and the commit that stores writes together
//! with the checkpoint and the dead letters (the commit payload).
//!
//! Everything here blocks (tantivy's writer joins its indexing threads on commit, commits
//! fsync, readers read files): async code reaches it only through [`blocking`], which runs it
//! on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use foldline::{
    BackendErrorKind, Checkpoint, Commit, CommitOutcome, DeadLetter, DriverErrors, Error, Result,
    SlotId,
};
use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};
use uuid::Uuid;

use crate::error::Tantivy;
use crate::refusal::{TantivyTargetError, rejected};
use crate::schema::KeyField;
use crate::writes::{TantivyOp, TantivyWrites};

/// Runs `work` on tokio's blocking pool, inside the caller's tracing span.
///
/// The work runs to its end even when the returned future is dropped; a panic in it resumes
/// in the caller.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Closed {
            what: "tokio runtime",
        }),
    }
}

/// What a slot's last commit stored beside its documents: the JSON commit payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// The payload's format; 1 so far.
    format: u32,
    /// The slot's checkpoint.
    checkpoint: Checkpoint,
    /// The slot's dead letters, oldest first. Few by design, so they live here, where parking
    /// and unparking commit atomically with the checkpoint.
    #[serde(default)]
    dead_letters: Vec<DeadLetter>,
}

impl Payload {
    const FORMAT: u32 = 1;

    /// A fresh or cleared slot: checkpoint [`Checkpoint::START`], no dead letters.
    pub(crate) fn start() -> Self {
        Payload {
            format: Self::FORMAT,
            checkpoint: Checkpoint::START,
            dead_letters: Vec::new(),
        }
    }

    fn parse(payload: Option<&str>, label: &str) -> Result<Self> {
        let Some(text) = payload else {
            return Ok(Self::start());
        };
        let payload: Payload = serde_json::from_str(text).map_err(|e| {
            Tantivy::corrupt(
                format!("reading the commit payload of {label}"),
                Some(Box::new(e)),
            )
        })?;
        if payload.format != Self::FORMAT {
            return Err(Tantivy::corrupt(
                format!("reading the commit payload of {label}"),
                Some(
                    format!(
                        "payload format {} is newer than this version of foldline-tantivy reads",
                        payload.format
                    )
                    .into(),
                ),
            ));
        }
        Ok(payload)
    }

    pub(crate) fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub(crate) fn into_dead_letters(self) -> Vec<DeadLetter> {
        self.dead_letters
    }

    /// The payload after a commit to `checkpoint` that parks `park` and unparks `unpark`.
    fn next(&self, checkpoint: Checkpoint, park: Vec<DeadLetter>, unpark: &[Uuid]) -> Self {
        let mut dead_letters: Vec<DeadLetter> = self
            .dead_letters
            .iter()
            .filter(|d| !unpark.contains(&d.event_id))
            .cloned()
            .collect();
        for letter in park {
            if !dead_letters.iter().any(|d| d.event_id == letter.event_id) {
                dead_letters.push(letter);
            }
        }
        Payload {
            format: Self::FORMAT,
            checkpoint,
            dead_letters,
        }
    }

    fn to_json(&self, label: &str) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Encode {
            what: format!("the commit payload of {label}"),
            source: Box::new(e),
        })
    }
}

/// A reader of one slot's index that reloads only when the index has a newer commit.
pub(crate) struct SlotReader {
    index: Index,
    reader: IndexReader,
    /// The opstamp of the commit the reader was last loaded at.
    opstamp: AtomicU64,
}

impl SlotReader {
    /// Opens the index in `dir` for reading.
    pub(crate) fn open(dir: &Path) -> tantivy::Result<Self> {
        let index = Index::open_in_dir(dir)?;
        let opstamp = index.load_metas()?.opstamp;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SlotReader {
            index,
            reader,
            opstamp: AtomicU64::new(opstamp),
        })
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// A searcher over the slot's last commit (reloading the reader when it is behind).
    pub(crate) fn searcher(&self) -> tantivy::Result<Searcher> {
        let opstamp = self.index.load_metas()?.opstamp;
        if self.opstamp.load(Ordering::Acquire) != opstamp {
            self.reader.reload()?;
            self.opstamp.store(opstamp, Ordering::Release);
        }
        Ok(self.reader.searcher())
    }
}

/// The document holding `term` (a key term), if any.
pub(crate) fn find(searcher: &Searcher, term: Term) -> tantivy::Result<Option<TantivyDocument>> {
    let query = TermQuery::new(term, IndexRecordOption::Basic);
    let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
    top.first()
        .map(|(_, address)| searcher.doc(*address))
        .transpose()
}

/// One slot as a [`TantivyTarget`](crate::TantivyTarget) holds it open: reader always, writer
/// (and with it tantivy's directory lock) from the first write on.
pub(crate) struct SlotIndex {
    dir: PathBuf,
    /// `slot <n> of projection `<name>``, for error contexts.
    label: String,
    reader: SlotReader,
    writer: Option<OpenWriter>,
}

struct OpenWriter {
    writer: IndexWriter,
    /// The payload of the last commit; only this writer commits while it is open.
    committed: Payload,
}

impl SlotIndex {
    /// Opens slot `slot`'s index in `dir`, checking it was built with `schema`.
    pub(crate) fn open(dir: PathBuf, slot: SlotId, label: String, schema: &Schema) -> Result<Self> {
        let reader =
            SlotReader::open(&dir).map_err(|e| Tantivy::error(format!("opening {label}"), e))?;
        if reader.index.schema() != *schema {
            return Err(rejected(
                format!("opening {label}"),
                TantivyTargetError::SchemaMismatch { slot },
            ));
        }
        Ok(SlotIndex {
            dir,
            label,
            reader,
            writer: None,
        })
    }

    /// Whether the slot's directory is still there (dropping a slot renames it away first).
    pub(crate) fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// The payload of the slot's last commit.
    pub(crate) fn committed(&self) -> Result<Payload> {
        match &self.writer {
            Some(open) => Ok(open.committed.clone()),
            None => self.stored_payload(),
        }
    }

    /// The payload of the slot's last commit, as the index on disk has it.
    fn stored_payload(&self) -> Result<Payload> {
        let metas =
            self.reader.index.load_metas().map_err(|e| {
                Tantivy::error(format!("reading the checkpoint of {}", self.label), e)
            })?;
        Payload::parse(metas.payload.as_deref(), &self.label)
    }

    /// Opens the writer if it is not open yet: takes tantivy's lock on the index, so no other
    /// process (nor another target in this one) writes the slot while it is open.
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::NotOwner`] when another writer holds the lock.
    pub(crate) fn open_writer(&mut self, memory: usize) -> Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let writer = self
            .reader
            .index
            .writer(memory)
            .map_err(|e| Tantivy::error(format!("opening the writer of {}", self.label), e))?;
        // Read after taking the lock: no other writer can commit from here on.
        let committed = self.stored_payload()?;
        self.writer = Some(OpenWriter { writer, committed });
        Ok(())
    }

    /// Closes the writer (waits for its indexing threads), releasing tantivy's lock.
    pub(crate) fn close_writer(&mut self) {
        self.writer = None;
    }

    /// Stores `commit` if the slot's checkpoint is `commit.expected`: every write, then the new
    /// payload, in one tantivy commit.
    pub(crate) fn commit(
        &mut self,
        key: &KeyField,
        schema: &Schema,
        memory: usize,
        commit: Commit<TantivyWrites>,
    ) -> Result<CommitOutcome> {
        if !self.exists() {
            self.close_writer();
            return Ok(CommitOutcome::Moved { actual: None });
        }
        // Check every write before the writer sees any of them.
        let label = self.label.clone();
        let context = || format!("committing to {label}");
        let mut ops = Vec::with_capacity(commit.writes.len());
        for op in commit.writes.into_ops() {
            let term = key.term(op.key()).map_err(|why| rejected(context(), why))?;
            let doc = match op {
                TantivyOp::Upsert { key: k, doc } => Some(
                    key.prepare(schema, &k, doc)
                        .map_err(|why| rejected(context(), why))?,
                ),
                TantivyOp::Delete { .. } => None,
            };
            ops.push((term, doc));
        }
        self.open_writer(memory)?;
        let Some(open) = self.writer.as_mut() else {
            unreachable!("the writer was just opened");
        };
        if open.committed.checkpoint != commit.expected {
            return Ok(CommitOutcome::Moved {
                actual: Some(open.committed.checkpoint.clone()),
            });
        }
        let next = open
            .committed
            .next(commit.checkpoint, commit.park, &commit.unpark);
        let payload = next.to_json(&self.label)?;

        let mut prepared = false;
        let written = (|| {
            for (term, doc) in ops {
                open.writer.delete_term(term);
                if let Some(doc) = doc {
                    open.writer.add_document(doc)?;
                }
            }
            let mut commit = open.writer.prepare_commit()?;
            prepared = true;
            commit.set_payload(&payload);
            commit.commit()
        })();
        match written {
            Ok(_) => {
                open.committed = next;
                Ok(CommitOutcome::Committed)
            }
            Err(e) => {
                // Before `prepare_commit` nothing is stored: roll the writer back and keep it.
                // During the commit itself the outcome is unknown: drop the writer, so the next
                // commit reopens it and reads the checkpoint the index really has.
                if prepared || open.writer.rollback().is_err() {
                    self.close_writer();
                }
                if !self.exists() {
                    return Ok(CommitOutcome::Moved { actual: None });
                }
                Err(Tantivy::error(context(), e))
            }
        }
    }

    /// Deletes every document and commits checkpoint [`Checkpoint::START`] with no dead
    /// letters.
    pub(crate) fn clear(&mut self, memory: usize) -> Result<()> {
        self.open_writer(memory)?;
        let Some(open) = self.writer.as_mut() else {
            unreachable!("the writer was just opened");
        };
        let start = Payload::start();
        let payload = start.to_json(&self.label)?;
        let cleared = (|| {
            open.writer.delete_all_documents()?;
            let mut commit = open.writer.prepare_commit()?;
            commit.set_payload(&payload);
            commit.commit()
        })();
        match cleared {
            Ok(_) => {
                open.committed = start;
                Ok(())
            }
            Err(e) => {
                self.close_writer();
                Err(Tantivy::error(format!("clearing {}", self.label), e))
            }
        }
    }

    /// The document with key `key` in the slot's last commit.
    pub(crate) fn get(&self, key: &KeyField, name: &str) -> Result<Option<TantivyDocument>> {
        let context = || format!("reading key `{name}` in {}", self.label);
        let term = key.term(name).map_err(|why| rejected(context(), why))?;
        let searcher = self
            .reader
            .searcher()
            .map_err(|e| Tantivy::error(context(), e))?;
        find(&searcher, term).map_err(|e| Tantivy::error(context(), e))
    }
}

/// Whether `error` says another writer holds a slot's lock.
pub(crate) fn is_not_owner(error: &Error) -> bool {
    matches!(error, Error::Backend(e) if e.kind() == BackendErrorKind::NotOwner)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use foldline::{EventType, NewEvent, Position, RecordedEvent, StreamId, Version};

    use super::*;

    fn letter(n: u64) -> DeadLetter {
        let mut new = NewEvent::new(EventType::new("Happened").unwrap(), 1, b"{}".to_vec());
        new.event_id = Uuid::from_u128(u128::from(n));
        let event = RecordedEvent::from_new(
            new,
            StreamId::new("s-1").unwrap(),
            Version::new(n),
            Position::new(0, 0, n),
            SystemTime::UNIX_EPOCH,
        );
        DeadLetter::new(&event, "boom".into(), 3)
    }

    #[test]
    fn no_payload_is_a_fresh_slot() {
        assert_eq!(Payload::parse(None, "x").unwrap(), Payload::start());
    }

    #[test]
    fn payload_round_trips_and_parks_once() {
        let mut cp = Checkpoint::START;
        cp.advance(Position::new(0, 3, 9));
        let two = letter(2);
        let payload = Payload::start().next(cp.clone(), vec![letter(1), two.clone()], &[]);
        // Parking an event again keeps the first letter.
        let payload = payload.next(cp.clone(), vec![letter(2)], &[Uuid::from_u128(1)]);
        let text = payload.to_json("x").unwrap();
        let back = Payload::parse(Some(&text), "x").unwrap();
        assert_eq!(back, payload);
        assert_eq!(back.checkpoint(), &cp);
        assert_eq!(back.into_dead_letters(), vec![two]);
    }

    #[test]
    fn a_garbled_payload_is_corrupt() {
        let err = Payload::parse(Some("{not json"), "x").unwrap_err();
        assert!(matches!(&err, Error::Backend(e) if e.kind() == BackendErrorKind::Corrupt));
    }
}
