//! `TransferMemos`: every leg of every transfer as a document in a Tantivy index, so transfers
//! can be found by the words of their memo.
//!
//! One document per leg, keyed `<transfer id>:out` (the withdrawal), `<transfer id>:in` (the
//! deposit) or `<transfer id>:refund` (the money back, when the transfer was undone): each leg
//! is an event on its own account's stream, so each one writes its own document, and
//! replaying an event replaces its document instead of adding a second one.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use foldline::{BoxError, Envelope, Projection, ProjectionName};
use foldline_tantivy::{TantivySearcher, TantivyTarget, TantivyTargetOptions, TantivyWrites};
use tantivy::TantivyDocument;
use tantivy::schema::{Field, STORED, STRING, Schema, TEXT, Value};

use crate::domain::{AccountEvent, AccountId};

/// The key field: `<transfer id>:<leg>`, one exact term.
const KEY: &str = "key";
/// The memo field, split into words: what searches look in.
const MEMO: &str = "memo";
/// How many legs a search returns at most.
const SEARCH_LIMIT: usize = 10;

/// Indexes the legs of transfers (deposits and withdrawals that carry a
/// [`TransferRef`](crate::domain::TransferRef), and refunds); other events write nothing.
#[derive(Debug, Clone, Default)]
pub struct TransferMemos {
    fields: MemoFields,
}

impl TransferMemos {
    /// The projection.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Projection for TransferMemos {
    const NAME: ProjectionName = ProjectionName::from_static("transfer_memos");
    type Event = AccountEvent;
    type Writes = TantivyWrites;

    fn handle(
        &self,
        event: Envelope<'_, AccountEvent>,
        writes: &mut TantivyWrites,
    ) -> Result<(), BoxError> {
        let (leg, cents, transfer) = match &event.event {
            AccountEvent::Withdrawn {
                cents,
                transfer: Some(transfer),
            } => (Leg::Out, *cents, transfer),
            AccountEvent::Deposited {
                cents,
                transfer: Some(transfer),
            } => (Leg::In, *cents, transfer),
            AccountEvent::TransferRefunded { cents, transfer } => (Leg::Refund, *cents, transfer),
            _ => return Ok(()),
        };
        let account = super::account_of(&event.recorded.stream_id)?;
        let fields = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(fields.transfer, &transfer.id);
        doc.add_text(fields.leg, leg.as_str());
        doc.add_text(fields.account, account.as_str());
        doc.add_u64(fields.cents, cents);
        doc.add_text(fields.memo, &transfer.memo);
        // The target puts the key into the key field.
        writes.upsert(format!("{}:{}", transfer.id, leg.as_str()), doc);
        Ok(())
    }
}

/// Opens the index of [`TransferMemos`] under `root` (one directory per projection: this one
/// keeps its slots in `<root>/transfer_memos`).
///
/// # Errors
///
/// When the schema is refused (a bug) or `root` cannot be used.
pub fn open_target(root: &Path) -> foldline::Result<TantivyTarget> {
    let schema = MemoFields::new().schema;
    TantivyTarget::new(TantivyTargetOptions::new(root, schema, KEY))
}

/// The transfer legs whose memo matches `memo_query` (Tantivy's query language: `rent`,
/// `"march rent"`, `rent OR tickets`), best match first, at most 10.
///
/// # Errors
///
/// A query that does not parse; a failure to read the index; a document the projection did
/// not write.
pub async fn search(searcher: &TantivySearcher, memo_query: &str) -> anyhow::Result<Vec<MemoHit>> {
    let fields = MemoFields::new();
    let found = searcher.search(memo_query, &[MEMO], SEARCH_LIMIT).await?;
    let mut hits = found
        .iter()
        .map(|(score, doc)| fields.hit(*score, doc))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Equal scores come in index order; order them by transfer, then leg, for stable output.
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (&a.transfer, a.leg).cmp(&(&b.transfer, b.leg)))
    });
    Ok(hits)
}

/// Which leg of a transfer a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leg {
    /// The withdrawal from the paying account.
    Out,
    /// The deposit into the paid account.
    In,
    /// The money back into the paying account, when the transfer was undone.
    Refund,
}

