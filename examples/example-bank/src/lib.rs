//! The foldline bank example as a library: the domain, the read model and the story that
//! `main.rs` runs (a library so the tests can run the same story).
//!
//! - [`domain`]: the `Account` aggregate, its commands, events and errors.
//! - [`read_model`]: balances folded from the store's global feed.
//! - [`story`]: the steps the binary prints.
//! - [`postgres`]: a fresh PostgreSQL store to run the story on.

pub mod domain;
pub mod postgres;
pub mod read_model;
pub mod rendezvous;
pub mod story;

pub use story::run;
