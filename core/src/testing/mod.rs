//! Test support (feature `testing`): the store conformance suite and the given/when/then kit.
//!
//! - [`conformance`]: generic async checks every [`EventStore`](crate::EventStore) must pass;
//!   each backend runs them against its real service.
//! - [`AggregateTest`]: given some events, when a command, then these events (or this error):
//!   pure, synchronous tests of an aggregate's decisions.

pub mod conformance;

mod aggregate_test;

pub use aggregate_test::{AggregateTest, Decision};
