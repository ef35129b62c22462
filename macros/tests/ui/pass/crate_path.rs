//! `#[foldline(crate = "...")]`: a facade crate re-exports foldline under another path.
mod facade {
    pub use ::foldline as fl;
}

use facade::fl::{Action, Aggregate, Command, DomainEvent, Envelope, Input, ProcessManager};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DomainEvent)]
#[foldline(crate = "crate::facade::fl")]
enum Event {
    Happened { what: String },
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Command)]
#[foldline(crate = "facade::fl")]
struct Act {
    #[foldline(id)]
    id: u32,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[foldline(crate = "crate::facade::fl", id = u32, command = Act, event = Event, error = std::io::Error,
           snapshot(every = 5))]
struct Thing {
    count: u32,
}

impl Thing {
    fn handle(&self, _: &Act) -> Result<Vec<Event>, std::io::Error> {
        Ok(vec![Event::Happened { what: "it".into() }])
    }

    fn apply(&mut self, _: &Event) {
        self.count += 1;
    }
}

#[derive(Default, ProcessManager)]
#[foldline(name = "watcher", id = u32, event = Event, command = Act, crate = "crate::facade::fl")]
struct Watcher;

impl Watcher {
    fn correlate(_: &Envelope<'_, Event>) -> Option<u32> {
        None
    }

    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        Vec::new()
    }

    fn evolve(&mut self, _: &Input<Self>) {}
}

fn main() {
    assert_eq!(Thing::NAME, "thing");
    assert_eq!(Watcher::NAME, "watcher");
    assert_eq!(Act { id: 3 }.aggregate_id(), &3);
    assert_eq!(Event::Happened { what: String::new() }.event_type(), "Happened");
}
