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

use foldline::{Aggregate, Command, DomainEvent};

/// Events.
#[derive(Debug, DomainEvent)]
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
#[derive(Debug, Command)]
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

fn main() {}