impl Leg {
    /// `"out"`, `"in"` or `"refund"`, as indexed.
    pub fn as_str(self) -> &'static str {
        match self {
            Leg::Out => "out",
            Leg::In => "in",
            Leg::Refund => "refund",
        }
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One transfer leg a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoHit {
    /// The transfer's id.
    pub transfer: String,
    /// Which leg.
    pub leg: Leg,
    /// The account paying (`Out`, `Refund`) or paid (`In`).
    pub account: AccountId,
    /// How much.
    pub cents: u64,
    /// The memo.
    pub memo: String,
    /// How well it matched (BM25; higher is better).
    pub score: f32,
}

/// The index's schema and its fields.
#[derive(Debug, Clone)]
struct MemoFields {
    schema: Schema,
    transfer: Field,
    leg: Field,
    account: Field,
    cents: Field,
    memo: Field,
}

impl Default for MemoFields {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoFields {
    fn new() -> Self {
        let mut schema = Schema::builder();
        // STRING: one exact term (looked up, not searched by word); STORED: returned by searches.
        schema.add_text_field(KEY, STRING | STORED);
        let transfer = schema.add_text_field("transfer", STRING | STORED);
        let leg = schema.add_text_field("leg", STRING | STORED);
        let account = schema.add_text_field("account", STRING | STORED);
        let cents = schema.add_u64_field("cents", STORED);
        // TEXT: split into lower-cased words, so `rent` finds "March rent".
        let memo = schema.add_text_field(MEMO, TEXT | STORED);
        MemoFields {
            schema: schema.build(),
            transfer,
            leg,
            account,
            cents,
            memo,
        }
    }

    /// A search result, read back from the stored fields of `doc`.
    fn hit(&self, score: f32, doc: &TantivyDocument) -> anyhow::Result<MemoHit> {
        let text = |field: Field, name: &str| {
            doc.get_first(field)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
                .with_context(|| format!("a memo document without `{name}`"))
        };
        let leg = match text(self.leg, "leg")?.as_str() {
            "out" => Leg::Out,
            "in" => Leg::In,
            "refund" => Leg::Refund,
            other => anyhow::bail!("a memo document whose leg is `{other}`"),
        };
        Ok(MemoHit {
            transfer: text(self.transfer, "transfer")?,
            leg,
            account: AccountId::new(text(self.account, "account")?),
            cents: doc
                .get_first(self.cents)
                .and_then(|value| value.as_u64())
                .context("a memo document without `cents`")?,
            memo: text(self.memo, MEMO)?,
            score,
        })
    }
}

#[cfg(test)]
mod tests {
    use foldline_tantivy::TantivyOp;

    use super::*;
    use crate::domain::TransferRef;
    use crate::projections::recorded;

    /// The writes `event`, recorded on `stream`, causes.
    fn writes_of(stream: &str, event: AccountEvent) -> Result<TantivyWrites, BoxError> {
        let recorded = recorded(stream, 2, &event);
        let mut writes = TantivyWrites::new();
        TransferMemos::new().handle(Envelope::new(event, &recorded), &mut writes)?;
        Ok(writes)
    }

    fn lunch() -> Option<TransferRef> {
        Some(TransferRef {
            id: "T-7".into(),
            memo: "Team lunch".into(),
        })
    }

    #[test]
    fn each_leg_is_a_document_keyed_by_transfer_and_leg() -> Result<(), BoxError> {
        let out = writes_of(
            "account-ada",
            AccountEvent::Withdrawn {
                cents: 1_250,
                transfer: lunch(),
            },
        )?;
        let [TantivyOp::Upsert { key, doc }] = out.ops() else {
            panic!("expected one upsert: {out:?}");
        };
        assert_eq!(key, "T-7:out");
        let hit = MemoFields::new().hit(1.0, doc)?;
        assert_eq!(
            hit,
            MemoHit {
                transfer: "T-7".into(),
                leg: Leg::Out,
                account: AccountId::new("ada"),
                cents: 1_250,
                memo: "Team lunch".into(),
                score: 1.0,
            }
        );

        let into = writes_of(
            "account-bob",
            AccountEvent::Deposited {
                cents: 1_250,
                transfer: lunch(),
            },
        )?;
        assert_eq!(into.ops()[0].key(), "T-7:in");

        let refund = writes_of(
            "account-ada",
            AccountEvent::TransferRefunded {
                cents: 1_250,
                transfer: TransferRef::new("T-7", "Team lunch"),
            },
        )?;
        assert_eq!(refund.ops()[0].key(), "T-7:refund");
        Ok(())
    }

    #[test]
    fn deposits_and_withdrawals_outside_transfers_write_nothing() -> Result<(), BoxError> {
        let opened = AccountEvent::Opened {
            owner: "Ada".into(),
        };
        let deposited = AccountEvent::Deposited {
            cents: 5,
            transfer: None,
        };
        let withdrawn = AccountEvent::Withdrawn {
            cents: 5,
            transfer: None,
        };
        for event in [opened, deposited, withdrawn] {
            assert!(writes_of("account-ada", event)?.is_empty());
        }
        Ok(())
    }

    #[test]
    fn the_schema_is_one_the_target_accepts() -> Result<(), BoxError> {
        let dir = tempfile::tempdir()?;
        open_target(dir.path())?;
        Ok(())
    }
}
