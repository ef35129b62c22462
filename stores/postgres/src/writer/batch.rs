//! One group-commit transaction, in one round trip when the writer's assumptions hold.
//!
//! The writer checks each append of a batch on its own, in arrival order (expected version,
//! idempotency key, several appends to one stream one after the other), against what it
//! assumes is stored: each stream at the version its first append expects (for an append that
//! expects any version, the version this writer last saw), and none of the batch's keys used.
//! One call, in autocommit, of the schema's `append_batch` function (migration 0004) takes the
//! advisory locks of every stream and key of the batch, compares the assumptions with the
//! stored rows and, when they hold, inserts the accepted events, moves the streams' versions
//! (an update of the rows that exist, an insert of the new ones) and records the keys: one
//! statement, one round trip, one transaction. When an assumption is false (another process
//! appended, an append expects a stale version, a key was used), the call writes nothing and
//! returns what is stored; the writer checks the batch again against that and calls again.
//! Appends decided against what was read (a conflict, a replay) need no call of their own.
//!
//! The locks are taken before anything assigns the transaction id, in one global order
//! (sorted, so concurrent batches here or in other processes never deadlock): the feed's
//! ordering argument (`mod.rs`) holds as for `single.rs`. A statement the server refuses rolls
//! the whole call back: a batch commits whole or not at all.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use deadpool_postgres::ClientWrapper as Client;
use foldline::{
    AppendRequest, AppendResult, DriverErrors, Error, ExpectedVersion, IdempotencyKey, Position,
    StreamId, Version,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::columns::{EventRows, KeyRows, Plan};
use super::{BatchError, Writer};
use crate::error::Postgres;
use crate::hash::stable_key;
use crate::rows::{position, to_i64, to_u64};

/// The stream versions this writer saw last (committed by it, or read): what it assumes for
/// an append that expects any version. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct SeenVersions(Mutex<HashMap<String, u64>>);

impl SeenVersions {
    const CAPACITY: usize = 65_536;

    fn get(&self, stream: &str) -> Option<u64> {
        self.lock().get(stream).copied()
    }

    fn record<'a>(&self, versions: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut seen = self.lock();
        for (stream, version) in versions {
            if seen.len() >= Self::CAPACITY && !seen.contains_key(stream) {
                seen.clear();
            }
            seen.insert(stream.to_owned(), version);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the checks go by: each stream's version (`None`: it has no row) and the keys used.
struct Stored<'a> {
    versions: HashMap<&'a str, Option<u64>>,
    keys: HashMap<&'a str, AppendResult>,
}

impl<'a> Stored<'a> {
    /// What a batch assumes before its first call.
    fn assumed(plan: &'a Plan, requests: &[AppendRequest], seen: &SeenVersions) -> Self {
        let mut versions = HashMap::with_capacity(plan.streams.len());
        for request in requests {
            let stream = request.stream().as_str();
            let Some(stream) = plan.streams.iter().find(|s| *s == stream) else {
                continue;
            };
            versions.entry(stream.as_str()).or_insert_with(|| {
                let version = match request.expected() {
                    ExpectedVersion::Exact(version) => Some(version.get()),
                    ExpectedVersion::NoStream => None,
                    _ => seen.get(stream),
                };
                version.filter(|v| *v > 0)
            });
        }
        Stored {
            versions,
            keys: HashMap::new(),
        }
    }

    /// What a call that found an assumption false returned, with the keys known used before
    /// (a call reports only the keys assumed unused). Recorded as `writer`'s seen versions.
    fn then_read(self, plan: &'a Plan, rows: &[Row], writer: &Writer) -> Result<Self, BatchError> {
        let mut versions: HashMap<&str, Option<u64>> =
            plan.streams.iter().map(|s| (s.as_str(), None)).collect();
        let mut keys = self.keys;
        for row in rows {
            match kind(row) {
                b's' => {
                    if let Some(version) = versions.get_mut(row.get::<_, &str>(1)) {
                        *version = Some(to_u64(row.get(2)));
                    }
                }
                b'k' => {
                    let key: &str = row.get(5);
                    if let Some(key) = plan.keys.iter().find(|k| *k == key) {
                        keys.insert(key.as_str(), stored_key(row)?);
                    }
                }
                _ => {}
            }
        }
        writer.seen.record(
            versions
                .iter()
                .map(|(stream, version)| (*stream, version.unwrap_or(0))),
        );
        Ok(Stored { versions, keys })
    }

    fn version(&self, stream: &str) -> u64 {
        self.versions.get(stream).copied().flatten().unwrap_or(0)
    }

    fn has_row(&self, stream: &str) -> bool {
        self.versions.get(stream).is_some_and(Option::is_some)
    }
}

/// The result recorded with a used key (kind `k` of `append_batch`), as its replay.
fn stored_key(row: &Row) -> Result<AppendResult, BatchError> {
    let stream = StreamId::new(row.get::<_, String>(1)).map_err(|e| {
        BatchError::Other(Postgres::corrupt(
            format!("reading an idempotency key's stream: {e}"),
            None,
        ))
    })?;
    let xid: Option<i64> = row.get(3);
    let last: Option<i64> = row.get(4);
    let result = AppendResult::new(
        stream,
        Version::new(to_u64(row.get(6))),
        Version::new(to_u64(row.get(2))),
        xid.zip(last).map(|(x, p)| position(x, p)),
    );
    Ok(result.into_replayed())
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

/// Streams and their new versions, as the arrays of an `unnest`.
#[derive(Default)]
struct StreamRows<'a> {
    ids: Vec<&'a str>,
    versions: Vec<i64>,
}

/// The batch checked against one [`Stored`]: each append's outcome and result, and the rows
/// to write.
struct Checked<'a> {
    outcomes: Vec<Outcome>,
    results: Vec<Result<AppendResult, Error>>,
    events: EventRows<'a>,
    keys: KeyRows<'a>,
    moved: StreamRows<'a>,
    created: StreamRows<'a>,
}

impl Checked<'_> {
    /// Nothing accepted: the results stand without a call (decided against what was read).
    fn writes_nothing(&self) -> bool {
        self.events.is_empty() && self.keys.is_empty()
    }
}

