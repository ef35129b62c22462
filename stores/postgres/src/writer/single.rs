//! A batch of one append without an idempotency key, in one round trip.
//!
//! A lone writer (one command at a time) gets batches of one. Its checks need no client-side
//! step: one call, in autocommit, of the schema's `append_one` function (migration 0003) takes
//! the stream's advisory lock, reads the stream's version under it, checks the expected
//! version, inserts the events at the versions after it and moves the stream's version, and its
//! row says what happened. One statement and one round trip instead of `batch.rs`'s six and
//! two. The lock is taken before anything assigns the transaction id, as in `batch.rs`, so the
//! feed's ordering argument is the same.

use deadpool_postgres::ClientWrapper as Client;
use foldline::{AppendRequest, AppendResult, Error, ExpectedVersion, Version};
use tokio_postgres::types::ToSql;

use super::columns::EventRows;
use super::{BatchError, Writer};
use crate::hash::stable_key;
use crate::rows::{position, to_i64, to_u64};

/// The one append of `requests` and the version it expects (`None`: any), when the batch
/// can take the one-round-trip path.
pub(super) fn fits(requests: &[AppendRequest]) -> Option<(&AppendRequest, Option<i64>)> {
    match requests {
        [one] if one.idempotency_key().is_none() && !one.events().is_empty() => {
            expected_version(one.expected()).map(|expected| (one, expected))
        }
        _ => None,
    }
}

/// The version `expected` requires as the statement's parameter (`Some(None)`: any); `None`
/// for an expectation the statement cannot check, which takes `batch.rs`'s path.
fn expected_version(expected: ExpectedVersion) -> Option<Option<i64>> {
    match expected {
        ExpectedVersion::Any => Some(None),
        ExpectedVersion::NoStream => Some(Some(0)),
        ExpectedVersion::Exact(version) => Some(Some(to_i64(version.get()))),
        _ => None,
    }
}

/// Runs the one append [`fits`] found, expecting `expected`, in one transaction; its result,
/// as `batch::run`.
pub(super) async fn run(
    writer: &Writer,
    client: &Client,
    request: &AppendRequest,
    expected: Option<i64>,
) -> Result<Vec<Result<AppendResult, Error>>, BatchError> {
    let stream = request.stream();
    let mut rows = EventRows::default();
    // The versions are the server's to number; what cannot be encoded fails this append.
    if let Err(error) = rows.push_append(stream, 0, request.events()) {
        return Ok(vec![Err(error)]);
    }
    let lock = stable_key(&[
        b"stream",
        writer.schema.as_bytes(),
        stream.as_str().as_bytes(),
    ]);
    let append = client
        .prepare_cached(&writer.sql.append_one)
        .await
        .map_err(BatchError::from_pg)?;
    let params: [&(dyn ToSql + Sync); 8] = [
        &lock,
        &stream.as_str(),
        &expected,
        &rows.event_ids,
        &rows.event_types,
        &rows.schema_versions,
        &rows.payloads,
        &rows.metadata,
    ];
    // Autocommit: the call is its own transaction, committed before the row comes back.
    let row = client
        .query_one(&append, &params)
        .await
        .map_err(BatchError::from_pg)?;

    let found = Version::new(to_u64(row.get(0)));
    let last: Option<i64> = row.get(1);
    let result = match last {
        Some(current) => {
            let xid: i64 = row.get(2);
            let at: i64 = row.get(3);
            metrics::counter!("foldline_pg_events_appended_total").increment(rows.len() as u64);
            writer.notifier.committed();
            Ok(AppendResult::new(
                stream.clone(),
                found,
                Version::new(to_u64(current)),
                Some(position(xid, at)),
            ))
        }
        None => Err(Error::Conflict {
            stream: stream.clone(),
            expected: request.expected(),
            actual: found,
        }),
    };
    Ok(vec![result])
}
