//! The foldline bank example as a library: the domain, the read models and the story that
//! `main.rs` runs (a library so the tests can run the same story).
//!
//! - [`domain`]: the `Account` aggregate, its commands, events and errors.
//! - [`transfer`]: transfers as a process manager (`Transfer`), the dispatcher that sends its
//!   commands to the accounts, and a transfer read back step by step from its stream.
//! - [`projections`]: the read models, `Balances` (Redis) and `TransferMemos` (Tantivy).
//! - [`story`]: the steps the binary prints.
//! - [`postgres`], `kafka` (feature `kafka`), [`targets`]: a fresh PostgreSQL or Kafka store,
//!   Redis prefix and memo index to run the story on.

pub mod domain;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod postgres;
pub mod projections;
pub mod rendezvous;
pub mod story;
pub mod targets;
pub mod transfer;

pub use story::{StoryEnd, run};

/// The variable that puts the story's events on Apache Kafka: its brokers (`host:port`, comma
/// separated). `foldline_kafka::ENV_BROKERS`, named here too so a build without the `kafka`
/// feature can say it is set.
pub const KAFKA_BROKERS_VAR: &str = "FOLDLINE_KAFKA_BROKERS";

/// The topic prefix the story's Kafka store has (`example_bank.events`, …), and the admin's
/// default.
pub const KAFKA_TOPIC_PREFIX: &str = "example_bank";

#[cfg(all(test, feature = "kafka"))]
mod tests {
    #[test]
    fn the_kafka_variable_is_the_stores_own() {
        assert_eq!(super::KAFKA_BROKERS_VAR, foldline_kafka::ENV_BROKERS);
    }
}
