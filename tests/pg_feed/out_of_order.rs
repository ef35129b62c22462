//! Randomized rounds of out-of-order commits: store appends from three instances, and raw
//! transactions that take an xid or insert an event, sleep inside PostgreSQL for a random time,
//! then commit or roll back.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use foldline::{
    AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, SchemaName, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::{RawEvent, insert_event, raw_client, table, take_xid, test_schema};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::SERIAL;
use crate::reader::{NaiveReader, Reader, read_everything};

const ROUNDS: u32 = 200;
const SHARED_STREAMS: usize = 4;
const RAW_CONNECTIONS: usize = 4;
const EVENT_TYPE: EventType = EventType::from_static("test.Feed");

/// What a raw transaction does before it ends.
#[derive(Clone, Copy, Debug)]
enum Interference {
    /// Takes an xid and sleeps: holds the horizon, writes nothing.
    HoldXid,
    /// Inserts an event (allocating its position now) and sleeps: the classic gap.
    InsertThenSleep,
    /// Takes an xid, sleeps, then inserts an event and sleeps again: an old transaction whose
    /// row gets a position after rows committed meanwhile.
    XidThenLateInsert,
    /// Writes to another table: an xid unrelated to the events table.
    Scratch,
}

/// What a round committed and rolled back.
#[derive(Default)]
struct Outcome {
    committed: Vec<Uuid>,
    rolled_back: Vec<Uuid>,
    appends: usize,
    raw_commits: usize,
    raw_rollbacks: usize,
}

fn random_sleep() -> f64 {
    // 0-30 ms, inside PostgreSQL.
    fastrand::f64() * 0.030
}

async fn pg_sleep(client: &impl tokio_postgres::GenericClient) {
    client
        .execute("SELECT pg_sleep($1)", &[&random_sleep()])
        .await
        .expect("pg_sleep");
}

/// One raw transaction on `client`; returns the event it inserted, if any, and whether it
/// committed.
async fn interfere(
    client: &mut Client,
    schema: &SchemaName,
    stream: String,
    kind: Interference,
    commit: bool,
) -> (Option<Uuid>, bool) {
    let tx = client.transaction().await.expect("BEGIN");
    let event = RawEvent::new(&stream, 1, EVENT_TYPE.as_str(), 1, r#"{"raw":true}"#);
    let inserted = match kind {
        Interference::HoldXid => {
            take_xid(&tx).await.expect("xid");
            pg_sleep(&tx).await;
            None
        }
        Interference::InsertThenSleep => {
            insert_event(&tx, schema, &event).await.expect("raw insert");
            pg_sleep(&tx).await;
            Some(event.event_id)
        }
        Interference::XidThenLateInsert => {
            take_xid(&tx).await.expect("xid");
            pg_sleep(&tx).await;
            insert_event(&tx, schema, &event).await.expect("raw insert");
            pg_sleep(&tx).await;
            Some(event.event_id)
        }
        Interference::Scratch => {
            let sql = format!("INSERT INTO {} VALUES ($1)", table(schema, "scratch"));
            tx.execute(&sql, &[&stream]).await.expect("scratch insert");
            pg_sleep(&tx).await;
            None
        }
    };
    if commit {
        tx.commit().await.expect("COMMIT");
    } else {
        tx.rollback().await.expect("ROLLBACK");
    }
    (inserted, commit)
}

/// A few appends through `store`, each 1-3 events, to a shared stream (racing the other
/// instances) or a stream of this writer's own; returns the ids of the events appended.
async fn write(store: PgEventStore, round: u32, writer: usize) -> Vec<Uuid> {
    let mut appended = Vec::new();
    for n in 0..fastrand::usize(2..=4) {
        let stream = if fastrand::bool() {
            format!("shared-{}", fastrand::usize(..SHARED_STREAMS))
        } else {
            format!("own-{round}-{writer}")
        };
        let events: Vec<NewEvent> = (0..fastrand::usize(1..=3))
            .map(|i| {
                let payload =
                    serde_json::json!({ "round": round, "writer": writer, "n": n, "i": i });
                NewEvent::new(EVENT_TYPE, 1, payload.to_string().into_bytes())
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let request = AppendRequest::new(
            StreamId::new(stream).expect("stream id"),
            ExpectedVersion::Any,
            events,
        );
        store.append(request).await.expect("append");
        appended.extend(ids);
        jitter().await;
    }
    appended
}

async fn jitter() {
    tokio::time::sleep(Duration::from_micros(fastrand::u64(..5_000))).await;
}

async fn round(
    round: u32,
    stores: &[PgEventStore],
    raw: &mut Vec<Client>,
    schema: &SchemaName,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut interferers = Vec::new();
    for (n, mut client) in std::mem::take(raw).into_iter().enumerate() {
        let schema = schema.clone();
        let kind = match fastrand::u8(..4) {
            0 => Interference::HoldXid,
            1 => Interference::InsertThenSleep,
            2 => Interference::XidThenLateInsert,
            _ => Interference::Scratch,
        };
        let commit = fastrand::u8(..3) > 0;
        interferers.push(tokio::spawn(async move {
            jitter().await;
            let result = interfere(
                &mut client,
                &schema,
                format!("raw-{round}-{n}"),
                kind,
                commit,
            )
            .await;
            (client, result)
        }));
    }
    let mut writers = Vec::new();
    for (writer, store) in stores.iter().chain(stores).enumerate() {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            jitter().await;
            write(store, round, writer).await
        }));
    }
    for writer in writers {
        let appended = writer.await.expect("writer task");
        outcome.appends += 1;
        outcome.committed.extend(appended);
    }
    for interferer in interferers {
        let (client, (inserted, committed)) = interferer.await.expect("raw task");
        raw.push(client);
        if committed {
            outcome.raw_commits += 1;
        } else {
            outcome.raw_rollbacks += 1;
        }
        match (inserted, committed) {
            (Some(id), true) => outcome.committed.push(id),
            (Some(id), false) => outcome.rolled_back.push(id),
            (None, _) => {}
        }
    }
    outcome
}

