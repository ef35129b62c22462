//! The statements the store runs, rendered once per schema.
//!
//! The schema name is a validated [`SchemaName`] (lowercase letters, digits and `_`), so
//! formatting it, quoted, into the text is safe; every value travels as a parameter.

use foldline::SchemaName;

/// Columns of a [`RecordedEvent`](foldline::RecordedEvent), in the order `rows.rs` reads them.
pub(crate) const EVENT_COLUMNS: &str = "position, xid::text::bigint, stream_id, stream_version, event_id, \
     event_type, schema_version, payload::text, metadata::text, recorded_at";

#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) lock: String,
    pub(crate) select_versions: String,
    pub(crate) select_keys: String,
    pub(crate) insert_events: String,
    pub(crate) update_streams: String,
    pub(crate) insert_streams: String,
    pub(crate) insert_keys: String,
    pub(crate) append_one: String,
    pub(crate) read_stream: String,
    pub(crate) read_all: String,
    pub(crate) head: String,
    pub(crate) find_key: String,
    pub(crate) load_snapshot: String,
    pub(crate) save_snapshot: String,
}

impl Sql {
    pub(crate) fn new(schema: &SchemaName) -> Self {
        // Quoted, so a name that is also an SQL keyword (`select`, `user`) works.
        let s = quoted(schema);
        Sql {
            // `unnest` yields the (sorted) keys in order, so every writer locks in one order.
            lock: "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k".into(),
            select_versions: format!(
                "SELECT stream_id, version FROM {s}.streams WHERE stream_id = ANY($1::text[])"
            ),
            select_keys: format!(
                "SELECT key, stream_id, previous_version, current_version, last_xid::text::bigint, last_position \
                 FROM {s}.idempotency_keys WHERE key = ANY($1::text[])"
            ),
            insert_events: format!(
                "INSERT INTO {s}.events \
                   (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata) \
                 SELECT st, v, e, t, sv, p::jsonb, m::jsonb \
                 FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::text[]) \
                   AS u(st, v, e, t, sv, p, m) \
                 RETURNING stream_id, stream_version, position, xid::text::bigint"
            ),
            update_streams: format!(
                "UPDATE {s}.streams AS s SET version = u.v \
                 FROM unnest($1::text[], $2::bigint[]) AS u(st, v) WHERE s.stream_id = u.st"
            ),
            insert_streams: format!(
                "INSERT INTO {s}.streams (stream_id, version) \
                 SELECT * FROM unnest($1::text[], $2::bigint[])"
            ),
            // The key's position is the append's last event, inserted earlier in the same
            // transaction; an append without events has none.
            insert_keys: format!(
                "INSERT INTO {s}.idempotency_keys \
                   (key, stream_id, previous_version, current_version, last_xid, last_position) \
                 SELECT u.k, u.st, u.pv, u.cv, e.xid, e.position \
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(k, st, pv, cv) \
                 LEFT JOIN {s}.events AS e \
                   ON u.cv > u.pv AND e.stream_id = u.st AND e.stream_version = u.cv"
            ),
            // A batch of one append without a key: migration 0003's function, in autocommit.
            append_one: format!(
                "SELECT r_found, r_version, r_xid, r_position \
                 FROM {s}.append_one($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
            ),
            // Only transactions below the horizon have all finished, so nothing can commit
            // behind a checkpoint taken here later. No timeouts, no skipping.
            read_all: format!(
                // `e.`: a bare `xid` in ORDER BY would name the output column (the bigint
                // cast), which no index covers: a sort of the whole table per page.
                "SELECT {EVENT_COLUMNS} FROM {s}.events AS e \
                 WHERE (e.xid, e.position) > ($1::bigint::text::xid8, $2::bigint) \
                   AND e.xid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY e.xid, e.position LIMIT $3"
            ),
            head: format!(
                "SELECT e.xid::text::bigint, e.position FROM {s}.events AS e \
                 WHERE e.xid < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY e.xid DESC, e.position DESC LIMIT 1"
            ),
            find_key: format!(
                "SELECT key, stream_id, previous_version, current_version, last_xid::text::bigint, last_position \
                 FROM {s}.idempotency_keys WHERE key = $1"
            ),
            load_snapshot: format!(
                "SELECT stream_id, version, schema_version, payload FROM {s}.snapshots WHERE stream_id = $1"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (stream_id, version, schema_version, payload) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (stream_id) DO UPDATE \
                   SET version = EXCLUDED.version, schema_version = EXCLUDED.schema_version, \
                       payload = EXCLUDED.payload, taken_at = now() \
                 WHERE {s}.snapshots.version <= EXCLUDED.version"
            ),
        }
    }
}

/// `schema` as a quoted identifier. Valid schema names hold no `"`, so no escaping is needed.
pub(crate) fn quoted(schema: &SchemaName) -> String {
    format!("\"{schema}\"")
}
