//! Several store instances (each with its own pool and group-commit writer, as several
//! processes would be) appending to the same streams: the global feed lists each stream's
//! versions in increasing order, and each event at the version its append reported.

use std::collections::{HashMap, HashSet};

use foldline::{
    AppendRequest, Checkpoint, EventStore, EventType, ExpectedVersion, NewEvent, StreamId, Version,
};
use foldline_tests::pg::test_schema;
use uuid::Uuid;

use crate::SERIAL;
use crate::reader::{Reader, read_everything};

const STREAMS: usize = 5;
const TASKS_PER_INSTANCE: usize = 4;
const APPENDS: usize = 40;
const EVENT_TYPE: EventType = EventType::from_static("test.Ordered");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_stream_is_in_order_across_instances() -> anyhow::Result<()> {
    let _serial = SERIAL.lock().await;
    let schema = test_schema().await;
    let stores = [
        schema.store().clone(),
        schema.connect_another().await?,
        schema.connect_another().await?,
    ];
    let mut subscriber = Reader::subscriber(&stores[0], Checkpoint::START).await;

    let mut tasks = Vec::new();
    for (instance, store) in stores.iter().enumerate() {
        for task in 0..TASKS_PER_INSTANCE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Which version each appended event was given, by the append's result.
                let mut assigned = Vec::new();
                for n in 0..APPENDS {
                    let stream = StreamId::new(format!("s-{}", fastrand::usize(..STREAMS)))?;
                    let events: Vec<NewEvent> = (0..fastrand::usize(1..=3))
                        .map(|i| {
                            let payload = serde_json::json!([instance, task, n, i]);
                            NewEvent::new(EVENT_TYPE, 1, payload.to_string().into_bytes())
                        })
                        .collect();
                    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                    let result = store
                        .append(AppendRequest::new(
                            stream.clone(),
                            ExpectedVersion::Any,
                            events,
                        ))
                        .await?;
                    assert_eq!(result.event_count(), ids.len() as u64);
                    for (id, k) in ids.into_iter().zip(0..) {
                        assigned.push((id, (stream.clone(), result.first_version().add(k))));
                    }
                }
                anyhow::Ok(assigned)
            }));
        }
    }
    let mut assigned: HashMap<Uuid, (StreamId, Version)> = HashMap::new();
    for task in tasks {
        assigned.extend(task.await??);
    }

    // Once the subscriber has every event, the horizon is past them all (another transaction
    // in the database may hold it back for a while), and a full read sees them too.
    let ids: HashSet<Uuid> = assigned.keys().copied().collect();
    subscriber.wait_for_all(&ids, "after all appends").await;
    // The full read checks, batch by batch, that each stream's versions come as 1, 2, 3...
    let everything = read_everything(&stores[1], 64).await;
    assert_eq!(everything.events.len(), assigned.len());
    for event in &everything.events {
        assert_eq!(
            assigned.get(&event.event_id),
            Some(&(event.stream_id.clone(), event.stream_version)),
            "the feed has an event at another version than its append reported"
        );
    }
    assert_eq!(subscriber.log().ids(), everything.ids());
    Ok(())
}
