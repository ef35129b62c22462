//! Public types and the futures of public async methods are `Send` (and `Sync` where they are
//! shared), so they can be spawned on a multi-threaded runtime. A regression here is a compile
//! error in this file, not in a user's `tokio::spawn`.
#![allow(missing_docs)]

use std::fmt;

use foldline::{
    AppendRequest, Checkpoint, Codec, CommandError, CommandExecutor, Error, EventStore,
    ExpectedVersion, IdempotencyKey, InMemoryEventStore, StreamId, Subscription, Version,
};

fn is_send<T: Send>(_: &T) {}
fn is_send_sync<T: Send + Sync>() {}
fn is_error<T: std::error::Error + Send + Sync + 'static>() {}

/// A hand-written aggregate, so this test does not depend on the derives.
#[derive(Default)]
struct Counter;

#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

struct Increment(u32);

impl foldline::Command for Increment {
    type Id = u32;
    fn aggregate_id(&self) -> &u32 {
        &self.0
    }
    fn command_name(&self) -> &'static str {
        "Increment"
    }
}

struct Incremented;

impl foldline::DomainEvent for Incremented {
    const TYPES: &'static [(&'static str, u32)] = &[("Incremented", 1)];
    fn event_type(&self) -> foldline::EventType {
        foldline::EventType::from_static("Incremented")
    }
    fn schema_version(&self) -> u32 {
        1
    }
    fn encode<C: Codec>(&self, codec: &C) -> Result<Vec<u8>, foldline::BoxError> {
        codec.encode(&())
    }
    fn decode<C: Codec>(
        codec: &C,
        _event_type: &str,
        _schema_version: u32,
        payload: &[u8],
    ) -> Result<Self, foldline::DecodeError> {
        codec
            .decode::<()>(payload)
            .map_err(foldline::DecodeError::Payload)?;
        Ok(Incremented)
    }
}

impl foldline::Aggregate for Counter {
    const NAME: &'static str = "counter";
    type Id = u32;
    type Command = Increment;
    type Event = Incremented;
    type Error = Refused;
    fn handle(&self, _: &Increment) -> Result<Vec<Incremented>, Refused> {
        Ok(vec![Incremented])
    }
    fn apply(&mut self, _: &Incremented) {}
}

#[test]
fn public_types_are_send_and_sync() {
    is_send_sync::<InMemoryEventStore>();
    is_send_sync::<CommandExecutor<InMemoryEventStore>>();
    is_send_sync::<Checkpoint>();
    is_send_sync::<StreamId>();
    is_send_sync::<AppendRequest>();
    is_send_sync::<foldline::NameRule>();
    is_send_sync::<foldline::Shown<'static>>();
    is_error::<Error>();
    is_error::<CommandError<Refused>>();
    is_error::<foldline::DecodeError>();
    is_error::<foldline::BackendError>();
    fn subscription_is_send(s: &Subscription) {
        is_send(s);
    }
    let _ = subscription_is_send;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn futures_are_send() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryEventStore::new();
    let stream = StreamId::new("counter-1")?;
    is_send(&store.append(AppendRequest::new(
        stream.clone(),
        ExpectedVersion::Any,
        vec![],
    )));
    is_send(&store.read_stream(&stream, Version::ZERO, 10));
    is_send(&store.read_all(&Checkpoint::START, 10));
    is_send(&store.subscribe(Checkpoint::START));
    is_send(&store.head());
    is_send(&store.find_idempotent(&IdempotencyKey::new("k")?));

    let executor = CommandExecutor::new(store);
    is_send(&executor.execute::<Counter>(Increment(1)));
    // And it really runs when spawned on the multi-threaded runtime's worker.
    let executor = std::sync::Arc::new(executor);
    let spawned = tokio::spawn({
        let executor = executor.clone();
        async move {
            executor
                .execute::<Counter>(Increment(2))
                .await
                .map(|o| o.attempts)
        }
    });
    assert_eq!(spawned.await?.map_err(|e| e.to_string())?, 1);
    Ok(())
}
