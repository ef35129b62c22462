//! The Tantivy projection target against indexes on disk, each test under a temporary root
//! of its own: the target conformance suite, then what is particular to tantivy (the
//! checkpoint in the commit payload, replacing documents by key, the searcher following the
//! alias, the writer lock, work off the runtime).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use foldline::{
    BackendErrorKind, Checkpoint, Commit, CommitOutcome, DeadLetter, Error, EventType, NewEvent,
    NewSlot, Position, ProjectionName, ProjectionTarget, RecordedEvent, SlotId, StreamId, Version,
};
use foldline_tantivy::{
    TantivySearcher, TantivyTarget, TantivyTargetError, TantivyTargetOptions, TantivyWrites,
};
use foldline_tests::tantivy::{KEY, TestRoot, counter, counter_schema, key_of, value_of};
use tantivy::TantivyDocument;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::AllQuery;
use tantivy::schema::{STORED, Schema, TEXT};

mod conformance {
    use foldline_tests::tantivy::TestRoot;

    foldline::projection_target_conformance_tests!(root = TestRoot::new() => root.probe());
}

fn name(prefix: &str) -> ProjectionName {
    ProjectionName::new(format!("{prefix}_{:08x}", fastrand::u32(..))).unwrap()
}

fn at(n: u64) -> Checkpoint {
    let mut checkpoint = Checkpoint::START;
    checkpoint.advance(Position::new(0, 0, n));
    checkpoint
}

fn puts(values: &[(&str, u64)]) -> TantivyWrites {
    let mut writes = TantivyWrites::new();
    for (key, value) in values {
        writes.upsert(*key, counter(*value));
    }
    writes
}

fn letter(n: u64) -> DeadLetter {
    let event = RecordedEvent::from_new(
        NewEvent::new(EventType::new("Happened").unwrap(), 1, b"{}".to_vec()),
        StreamId::new(format!("thing-{n}")).unwrap(),
        Version::new(n),
        Position::new(0, 0, n),
        SystemTime::now(),
    );
    DeadLetter::new(&event, format!("handler failed on {n}"), 3)
}

async fn commit(
    target: &TantivyTarget,
    projection: &ProjectionName,
    slot: SlotId,
    commit: Commit<TantivyWrites>,
) -> CommitOutcome {
    target.commit(projection, slot, commit).await.unwrap()
}

async fn value(
    target: &TantivyTarget,
    projection: &ProjectionName,
    slot: SlotId,
    key: &str,
) -> Option<u64> {
    target
        .get(projection, slot, key)
        .await
        .unwrap()
        .as_ref()
        .and_then(value_of)
}

async fn new_slot(
    target: &TantivyTarget,
    projection: &ProjectionName,
    version: u32,
    how: NewSlot,
) -> SlotId {
    target
        .create_slot(projection, version, how, &foldline_tests::test_store())
        .await
        .unwrap()
        .slot
}

/// The commit of upserts of `values` (as [`puts`]) from `expected` to `next`.
async fn try_commit_puts(
    target: &TantivyTarget,
    projection: &ProjectionName,
    slot: SlotId,
    expected: Checkpoint,
    next: Checkpoint,
    values: &[(&str, u64)],
) -> foldline::Result<CommitOutcome> {
    target
        .commit(projection, slot, Commit::new(expected, next, puts(values)))
        .await
}

/// [`try_commit_puts`], which must not fail.
async fn commit_puts(
    target: &TantivyTarget,
    projection: &ProjectionName,
    slot: SlotId,
    expected: Checkpoint,
    next: Checkpoint,
    values: &[(&str, u64)],
) -> CommitOutcome {
    try_commit_puts(target, projection, slot, expected, next, values)
        .await
        .unwrap()
}

/// Whether `owner` got the slot's lease (for 30 seconds).
async fn lease(
    target: &TantivyTarget,
    projection: &ProjectionName,
    slot: SlotId,
    owner: &str,
) -> bool {
    target
        .acquire_lease(projection, slot, owner, Duration::from_secs(30))
        .await
        .unwrap()
}

/// The value of the searcher's document with `key`.
async fn searched(searcher: &TantivySearcher, key: &str) -> Option<u64> {
    searcher.get(key).await.unwrap().as_ref().and_then(value_of)
}

fn backend_kind(error: &Error) -> Option<BackendErrorKind> {
    match error {
        Error::Backend(e) => Some(e.kind()),
        _ => None,
    }
}

