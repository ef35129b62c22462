//! Test support (feature `testing`): the store and target conformance suites and the
//! given/when/then kit.
//!
//! - [`conformance`]: generic async checks every [`EventStore`](crate::EventStore) must pass;
//!   each backend runs them against its real service.
//! - [`target_conformance`]: the same for every
//!   [`ProjectionTarget`](crate::ProjectionTarget): slots, conditional commits, leases, dead
//!   letters, control flags and status reports.
//! - [`AggregateTest`]: given some events, when a command, then these events (or this error):
//!   pure, synchronous tests of an aggregate's decisions.
//! - [`KeyValueModel`]: a read model of named counters for tests of projection targets and the
//!   projector runtime, kept in an [`InMemoryTarget`](crate::InMemoryTarget).

pub mod conformance;
pub mod target_conformance;
pub mod timers;

mod aggregate_test;
mod key_value;
mod process_test;

pub use aggregate_test::{AggregateTest, Decision};
pub use key_value::{KeyValueModel, KeyValueOp, KeyValueWrites};
pub use process_test::{ProcessDecision, ProcessTest};
