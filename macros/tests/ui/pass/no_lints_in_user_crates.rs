//! The generated code trips none of the workspace's lints in a crate that denies them.
#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    unused_qualifications,
    unused_results,
    rust_2018_idioms,
    non_snake_case,
    unreachable_patterns,
    clippy::all,
    clippy::pedantic
)]

use foldline::{Action, Aggregate, Command, DomainEvent, Envelope, Input, ProcessManager};

/// Events.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, DomainEvent)]
pub enum Event {
    /// One.
    #[foldline(version = 2, upcast(v1 = OneV1))]
    One {
        /// A field.
        a: u8,
    },
    /// Two.
    Two(u8),
    /// Three.
    Three,
}

/// `One` at v1.
#[derive(Debug, serde::Deserialize)]
pub struct OneV1 {
    b: u8,
}

impl From<OneV1> for Event {
    fn from(v1: OneV1) -> Self {
        Event::One { a: v1.b }
    }
}

/// Commands.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Command)]
pub enum Cmd {
    /// Do it.
    Do(#[foldline(id)] u32),
}

/// An error.
#[derive(Debug, thiserror::Error)]
#[error("no")]
pub struct No;

/// The aggregate.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[foldline(id = u32, command = Cmd, event = Event, error = No, snapshot(every = 1))]
pub struct Agg {
    n: u32,
}

impl Agg {
    fn handle(&self, _: &Cmd) -> Result<Vec<Event>, No> {
        Ok(vec![Event::Three])
    }

    fn apply(&mut self, _: &Event) {
        self.n += 1;
    }
}

/// A process manager.
#[derive(Debug, Default, ProcessManager)]
#[foldline(name = "proc", id = u32, event = Event, command = Cmd, timeout = u8)]
pub struct Proc {
    n: u32,
}

impl Proc {
    fn correlate(_: &Envelope<'_, Event>) -> Option<u32> {
        Some(1)
    }

    fn decide(&self, _: &Input<Self>) -> Vec<Action<Self>> {
        vec![Action::Send(Cmd::Do(self.n))]
    }

    fn evolve(&mut self, _: &Input<Self>) {
        self.n += 1;
    }
}

fn main() {}
