//! One group-commit transaction, in two round trips.
//!
//! Round trip 1, pipelined: `BEGIN`, the advisory locks of every stream and key of the batch,
//! the streams' versions, the keys already used. The client then checks each append on its own,
//! in arrival order. Round trip 2, pipelined: the multi-row insert of every accepted event, the
//! streams' new versions (an update of the rows that exist, an insert of the new ones), the
//! idempotency keys, `COMMIT`; subscribers are woken after it
//! (`notify.rs`). PostgreSQL runs pipelined
//! statements in order, and a failed statement aborts the transaction, turning the `COMMIT` that
//! follows into a rollback: a batch either commits whole or not at all.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::ClientWrapper as Client;
use foldline::{
    AppendRequest, AppendResult, DriverErrors, Error, IdempotencyKey, Position, Version,
};
use tokio_postgres::types::ToSql;

use super::columns::{EventRows, KeyRows, Plan};
use super::{BatchError, Writer};
use crate::error::Postgres;
use crate::hash::stable_key;
use crate::rows::{append_result, position, to_i64, to_u64};

/// Streams and their new versions, as the arrays of an `unnest`.
#[derive(Default)]
struct StreamRows<'a> {
    ids: Vec<&'a str>,
    versions: Vec<i64>,
}

/// What the checks decided for one append of a batch.
enum Outcome {
    /// Its result is final already: the replay of an earlier, committed append with its key,
    /// or its own failure (a version conflict, events that cannot be encoded).
    Settled,
    /// Its key was used by the append at this index of the same batch.
    ReplayOf(usize),
    /// Its events are in the insert.
    Accepted { previous: u64, current: u64 },
}

/// A key's earlier use.
enum KeyUse {
    /// By a committed append.
    Stored(AppendResult),
    /// By the append at this index of the current batch.
    InBatch(usize),
}

