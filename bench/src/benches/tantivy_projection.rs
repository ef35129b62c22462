//! `tantivy-projection`: a catch-up of `--events` events (default 200 000) from the in-memory
//! store through a `Projector` into a Tantivy index, against bare Tantivy indexing of the same
//! documents with commits at the same cadence.
//!
//! # What is measured
//!
//! - **Value**: `Projector::catch_up` of the [`Notes`] projection (one document per event)
//!   into a `TantivyTarget` in a temporary directory, from an empty target to the store's
//!   head, in documents/s: reading the feed, decoding every event, building its document,
//!   and committing each batch (delete by key term + add per document, `prepare_commit`,
//!   checkpoint as the commit payload, `commit`) on the blocking pool, batches of `--batch`
//!   events (default 10 000).
//! - **Limit**: bare Tantivy in another temporary directory: the same schema and writer
//!   memory (`Index::writer(50 MB)`, one indexing thread per core as the target's), the same
//!   documents built from the events already decoded in memory, the same upsert
//!   (`delete_term` + `add_document`), and a commit (with a payload) after exactly as many
//!   documents as each of the projector's commits held: commits are the dominant cost, so both
//!   sides commit at the same cadence. The writer is closed at the end of both (the projector
//!   closes it when it gives up its lease). Target: 0.7× the limit.
//!
//! The projector's batch is an upper bound: a commit takes what the runtime has read ahead
//! (at most a few store batches), so the mean documents per commit is reported beside the
//! batch size, and when it is smaller than the batch, the limit is also measured with
//! commits of exactly `--batch` documents (`limit-at-batch`, diagnostic).
//!
//! # The documents
//!
//! Schema: `key` (event id, `STRING | STORED`), `stream` (`STRING`), `amount` (u64,
//! `INDEXED | STORED`), `memo` (`TEXT | STORED`). Events are appended to streams of 10; each
//! memo is 4 to 12 words drawn with a skew from a list of 256 (common words are common), half
//! of them with a reference number (a term of its own), so the inverted index does real work.
//! The generator is seeded: every run indexes the same text.
//!
//! # Keeping it fair
//!
//! Each pass starts from an empty directory on the same file system (the system temporary
//! directory), and the rounds alternate: projector, then limit. Both check the index holds
//! `--events` documents. Of `--rounds` rounds, the one with the median ratio is reported (its
//! value and limit: the two passes of a round ran back to back, under the same load from the
//! rest of the machine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use foldline::{
    BoxError, Checkpoint, DomainEvent, Envelope, EventStore, EventStoreExt, ExpectedVersion,
    InMemoryEventStore, JsonCodec, Projection, ProjectionName, Projector, ProjectorOptions,
    StreamId,
};
use foldline_tantivy::{TantivyTarget, TantivyTargetOptions, TantivyWrites};
use serde::{Deserialize, Serialize};
use tantivy::schema::{Field, INDEXED, STORED, STRING, Schema, TEXT};
use tantivy::{Index, TantivyDocument, Term};

use super::Options;
use crate::machine::Usage;
use crate::metered::{CatchUp, CommitLog, MeteredTarget, PassDetail, snapshot};
use crate::report::Figure;
use crate::stats::{median_round, per_second, size_f64};

const NAME: &str = "tantivy-projection";
/// Its figures and rounds' detail.
const CATCH_UP: CatchUp = CatchUp {
    name: NAME,
    limit: "bare tantivy",
    unit: "docs/s",
    noun: "documents",
};
/// Events indexed unless `--events` says otherwise.
const EVENTS: u64 = 200_000;
/// The projector's batch size unless `--batch` says otherwise.
const BATCH: usize = 10_000;
/// Writer memory on both sides: the target's default.
const WRITER_MEMORY: usize = foldline_tantivy::DEFAULT_WRITER_MEMORY;
/// Events per stream.
const PER_STREAM: u64 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
pub(crate) enum NoteEvent {
    Noted { amount: u64, memo: String },
}

