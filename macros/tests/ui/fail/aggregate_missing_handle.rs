use foldline::{Aggregate, Command, DomainEvent};

#[derive(Debug, DomainEvent)]
enum CounterEvent {
    Incremented { by: u32 },
}

#[derive(Debug, Command)]
enum CounterCommand {
    Increment {
        #[foldline(id)]
        id: u32,
        by: u32,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("too big")]
struct TooBig;

#[derive(Default, Aggregate)]
#[foldline(id = u32, command = CounterCommand, event = CounterEvent, error = TooBig)]
struct Counter {
    total: u32,
}

impl Counter {
    // `handle` forgotten.
    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Incremented { by } = event;
        self.total += by;
    }
}

fn main() {}
