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

use foldline::{BoxError, StreamId};

use crate::domain::AccountId;

/// The account whose stream is `stream`; an error for any other stream (no account event is
/// recorded there).
fn account_of(stream: &StreamId) -> Result<AccountId, BoxError> {
    AccountId::from_stream(stream)
        .ok_or_else(|| format!("an account event on `{stream}`, which is not an account").into())
}

/// `event` as recorded at `version` of `stream`, for the handlers' unit tests.
#[cfg(test)]
fn recorded(
    stream: &str,
    version: u64,
    event: &crate::domain::AccountEvent,
) -> foldline::RecordedEvent {
    use foldline::{JsonCodec, NewEvent, Position, RecordedEvent, Version};

    let new = NewEvent::encode(event, &JsonCodec).expect("account events encode");
    RecordedEvent::from_new(
        new,
        StreamId::new(stream).expect("a valid stream id"),
        Version::new(version),
        Position::new(0, 0, version),
        std::time::SystemTime::now(),
    )
}