/// Every document of the searcher's active slot, and the slot it came from.
async fn everything(searcher: &TantivySearcher) -> Option<(SlotId, Vec<TantivyDocument>)> {
    searcher
        .read(|slot, searcher| {
            let top = searcher.search(&AllQuery, &TopDocs::with_limit(10_000).order_by_score())?;
            let docs = top
                .into_iter()
                .map(|(_, address)| searcher.doc(address))
                .collect::<tantivy::Result<Vec<TantivyDocument>>>()?;
            Ok((slot, docs))
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_checkpoint_survives_reopening() {
    let root = TestRoot::new();
    let p = name("reopen");
    let first = root.reopen();
    let slot = new_slot(&first, &p, 1, NewSlot::Resume).await;
    let outcome = commit_puts(&first, &p, slot, Checkpoint::START, at(3), &[("a", 1)]).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    let outcome = commit_puts(&first, &p, slot, at(3), at(7), &[("b", 2)]).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    first.release_writer(&p, slot).await.unwrap();
    drop(first);

    let second = root.reopen();
    assert_eq!(second.checkpoint(&p, slot).await.unwrap(), Some(at(7)));
    assert_eq!(value(&second, &p, slot, "a").await, Some(1));
    assert_eq!(value(&second, &p, slot, "b").await, Some(2));
    // And it goes on from there.
    let outcome = commit_puts(&second, &p, slot, at(7), at(9), &[("a", 5)]).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(value(&second, &p, slot, "a").await, Some(5));
    // A stale expectation after the reopen is still refused.
    let outcome = commit_puts(&second, &p, slot, at(7), at(10), &[("c", 1)]).await;
    assert_eq!(
        outcome,
        CommitOutcome::Moved {
            actual: Some(at(9))
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_stale_commit_writes_no_document() {
    let root = TestRoot::new();
    let target = root.target();
    let p = name("stale");
    let slot = new_slot(target, &p, 1, NewSlot::Resume).await;
    commit_puts(target, &p, slot, Checkpoint::START, at(1), &[("a", 1)]).await;

    let stale = Commit::new(Checkpoint::START, at(2), puts(&[("a", 9), ("b", 9)]))
        .with_park(vec![letter(2)]);
    let outcome = commit(target, &p, slot, stale).await;
    assert_eq!(
        outcome,
        CommitOutcome::Moved {
            actual: Some(at(1))
        }
    );
    assert_eq!(value(target, &p, slot, "a").await, Some(1));
    assert_eq!(value(target, &p, slot, "b").await, None);
    assert_eq!(target.checkpoint(&p, slot).await.unwrap(), Some(at(1)));
    assert!(target.dead_letters(&p, slot).await.unwrap().is_empty());

    // The same from a second target, which reads the index but does not hold its writer.
    let other = root.reopen();
    assert_eq!(value(&other, &p, slot, "b").await, None);
    assert_eq!(other.checkpoint(&p, slot).await.unwrap(), Some(at(1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_upsert_replaces_the_document_with_its_key() {
    let root = TestRoot::new();
    let target = root.target();
    let p = name("upsert");
    let slot = new_slot(target, &p, 1, NewSlot::Resume).await;
    // Twice in one batch, then again in a later batch.
    commit_puts(
        target,
        &p,
        slot,
        Checkpoint::START,
        at(1),
        &[("k", 1), ("k", 2)],
    )
    .await;
    commit_puts(target, &p, slot, at(1), at(2), &[("k", 3), ("other", 1)]).await;
    target.activate(&p, slot).await.unwrap();

    let searcher = target.searcher(&p);
    let (_, docs) = everything(&searcher).await.unwrap();
    let mut keys: Vec<_> = docs.iter().filter_map(key_of).collect();
    keys.sort();
    assert_eq!(keys, ["k", "other"], "one document per key");
    assert_eq!(searched(&searcher, "k").await, Some(3));

    // Deleting by key, and a delete then upsert in one batch.
    let mut writes = TantivyWrites::new();
    writes.delete("other");
    writes.delete("k");
    writes.upsert("k", counter(4));
    commit(target, &p, slot, Commit::new(at(2), at(3), writes)).await;
    let count = searcher
        .read(|_, s| s.search(&AllQuery, &Count))
        .await
        .unwrap();
    assert_eq!(count, Some(1));
    assert_eq!(searched(&searcher, "k").await, Some(4));
    assert!(searcher.get("other").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_refused_document_stores_nothing() {
    let root = TestRoot::new();
    let target = root.target();
    let p = name("refused");
    let slot = new_slot(target, &p, 1, NewSlot::Resume).await;

    // The document says it is `x`, but is upserted as `y`.
    let mut doc = counter(1);
    doc.add_text(KEY, "x");
    let mut writes = puts(&[("a", 1)]);
    writes.upsert("y", doc);
    let err = target
        .commit(&p, slot, Commit::new(Checkpoint::START, at(1), writes))
        .await
        .unwrap_err();
    assert_eq!(backend_kind(&err), Some(BackendErrorKind::Rejected));
    assert!(matches!(
        TantivyTargetError::find(&err),
        Some(TantivyTargetError::KeyMismatch { key, found, .. }) if key == "y" && found == "x"
    ));
    assert_eq!(value(target, &p, slot, "a").await, None);
    assert_eq!(
        target.checkpoint(&p, slot).await.unwrap(),
        Some(Checkpoint::START)
    );

    // The writer is fine afterwards.
    let outcome = commit_puts(target, &p, slot, Checkpoint::START, at(1), &[("a", 1)]).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    assert_eq!(value(target, &p, slot, "a").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tantivy_searcher_follows_the_alias_and_never_mixes_slots() {
    const DOCS: u64 = 50;
    const ROUNDS: u64 = 6;
    let root = TestRoot::new();
    let target = root.target().clone();
    let p = name("alias");
    let searcher = target.searcher(&p);
    assert_eq!(
        everything(&searcher).await.map(|(_, d)| d.len()),
        None,
        "no active slot yet"
    );
    assert!(
        searcher
            .search("value:1", &[], 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Slot of round r: DOCS documents, keys `r<r>-<i>`, every value r.
    let build = async |round: u64| {
        let slot = new_slot(&target, &p, 1, NewSlot::Fresh).await;
        let mut writes = TantivyWrites::new();
        for i in 0..DOCS {
            writes.upsert(format!("r{round}-{i}"), counter(round));
        }
        let outcome = commit(
            &target,
            &p,
            slot,
            Commit::new(Checkpoint::START, at(round), writes),
        )
        .await;
        assert_eq!(outcome, CommitOutcome::Committed);
        slot
    };
    let first = build(1).await;
    target.activate(&p, first).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let searcher = searcher.clone();
        let stop = Arc::clone(&stop);
        let latest = Arc::clone(&latest);
        async move {
            let mut seen = BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let (slot, docs) = everything(&searcher)
                    .await
                    .expect("a slot is always active");
                let values: BTreeSet<u64> = docs.iter().filter_map(value_of).collect();
                assert_eq!(
                    docs.len() as u64,
                    DOCS,
                    "slot {slot}: a result set holds exactly one slot's documents, got values \
                     {values:?}"
                );
                assert_eq!(
                    values.len(),
                    1,
                    "slot {slot}: documents of several slots: {values:?}"
                );
                latest.store(*values.first().unwrap(), Ordering::Relaxed);
                seen.extend(values);
            }
            seen
        }
    });

    let mut previous = first;
    for round in 2..=ROUNDS {
        let next = build(round).await;
        target.activate(&p, next).await.unwrap();
        // Readers now resolve `next`; the retired slot goes at once, under their feet.
        target.drop_slot(&p, previous).await.unwrap();
        let got = searcher.get(&format!("r{round}-0")).await.unwrap();
        assert_eq!(
            got.as_ref().and_then(value_of),
            Some(round),
            "get follows the alias"
        );
        previous = next;
    }
    // Let the reader see the last slot before stopping it (it reads in a loop: moments).
    let waited = Instant::now();
    while latest.load(Ordering::Relaxed) != ROUNDS {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the reader never saw the last slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let seen = reader.await.unwrap();
    assert!(seen.contains(&ROUNDS), "{seen:?}");

    let hits = searcher
        .search(&format!("value:{ROUNDS}"), &[], 100)
        .await
        .unwrap();
    assert_eq!(hits.len() as u64, DOCS);
    assert_eq!(searcher.active_slot().await.unwrap(), Some(previous));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_searcher_refuses_bad_queries() {
    let root = TestRoot::new();
    let target = root.target();
    let p = name("queries");
    let slot = new_slot(target, &p, 1, NewSlot::Resume).await;
    commit_puts(target, &p, slot, Checkpoint::START, at(1), &[("a", 7)]).await;
    target.activate(&p, slot).await.unwrap();
    let searcher = target.searcher(&p);

    let hits = searcher.search("7", &["value"], 10).await.unwrap();
    assert_eq!(hits.len(), 1, "a term looked up in a default field");
    let err = searcher.search("value:[1 TO", &[], 10).await.unwrap_err();
    assert_eq!(backend_kind(&err), Some(BackendErrorKind::Rejected));
    let err = searcher.search("7", &["nope"], 10).await.unwrap_err();
    assert!(matches!(
        TantivyTargetError::find(&err),
        Some(TantivyTargetError::SearchFieldMissing { field }) if field == "nope"
    ));
    assert!(
        searcher
            .search("7", &["value"], 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_second_target_on_a_held_slot_is_not_owner() {
    let root = TestRoot::new();
    let first = root.target();
    let p = name("held");
    let slot = new_slot(first, &p, 1, NewSlot::Resume).await;
    commit_puts(first, &p, slot, Checkpoint::START, at(1), &[("a", 1)]).await;

    // `first` holds the slot's writer now; a second target (another process would do the same)
    // is refused at once, with a transient error, and writes nothing.
    let second = root.reopen();
    let err = try_commit_puts(&second, &p, slot, at(1), at(2), &[("b", 1)])
        .await
        .unwrap_err();
    assert_eq!(
        backend_kind(&err),
        Some(BackendErrorKind::NotOwner),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(!lease(&second, &p, slot, "second").await);
    assert_eq!(second.checkpoint(&p, slot).await.unwrap(), Some(at(1)));
    assert_eq!(value(&second, &p, slot, "b").await, None);

    // Once `first` lets the writer go, `second` can take it.
    first.release_writer(&p, slot).await.unwrap();
    assert!(lease(&second, &p, slot, "second").await);
    let outcome = commit_puts(&second, &p, slot, at(1), at(2), &[("b", 1)]).await;
    assert_eq!(outcome, CommitOutcome::Committed);
    let err = try_commit_puts(first, &p, slot, at(2), at(3), &[("c", 1)])
        .await
        .unwrap_err();
    assert_eq!(backend_kind(&err), Some(BackendErrorKind::NotOwner));

    // Releasing the lease closes the writer too.
    second.release_lease(&p, slot, "second").await.unwrap();
    assert!(lease(first, &p, slot, "first").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_slot_dropped_by_another_target_refuses_commits() {
    let root = TestRoot::new();
    let writer = root.target();
    let p = name("dropped");
    let old = new_slot(writer, &p, 1, NewSlot::Resume).await;
    commit_puts(writer, &p, old, Checkpoint::START, at(1), &[("a", 1)]).await;

    // An operator's process activates a new build and drops the old slot, whose writer the
    // first target still holds open.
    let admin = root.reopen();
    let new = new_slot(&admin, &p, 2, NewSlot::Resume).await;
    admin.activate(&p, new).await.unwrap();
    admin.drop_slot(&p, old).await.unwrap();

    let outcome = commit_puts(writer, &p, old, at(1), at(2), &[("b", 1)]).await;
    assert_eq!(outcome, CommitOutcome::Moved { actual: None });
    assert_eq!(writer.checkpoint(&p, old).await.unwrap(), None);
    let slots: Vec<SlotId> = writer
        .slots(&p)
        .await
        .unwrap()
        .iter()
        .map(|s| s.slot)
        .collect();
    assert_eq!(slots, [new]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_dead_letters_survive_reopening() {
    let root = TestRoot::new();
    let p = name("letters");
    let (one, two, three) = (letter(1), letter(2), letter(3));
    let slot;
    {
        let target = root.reopen();
        slot = new_slot(&target, &p, 1, NewSlot::Resume).await;
        let parked = Commit::new(Checkpoint::START, at(3), puts(&[("a", 1)])).with_park(vec![
            one.clone(),
            two.clone(),
            three.clone(),
        ]);
        commit(&target, &p, slot, parked).await;
        let unparked =
            Commit::new(at(3), at(4), TantivyWrites::new()).with_unpark(vec![two.event_id]);
        commit(&target, &p, slot, unparked).await;
        target.release_writer(&p, slot).await.unwrap();
    }
    let reopened = root.reopen();
    assert_eq!(
        reopened.dead_letters(&p, slot).await.unwrap(),
        vec![one, three]
    );
    assert_eq!(reopened.checkpoint(&p, slot).await.unwrap(), Some(at(4)));
}

#[test]
fn tantivy_key_field_must_be_one_exact_term() {
    let refused = |schema: Schema, key: &str| {
        let err =
            TantivyTarget::new(TantivyTargetOptions::new("/nonexistent", schema, key)).unwrap_err();
        assert_eq!(backend_kind(&err), Some(BackendErrorKind::Rejected));
        TantivyTargetError::find(&err)
            .cloned()
            .expect("a TantivyTargetError source")
    };
    assert_eq!(
        refused(counter_schema(), "id"),
        TantivyTargetError::KeyFieldMissing { field: "id".into() }
    );
    let mut tokenized = Schema::builder();
    tokenized.add_text_field("id", TEXT | STORED);
    assert!(matches!(
        refused(tokenized.build(), "id"),
        TantivyTargetError::KeyFieldTokenized { .. }
    ));
    let mut stored_only = Schema::builder();
    stored_only.add_text_field("id", STORED);
    assert!(matches!(
        refused(stored_only.build(), "id"),
        TantivyTargetError::KeyFieldNotIndexed { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_slot_built_with_another_schema_is_refused() {
    let root = TestRoot::new();
    let p = name("schema");
    let slot = new_slot(root.target(), &p, 1, NewSlot::Resume).await;

    let mut other = Schema::builder();
    other.add_text_field("key", tantivy::schema::STRING | STORED);
    other.add_text_field("title", TEXT | STORED);
    let target =
        TantivyTarget::new(TantivyTargetOptions::new(root.path(), other.build(), "key")).unwrap();
    let err = target
        .commit(
            &p,
            slot,
            Commit::new(Checkpoint::START, at(1), TantivyWrites::new()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        TantivyTargetError::find(&err),
        Some(TantivyTargetError::SchemaMismatch { slot: s }) if *s == slot
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_layout_on_disk() {
    let root = TestRoot::new();
    let target = root.target();
    let p = name("layout");
    let a = new_slot(target, &p, 1, NewSlot::Resume).await;
    let b = new_slot(target, &p, 2, NewSlot::Resume).await;
    target.activate(&p, b).await.unwrap();
    let dir = root.path().join(p.as_str());
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read("ACTIVE").trim(), b.to_string());
    assert_eq!(read("next_slot").trim(), b.next().to_string());
    for slot in [a, b] {
        let slot_dir = dir.join(format!("slot-{slot}"));
        assert!(
            slot_dir.join("meta.json").is_file(),
            "slot {slot} is a tantivy index"
        );
        let meta: serde_json::Value =
            serde_json::from_str(&read(&format!("slot-{slot}/slot.json"))).unwrap();
        assert_eq!(meta["key_field"], "key");
    }
    target.drop_slot(&p, a).await.unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            n.starts_with("slot-") || n.starts_with(".dropped") || n.starts_with(".creating")
        })
        .collect();
    assert_eq!(names, [format!("slot-{b}")]);
}

/// A large commit runs on the blocking pool: on a current-thread runtime, a task ticking every
/// few milliseconds keeps ticking while the commit indexes and fsyncs.
#[test]
fn tantivy_commit_does_not_block_the_runtime() {
    const PERIOD: Duration = Duration::from_millis(5);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let root = TestRoot::new();
        let target = root.target().clone();
        let p = name("offload");
        let slot = new_slot(&target, &p, 1, NewSlot::Resume).await;

        let ticks = Arc::new(AtomicUsize::new(0));
        let longest_gap = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let ticker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            let longest_gap = Arc::clone(&longest_gap);
            async move {
                let mut interval = tokio::time::interval(PERIOD);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last = Instant::now();
                loop {
                    interval.tick().await;
                    let now = Instant::now();
                    let mut longest = longest_gap.lock().unwrap();
                    *longest = (*longest).max(now - last);
                    drop(longest);
                    last = now;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        tokio::time::sleep(PERIOD * 4).await;

        // Grow the batch until a commit takes long enough to tell blocking from not.
        let mut docs = 20_000_u64;
        let mut expected = Checkpoint::START;
        for round in 1.. {
            let mut writes = TantivyWrites::new();
            for i in 0..docs {
                writes.upsert(format!("k{round}-{i}"), counter(i));
            }
            *longest_gap.lock().unwrap() = Duration::ZERO;
            let before = ticks.load(Ordering::Relaxed);
            let started = Instant::now();
            let next = at(round);
            let outcome = target
                .commit(
                    &p,
                    slot,
                    Commit::new(expected.clone(), next.clone(), writes),
                )
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(outcome, CommitOutcome::Committed);
            expected = next;
            let ticked = ticks.load(Ordering::Relaxed) - before;
            let gap = *longest_gap.lock().unwrap();
            if took < Duration::from_millis(250) && round < 5 {
                docs *= 2;
                continue;
            }
            assert!(
                gap < took / 2,
                "the ticker stalled for {gap:?} during a {took:?} commit of {docs} documents"
            );
            assert!(
                ticked >= 10,
                "the ticker ticked {ticked} times during a {took:?} commit of {docs} documents"
            );
            break;
        }
        ticker.abort();
    });
}
