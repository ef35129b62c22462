//! The projector runtime on the in-memory store and target: exactly-once effects, poison
//! events, blue/green rebuilds, leases, pause/resume, read-your-writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldline::testing::KeyValueModel;
use foldline::{
    Error, InMemoryEventStore, InMemoryTarget, PoisonPolicy, Projection, ProjectionControl,
    ProjectionName, ProjectionTarget, ProjectionTargetExt, Projector, ProjectorOptions,
    ProjectorState, RebuildMode, SlotId, SlotState,
};
use foldline_tests::tally::{self, Tally, TallyEvent};

type Target = InMemoryTarget<KeyValueModel>;

const NAME: ProjectionName = <Tally as Projection>::NAME;

fn options() -> ProjectorOptions {
    ProjectorOptions::new()
        .with_idle_interval(Duration::from_millis(20))
        .with_retries(3, Duration::from_millis(1))
        .with_lease_ttl(Duration::from_millis(500))
}

fn value(target: &Target, key: &str) -> Option<u64> {
    target.read(&NAME, |m| m.get(key)).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_applies_every_event_once() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    for s in 0..5 {
        tally::append(&store, &format!("tally-{s}"), &tally::counted(20)).await?;
    }
    tally::append_other(&store, "other-1").await?;
    let target = Target::new();
    let projector =
        Projector::new(store.clone(), Tally::<1>::strict(), target.clone()).with_options(options());
    let progress = projector.catch_up().await?;
    assert_eq!(progress.applied, 100);
    assert_eq!(progress.skipped, 1, "the unrelated event is skipped");
    assert!(progress.caught_up && progress.active);
    assert_eq!(value(&target, "events"), Some(100));
    assert_eq!(value(&target, "total"), Some(5 * 210));
    assert_eq!(value(&target, "version:tally-3"), Some(20));

    // Again, from the stored checkpoint: nothing is applied twice.
    let again =
        Projector::new(store.clone(), Tally::<1>::strict(), target.clone()).with_options(options());
    let progress = again.catch_up().await?;
    assert_eq!(progress.applied, 0);
    assert_eq!(value(&target, "events"), Some(100));

    // The first build activated slot 1, the only slot.
    let slots = target.slots(&NAME).await?;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].state, SlotState::Active);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_projector_follows_and_wait_for_sees_the_write() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let target = Target::new();
    let handle = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options())
        .spawn();
    for round in 0..10 {
        let result = tally::append(&store, "live-1", &[TallyEvent::Counted { amount: 1 }]).await?;
        let position = result
            .position
            .expect("an append with events has a position");
        handle.wait_for(&position, Duration::from_secs(5)).await?;
        assert_eq!(
            value(&target, "events"),
            Some(round + 1),
            "visible once wait_for returns"
        );
        target
            .wait_for_checkpoint(&NAME, &position, Duration::from_secs(1))
            .await?;
    }
    assert_eq!(handle.progress().state, ProjectorState::Running);

    // Paused, it applies nothing, and wait_for times out with a typed error.
    target
        .set_control(&NAME, ProjectionControl::paused(true))
        .await?;
    foldline_tests::until_paused(&handle).await?;
    let result = tally::append(&store, "live-1", &[TallyEvent::Counted { amount: 1 }]).await?;
    let position = result.position.expect("position");
    let waited = handle.wait_for(&position, Duration::from_millis(300)).await;
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
    let waited = target
        .wait_for_checkpoint(&NAME, &position, Duration::from_millis(100))
        .await;
    assert!(matches!(waited, Err(Error::Timeout { .. })), "{waited:?}");
    assert_eq!(value(&target, "events"), Some(10));
    assert_eq!(handle.progress().state, ProjectorState::Paused);
    let status = target.heartbeat(&NAME).await?.expect("a status report");
    assert_eq!(status.state, ProjectorState::Paused);

    // Resumed, it catches up.
    target
        .set_control(&NAME, ProjectionControl::paused(false))
        .await?;
    handle.wait_for(&position, Duration::from_secs(5)).await?;
    assert_eq!(value(&target, "events"), Some(11));
    handle.shutdown().await?;
    let status = target.heartbeat(&NAME).await?.expect("a status report");
    assert_eq!(status.state, ProjectorState::Stopped);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_stops_with_an_error_naming_it() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "p-1", &tally::counted(3)).await?;
    let bad = tally::append(&store, "p-2", &[TallyEvent::Poison { note: "bad".into() }]).await?;
    tally::append(&store, "p-1", &tally::counted(2)).await?;
    let target = Target::new();
    let projector =
        Projector::new(store.clone(), Tally::<1>::strict(), target.clone()).with_options(options());
    let error = projector
        .catch_up()
        .await
        .expect_err("the poison event stops the projector");
    let Error::PoisonEvent(poison) = &error else {
        panic!("expected PoisonEvent, got {error:?}");
    };
    assert_eq!(poison.stream.as_str(), "p-2");
    assert_eq!(poison.version.get(), 1);
    assert_eq!(poison.attempts, 3);
    assert_eq!(Some(poison.position), bad.position);
    let text = foldline::error_chain(&error, ": ");
    assert!(text.contains("refusing poison event: bad"), "{text}");
    // The events before it are applied, without the poison event's partial writes.
    let slot = target.slots(&NAME).await?[0].slot;
    let events = target.read_slot(&NAME, slot, |m| m.get("events")).flatten();
    assert_eq!(events, Some(3));
    let status = target.heartbeat(&NAME).await?.expect("status");
    assert_eq!(status.state, ProjectorState::Failed);
    assert!(
        status.error.as_deref().is_some_and(|e| e.contains("p-2")),
        "{status:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_event_is_dead_lettered_and_the_rest_applied() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "d-1", &tally::counted(3)).await?;
    tally::append(&store, "d-2", &[TallyEvent::Poison { note: "bad".into() }]).await?;
    tally::append(&store, "d-1", &tally::counted(2)).await?;
    let target = Target::new();
    let projector = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options().with_poison_policy(PoisonPolicy::DeadLetter));
    let progress = projector.catch_up().await?;
    assert_eq!(progress.dead_lettered, 1);
    assert_eq!(value(&target, "events"), Some(5));
    assert_eq!(value(&target, "total"), Some(6 + 3));
    let letters = target.dead_letters(&NAME, progress.slot).await?;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].stream_id.as_str(), "d-2");
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].error.contains("refusing poison event"),
        "{:?}",
        letters[0]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_fails_then_passes_is_applied_once() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "f-1", &tally::counted(2)).await?;
    tally::append(
        &store,
        "f-2",
        &[TallyEvent::Poison {
            note: "flaky".into(),
        }],
    )
    .await?;
    tally::append(&store, "f-1", &tally::counted(2)).await?;
    let target = Target::new();
    let projector = Projector::new(store.clone(), Tally::<1>::failing(2), target.clone())
        .with_options(options());
    projector.catch_up().await?;
    assert_eq!(value(&target, "healed"), Some(1));
    assert_eq!(value(&target, "events"), Some(5));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_bump_builds_beside_then_switches() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "v-1", &tally::counted(10)).await?;
    let target = Target::new();
    let name = NAME;
    Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options())
        .catch_up()
        .await?;
    assert_eq!(value(&target, "total"), Some(55));

    // Version 2 doubles amounts: it builds slot 2, then switches and drops slot 1.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    let v2 = Projector::new(store.clone(), Tally::<2>::strict(), target.clone())
        .with_options(options().with_batch_size(3));
    let slot = v2
        .rebuild(RebuildMode::BlueGreen, move |p| {
            seen_in
                .lock()
                .expect("lock")
                .push((p.slot, p.active, p.applied));
        })
        .await?;
    assert_eq!(slot.slot, SlotId::new(2));
    assert_eq!(value(&target, "total"), Some(110));
    let slots = target.slots(&name).await?;
    assert_eq!(slots.len(), 1, "the old slot is dropped: {slots:?}");
    assert_eq!(
        (slots[0].slot, slots[0].version, slots[0].state),
        (SlotId::new(2), 2, SlotState::Active)
    );
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .any(|(slot, active, _)| *slot == SlotId::new(2) && !active),
        "progress while building: {seen:?}"
    );

    // Version 1 code now refuses to run over the newer version.
    let old =
        Projector::new(store.clone(), Tally::<1>::strict(), target.clone()).with_options(options());
    let error = old.catch_up().await.expect_err("a newer version is active");
    assert!(
        matches!(
            error,
            Error::ProjectionSuperseded {
                running: 1,
                active: 2,
                ..
            }
        ),
        "{error:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_in_place_and_blue_green_with_a_live_projector() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "r-1", &tally::counted(10)).await?;
    let target = Target::new();
    let name = NAME;
    let live = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options())
        .spawn();
    let last = tally::append(&store, "r-1", &tally::counted(1))
        .await?
        .position
        .expect("position");
    live.wait_for(&last, Duration::from_secs(5)).await?;
    assert_eq!(value(&target, "events"), Some(11));

    // Blue/green of the same version: a new slot, switched; the live projector follows it.
    let admin = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options().with_owner("admin"));
    let rebuilt = admin.rebuild(RebuildMode::BlueGreen, |_| {}).await?;
    assert_eq!(rebuilt.slot, SlotId::new(2));
    assert_eq!(value(&target, "events"), Some(11));
    let next = tally::append(&store, "r-1", &tally::counted(1))
        .await?
        .position
        .expect("position");
    live.wait_for(&next, Duration::from_secs(5)).await?;
    assert_eq!(
        value(&target, "events"),
        Some(12),
        "the live projector writes to the new slot"
    );
    assert_eq!(live.progress().slot, SlotId::new(2));

    // In place, with the live projector running: refused, the slot is busy.
    let busy = admin.rebuild(RebuildMode::InPlace, |_| {}).await;
    assert!(
        matches!(busy, Err(Error::ProjectionBusy { slot, .. }) if slot == SlotId::new(2)),
        "{busy:?}"
    );
    // Paused, the live projector gives the slot up: emptied and rebuilt in place, then resumed.
    admin.pause().await?;
    let in_place = admin.rebuild(RebuildMode::InPlace, |_| {}).await?;
    assert_eq!(in_place.slot, SlotId::new(2));
    assert_eq!(value(&target, "events"), Some(12));
    admin.resume().await?;
    let last = tally::append(&store, "r-1", &tally::counted(1))
        .await?
        .position
        .expect("position");
    live.wait_for(&last, Duration::from_secs(5)).await?;
    assert_eq!(value(&target, "events"), Some(13));
    assert_eq!(target.slots(&name).await?.len(), 1);
    live.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_double_an_effect() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    let target = Target::new();
    let one = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options().with_batch_size(7))
        .spawn();
    let two = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options().with_batch_size(7))
        .spawn();
    let mut last = None;
    for i in 0..200 {
        last = tally::append(&store, &format!("two-{}", i % 7), &tally::counted(1))
            .await?
            .position;
    }
    let last = last.expect("position");
    tokio::time::timeout(Duration::from_secs(10), async {
        while value(&target, "events") != Some(200) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    let states = [one.progress().state, two.progress().state];
    assert!(
        states.contains(&ProjectorState::Standby),
        "one instance stands by: {states:?}"
    );

    // The running one is killed; the standby takes over once the lease expires.
    let (running, standby) = if one.progress().state == ProjectorState::Standby {
        (two, one)
    } else {
        (one, two)
    };
    running.abort();
    let more = tally::append(&store, "two-0", &tally::counted(1))
        .await?
        .position
        .expect("position");
    standby.wait_for(&more, Duration::from_secs(10)).await?;
    assert_eq!(value(&target, "events"), Some(201));
    assert!(standby.progress().checkpoint.covers(&last));
    standby.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_at_random_points_then_resumed() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    for s in 0..10 {
        tally::append(&store, &format!("k-{s}"), &tally::counted(100)).await?;
    }
    let target = Target::new();
    for round in 0..20u64 {
        let handle = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
            .with_options(
                options()
                    .with_batch_size(13)
                    .with_owner(format!("round-{round}")),
            )
            .spawn();
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3_000))).await;
        handle.abort();
        tally::append(&store, &format!("k-{}", round % 10), &tally::counted(1)).await?;
    }
    let done = Projector::new(store.clone(), Tally::<1>::strict(), target.clone()).with_options(
        options()
            .with_owner("final")
            .with_lease_ttl(Duration::from_millis(100)),
    );
    // The last aborted round's lease expires within its ttl.
    tokio::time::sleep(Duration::from_millis(600)).await;
    done.catch_up().await?;
    assert_eq!(value(&target, "events"), Some(1020));
    assert_eq!(value(&target, "total"), Some(10 * 5050 + 20));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_report_reset_and_dead_letters() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "o-1", &tally::counted(5)).await?;
    let bad = tally::append(&store, "o-2", &[TallyEvent::Poison { note: "n".into() }]).await?;
    let target = Target::new();
    let operator = Projector::new(store.clone(), Tally::<1>::failing(3), target.clone())
        .with_options(options().with_poison_policy(PoisonPolicy::DeadLetter));
    let before = operator.overview().await?;
    assert_eq!((before.active, before.lag_events), (None, 6));
    assert_eq!(before.state, ProjectorState::Stopped);
    operator.catch_up().await?;
    tally::append(&store, "o-1", &tally::counted(4)).await?;

    // Four events behind, one dead letter, caught-up report from the last run.
    let report = operator.overview().await?;
    assert_eq!(report.active.as_ref().map(|s| s.slot), Some(SlotId::new(1)));
    assert_eq!(report.lag_events, 4);
    assert!(report.lag_seconds >= 0.0);
    assert_eq!(report.dead_letters, 1);
    assert_eq!(report.code_version, 1);

    // The letter is retried: the handler's failure budget (3) is used up, so it passes now.
    let letters = operator.dead_letters().await?;
    assert_eq!(letters.len(), 1);
    let id = letters[0].event_id;
    assert_eq!(Some(letters[0].position), bad.position);
    assert!(operator.retry_dead_letter(id).await?);
    assert!(!operator.retry_dead_letter(id).await?, "gone once retried");
    assert_eq!(value(&target, "healed"), Some(1));
    assert!(operator.dead_letters().await?.is_empty());

    // Reset empties the active slot; the next catch-up rebuilds it from the start.
    let reset = operator.reset().await?.expect("an active slot");
    assert_eq!(reset.slot, SlotId::new(1));
    assert_eq!(value(&target, "events"), None);
    operator.catch_up().await?;
    assert_eq!(value(&target, "events"), Some(10));
    assert_eq!(operator.overview().await?.lag_events, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_discarded_and_a_failing_retry_keeps_it() -> anyhow::Result<()> {
    let store = InMemoryEventStore::new();
    tally::append(&store, "q-1", &[TallyEvent::Poison { note: "a".into() }]).await?;
    tally::append(&store, "q-2", &[TallyEvent::Poison { note: "b".into() }]).await?;
    let target = Target::new();
    let operator = Projector::new(store.clone(), Tally::<1>::strict(), target.clone())
        .with_options(options().with_poison_policy(PoisonPolicy::DeadLetter));
    operator.catch_up().await?;
    let letters = operator.dead_letters().await?;
    assert_eq!(letters.len(), 2);
    let retried = operator.retry_dead_letter(letters[0].event_id).await;
    assert!(matches!(retried, Err(Error::PoisonEvent(_))), "{retried:?}");
    assert_eq!(
        operator.dead_letters().await?.len(),
        2,
        "a failed retry keeps the letter"
    );
    assert!(operator.discard_dead_letter(letters[1].event_id).await?);
    let left = operator.dead_letters().await?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_id, letters[0].event_id);
    assert_eq!(
        value(&target, "healed"),
        None,
        "a discarded letter is not applied"
    );
    Ok(())
}

