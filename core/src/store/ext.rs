//! [`EventStoreExt`]: what callers of any [`EventStore`] would otherwise write out themselves.

use std::future::Future;

use super::{AppendRequest, AppendResult, EventStore, NoSnapshots};
use crate::aggregate::Aggregate;
use crate::codec::JsonCodec;
use crate::command::{Loaded, load};
use crate::error::Result;
use crate::event::{DomainEvent, NewEvent};
use crate::names::StreamId;
use crate::version::ExpectedVersion;

/// Conveniences on every [`EventStore`]: appending domain events without encoding them by
/// hand, loading an aggregate without a [`CommandExecutor`](crate::CommandExecutor).
///
/// Implemented for every store (a blanket impl, as tower's `ServiceExt`); bring it into scope
/// with `use foldline::EventStoreExt`.
///
/// ```
/// use foldline::{Aggregate, Command, DomainEvent, EventStoreExt, ExpectedVersion, InMemoryEventStore, StreamId};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
/// # enum CounterEvent { Added { n: u64 } }
/// # #[derive(Debug, Command)]
/// # #[allow(dead_code)] // only loaded here, never executed
/// # enum CounterCommand { Add { #[foldline(id)] id: String, n: u64 } }
/// # #[derive(Debug, Default, Aggregate)]
/// # #[foldline(id = String, command = CounterCommand, event = CounterEvent, error = std::convert::Infallible)]
/// # struct Counter { total: u64 }
/// # impl Counter {
/// #     fn handle(&self, c: &CounterCommand) -> Result<Vec<CounterEvent>, std::convert::Infallible> {
/// #         let CounterCommand::Add { n, .. } = c; Ok(vec![CounterEvent::Added { n: *n }])
/// #     }
/// #     fn apply(&mut self, e: &CounterEvent) { let CounterEvent::Added { n } = e; self.total += n; }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> foldline::Result<()> {
/// let store = InMemoryEventStore::new();
/// let stream = StreamId::for_aggregate(Counter::NAME, &"c1".to_owned())?;
/// let events = [CounterEvent::Added { n: 2 }, CounterEvent::Added { n: 3 }];
/// store.append_events(stream, ExpectedVersion::NoStream, &events).await?;
/// let counter = store.load::<Counter>(&"c1".to_owned()).await?;
/// assert_eq!((counter.state.total, counter.version.get()), (5, 2));
/// # Ok(())
/// # }
/// ```
pub trait EventStoreExt: EventStore {
    /// Encodes `events` as JSON ([`NewEvent::encode`]) and appends them to `stream` if its
    /// version matches `expected`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) when an event does not encode (nothing is
    /// appended), otherwise as [`EventStore::append`].
    ///
    /// # Cancel safety
    ///
    /// As [`EventStore::append`]: dropped after the store received the append, it may still
    /// be written.
    fn append_events<E: DomainEvent>(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: &[E],
    ) -> impl Future<Output = Result<AppendResult>> + Send
    where
        Self: Sized,
    {
        let request = events
            .iter()
            .map(|event| NewEvent::encode(event, &JsonCodec))
            .collect::<Result<Vec<_>>>()
            .map(|events| AppendRequest::new(stream, expected, events));
        async move { self.append(request?).await }
    }

    /// Loads aggregate `id` of type `A`: folds every event of its stream (JSON), without
    /// snapshots. A [`CommandExecutor`](crate::CommandExecutor) loads from snapshots too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) when `id` makes no valid stream id;
    /// [`Error::UnknownEventType`](crate::Error::UnknownEventType) or
    /// [`Error::Decode`](crate::Error::Decode) for an event that does not decode;
    /// [`Error::StreamGap`](crate::Error::StreamGap) when the stored events skip a version; as
    /// [`EventStore::read_stream`] otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    fn load<A: Aggregate>(&self, id: &A::Id) -> impl Future<Output = Result<Loaded<A>>> + Send
    where
        Self: Sized,
    {
        let stream = StreamId::for_aggregate(A::NAME, id);
        async move { load::load(self, &NoSnapshots, &JsonCodec, stream?).await }
    }
}

impl<S: EventStore + ?Sized> EventStoreExt for S {}
