//! The foldline bank example as a library: the domain, the read models and the story that
//! `main.rs` runs (a library so the tests can run the same story).
//!
//! - [`domain`]: the `Account` aggregate, its commands, events and errors.
//! - [`projections`]: the read models, `Balances` (Redis) and `TransferMemos` (Tantivy).
//! - [`story`]: the steps the binary prints.
//! - [`postgres`], [`targets`]: a fresh PostgreSQL store, Redis prefix and memo index to run
//!   the story on.

pub mod domain;
pub mod postgres;
pub mod projections;
pub mod rendezvous;
pub mod story;
pub mod targets;

pub use story::{StoryEnd, run};
