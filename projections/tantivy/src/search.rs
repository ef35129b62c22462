//! [`TantivySearcher`]: reads whatever slot of a projection is active, following the alias.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use foldline::{BackendErrorKind, DriverErrors, ProjectionName, Result, SlotId};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::{Score, Searcher, TantivyDocument};

use crate::error::Tantivy;
use crate::index::{SlotReader, blocking, find};
use crate::layout::ProjectionDir;
use crate::refusal::{TantivyTargetError, rejected};
use crate::schema::KeyField;

/// How many times one read resolves the alias and tries to open the slot it found.
const RESOLVE_ATTEMPTS: usize = 5;

/// Reads a projection's active slot: resolves the alias (`ACTIVE`) on every call, so it
/// follows blue/green rebuilds without a restart, and every result comes from one slot's one
/// commit, never a mix.
///
/// It keeps a reader open per slot it reads, reloaded when the slot has a newer commit. It
/// needs no [`TantivyTarget`](crate::TantivyTarget) and takes no lock: run it in any process
/// that sees the root directory. All index work runs on tokio's blocking pool. Clones share
/// the readers.
///
/// ```no_run
/// use foldline::ProjectionName;
/// use foldline_tantivy::TantivySearcher;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let books = TantivySearcher::new("/var/lib/app/search", ProjectionName::new("books")?);
/// for (score, doc) in books.search("title:dune", &["title", "body"], 10).await? {
///     # let _ = (score, doc);
/// }
/// let one = books.get("book-1").await?;
/// # let _ = one;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TantivySearcher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: ProjectionDir,
    readers: Mutex<HashMap<SlotId, Arc<OpenSlot>>>,
}

struct OpenSlot {
    reader: SlotReader,
    key: KeyField,
}

impl std::fmt::Debug for OpenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSlot")
            .field("key", &self.key.name())
            .finish_non_exhaustive()
    }
}

impl TantivySearcher {
    /// A searcher over `projection` under the root directory `root` (the
    /// [`TantivyTargetOptions`](crate::TantivyTargetOptions) root). Does no I/O.
    pub fn new(root: impl Into<PathBuf>, projection: ProjectionName) -> Self {
        let root = root.into();
        TantivySearcher {
            inner: Arc::new(Inner {
                dir: ProjectionDir::new(&root, &projection),
                readers: Mutex::default(),
            }),
        }
    }

    /// The projection read.
    pub fn projection(&self) -> &ProjectionName {
        self.inner.dir.projection()
    }

