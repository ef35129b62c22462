//! The executor's opt-in cache of decided states ([`CommandExecutor::with_cache`]).
//!
//! [`CommandExecutor::with_cache`]: super::CommandExecutor::with_cache

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::aggregate::Aggregate;
use crate::names::StreamId;
use crate::version::Version;

use super::Loaded;

/// A type-erased [`Loaded<A>`].
type State = Box<dyn Any + Send + Sync>;

/// The last loaded or decided state of up to `capacity` aggregates, each at the version it
/// reflects, least recently used evicted first.
///
/// Entries are *moved*, never cloned: a command [takes](StateCache::take) its aggregate's state
/// out when it starts and [puts](StateCache::put) the state it ends with back. So aggregates
/// need not be `Clone`, and two commands on one aggregate never share a state (the second one
/// misses and loads from the store).
///
/// Why hand-written and not the `lru` or `quick_cache` crate: `quick_cache` hands values out
/// by cloning (`Val: Clone`), which is what this cache must not require. `lru` fits, but what
/// it adds over a map is an O(1) *promote on read* through an intrusive list (with `unsafe`
/// inside); this cache never reads an entry in place, since taking removes it and putting
/// re-inserts it, so insertion order already is recency order. A `HashMap` plus a `BTreeMap`
/// from insertion tick to key is then an exact LRU in a few lines, with no new dependency.
///
/// Keys are stream ids, which already name the aggregate type (`"{NAME}-{id}"`); a state of
/// another type under the same stream (two aggregates sharing a `NAME`) fails to downcast and
/// counts as a miss. One mutex guards the map; it is held only for map operations (never across
/// an `.await`, never while folding or dropping a state), so it is not where commands wait.
pub(crate) struct StateCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl StateCache {
    /// A cache for at most `capacity` (at least 1) aggregates.
    pub(crate) fn new(capacity: usize) -> Self {
        StateCache {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Takes the cached state of `stream` out of the cache, counting a hit or a miss.
    pub(crate) fn take<A: Aggregate>(&self, stream: &StreamId) -> Option<Loaded<A>> {
        let taken = self.lock().take(stream);
        let loaded = taken.and_then(|state| state.downcast::<Loaded<A>>().ok());
        let counter = if loaded.is_some() {
            "foldline_command_cache_hits_total"
        } else {
            "foldline_command_cache_misses_total"
        };
        metrics::counter!(counter, "aggregate" => A::NAME).increment(1);
        loaded.map(|boxed| *boxed)
    }

    /// Caches `loaded`, unless the cache already holds a newer version of its stream (put there
    /// by a concurrent command that loaded after this one). Evicts the least recently put entry
    /// when full.
    pub(crate) fn put<A: Aggregate>(&self, loaded: Loaded<A>) {
        let stream = loaded.stream_id.clone();
        let version = loaded.version;
        // Dropped after the lock is released: a state can be large.
        let _dropped = self
            .lock()
            .put(stream, version, Box::new(loaded), self.capacity);
    }

    /// How many aggregates are cached.
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map operations cannot leave the entries inconsistent halfway.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for StateCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

/// An LRU map: `slots` by stream, `order` from insertion tick to stream (oldest first).
#[derive(Default)]
struct Entries {
    slots: HashMap<StreamId, Slot>,
    order: BTreeMap<u64, StreamId>,
    next_tick: u64,
}

struct Slot {
    tick: u64,
    version: Version,
    state: State,
}

impl Entries {
    fn take(&mut self, stream: &StreamId) -> Option<State> {
        let slot = self.slots.remove(stream)?;
        self.order.remove(&slot.tick);
        Some(slot.state)
    }

    /// Puts `state` in, keeping at most `capacity` entries. Returns the one state it pushed
    /// out, for the caller to drop: the offered one when a newer version is already there, or
    /// the entry it replaced, or the one evicted. Never more than one: a replacement leaves
    /// the count as it was, and a new entry goes one over `capacity` at most.
    fn put(
        &mut self,
        stream: StreamId,
        version: Version,
        state: State,
        capacity: usize,
    ) -> Option<State> {
        if let Some(existing) = self.slots.get(&stream)
            && existing.version > version
        {
            return Some(state);
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.order.insert(tick, stream.clone());
        let slot = Slot {
            tick,
            version,
            state,
        };
        if let Some(replaced) = self.slots.insert(stream, slot) {
            self.order.remove(&replaced.tick);
            return Some(replaced.state);
        }
        if self.slots.len() > capacity {
            let (_, oldest) = self.order.pop_first()?;
            return self.slots.remove(&oldest).map(|evicted| evicted.state);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Command;
    use crate::codec::Codec;
    use crate::error::BoxError;
    use crate::event::{DecodeError, DomainEvent};
    use crate::names::EventType;

    /// No events: these aggregates only need a state to cache.
    enum NoEvent {}

    impl DomainEvent for NoEvent {
        const TYPES: &'static [(&'static str, u32)] = &[];
        fn event_type(&self) -> EventType {
            match *self {}
        }
        fn schema_version(&self) -> u32 {
            match *self {}
        }
        fn encode<C: Codec>(&self, _: &C) -> Result<Vec<u8>, BoxError> {
            match *self {}
        }
        fn decode<C: Codec>(
            _: &C,
            event_type: &str,
            _: u32,
            _: &[u8],
        ) -> Result<Self, DecodeError> {
            Err(DecodeError::UnknownType {
                event_type: event_type.to_owned(),
            })
        }
    }

    struct Noop(u64);

    impl Command for Noop {
        type Id = u64;
        fn aggregate_id(&self) -> &u64 {
            &self.0
        }
        fn command_name(&self) -> &'static str {
            "Noop"
        }
    }

    /// Two aggregate types of one name: their states share stream ids.
    macro_rules! tally {
        ($name:ident) => {
            #[derive(Debug, Default, PartialEq)]
            struct $name(u64);

            impl Aggregate for $name {
                const NAME: &'static str = "tally";
                type Id = u64;
                type Command = Noop;
                type Event = NoEvent;
                type Error = std::convert::Infallible;
                fn handle(&self, _: &Noop) -> Result<Vec<NoEvent>, Self::Error> {
                    Ok(Vec::new())
                }
                fn apply(&mut self, event: &NoEvent) {
                    match *event {}
                }
            }
        };
    }
    tally!(Tally);
    tally!(Other);

    fn stream(id: u64) -> StreamId {
        StreamId::for_aggregate(Tally::NAME, &id).unwrap()
    }

    fn loaded(id: u64, version: u64, total: u64) -> Loaded<Tally> {
        Loaded {
            stream_id: stream(id),
            state: Tally(total),
            version: Version::new(version),
            snapshot_version: None,
        }
    }

    #[test]
    fn take_moves_the_state_out() {
        let cache = StateCache::new(4);
        cache.put(loaded(1, 3, 30));
        let taken = cache.take::<Tally>(&stream(1)).unwrap();
        assert_eq!((taken.version, taken.state), (Version::new(3), Tally(30)));
        assert!(cache.take::<Tally>(&stream(1)).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn evicts_the_least_recently_put() {
        let cache = StateCache::new(2);
        cache.put(loaded(1, 1, 10));
        cache.put(loaded(2, 1, 20));
        // Using 1 (take, then put back) makes 2 the oldest.
        let one = cache.take::<Tally>(&stream(1)).unwrap();
        cache.put(one);
        cache.put(loaded(3, 1, 30));
        assert_eq!(cache.len(), 2);
        assert!(cache.take::<Tally>(&stream(2)).is_none());
        assert_eq!(cache.take::<Tally>(&stream(1)).unwrap().state, Tally(10));
        assert_eq!(cache.take::<Tally>(&stream(3)).unwrap().state, Tally(30));
    }

    #[test]
    fn a_newer_version_is_not_replaced_by_an_older_one() {
        let cache = StateCache::new(4);
        cache.put(loaded(1, 5, 50));
        cache.put(loaded(1, 4, 40));
        assert_eq!(cache.take::<Tally>(&stream(1)).unwrap().state, Tally(50));
        cache.put(loaded(1, 5, 50));
        cache.put(loaded(1, 6, 60));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.take::<Tally>(&stream(1)).unwrap().state, Tally(60));
    }

    #[test]
    fn a_state_of_another_type_is_a_miss_and_dropped() {
        let cache = StateCache::new(4);
        cache.put(loaded(1, 1, 10));
        assert!(cache.take::<Other>(&stream(1)).is_none());
        assert_eq!(cache.len(), 0);
    }
}