/// Runs one transaction for `requests` on `client`. `Ok` holds each append's own result
/// (success, conflict or replay); `Err` means the transaction failed as a whole and nothing was
/// written — unless the failure hit the `COMMIT` itself, when the outcome is unknown.
pub(super) async fn run(
    writer: &Writer,
    client: &Client,
    requests: &[AppendRequest],
) -> Result<Vec<Result<AppendResult, Error>>, BatchError> {
    let sql = &writer.sql;
    let plan = Plan::new(requests);
    let mut locks: Vec<i64> = plan
        .streams
        .iter()
        .map(|s| stable_key(&[b"stream", writer.schema.as_bytes(), s.as_bytes()]))
        .chain(
            plan.keys
                .iter()
                .map(|k| stable_key(&[b"key", writer.schema.as_bytes(), k.as_bytes()])),
        )
        .collect();
    // One global order, so concurrent batches (here or in other processes) never deadlock.
    locks.sort_unstable();
    locks.dedup();

    let (lock, select_versions, select_keys) = tokio::try_join!(
        client.prepare_cached(&sql.lock),
        client.prepare_cached(&sql.select_versions),
        client.prepare_cached(&sql.select_keys),
    )
    .map_err(BatchError::from_pg)?;
    let lock_params: [&(dyn ToSql + Sync); 1] = [&locks];
    let stream_params: [&(dyn ToSql + Sync); 1] = [&plan.streams];
    let key_params: [&(dyn ToSql + Sync); 1] = [&plan.keys];
    let (begun, locked, version_rows, key_rows) = tokio::join!(
        client.batch_execute("BEGIN"),
        client.execute(&lock, &lock_params),
        client.query(&select_versions, &stream_params),
        async {
            if plan.keys.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&select_keys, &key_params).await
            }
        },
    );
    begun.map_err(BatchError::from_pg)?;
    locked.map_err(BatchError::from_pg)?;
    let version_rows = version_rows.map_err(BatchError::from_pg)?;
    let key_rows = key_rows.map_err(BatchError::from_pg)?;

    let mut versions: HashMap<&str, u64> = version_rows
        .iter()
        .map(|r| (r.get::<_, &str>(0), to_u64(r.get(1))))
        .collect();
    // The streams that have a row in `streams` already.
    let stored: HashSet<&str> = versions.keys().copied().collect();
    let mut used_keys: HashMap<&str, KeyUse> = HashMap::new();
    for row in &key_rows {
        let result = append_result(row).map_err(BatchError::Other)?;
        used_keys.insert(row.get(0), KeyUse::Stored(result));
    }

    // Check and encode every append on its own, in arrival order: whatever goes wrong with one
    // append here is its own result, and the rest of the batch goes on.
    let mut rows = EventRows::default();
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut results: Vec<Result<AppendResult, Error>> = Vec::with_capacity(requests.len());
    let mut changed: HashMap<&str, i64> = HashMap::new();
    for (index, request) in requests.iter().enumerate() {
        let stream = request.stream();
        let key = request.idempotency_key().map(IdempotencyKey::as_str);
        if let Some(used) = key.and_then(|k| used_keys.get(k)) {
            let (outcome, result) = match used {
                KeyUse::Stored(result) => (Outcome::Settled, Ok(result.clone())),
                // Filled in once the first append's position is known.
                KeyUse::InBatch(first) => (
                    Outcome::ReplayOf(*first),
                    Ok(AppendResult::new(
                        stream.clone(),
                        Version::ZERO,
                        Version::ZERO,
                        None,
                    )),
                ),
            };
            outcomes.push(outcome);
            results.push(result);
            continue;
        }
        let actual = versions.get(stream.as_str()).copied().unwrap_or(0);
        if !request.expected().allows(Version::new(actual)) {
            outcomes.push(Outcome::Settled);
            results.push(Err(Error::Conflict {
                stream: stream.clone(),
                expected: request.expected(),
                actual: Version::new(actual),
            }));
            continue;
        }
        if let Err(error) = rows.push_append(stream, actual, request.events()) {
            outcomes.push(Outcome::Settled);
            results.push(Err(error));
            continue;
        }
        let current = actual + request.events().len() as u64;
        if current > actual {
            versions.insert(stream.as_str(), current);
            changed.insert(stream.as_str(), to_i64(current));
        }
        if let Some(key) = key {
            used_keys.insert(key, KeyUse::InBatch(index));
        }
        outcomes.push(Outcome::Accepted {
            previous: actual,
            current,
        });
        // Its position is filled in from the insert below.
        results.push(Ok(AppendResult::new(
            stream.clone(),
            Version::new(actual),
            Version::new(current),
            None,
        )));
    }

    let mut keys = KeyRows::default();
    for ((outcome, request), result) in outcomes.iter().zip(requests).zip(&results) {
        if let (Outcome::Accepted { .. }, Some(key), Ok(result)) =
            (outcome, request.idempotency_key(), result)
        {
            keys.push(key, result);
        }
    }

    let (insert, update_streams, insert_streams, insert_keys) = tokio::try_join!(
        client.prepare_cached(&sql.insert_events),
        client.prepare_cached(&sql.update_streams),
        client.prepare_cached(&sql.insert_streams),
        client.prepare_cached(&sql.insert_keys),
    )
    .map_err(BatchError::from_pg)?;
    // Streams that have a row are updated, new ones inserted: under their locks nobody else
    // creates them, and a plain update costs PostgreSQL less than an upsert's speculative
    // insert.
    let (mut moved, mut created) = (StreamRows::default(), StreamRows::default());
    for (stream, version) in changed {
        let rows = if stored.contains(stream) {
            &mut moved
        } else {
            &mut created
        };
        rows.ids.push(stream);
        rows.versions.push(version);
    }
    let event_params: [&(dyn ToSql + Sync); 7] = [
        &rows.stream_ids,
        &rows.versions,
        &rows.event_ids,
        &rows.event_types,
        &rows.schema_versions,
        &rows.payloads,
        &rows.metadata,
    ];
    let moved_params: [&(dyn ToSql + Sync); 2] = [&moved.ids, &moved.versions];
    let created_params: [&(dyn ToSql + Sync); 2] = [&created.ids, &created.versions];
    let key_params: [&(dyn ToSql + Sync); 4] =
        [&keys.keys, &keys.streams, &keys.previous, &keys.current];
    let (inserted, updated, created_rows, keyed, committed) = tokio::join!(
        async {
            if rows.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&insert, &event_params).await
            }
        },
        async {
            if moved.ids.is_empty() {
                Ok(0)
            } else {
                client.execute(&update_streams, &moved_params).await
            }
        },
        async {
            if created.ids.is_empty() {
                Ok(0)
            } else {
                client.execute(&insert_streams, &created_params).await
            }
        },
        async {
            if keys.is_empty() {
                Ok(0)
            } else {
                client.execute(&insert_keys, &key_params).await
            }
        },
        client.batch_execute("COMMIT"),
    );
    let inserted = inserted.map_err(BatchError::from_pg)?;
    updated.map_err(BatchError::from_pg)?;
    created_rows.map_err(BatchError::from_pg)?;
    keyed.map_err(BatchError::from_pg)?;
    committed.map_err(BatchError::from_pg)?;
    if !rows.is_empty() {
        writer.notifier.committed();
    }

    let positions: HashMap<(&str, i64), Position> = inserted
        .iter()
        .map(|row| {
            (
                (row.get::<_, &str>(0), row.get::<_, i64>(1)),
                position(row.get(3), row.get(2)),
            )
        })
        .collect();
    for (result, outcome) in results.iter_mut().zip(&outcomes) {
        if let (Ok(result), Outcome::Accepted { previous, current }) = (result, outcome)
            && current > previous
        {
            result.position = positions
                .get(&(result.stream_id.as_str(), to_i64(*current)))
                .copied();
        }
    }
    for (index, outcome) in outcomes.iter().enumerate() {
        if let Outcome::ReplayOf(first) = outcome {
            results[index] = match &results[*first] {
                Ok(first) => Ok(first.clone().into_replayed()),
                Err(_) => Err(Postgres::corrupt(
                    "a group commit lost track of an append",
                    None,
                )),
            };
        }
    }
    metrics::counter!("foldline_pg_events_appended_total").increment(rows.len() as u64);
    Ok(results)
}
