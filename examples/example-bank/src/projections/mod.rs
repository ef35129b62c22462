//! The bank's read models: projections of the account events, each kept up to date by a
//! [`Projector`](foldline::Projector) that follows the store's global feed.
//!
//! - [`balances`]: every account's balance, in Redis hashes (or an in-memory stand-in).
//! - [`memos`]: every transfer leg, in a Tantivy index searchable by memo.
//!
//! Each handler is plain code: it turns one event into writes and does no I/O, so its unit
//! tests need neither Redis nor an index.

pub mod balances;
pub mod memos;
