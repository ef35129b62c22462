use foldline::{Aggregate, Command, DomainEvent};

#[derive(Debug, DomainEvent)]
enum CounterEvent {
    Incremented { by: u32 },
}

#[derive(Debug, Command)]
struct Increment {
    #[foldline(id)]
    id: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

#[derive(Default, Aggregate)]
#[foldline(id = u32, command = Increment, event = CounterEvent, error = Never, snapshot(every = 10))]
struct Counter {
    total: u32,
}

impl Counter {
    fn handle(&self, _: &Increment) -> Result<Vec<CounterEvent>, Never> {
        Ok(vec![CounterEvent::Incremented { by: 1 }])
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Incremented { by } = event;
        self.total += by;
    }
}

fn main() {}
