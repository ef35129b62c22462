//! The projector on the real targets: blue/green rebuilds seen by a reader polling the whole
//! time (Redis and Tantivy), read-your-writes on Redis, poison events parked in Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use foldline::{
    Error, InMemoryEventStore, PoisonPolicy, Projection, ProjectionControl, ProjectionTarget,
    Projector, ProjectorOptions, RebuildMode, SlotState,
};
use foldline_tantivy::TantivyTestDir;
use foldline_tests::redis::test_prefix;
use foldline_tests::tally::{self, RedisTally, TallyEvent, TantivyTally, tantivy_schema};
use tantivy::collector::Count;
use tantivy::query::{AllQuery, TermQuery};
use tantivy::schema::IndexRecordOption;

/// A store of `streams` streams × 30 events; returns (events, sum of amounts).
async fn filled_store(streams: u32) -> anyhow::Result<(InMemoryEventStore, u64, u64)> {
    let store = InMemoryEventStore::new();
    for s in 0..streams {
        tally::append(&store, &format!("bg-{s}"), &tally::counted(30)).await?;
    }
    Ok((store, u64::from(streams) * 30, u64::from(streams) * 465))
}

fn slow_rebuild() -> ProjectorOptions {
    // Small batches: the new slot is half-built for many commits while the reader polls.
    ProjectorOptions::new()
        .with_batch_size(10)
        .with_idle_interval(Duration::from_millis(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reader_sees_only_complete_versions_during_blue_green() -> anyhow::Result<()> {
    let (store, events, total) = filled_store(40).await?;
    let test = test_prefix().await;
    let target = test.target().clone();
    let name = <RedisTally>::NAME;
    Projector::new(store.clone(), RedisTally::<1>, target.clone())
        .catch_up()
        .await?;

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let reader = target.reader();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (mut old, mut new) = (0u32, 0u32);
            while !done.load(Ordering::SeqCst) || new < 3 {
                let seen = reader
                    .read(&<RedisTally>::NAME, |mut conn, keys| async move {
                        let values: (Option<u64>, Option<u64>) = redis::cmd("MGET")
                            .arg(keys.key("events"))
                            .arg(keys.key("total"))
                            .query_async(&mut conn)
                            .await?;
                        Ok(values)
                    })
                    .await?
                    .expect("a slot is always active");
                match seen {
                    (Some(e), Some(t)) if e == events && t == total => old += 1,
                    (Some(e), Some(t)) if e == events && t == 2 * total => new += 1,
                    other => anyhow::bail!("a reader saw a partial read model: {other:?}"),
                }
            }
            anyhow::Ok((old, new))
        })
    };
    let rebuilt = Projector::new(store.clone(), RedisTally::<2>, target.clone())
        .with_options(slow_rebuild())
        .rebuild(RebuildMode::BlueGreen, |_| {})
        .await?;
    done.store(true, Ordering::SeqCst);
    let (old, new) = reader.await??;
    assert!(
        old > 0 && new > 0,
        "the reader saw both versions: {old} old, {new} new reads"
    );
    let slots = target.slots(&name).await?;
    assert_eq!(slots.len(), 1, "{slots:?}");
    assert_eq!(
        (slots[0].slot, slots[0].version, slots[0].state),
        (rebuilt.slot, 2, SlotState::Active)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_searcher_sees_only_complete_versions_during_blue_green() -> anyhow::Result<()> {
    let (store, events, _) = filled_store(20).await?;
    let schema = tantivy_schema();
    let dir = TantivyTestDir::create(schema.clone(), "key")?;
    let target = dir.target().clone();
    let name = <TantivyTally>::NAME;
    Projector::new(
        store.clone(),
        TantivyTally::<1>::new(&schema),
        target.clone(),
    )
    .catch_up()
    .await?;

    let memo = schema.get_field("memo")?;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let searcher = target.searcher(&name);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (mut old, mut new) = (0u32, 0u32);
            while !done.load(Ordering::SeqCst) || new < 3 {
                let (all, v2) = searcher
                    .read(move |_, searcher| {
                        let v2 = TermQuery::new(
                            tantivy::Term::from_field_text(memo, "v2"),
                            IndexRecordOption::Basic,
                        );
                        Ok((
                            searcher.search(&AllQuery, &Count)?,
                            searcher.search(&v2, &Count)?,
                        ))
                    })
                    .await?
                    .expect("a slot is always active");
                match (all as u64, v2 as u64) {
                    (a, 0) if a == events => old += 1,
                    (a, b) if a == events && b == events => new += 1,
                    other => anyhow::bail!("a search saw a partial index: {other:?}"),
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok((old, new))
        })
    };
    Projector::new(
        store.clone(),
        TantivyTally::<2>::new(&schema),
        target.clone(),
    )
    .with_options(slow_rebuild())
    .rebuild(RebuildMode::BlueGreen, |_| {})
    .await?;
    done.store(true, Ordering::SeqCst);
    let (old, new) = reader.await??;
    assert!(
        old > 0 && new > 0,
        "the searcher saw both versions: {old} old, {new} new"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_read_your_writes_and_a_typed_timeout() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let test = test_prefix().await;
    let target = test.target().clone();
    let name = <RedisTally>::NAME;
    let handle = Projector::new(store.clone(), RedisTally::<1>, target.clone())
        .with_options(ProjectorOptions::new().with_idle_interval(Duration::from_millis(20)))
        .spawn();
    let reader = target.reader();
    for n in 1..=20u64 {
        let position = tally::append(&store, "ryw-1", &[TallyEvent::Counted { amount: 1 }])
            .await?
            .position
            .expect("position");
        handle.wait_for(&position, Duration::from_secs(5)).await?;
        let events: Option<u64> = reader
            .read(&name, |mut conn, keys| async move {
                redis::cmd("GET")
                    .arg(keys.key("events"))
                    .query_async(&mut conn)
                    .await
            })
            .await?
            .flatten();
        assert_eq!(events, Some(n), "visible as soon as wait_for returns");
    }
    target
        .set_control(&name, ProjectionControl::paused(true))
        .await?;
    foldline_tests::until_paused(&handle).await?;
    let position = tally::append(&store, "ryw-1", &[TallyEvent::Counted { amount: 1 }])
        .await?
        .position
        .expect("position");
    let waited = handle.wait_for(&position, Duration::from_millis(200)).await;
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
    target
        .set_control(&name, ProjectionControl::paused(false))
        .await?;
    handle.wait_for(&position, Duration::from_secs(5)).await?;
    handle.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_poison_event_stops_or_is_parked() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "ok-1", &tally::counted(4)).await?;
    tally::append(&store, "bad-1", &[TallyEvent::Poison { note: "n".into() }]).await?;
    tally::append(&store, "ok-1", &tally::counted(4)).await?;
    let options = ProjectorOptions::new().with_retries(2, Duration::from_millis(1));

    let stopping = test_prefix().await;
    let error = Projector::new(store.clone(), RedisTally::<1>, stopping.target().clone())
        .with_options(options.clone())
        .catch_up()
        .await
        .expect_err("the default policy stops");
    let Error::PoisonEvent(poison) = &error else {
        panic!("expected PoisonEvent, got {error:?}");
    };
    assert_eq!((poison.stream.as_str(), poison.version.get()), ("bad-1", 1));

    let parking = test_prefix().await;
    let target = parking.target().clone();
    let progress = Projector::new(store.clone(), RedisTally::<1>, target.clone())
        .with_options(options.with_poison_policy(PoisonPolicy::DeadLetter))
        .catch_up()
        .await?;
    let letters = target
        .dead_letters(&<RedisTally>::NAME, progress.slot)
        .await?;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].stream_id.as_str(), "bad-1");
    assert!(letters[0].error.contains("poison"), "{}", letters[0].error);
    let events: Option<u64> = target
        .reader()
        .read(&<RedisTally>::NAME, |mut conn, keys| async move {
            redis::cmd("GET")
                .arg(keys.key("events"))
                .query_async(&mut conn)
                .await
        })
        .await?
        .flatten();
    assert_eq!(
        events,
        Some(8),
        "the events around the poison one are applied"
    );
    Ok(())
}
