//! The Tantivy tally: killed 50 times in the middle of its commits.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use foldline::{Checkpoint, Projection, ProjectionTarget, Projector};
use foldline_tantivy::{TantivyTarget, TantivyTargetOptions};
use foldline_tests::tally::{TantivyTally, tantivy_schema};
use tantivy::collector::DocSetCollector;
use tantivy::query::AllQuery;
use tantivy::schema::Value;
use tantivy::{Document, TantivyDocument};

use crate::support::{self, Feed, KILLS, Rounds};

pub(crate) fn open(root: &Path) -> anyhow::Result<TantivyTarget> {
    Ok(TantivyTarget::new(TantivyTargetOptions::new(
        root,
        tantivy_schema(),
        "key",
    ))?)
}

/// The checkpoint of the newest slot, read from a target opened for this one look (so the test
/// never holds the slot's writer lock the worker needs).
pub(crate) async fn newest_checkpoint(root: &Path) -> anyhow::Result<Option<Checkpoint>> {
    let target = open(root)?;
    let slots = target.slots(&<TantivyTally>::NAME).await?;
    let Some(newest) = slots.last() else {
        return Ok(None);
    };
    Ok(target
        .checkpoint(&<TantivyTally>::NAME, newest.slot)
        .await?)
}

/// Every document of the active slot as JSON, by key.
pub(crate) async fn dump(root: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let schema = tantivy_schema();
    let key = schema.get_field("key")?;
    let target = open(root)?;
    let docs = target
        .searcher(&<TantivyTally>::NAME)
        .read(move |_, searcher| {
            let mut docs = BTreeMap::new();
            for address in searcher.search(&AllQuery, &DocSetCollector)? {
                let doc: TantivyDocument = searcher.doc(address)?;
                let id = doc
                    .get_first(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                docs.insert(id, doc.to_json(&schema));
            }
            Ok(docs)
        })
        .await?
        .context("no active slot")?;
    Ok(docs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_projector_killed_50_times() -> anyhow::Result<()> {
    let mut feed = Feed::with_backlog(500).await?;
    let dir = tempfile::tempdir()?;
    let root = support::path_arg(dir.path());
    let args = ["--target", "tantivy", "--tantivy-root", &root];
    // Each Tantivy commit writes and syncs segment files: fewer, larger batches.
    let rounds = Rounds {
        appends: 2..6,
        batch_size: "20",
        kills: KILLS,
    };
    let mid_work =
        support::kill_rounds(&mut feed, &rounds, &args, || newest_checkpoint(dir.path())).await?;
    support::finish(&feed, &args)?;

    let model = dump(dir.path()).await?;
    assert_eq!(model.len() as u64, feed.events, "one document per event");
    let fresh = tempfile::tempdir()?;
    Projector::new(
        feed.store().clone(),
        TantivyTally::<1>::new(&tantivy_schema()),
        open(fresh.path())?,
    )
    .catch_up()
    .await?;
    assert_eq!(
        model,
        dump(fresh.path()).await?,
        "the index equals a fresh rebuild"
    );
    assert!(
        mid_work >= 15,
        "only {mid_work} of {KILLS} kills hit a worker with work left"
    );
    Ok(())
}