/// Checks and encodes every append on its own, in arrival order: whatever goes wrong with one
/// append here is its own result, and the rest of the batch goes on.
fn check<'a>(requests: &'a [AppendRequest], stored: &Stored<'_>) -> Checked<'a> {
    let mut events = EventRows::default();
    let mut outcomes = Vec::with_capacity(requests.len());
    let mut results: Vec<Result<AppendResult, Error>> = Vec::with_capacity(requests.len());
    let mut versions: HashMap<&str, u64> = HashMap::new();
    // The index of the append of this batch that used each key first.
    let mut first_uses: HashMap<&str, usize> = HashMap::new();
    for (index, request) in requests.iter().enumerate() {
        let stream = request.stream();
        let key = request.idempotency_key().map(IdempotencyKey::as_str);
        if let Some(result) = key.and_then(|k| stored.keys.get(k)) {
            outcomes.push(Outcome::Settled);
            results.push(Ok(result.clone()));
            continue;
        }
        if let Some(first) = key.and_then(|k| first_uses.get(k)) {
            outcomes.push(Outcome::ReplayOf(*first));
            // Filled in once the first append's position is known.
            results.push(Ok(AppendResult::new(
                stream.clone(),
                Version::ZERO,
                Version::ZERO,
                None,
            )));
            continue;
        }
        let actual = versions
            .get(stream.as_str())
            .copied()
            .unwrap_or_else(|| stored.version(stream.as_str()));
        if !request.expected().allows(Version::new(actual)) {
            outcomes.push(Outcome::Settled);
            results.push(Err(Error::Conflict {
                stream: stream.clone(),
                expected: request.expected(),
                actual: Version::new(actual),
            }));
            continue;
        }
        if let Err(error) = events.push_append(stream, actual, request.events()) {
            outcomes.push(Outcome::Settled);
            results.push(Err(error));
            continue;
        }
        let current = actual + request.events().len() as u64;
        versions.insert(stream.as_str(), current);
        if let Some(key) = key {
            first_uses.insert(key, index);
        }
        outcomes.push(Outcome::Accepted {
            previous: actual,
            current,
        });
        // Its position is filled in from the insert.
        results.push(Ok(AppendResult::new(
            stream.clone(),
            Version::new(actual),
            Version::new(current),
            None,
        )));
    }

    let mut keys = KeyRows::default();
    for (outcome, request) in outcomes.iter().zip(requests) {
        if let (Outcome::Accepted { previous, current }, Some(key)) =
            (outcome, request.idempotency_key())
        {
            keys.push(key, request.stream(), *previous, *current);
        }
    }
    let (mut moved, mut created) = (StreamRows::default(), StreamRows::default());
    for (stream, version) in versions {
        if version == stored.version(stream) {
            continue;
        }
        let rows = if stored.has_row(stream) {
            &mut moved
        } else {
            &mut created
        };
        rows.ids.push(stream);
        rows.versions.push(to_i64(version));
    }
    Checked {
        outcomes,
        results,
        events,
        keys,
        moved,
        created,
    }
}

