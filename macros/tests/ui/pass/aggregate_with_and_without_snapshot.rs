//! Aggregates: with snapshots (serde through the codec), without, with a default name.
use foldline::{Aggregate, Command, DomainEvent, JsonCodec};

#[derive(Debug, PartialEq, DomainEvent)]
enum CounterEvent {
    Incremented { by: u32 },
}

#[derive(Debug, Command)]
struct Increment {
    #[foldline(id)]
    id: u32,
    by: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("too big")]
struct TooBig;

#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, Aggregate)]
#[foldline(id = u32, command = Increment, event = CounterEvent, error = TooBig,
           name = "counter", snapshot(every = 50, version = 3))]
struct Counter {
    total: u32,
}

impl Counter {
    fn handle(&self, command: &Increment) -> Result<Vec<CounterEvent>, TooBig> {
        if command.by > 10 {
            return Err(TooBig);
        }
        Ok(vec![CounterEvent::Incremented { by: command.by }])
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Incremented { by } = event;
        self.total += by;
    }
}

/// Not serializable: fine without `snapshot(...)`.
#[derive(Default, Aggregate)]
#[foldline(id = u32, command = Increment, event = CounterEvent, error = TooBig)]
struct HTTPCounter {
    total: u32,
}

impl HTTPCounter {
    fn handle(&self, command: &Increment) -> Result<Vec<CounterEvent>, TooBig> {
        Ok(vec![CounterEvent::Incremented { by: command.by }])
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Incremented { by } = event;
        self.total += by;
    }
}

fn main() {
    let mut counter = Counter::default();
    let events = Aggregate::handle(&counter, &Increment { id: 1, by: 2 }).unwrap();
    for event in &events {
        Aggregate::apply(&mut counter, event);
    }
    assert!(Aggregate::handle(&counter, &Increment { id: 1, by: 20 }).is_err());
    assert_eq!(counter.total, 2);
    assert_eq!((Counter::NAME, Counter::SNAPSHOT_EVERY, Counter::SNAPSHOT_VERSION), ("counter", Some(50), 3));
    let bytes = counter.encode_snapshot(&JsonCodec).unwrap().unwrap();
    assert_eq!(Counter::decode_snapshot(&JsonCodec, &bytes).unwrap(), Some(Counter { total: 2 }));

    let mut http = HTTPCounter::default();
    Aggregate::apply(&mut http, &CounterEvent::Incremented { by: 1 });
    assert_eq!(http.total, 1);
    assert_eq!((HTTPCounter::NAME, HTTPCounter::SNAPSHOT_EVERY), ("http_counter", None));
    assert!(http.encode_snapshot(&JsonCodec).unwrap().is_none());
}
