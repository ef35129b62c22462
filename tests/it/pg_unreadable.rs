//! Rows written around the store that foldline cannot read whole (an invalid stream id or
//! event type, metadata that is not foldline's) are corrupt data at a position, not outages:
//! the feed returns them in their place, marked; a projector stops on them or parks them with
//! their stored values; loading their stream is a typed error naming the position.

use std::time::Duration;

use foldline::{
    Checkpoint, CommandExecutor, Error, EventStore, PoisonPolicy, Projection, ProjectionTarget,
    Projector, ProjectorOptions,
};
use foldline_tests::pg::{RawEvent, insert_event, raw_client, table, test_schema};
use foldline_tests::redis::test_prefix;
use foldline_tests::tally::{self, RedisTally};
use foldline_tests::{Account, AccountCommand as Cmd};

const BAD_STREAM: &str = "bad\nerror: forged\u{1b}[31m";

/// A schema holding, in feed order: 2 tally events, a row with an invalid stream id, a row
/// with an invalid event type, an account whose opening row has foreign metadata, 1 tally event.
async fn damaged_feed() -> anyhow::Result<foldline_postgres::PgTestSchema> {
    let schema = test_schema().await;
    let store = schema.store().clone();
    tally::append(&store, "acct", &tally::counted(2)).await?;
    let client = raw_client().await;
    let counted = r#"{"Counted":{"amount":100}}"#;
    insert_event(
        &client,
        schema.name(),
        &RawEvent::new(BAD_STREAM, 1, "tally.counted", 1, counted),
    )
    .await?;
    insert_event(
        &client,
        schema.name(),
        &RawEvent::new("typo", 1, "Counted Twice!", 1, counted),
    )
    .await?;
    CommandExecutor::new(store.clone())
        .execute::<Account>(Cmd::open("meta", "ada"))
        .await?;
    client
        .execute(
            &format!(
                "UPDATE {} SET metadata = '{{\"command_id\": 7}}' WHERE stream_id = $1",
                table(schema.name(), "events")
            ),
            &[&crate::commands::stream("meta").as_str()],
        )
        .await?;
    tally::append(&store, "acct", &tally::counted(1)).await?;
    Ok(schema)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_rows_are_returned_in_their_place_marked() -> anyhow::Result<()> {
    let schema = damaged_feed().await?;
    let batch = schema.store().read_all(&Checkpoint::START, 100).await?;
    let reasons: Vec<Option<&str>> = batch
        .events
        .iter()
        .map(|e| e.unreadable.as_ref().map(|u| u.reason.as_str()))
        .collect();
    assert_eq!(batch.events.len(), 6, "{reasons:?}");
    assert!(reasons[..2].iter().all(Option::is_none), "{reasons:?}");
    assert!(
        reasons[2].is_some_and(|r| r.starts_with("invalid stream id")),
        "{reasons:?}"
    );
    assert!(
        reasons[3].is_some_and(|r| r.starts_with("invalid event type")),
        "{reasons:?}"
    );
    assert!(
        reasons[4].is_some_and(|r| r.starts_with("malformed metadata")),
        "{reasons:?}"
    );
    assert!(reasons[5].is_none());
    let raw = &batch.events[2].unreadable.as_ref().expect("marked").raw;
    assert_eq!(raw["stream_id"], BAD_STREAM);
    assert_eq!(raw["event_type"], "tally.counted");
    assert_eq!(
        batch.events[3].unreadable.as_ref().expect("marked").raw["event_type"],
        "Counted Twice!"
    );

    // Loading the account whose row is unreadable is a typed error at its position.
    let error = CommandExecutor::new(schema.store().clone())
        .load::<Account>(&"meta".to_owned())
        .await
        .expect_err("an unreadable event cannot be folded");
    match &error {
        Error::UnreadableEvent { position, .. } => assert_eq!(*position, batch.events[4].position),
        other => panic!("expected UnreadableEvent, got {other:?}"),
    }
    assert!(error.is_decode() && !error.is_transient(), "{error:?}");
    Ok(())
}

fn quick_retries(policy: PoisonPolicy) -> ProjectorOptions {
    ProjectorOptions::new()
        .with_poison_policy(policy)
        .with_retries(2, Duration::from_millis(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_stops_on_an_unreadable_row_or_parks_it_with_its_raw_values()
-> anyhow::Result<()> {
    let schema = damaged_feed().await?;
    let store = schema.store().clone();
    let feed = store.read_all(&Checkpoint::START, 100).await?.events;

    // Stop: a poison event at the first unreadable row, after the two before it.
    let prefix = test_prefix().await;
    let target = prefix.target().clone();
    let stopping = Projector::new(store.clone(), RedisTally::<1>, target.clone())
        .with_options(quick_retries(PoisonPolicy::Stop));
    match stopping.catch_up().await {
        Err(Error::PoisonEvent(poison)) => {
            assert_eq!(poison.position, feed[2].position);
            let cause = foldline::error_chain(&poison, ": ");
            assert!(
                cause.contains("cannot be read: invalid stream id"),
                "{cause}"
            );
        }
        other => panic!("expected a poison event, got {other:?}"),
    }
    let slots = target.slots(&<RedisTally>::NAME).await?;
    let checkpoint = target
        .checkpoint(&<RedisTally>::NAME, slots[0].slot)
        .await?
        .expect("the slot has a checkpoint");
    assert!(
        checkpoint.covers(&feed[1].position) && !checkpoint.covers(&feed[2].position),
        "the checkpoint stays just before the unreadable row: {checkpoint}"
    );

    // Dead letter: parked with their stored values; the feed goes on to the last event.
    let prefix = test_prefix().await;
    let target = prefix.target().clone();
    let parking = Projector::new(store.clone(), RedisTally::<1>, target.clone())
        .with_options(quick_retries(PoisonPolicy::DeadLetter));
    parking.catch_up().await?;
    let letters = parking.dead_letters().await?;
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert_eq!(
        letters.iter().map(|l| l.position).collect::<Vec<_>>(),
        [feed[2].position, feed[3].position, feed[4].position]
    );
    let raw = &letters[0]
        .unreadable
        .as_ref()
        .expect("the raw row is kept")
        .raw;
    assert_eq!(raw["stream_id"], BAD_STREAM);
    let events = tally::redis_events(&target).await?;
    assert_eq!(
        events,
        Some(3),
        "the three readable tally events are applied"
    );
    Ok(())
}
