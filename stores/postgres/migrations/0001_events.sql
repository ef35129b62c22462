-- foldline event store, version 1. `{schema}` is replaced by the validated schema name, quoted.

CREATE TABLE {schema}.events (
    -- Allocated before commit, so commits land out of position order: the feed reads by
    -- (xid, position) below the visibility horizon instead (see feed.rs).
    position        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  bigint      NOT NULL CHECK (schema_version >= 0),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    -- The last guard of optimistic concurrency, behind the per-stream lock and version check.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_feed_idx ON {schema}.events (xid, position);

-- The current version of every stream, read under the stream's lock by each append.
CREATE TABLE {schema}.streams (
    stream_id   text    PRIMARY KEY,
    version     bigint  NOT NULL CHECK (version >= 0)
);

CREATE TABLE {schema}.snapshots (
    stream_id       text        PRIMARY KEY,
    version         bigint      NOT NULL,
    schema_version  bigint      NOT NULL CHECK (schema_version >= 0),
    payload         bytea       NOT NULL,
    taken_at        timestamptz NOT NULL DEFAULT now()
);

-- Written in the same transaction as the events of the append that first used the key.
CREATE TABLE {schema}.idempotency_keys (
    key                 text        PRIMARY KEY,
    stream_id           text        NOT NULL,
    previous_version    bigint      NOT NULL,
    current_version     bigint      NOT NULL,
    last_xid            xid8,
    last_position       bigint,
    created_at          timestamptz NOT NULL DEFAULT now()
);