pub(super) async fn run(options: Options) -> anyhow::Result<Vec<Figure>> {
    ensure!(options.rounds >= 1, "--rounds must be at least 1");
    let events = options.events_or(EVENTS);
    let batch = options.batch_or(BATCH);
    ensure!(batch >= 1, "--batch must be at least 1");
    ensure!(events >= 1, "--events must be at least 1");

    let started = Instant::now();
    let store = populate(events).await?;
    let fields = Fields::new();
    let docs = Arc::new(load(&store).await?);
    eprintln!(
        "   {events} events in the in-memory store, read back and decoded for the limit in \
         {:.1} s; batches of {batch}, writer memory {} MB",
        started.elapsed().as_secs_f64(),
        WRITER_MEMORY / 1_000_000
    );

    let mut rounds = Vec::new();
    let mut uniform = Vec::new();
    let mut per_commit = Vec::new();
    for round in 1..=options.rounds {
        let usage = Usage::start();
        let pass = project(&store, &fields, batch, events).await?;
        let value_usage = usage.finish();
        let log = &pass.log;
        log.check(events, "documents")?;
        let value = per_second(events, pass.elapsed);

        let usage = Usage::start();
        let elapsed = index_bare(&fields, Arc::clone(&docs), log.sizes.clone()).await?;
        let limit_usage = usage.finish();
        let limit = per_second(events, elapsed);

        let detail = CATCH_UP.round_detail(
            (round, options.rounds),
            PassDetail {
                rate: limit,
                elapsed,
                usage: &limit_usage,
            },
            PassDetail {
                rate: value,
                elapsed: pass.elapsed,
                usage: &value_usage,
            },
            log,
        );
        eprintln!("{detail}");
        // Commits smaller than the batch: also the limit at the configured cadence.
        if log.mean() < 0.95 * size_f64(batch) {
            let sizes = cadence(docs.len(), batch);
            let usage = Usage::start();
            let elapsed = index_bare(&fields, Arc::clone(&docs), sizes).await?;
            let at_batch = per_second(events, elapsed);
            eprintln!(
                "   {:>13}bare tantivy committing every {batch} documents: {at_batch:.0} \
                 docs/s ({:.2} s; {})",
                "",
                elapsed.as_secs_f64(),
                usage.finish()
            );
            uniform.push((value, at_batch));
        }
        rounds.push((value, limit));
        per_commit.push(log.mean());
    }

    let mut figures = CATCH_UP.figures(&rounds, batch, &per_commit);
    if !uniform.is_empty() {
        let (value, at_batch) = median_round(&uniform);
        figures.push(Figure::against(
            format!("{NAME}/limit-at-batch"),
            value,
            at_batch,
            "docs/s",
        ));
    }
    Ok(figures)
}

/// The index's fields.
#[derive(Debug, Clone)]
struct Fields {
    schema: Schema,
    key: Field,
    stream: Field,
    amount: Field,
    memo: Field,
}

impl Fields {
    fn new() -> Self {
        let mut schema = Schema::builder();
        let key = schema.add_text_field("key", STRING | STORED);
        let stream = schema.add_text_field("stream", STRING);
        let amount = schema.add_u64_field("amount", INDEXED | STORED);
        let memo = schema.add_text_field("memo", TEXT | STORED);
        Fields {
            schema: schema.build(),
            key,
            stream,
            amount,
            memo,
        }
    }

    /// The document of one event, without its key (the target adds it).
    fn document(&self, stream: &str, amount: u64, memo: &str) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_text(self.stream, stream);
        doc.add_u64(self.amount, amount);
        doc.add_text(self.memo, memo);
        doc
    }
}

/// One document per `Noted` event, keyed by event id.
#[derive(Debug, Clone)]
struct Notes {
    fields: Fields,
}

impl Projection for Notes {
    const NAME: ProjectionName = ProjectionName::from_static("notes");
    type Event = NoteEvent;
    type Writes = TantivyWrites;

    fn handle(
        &self,
        event: Envelope<'_, NoteEvent>,
        writes: &mut TantivyWrites,
    ) -> Result<(), BoxError> {
        let NoteEvent::Noted { amount, memo } = &event.event;
        let doc = self
            .fields
            .document(event.recorded.stream_id.as_str(), *amount, memo);
        writes.upsert(event.recorded.event_id.to_string(), doc);
        Ok(())
    }
}

/// Fills a fresh in-memory store with `events` events, in streams of [`PER_STREAM`].
async fn populate(events: u64) -> anyhow::Result<InMemoryEventStore> {
    let store = InMemoryEventStore::new();
    let mut memos = Memos::new(0x5eed);
    let mut written = 0;
    let mut stream = 0u64;
    while written < events {
        let count = PER_STREAM.min(events - written);
        let batch: Vec<NoteEvent> = (0..count)
            .map(|_| NoteEvent::Noted {
                amount: memos.amount(),
                memo: memos.memo(),
            })
            .collect();
        let id = StreamId::new(format!("note-{stream}"))?;
        store
            .append_events(id, ExpectedVersion::NoStream, &batch)
            .await?;
        written += count;
        stream += 1;
    }
    Ok(store)
}