/// Runs one transaction for `requests` on `client`. `Ok` holds each append's own result
/// (success, conflict or replay); `Err` means the transaction failed as a whole and nothing was
/// written — unless the connection failed during a call that writes, when the outcome is
/// unknown.
///
/// At most three round trips: a call in autocommit; should an assumption be false, a call
/// opening a transaction, whose locks stay held after a mismatch; should one be false again,
/// a call against what that one read, which nobody can have changed since, and `COMMIT`.
pub(super) async fn run(
    writer: &Writer,
    client: &Client,
    requests: &[AppendRequest],
) -> Result<Vec<Result<AppendResult, Error>>, BatchError> {
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
    let statement = client
        .prepare_cached(&writer.sql.append_batch)
        .await
        .map_err(BatchError::from_pg)?;
    let call = Call {
        client,
        statement: &statement,
        locks: &locks,
        plan: &plan,
    };

    // 1. In autocommit, against what the appends expect.
    let stored = Stored::assumed(&plan, requests, &writer.seen);
    let checked = check(requests, &stored);
    let rows = call.run(&stored, &checked).await?;
    if !mismatched(&rows) {
        return Ok(committed(writer, checked, &rows));
    }
    let stored = stored.then_read(&plan, &rows, writer)?;
    let checked = check(requests, &stored);
    if checked.writes_nothing() {
        return Ok(checked.results);
    }

    // 2. In a transaction, against what the first call read.
    let (begun, rows) = tokio::join!(client.batch_execute("BEGIN"), call.run(&stored, &checked));
    begun.map_err(BatchError::from_pg)?;
    let rows = rows?;
    if !mismatched(&rows) {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(BatchError::from_pg)?;
        return Ok(committed(writer, checked, &rows));
    }

    // 3. The locks are held: what the second call read stands.
    let stored = stored.then_read(&plan, &rows, writer)?;
    let checked = check(requests, &stored);
    if checked.writes_nothing() {
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(BatchError::from_pg)?;
        return Ok(checked.results);
    }
    let (rows, committed_) =
        tokio::join!(call.run(&stored, &checked), client.batch_execute("COMMIT"));
    let rows = rows?;
    committed_.map_err(BatchError::from_pg)?;
    if mismatched(&rows) {
        // The `COMMIT` above committed nothing: the call wrote nothing.
        return Err(BatchError::Other(Postgres::corrupt(
            "a group commit found its streams changed while it held their locks",
            None,
        )));
    }
    Ok(committed(writer, checked, &rows))
}

/// What every call of `append_batch` for one batch shares.
struct Call<'c> {
    client: &'c Client,
    statement: &'c Statement,
    locks: &'c [i64],
    plan: &'c Plan,
}

impl Call<'_> {
    /// One call, writing what `checked` accepted if `stored` holds.
    async fn run(
        &self,
        stored: &Stored<'_>,
        checked: &Checked<'_>,
    ) -> Result<Vec<Row>, BatchError> {
        let plan = self.plan;
        let assumed: Vec<Option<i64>> = plan
            .streams
            .iter()
            .map(|s| {
                stored
                    .versions
                    .get(s.as_str())
                    .copied()
                    .flatten()
                    .map(to_i64)
            })
            .collect();
        // The keys not known to be used: a known one is answered as a replay already.
        let unused: Vec<&str> = plan
            .keys
            .iter()
            .map(String::as_str)
            .filter(|k| !stored.keys.contains_key(k))
            .collect();
        let (events, keys) = (&checked.events, &checked.keys);
        let params: [&(dyn ToSql + Sync); 19] = [
            &self.locks,
            &plan.streams,
            &assumed,
            &unused,
            &checked.moved.ids,
            &checked.moved.versions,
            &checked.created.ids,
            &checked.created.versions,
            &events.stream_ids,
            &events.versions,
            &events.event_ids,
            &events.event_types,
            &events.schema_versions,
            &events.payloads,
            &events.metadata,
            &keys.keys,
            &keys.streams,
            &keys.previous,
            &keys.current,
        ];
        self.client
            .query(self.statement, &params)
            .await
            .map_err(BatchError::from_pg)
    }
}

/// Whether a call found an assumption false (and wrote nothing).
fn mismatched(rows: &[Row]) -> bool {
    rows.iter().any(|row| kind(row) == b'm')
}

/// A row's kind, as `append_batch` marks it.
fn kind(row: &Row) -> u8 {
    row.get::<_, i8>(0).to_ne_bytes()[0]
}

/// The results of a batch `append_batch` wrote, its events' positions filled in from `rows`.
fn committed(
    writer: &Writer,
    checked: Checked<'_>,
    rows: &[Row],
) -> Vec<Result<AppendResult, Error>> {
    let Checked {
        outcomes,
        mut results,
        events,
        moved,
        created,
        ..
    } = checked;
    if !events.is_empty() {
        writer.notifier.committed();
    }
    writer.seen.record(
        moved
            .ids
            .iter()
            .zip(&moved.versions)
            .chain(created.ids.iter().zip(&created.versions))
            .map(|(stream, version)| (*stream, to_u64(*version))),
    );
    let positions: HashMap<(&str, i64), Position> = rows
        .iter()
        .filter(|row| kind(row) == b'e')
        .map(|row| {
            (
                (row.get::<_, &str>(1), row.get::<_, i64>(2)),
                position(row.get(3), row.get(4)),
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
    metrics::counter!("foldline_pg_events_appended_total").increment(events.len() as u64);
    results
}
