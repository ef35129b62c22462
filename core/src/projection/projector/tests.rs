//! Edge cases of the projector on the in-memory store and target (its main tests are in the
//! workspace's `tests/it/projector.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::{BoxError, Error};
use crate::event::NewEvent;
use crate::names::{EventType, ProjectionName, StreamId};
use crate::projection::{
    AnyEvent, Envelope, InMemoryTarget, MemoryModel, PoisonPolicy, Projection, ProjectionTarget,
    Projector, ProjectorOptions, ProjectorState,
};
use crate::store::InMemoryEventStore;
use crate::store::{AppendRequest, EventStore};
use crate::version::ExpectedVersion;

const NAME: ProjectionName = ProjectionName::from_static("always_fails");

/// A handler that fails on every event, and tells when it has been called.
struct AlwaysFails(Arc<Notify>);

impl Projection for AlwaysFails {
    const NAME: ProjectionName = NAME;
    type Event = AnyEvent;
    type Writes = ();
    fn handle(&self, _: Envelope<'_, AnyEvent>, (): &mut ()) -> Result<(), BoxError> {
        self.0.notify_one();
        Err("always fails".into())
    }
}

#[derive(Default)]
struct Nothing;

impl MemoryModel for Nothing {
    type Writes = ();
    fn apply(&mut self, (): ()) {}
}

/// A shutdown while a failing event waits for its next try is a shutdown, not a failure.
#[tokio::test]
async fn shutdown_during_a_handler_retry_stops_cleanly() -> crate::Result<()> {
    let store = InMemoryEventStore::new();
    let event = NewEvent::new(EventType::new("happened")?, 1, b"{}".to_vec());
    let stream = StreamId::new("s-1")?;
    store
        .append(AppendRequest::new(
            stream,
            ExpectedVersion::Any,
            vec![event],
        ))
        .await?;
    let target = InMemoryTarget::<Nothing>::new();
    let called = Arc::new(Notify::new());
    let options = ProjectorOptions::new()
        .with_poison_policy(PoisonPolicy::Stop)
        .with_retries(5, Duration::from_secs(30));
    let projector = Projector::new(store, AlwaysFails(Arc::clone(&called)), target.clone())
        .with_options(options);
    let running = projector.spawn();
    called.notified().await;
    running.shutdown().await?;
    let status = target.heartbeat(&NAME).await?.expect("a status report");
    assert_eq!(status.state, ProjectorState::Stopped);
    assert_eq!(status.error, None);
    Ok(())
}

/// `wait_for` on a projector that has stopped says so at once, rather than at the timeout.
#[tokio::test]
async fn wait_for_on_a_stopped_projector_is_closed() -> crate::Result<()> {
    let store = InMemoryEventStore::new();
    let event = NewEvent::new(EventType::new("happened")?, 1, b"{}".to_vec());
    let stream = StreamId::new("s-1")?;
    let appended = store
        .append(AppendRequest::new(
            stream,
            ExpectedVersion::Any,
            vec![event],
        ))
        .await?;
    let position = appended
        .position
        .expect("an append of one event has a position");
    let target = InMemoryTarget::<Nothing>::new();
    let options = ProjectorOptions::new().with_retries(1, Duration::from_millis(1));
    let projector =
        Projector::new(store, AlwaysFails(Arc::new(Notify::new())), target).with_options(options);
    let running = projector.spawn();
    // The projector (and so its progress sender) outlives the task.
    let waited = running.wait_for(&position, Duration::from_secs(30)).await;
    assert!(matches!(waited, Err(Error::Closed { .. })), "{waited:?}");
    assert!(matches!(running.join().await, Err(Error::PoisonEvent(_))));
    drop(projector);
    Ok(())
}