/// One event, decoded, as the limit indexes it.
#[derive(Debug)]
struct Doc {
    key: String,
    stream: String,
    amount: u64,
    memo: String,
}

/// Reads the whole store and decodes every event.
async fn load(store: &InMemoryEventStore) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    let mut checkpoint = Checkpoint::START;
    loop {
        let batch = store.read_all(&checkpoint, 10_000).await?;
        if batch.is_empty() {
            return Ok(docs);
        }
        for recorded in &batch.events {
            let NoteEvent::Noted { amount, memo } = recorded.decode::<NoteEvent, _>(&JsonCodec)?;
            docs.push(Doc {
                key: recorded.event_id.to_string(),
                stream: recorded.stream_id.as_str().to_owned(),
                amount,
                memo,
            });
        }
        checkpoint = batch.checkpoint;
    }
}

/// One catch-up through the projector.
struct Pass {
    elapsed: Duration,
    log: CommitLog,
}

/// Catches the projection up into an empty target in a temporary directory and checks it
/// holds every document.
async fn project(
    store: &InMemoryEventStore,
    fields: &Fields,
    batch: usize,
    events: u64,
) -> anyhow::Result<Pass> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let options = TantivyTargetOptions::new(dir.path(), fields.schema.clone(), "key")
        .with_writer_memory(WRITER_MEMORY);
    let target = MeteredTarget::new(TantivyTarget::new(options)?, TantivyWrites::len);
    let log = target.log();
    let projection = Notes {
        fields: fields.clone(),
    };
    let projector = Projector::new(store.clone(), projection, target)
        .with_options(ProjectorOptions::new().with_batch_size(batch));
    let started = Instant::now();
    let progress = projector.catch_up().await?;
    let elapsed = started.elapsed();
    let applied = progress.applied + progress.skipped;
    ensure!(
        applied == events,
        "the projector handled {applied} of {events} events"
    );
    let docs = projector
        .target()
        .inner()
        .searcher(&Notes::NAME)
        .read(|_, searcher| Ok(searcher.num_docs()))
        .await?;
    ensure!(
        docs == Some(events),
        "the index holds {docs:?} of {events} documents"
    );
    let log = snapshot(&log);
    drop(projector);
    Ok(Pass { elapsed, log })
}

/// Indexes `docs` with bare tantivy into an empty index in a temporary directory, committing
/// after each entry of `sizes` documents; returns the time from opening the writer to closing
/// it, and checks the index holds every document.
async fn index_bare(
    fields: &Fields,
    docs: Arc<Vec<Doc>>,
    sizes: Vec<usize>,
) -> anyhow::Result<Duration> {
    let fields = fields.clone();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let index = Index::create_in_dir(dir.path(), fields.schema.clone())?;
        let started = Instant::now();
        let mut writer = index.writer::<TantivyDocument>(WRITER_MEMORY)?;
        let mut at = 0;
        for size in sizes {
            for doc in &docs[at..at + size] {
                let mut document = fields.document(&doc.stream, doc.amount, &doc.memo);
                document.add_text(fields.key, &doc.key);
                writer.delete_term(Term::from_field_text(fields.key, &doc.key));
                writer.add_document(document)?;
            }
            at += size;
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(&format!("{{\"documents\":{at}}}"));
            commit.commit()?;
        }
        drop(writer);
        let elapsed = started.elapsed();
        let held = index.reader()?.searcher().num_docs();
        ensure!(
            held == u64::try_from(docs.len())?,
            "the bare index holds {held} of {} documents",
            docs.len()
        );
        Ok(elapsed)
    })
    .await
    .context("the bare indexing task panicked")?
}

/// Commits of `batch` documents (the last one smaller) covering `total`.
fn cadence(total: usize, batch: usize) -> Vec<usize> {
    let mut sizes = vec![batch; total / batch];
    if !total.is_multiple_of(batch) {
        sizes.push(total % batch);
    }
    sizes
}

/// A seeded generator of memos and amounts (splitmix64).
struct Memos {
    state: u64,
    reference: u64,
}

