//! A transaction left open elsewhere holds the feed back, `feed_holders()` names it,
//! `feed_held_back()` counts the committed events waiting behind it and says for how long, and
//! once it ends everything arrives exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use foldline::{
    AppendRequest, AppendResult, Checkpoint, EventStore, EventType, ExpectedVersion,
    FeedHolderKind, ManagedStore, NewEvent, Position, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::{RawEvent, backend_pid, insert_event, raw_client, take_xid, test_schema};
use uuid::Uuid;

use crate::SERIAL;
use crate::reader::Reader;

const EVENT_TYPE: EventType = EventType::from_static("test.Held");

/// How long the test watches for something that must *not* happen.
const QUIET: Duration = Duration::from_millis(600);

async fn append(store: &PgEventStore, stream: &str, label: &str) -> (Uuid, AppendResult) {
    let payload = serde_json::json!({ "label": label })
        .to_string()
        .into_bytes();
    let event = NewEvent::new(EVENT_TYPE, 1, payload);
    let id = event.event_id;
    let stream = StreamId::new(stream).expect("stream id");
    let result = store
        .append(AppendRequest::new(
            stream,
            ExpectedVersion::Any,
            vec![event],
        ))
        .await
        .expect("append");
    (id, result)
}

fn position(result: &AppendResult) -> Position {
    result
        .position
        .expect("an append of one event has a position")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_transaction_holds_the_feed_back_until_it_ends() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let schema = test_schema().await;
    let store = schema.store().clone();
    let mut subscriber = Reader::subscriber(&store, Checkpoint::START).await;

    let mut holder = raw_client().await;
    let pid = backend_pid(&holder).await?;
    let began = Instant::now();
    let tx = holder.transaction().await?;
    // A transaction that has only read holds nothing back: it has no xid.
    tx.query_one("SELECT 1", &[]).await?;
    let (free, free_result) = append(&store, "held", "before the xid").await;
    subscriber
        .wait_for_all(
            &HashSet::from([free]),
            "an append beside a read-only transaction",
        )
        .await;
    let caught_up = subscriber.log().checkpoint.clone();
    let head = store.head().await?;
    assert!(head.covers(&position(&free_result)));

    // From here on the transaction holds the horizon: what commits after it stays unseen.
    let xid = take_xid(&tx).await?;
    let mut later = Vec::new();
    for i in 0..5 {
        later.push(append(&store, "held", &format!("held back {i}")).await);
    }
    // The old transaction now writes an event of its own, positioned after all of those.
    let raw = RawEvent::new("held-raw", 1, EVENT_TYPE.as_str(), 1, r#"{"label":"raw"}"#);
    let raw_at = insert_event(&tx, schema.name(), &raw).await?;
    assert_eq!(raw_at.xid, xid);
    for (_, result) in &later {
        assert!(
            position(result).major() > xid,
            "appends after the xid have later xids"
        );
        assert!(position(result).minor() < raw_at.position);
    }

    assert!(
        !subscriber.delivers_more_than(1, QUIET).await,
        "the subscriber got events committed after a transaction that is still open: {:?}",
        subscriber.log().events.get(1)
    );
    let batch = store.read_all(&caught_up, 100).await?;
    assert!(
        batch.is_empty(),
        "read_all went past an open transaction: {:?}",
        batch.events
    );
    let held_head = store.head().await?;
    for (_, result) in &later {
        assert!(
            !held_head.covers(&position(result)),
            "head() {held_head} moved past an open transaction"
        );
    }

    let holders = store.feed_holders().await?;
    let holding = holders
        .iter()
        .find(|h| h.pid == Some(pid))
        .unwrap_or_else(|| panic!("feed_holders() does not name pid {pid}: {holders:?}"));
    assert_eq!(holding.xid, Some(xid), "{holding:?}");
    let open_for = began.elapsed();
    assert!(
        holding.age >= QUIET.saturating_sub(Duration::from_millis(100))
            && holding.age <= open_for + Duration::from_secs(1),
        "the holder's age {:?} is implausible: its transaction has been open about {open_for:?}",
        holding.age
    );
    if let Some(state) = &holding.state {
        assert_eq!(state, "idle in transaction", "{holding:?}");
    }
    assert!(
        holders.windows(2).all(|w| w[0].age >= w[1].age),
        "feed_holders() is not oldest first: {holders:?}"
    );

    tx.commit().await?;
    // Everything arrives, once: the old transaction's event first (its xid is older), then the
    // appends in their order.
    let mut expected: HashSet<Uuid> = later.iter().map(|(id, _)| *id).collect();
    expected.insert(raw.event_id);
    subscriber
        .wait_for_all(&expected, "after the holder committed")
        .await;
    let order: Vec<Uuid> = std::iter::once(free)
        .chain([raw.event_id])
        .chain(later.iter().map(|(id, _)| *id))
        .collect();
    assert_eq!(subscriber.log().ids(), order);
    let batch = store.read_all(&caught_up, 100).await?;
    assert_eq!(
        batch.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        order[1..]
    );
    assert_eq!(batch.events[0].position.major(), xid);
    let head = store.head().await?;
    for event in &batch.events {
        assert!(head.covers(&event.position));
    }
    let holders = store.feed_holders().await?;
    assert!(
        holders.iter().all(|h| h.pid != Some(pid)),
        "a committed transaction is still named as a holder: {holders:?}"
    );
    assert!(
        !subscriber.delivers_more_than(order.len(), QUIET).await,
        "events were delivered twice: {:?}",
        subscriber.log().ids()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_back_feed_counts_the_committed_events_waiting_and_how_long() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let schema = test_schema().await;
    let store = schema.store().clone();
    let mut holder = raw_client().await;
    let pid = backend_pid(&holder).await?;
    let database: String = holder
        .query_one("SELECT current_database()::text", &[])
        .await?
        .get(0);
    let tx = holder.transaction().await?;
    take_xid(&tx).await?;
    let xid_taken = Instant::now();

    // 51 events commit behind the open transaction: none of them is in the feed or its head,
    // so every projection's lag leaves them out; they are waiting.
    for chunk in [20, 20, 11] {
        let events: Vec<NewEvent> = (0..chunk)
            .map(|i| NewEvent::new(EVENT_TYPE, 1, format!(r#"{{"n":{i}}}"#).into_bytes()))
            .collect();
        store
            .append(AppendRequest::new(
                StreamId::new("waiting")?,
                ExpectedVersion::Any,
                events,
            ))
            .await?;
    }
    assert!(
        store.head().await?.is_start(),
        "the feed moved past an open transaction"
    );

    let first = store.feed_held_back().await?;
    assert_eq!(first.waiting_events, 51, "{first:?}");
    assert!(first.is_held());
    let ours = first
        .holders
        .iter()
        .find(|h| h.pid == Some(pid))
        .unwrap_or_else(|| panic!("feed_held_back() does not name pid {pid}: {first:?}"))
        .clone();
    assert_eq!(ours.kind, FeedHolderKind::Session, "{ours:?}");
    assert_eq!(ours.gid, None, "{ours:?}");
    assert_eq!(ours.owner.as_deref(), Some("postgres"), "{ours:?}");
    assert_eq!(
        ours.database.as_deref(),
        Some(database.as_str()),
        "{ours:?}"
    );
    // Held for as long as its oldest holder has lasted: ours, or someone's older.
    let held_for = first.held_for.expect("a held feed says for how long");
    assert!(held_for >= ours.age, "{first:?}");
    assert!(
        ours.age <= xid_taken.elapsed() + Duration::from_secs(1),
        "the holder's age {:?} is implausible: it took its xid {:?} ago",
        ours.age,
        xid_taken.elapsed()
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = store.feed_held_back().await?;
    assert_eq!(later.waiting_events, 51, "{later:?}");
    let ours_later = later
        .holders
        .iter()
        .find(|h| h.pid == Some(pid))
        .unwrap_or_else(|| panic!("pid {pid} is no longer named: {later:?}"));
    assert!(
        ours_later.age >= ours.age + Duration::from_secs(1),
        "the holder's age does not grow: {:?}, then {:?}",
        ours.age,
        ours_later.age
    );
    assert!(
        later.held_for >= Some(ours_later.age),
        "held_for does not grow with the holder: {later:?}"
    );

    tx.commit().await?;
    // The events are delivered now, unless another session's transaction (another test's, in
    // another schema) still holds the horizon: wait for those to end.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = store.feed_held_back().await?;
        assert!(
            held.holders.iter().all(|h| h.pid != Some(pid)),
            "a committed transaction is still named as a holder: {held:?}"
        );
        if held.waiting_events == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events still wait 30 s after their holder ended: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let batch = store.read_all(&Checkpoint::START, 100).await?;
    assert_eq!(batch.events.len(), 51);
    Ok(())
}
