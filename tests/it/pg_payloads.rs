//! Payloads PostgreSQL's `jsonb` refuses, appended beside valid ones in one group commit: the
//! store refuses each bad one with `Error::InvalidPayload` before it is queued, stores what it
//! accepts exactly as `jsonb` would, and never fails a valid neighbour.

use std::sync::Arc;

use foldline::{
    AppendRequest, AppendResult, Error, EventStore, EventType, ExpectedVersion, NewEvent, StreamId,
};
use foldline_postgres::PgEventStore;
use foldline_tests::pg::{count_events, raw_client, test_schema};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

/// Appends `payload` alone to `stream`, once `barrier` lets it go.
fn spawn_append(
    store: &PgEventStore,
    barrier: &Arc<Barrier>,
    stream: StreamId,
    payload: Vec<u8>,
) -> JoinHandle<Result<AppendResult, Error>> {
    let (store, barrier) = (store.clone(), barrier.clone());
    tokio::spawn(async move {
        let kind = EventType::new("test.Raw").expect("a valid event type");
        let event = NewEvent::new(kind, 1, payload);
        barrier.wait().await;
        store
            .append(AppendRequest::new(
                stream,
                ExpectedVersion::NoStream,
                vec![event],
            ))
            .await
    })
}

/// The review's case: `{"a":"\xff"}` (invalid UTF-8 inside a JSON string) appended at the same
/// moment as 20 valid appends, so that group commit puts them in one transaction. The bad one
/// is `Error::InvalidPayload`; all 20 valid ones are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_utf8_in_a_string_fails_only_its_own_append() -> anyhow::Result<()> {
    const GOOD: usize = 20;
    const ROUNDS: usize = 4;
    let schema = test_schema().await;
    let store = schema.store().clone();
    let client = raw_client().await;
    for round in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(GOOD + 1));
        let good: Vec<_> = (0..GOOD)
            .map(|g| {
                let stream = StreamId::new(format!("good-{round}-{g}"))?;
                Ok(spawn_append(
                    &store,
                    &barrier,
                    stream,
                    br#"{"good":true}"#.to_vec(),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let bad_stream = StreamId::new(format!("bad-{round}"))?;
        let bad = spawn_append(
            &store,
            &barrier,
            bad_stream.clone(),
            b"{\"a\":\"\xff\"}".to_vec(),
        )
        .await?;
        match &bad {
            Err(error @ Error::InvalidPayload { stream, .. }) => {
                assert_eq!(stream, &bad_stream);
                assert!(error.is_invalid_input() && !error.is_transient());
            }
            other => panic!("round {round}: expected Error::InvalidPayload, got {other:?}"),
        }
        let mut failed = Vec::new();
        for (g, task) in good.into_iter().enumerate() {
            if let Err(error) = task.await? {
                failed.push((g, foldline::error_chain(&error, ": ")));
            }
        }
        assert!(
            failed.is_empty(),
            "round {round}: {} of {GOOD} valid appends failed beside the bad one: {failed:?}",
            failed.len()
        );
        assert_eq!(
            count_events(&client, schema.name(), bad_stream.as_str()).await?,
            0
        );
    }
    Ok(())
}