impl Memos {
    fn new(seed: u64) -> Self {
        Memos {
            state: seed,
            reference: 100_000,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn amount(&mut self) -> u64 {
        1 + self.below(100_000)
    }

    /// 4 to 12 words; the product of two uniform draws skews them towards the list's start.
    fn memo(&mut self) -> String {
        let words = WORDS.len() as u64;
        let count = 4 + self.below(9);
        let mut memo = String::new();
        for i in 0..count {
            if i > 0 {
                memo.push(' ');
            }
            let index = self.below(words) * self.below(words) / words;
            memo.push_str(WORDS[usize::try_from(index).unwrap_or(0)]);
        }
        if self.below(2) == 0 {
            self.reference += 1 + self.below(7);
            memo.push_str(&format!(" ref {}", self.reference));
        }
        memo
    }
}

/// The memos' vocabulary.
const WORDS: [&str; 256] = [
    "payment",
    "invoice",
    "transfer",
    "refund",
    "order",
    "shipment",
    "account",
    "balance",
    "deposit",
    "withdrawal",
    "monthly",
    "annual",
    "fee",
    "subscription",
    "renewal",
    "service",
    "customer",
    "supplier",
    "contract",
    "delivery",
    "warehouse",
    "stock",
    "inventory",
    "return",
    "credit",
    "debit",
    "card",
    "bank",
    "wire",
    "cash",
    "check",
    "cheque",
    "salary",
    "bonus",
    "expense",
    "travel",
    "hotel",
    "flight",
    "train",
    "taxi",
    "meal",
    "lunch",
    "dinner",
    "office",
    "supplies",
    "paper",
    "printer",
    "software",
    "license",
    "hardware",
    "laptop",
    "monitor",
    "keyboard",
    "server",
    "hosting",
    "domain",
    "cloud",
    "storage",
    "backup",
    "support",
    "maintenance",
    "repair",
    "cleaning",
    "rent",
    "lease",
    "utilities",
    "electricity",
    "water",
    "gas",
    "internet",
    "phone",
    "mobile",
    "insurance",
    "tax",
    "vat",
    "duty",
    "customs",
    "import",
    "export",
    "freight",
    "courier",
    "parcel",
    "package",
    "pallet",
    "container",
    "quarterly",
    "weekly",
    "daily",
    "advance",
    "deferred",
    "partial",
    "final",
    "overdue",
    "reminder",
    "penalty",
    "interest",
    "discount",
    "rebate",
    "voucher",
    "coupon",
    "gift",
    "donation",
    "charity",
    "membership",
    "club",
    "training",
    "course",
    "conference",
    "seminar",
    "workshop",
    "consulting",
    "audit",
    "legal",
    "notary",
    "translation",
    "design",
    "marketing",
    "advertising",
    "campaign",
    "print",
    "radio",
    "television",
    "online",
    "social",
    "media",
    "event",
    "catering",
    "venue",
    "equipment",
    "rental",
    "vehicle",
    "fuel",
    "parking",
    "toll",
    "fine",
    "permit",
    "registration",
    "certificate",
    "inspection",
    "survey",
    "research",
    "development",
    "prototype",
    "sample",
    "material",
    "steel",
    "wood",
    "glass",
    "plastic",
    "fabric",
    "cotton",
    "wool",
    "leather",
    "paint",
    "tools",
    "machinery",
    "spare",
    "parts",
    "assembly",
    "installation",
    "commissioning",
    "upgrade",
    "migration",
    "integration",
    "project",
    "milestone",
    "phase",
    "retainer",
    "hourly",
    "overtime",
    "holiday",
    "pension",
    "benefit",
    "health",
    "dental",
    "vision",
    "gym",
    "wellness",
    "recruitment",
    "agency",
    "temporary",
    "staff",
    "contractor",
    "freelance",
    "commission",
    "royalty",
    "dividend",
    "loan",
    "mortgage",
    "repayment",
    "principal",
    "escrow",
    "deposit-return",
    "settlement",
    "claim",
    "adjustment",
    "correction",
    "reversal",
    "chargeback",
    "dispute",
    "resolution",
    "north",
    "south",
    "east",
    "west",
    "central",
    "region",
    "branch",
    "headquarters",
    "store",
    "outlet",
    "online-shop",
    "marketplace",
    "wholesale",
    "retail",
    "distributor",
    "partner",
    "reseller",
    "franchise",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "urgent",
    "priority",
    "standard",
    "express",
    "economy",
    "premium",
    "basic",
    "gold",
    "silver",
    "bronze",
    "platinum",
    "first",
    "second",
    "third",
    "last",
    "extra",
    "misc",
    "various",
    "other",
    "alpha",
    "beta",
    "gamma",
    "delta",
    "omega",
    "sigma",
];