/// Records how many events each commit carried.
#[derive(Debug, Default)]
struct CommitSizes {
    sizes: Vec<usize>,
}

impl foldline::MemoryModel for CommitSizes {
    type Writes = Vec<u64>;

    fn apply(&mut self, writes: Vec<u64>) {
        self.sizes.push(writes.len());
    }
}

/// One write per event, whatever it is.
struct EveryEvent;

impl Projection for EveryEvent {
    const NAME: ProjectionName = ProjectionName::from_static("every_event");
    type Event = foldline::AnyEvent;
    type Writes = Vec<u64>;

    fn handle(
        &self,
        event: foldline::Envelope<'_, foldline::AnyEvent>,
        writes: &mut Vec<u64>,
    ) -> Result<(), foldline::BoxError> {
        writes.push(event.recorded.stream_version.get());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_commits_full_batches() -> anyhow::Result<()> {
    // The in-memory store reads pages of 512 events: batches fill across pages, and what is
    // left of a page waits for the next batch rather than making a small commit of its own.
    let store = InMemoryEventStore::new();
    for s in 0..100 {
        tally::append(&store, &format!("full-{s}"), &tally::counted(10)).await?;
    }
    for (batch, expected) in [(300, vec![300, 300, 300, 100]), (10_000, vec![1000])] {
        let target = InMemoryTarget::<CommitSizes>::new();
        Projector::new(store.clone(), EveryEvent, target.clone())
            .with_options(options().with_batch_size(batch))
            .catch_up()
            .await?;
        let sizes = target.read(&EveryEvent::NAME, |m| m.sizes.clone());
        assert_eq!(sizes, Some(expected), "batch size {batch}");
    }
    Ok(())
}