/// At least 100 rounds: in each, six writers on three store instances append while four raw
/// transactions hold xids or inserted rows open for 0-30 ms and then commit or roll back. A
/// subscriber and a `read_all` poller run throughout. After each round (closed by one more
/// append, whose commit wakes the subscriber), both have been delivered exactly the committed
/// events — each once, in store order, per-stream versions 1, 2, 3..., nothing rolled back.
/// At the end a full read of the feed lists the same events in the same order, and a naive
/// position-only reader run alongside has skipped some: the rounds really did commit out of
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(
    clippy::print_stderr,
    reason = "the run's statistics are part of its report"
)]
async fn subscribers_never_skip_or_repeat_out_of_order_commits() {
    let _serial = SERIAL.lock().await;
    let schema = test_schema().await;
    let stores = [
        schema.store().clone(),
        schema.connect_another().await.expect("second instance"),
        schema.connect_another().await.expect("third instance"),
    ];
    let setup = raw_client().await;
    setup
        .batch_execute(&format!(
            "CREATE TABLE {} (note text)",
            table(schema.name(), "scratch")
        ))
        .await
        .expect("scratch table");
    let mut raw = Vec::new();
    for _ in 0..RAW_CONNECTIONS {
        raw.push(raw_client().await);
    }
    let mut subscriber = Reader::subscriber(&stores[0], foldline::Checkpoint::START).await;
    let mut poller = Reader::poller(stores[1].clone(), 37);
    let naive = NaiveReader::start(schema.name()).await;

    let started = Instant::now();
    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    let (mut appends, mut raw_commits, mut raw_rollbacks) = (0, 0, 0);
    let mut slowest = Duration::ZERO;
    for n in 0..ROUNDS {
        let outcome = round(n, &stores, &mut raw, schema.name()).await;
        appends += outcome.appends;
        raw_commits += outcome.raw_commits;
        raw_rollbacks += outcome.raw_rollbacks;
        committed.extend(outcome.committed);
        rolled_back.extend(outcome.rolled_back);
        // Committed after every transaction of the round ended: its notification wakes the
        // subscriber with the horizon past everything.
        let marker = write_marker(&stores[2], n).await;
        committed.insert(marker);

        let waiting = Instant::now();
        let context = format!("round {n}");
        subscriber.wait_for_all(&committed, &context).await;
        poller.wait_for_all(&committed, &context).await;
        slowest = slowest.max(waiting.elapsed());
        for reader in [&subscriber, &poller] {
            let log = reader.log();
            let delivered: HashSet<Uuid> = log.ids().into_iter().collect();
            assert_eq!(
                log.events.len(),
                delivered.len(),
                "{context}: an event was delivered twice"
            );
            assert!(
                delivered.is_disjoint(&rolled_back),
                "{context}: a rolled-back event was delivered"
            );
            assert_eq!(
                delivered, committed,
                "{context}: delivered events differ from the committed ones"
            );
        }
    }

    let everything = read_everything(&stores[1], 100).await;
    let order = everything.ids();
    assert_eq!(
        subscriber.log().ids(),
        order,
        "the subscriber's order differs"
    );
    assert_eq!(poller.log().ids(), order, "the poller's order differs");
    let head = stores[0].head().await.expect("head");
    let last = everything.events.last().expect("events").position;
    assert!(
        head.covers(&last),
        "head() {head} is behind the last event at {last}"
    );
    let beyond = stores[0]
        .read_all(&head, 10)
        .await
        .expect("read_all from head");
    assert!(
        beyond.is_empty(),
        "head() {head} is not the end of the feed"
    );

    let skipped = naive.skipped(&everything.events);
    eprintln!(
        "pg_feed: {ROUNDS} rounds in {:.1?}: {} events from {appends} writer runs, \
         {raw_commits} raw commits, {raw_rollbacks} rollbacks ({} rolled-back events); \
         slowest catch-up {slowest:.1?}; a naive position-only reader skipped {skipped}",
        started.elapsed(),
        order.len(),
        rolled_back.len(),
    );
    assert!(
        skipped > 0,
        "a naive reader skipped nothing: the rounds did not commit out of position order, \
         so they proved nothing"
    );
}

async fn write_marker(store: &PgEventStore, round: u32) -> Uuid {
    let event = NewEvent::new(
        EVENT_TYPE,
        1,
        serde_json::json!({ "marker": round })
            .to_string()
            .into_bytes(),
    );
    let id = event.event_id;
    let stream = StreamId::new(format!("marker-{round}")).expect("stream id");
    store
        .append(AppendRequest::new(
            stream,
            ExpectedVersion::NoStream,
            vec![event],
        ))
        .await
        .expect("marker append");
    id
}