    /// The slot readers see now; `None` before any slot was activated.
    ///
    /// # Errors
    ///
    /// When `ACTIVE` cannot be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn active_slot(&self) -> Result<Option<SlotId>> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.dir.active()).await
    }

    /// The best `limit` documents for `query` in the active slot, best first, with their
    /// scores. `query` is in tantivy's query language; terms that name no field are looked
    /// up in `default_fields`. Empty when no slot is active.
    ///
    /// # Errors
    ///
    /// [`Rejected`](foldline::BackendErrorKind::Rejected) for a query that does not parse or
    /// a default field the schema lacks; failures to read the index.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads (a search already running on the blocking pool finishes
    /// there, unseen).
    pub async fn search(
        &self,
        query: &str,
        default_fields: &[&str],
        limit: usize,
    ) -> Result<Vec<(Score, TantivyDocument)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = query.to_owned();
        let fields: Vec<String> = default_fields.iter().map(|f| (*f).to_owned()).collect();
        let found = self
            .with_active(move |slot, open, searcher| {
                let index = open.reader.index();
                let schema = index.schema();
                let fields = fields
                    .iter()
                    .map(|name| {
                        schema.get_field(name).map_err(|_| {
                            rejected(
                                format!("searching slot {slot}"),
                                TantivyTargetError::SearchFieldMissing {
                                    field: name.clone(),
                                },
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let parsed = QueryParser::for_index(index, fields)
                    .parse_query(&query)
                    .map_err(|e| {
                        Tantivy::failure(
                            BackendErrorKind::Rejected,
                            format!("parsing query `{query}`"),
                            Some(Box::new(e)),
                        )
                    })?;
                let context = || format!("searching slot {slot} for `{query}`");
                let top = searcher
                    .search(&parsed, &TopDocs::with_limit(limit).order_by_score())
                    .map_err(|e| Tantivy::error(context(), e))?;
                top.into_iter()
                    .map(|(score, address)| {
                        searcher
                            .doc(address)
                            .map(|doc| (score, doc))
                            .map_err(|e| Tantivy::error(context(), e))
                    })
                    .collect()
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// The document with key `key` in the active slot; `None` when there is none or no slot
    /// is active.
    ///
    /// # Errors
    ///
    /// A key the key field cannot hold (not a u64 for a u64 key field); failures to read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn get(&self, key: &str) -> Result<Option<TantivyDocument>> {
        let key = key.to_owned();
        let found = self
            .with_active(move |slot, open, searcher| {
                let context = || format!("reading key `{key}` in slot {slot}");
                let term = open
                    .key
                    .term(&key)
                    .map_err(|why| rejected(context(), why))?;
                find(searcher, term).map_err(|e| Tantivy::error(context(), e))
            })
            .await?;
        Ok(found.flatten())
    }

    /// Runs `read` on a searcher of the active slot's last commit (any collector, any query);
    /// `None` when no slot is active. `read` gets the slot's number too.
    ///
    /// # Errors
    ///
    /// What `read` returns, as a backend error; failures to open the slot.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe as far as foldline goes; once started on the blocking pool, `read` runs to
    /// its end, unseen.
    pub async fn read<R, F>(&self, read: F) -> Result<Option<R>>
    where
        R: Send + 'static,
        F: FnOnce(SlotId, &Searcher) -> tantivy::Result<R> + Send + 'static,
    {
        self.with_active(move |slot, _, searcher| {
            read(slot, searcher).map_err(|e| Tantivy::error(format!("reading slot {slot}"), e))
        })
        .await
    }

    /// Resolves the alias, opens (or reloads) that slot's reader and runs `read` on one
    /// searcher of it. When the reader cannot be made ready — the slot was dropped right after
    /// an alias switch, or another process's writer deleted merged-away segment files between
    /// the reader's look at the index and its opening them — it forgets that reader and
    /// resolves again, a bounded number of times. Once `read` has a searcher, the files it
    /// uses stay readable to it even if they are deleted meanwhile.
    async fn with_active<R, F>(&self, read: F) -> Result<Option<R>>
    where
        R: Send + 'static,
        F: FnOnce(SlotId, &OpenSlot, &Searcher) -> Result<R> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut attempt = 1;
            loop {
                let Some(slot) = inner.dir.active()? else {
                    return Ok(None);
                };
                match inner.searcher(slot) {
                    Ok((open, searcher)) => return read(slot, &open, &searcher).map(Some),
                    Err(e) if attempt == RESOLVE_ATTEMPTS => return Err(e),
                    Err(_) => inner.forget(slot),
                }
                attempt += 1;
            }
        })
        .await
    }
}

impl Inner {
    /// An up-to-date searcher of `slot`, opening its reader on first use and closing readers
    /// of other slots (they are no longer active).
    fn searcher(&self, slot: SlotId) -> Result<(Arc<OpenSlot>, Searcher)> {
        let cached = {
            let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
            readers.retain(|n, _| *n == slot);
            readers.get(&slot).cloned()
        };
        let open = match cached {
            Some(open) => open,
            None => {
                let open = Arc::new(self.open(slot)?);
                self.readers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(slot, Arc::clone(&open));
                open
            }
        };
        let searcher = open.reader.searcher().map_err(|e| {
            Tantivy::error(
                format!(
                    "reloading slot {slot} of projection `{}`",
                    self.dir.projection()
                ),
                e,
            )
        })?;
        Ok((open, searcher))
    }

    fn open(&self, slot: SlotId) -> Result<OpenSlot> {
        let label = format!("slot {slot} of projection `{}`", self.dir.projection());
        let meta = self.dir.slot_meta(slot)?.ok_or_else(|| {
            Tantivy::failure(
                BackendErrorKind::Unavailable,
                format!("opening {label}: it does not exist"),
                None,
            )
        })?;
        let reader = SlotReader::open(&self.dir.slot_dir(slot))
            .map_err(|e| Tantivy::error(format!("opening {label}"), e))?;
        let key = KeyField::check(&reader.index().schema(), &meta.key_field)
            .map_err(|why| Tantivy::corrupt(format!("opening {label}"), Some(Box::new(why))))?;
        Ok(OpenSlot { reader, key })
    }

    fn forget(&self, slot: SlotId) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&slot);
    }
}
