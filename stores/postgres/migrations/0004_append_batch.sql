-- foldline event store, version 4: a group commit in one statement. `{schema}` is replaced by
-- the validated schema name, quoted.
--
-- The writer checks a batch's appends on the client (expected versions, idempotency keys,
-- several appends to one stream in arrival order: `writer/batch.rs`) against what it assumes
-- the streams' versions are (mostly the versions the appends expect) and that none of the
-- batch's keys was used. This function takes the advisory locks of every stream and key of the
-- batch (sorted by the caller, before anything assigns the transaction id, as every writer
-- does, so the feed's order argument holds), then, in statements of their own (the function is
-- VOLATILE, so each statement's snapshot is taken after the locks are held), compares the
-- assumptions with the stored rows:
--
-- - all true: inserts the accepted events, moves the streams' versions (an update of the rows
--   that exist, an insert of the new ones), records the keys, and returns the inserted events'
--   positions, kind 'e';
-- - any false: writes nothing and returns a row of kind 'm' (a mismatch) and what is stored
--   instead: every stream's version (kind 's'; a stream without a row has none) and every key
--   already used (kind 'k'); the writer checks the batch again against that and calls again.
--
-- Called in autocommit it is one statement, one round trip and one transaction; the locks end
-- with it.
CREATE FUNCTION {schema}.append_batch(
    p_locks            bigint[],
    -- Every stream of the batch, and the version assumed stored (NULL: no row).
    p_streams          text[],
    p_assumed          bigint[],
    -- The idempotency keys of the batch assumed unused.
    p_keys             text[],
    -- Streams whose row exists and moves, and new streams, with their new versions.
    p_moved            text[],
    p_moved_versions   bigint[],
    p_created          text[],
    p_created_versions bigint[],
    -- The accepted events.
    p_event_streams    text[],
    p_event_versions   bigint[],
    p_event_ids        uuid[],
    p_event_types      text[],
    p_schema_versions  bigint[],
    p_payloads         text[],
    p_metadata         text[],
    -- The keys of the accepted appends, with their results.
    p_key_keys         text[],
    p_key_streams      text[],
    p_key_previous     bigint[],
    p_key_current      bigint[]
) RETURNS TABLE (
    r_kind     "char",
    r_stream   text,
    r_version  bigint,
    r_xid      bigint,
    r_position bigint,
    r_key      text,
    r_previous bigint
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_lock bigint;
BEGIN
    FOREACH v_lock IN ARRAY p_locks LOOP
        PERFORM pg_advisory_xact_lock(v_lock);
    END LOOP;
    -- Each statement below takes its snapshot now, with the locks held.
    IF EXISTS (
        SELECT 1
        FROM unnest(p_streams, p_assumed) AS a(st, v)
        LEFT JOIN {schema}.streams AS s ON s.stream_id = a.st
        WHERE s.version IS DISTINCT FROM a.v
    ) OR EXISTS (
        SELECT 1 FROM {schema}.idempotency_keys AS k WHERE k.key = ANY (p_keys)
    ) THEN
        RETURN QUERY
        SELECT 'm'::"char", NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
               NULL::bigint
        UNION ALL
        SELECT 's'::"char", s.stream_id, s.version, NULL::bigint, NULL::bigint, NULL::text,
               NULL::bigint
        FROM {schema}.streams AS s
        WHERE s.stream_id = ANY (p_streams)
        UNION ALL
        SELECT 'k'::"char", k.stream_id, k.current_version, k.last_xid::text::bigint,
               k.last_position, k.key, k.previous_version
        FROM {schema}.idempotency_keys AS k
        WHERE k.key = ANY (p_keys);
        RETURN;
    END IF;

    RETURN QUERY
    WITH ins AS (
        INSERT INTO {schema}.events
            (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata)
        SELECT u.st, u.v, u.e, u.t, u.sv, u.p::jsonb, u.m::jsonb
        FROM unnest(p_event_streams, p_event_versions, p_event_ids, p_event_types,
                    p_schema_versions, p_payloads, p_metadata) AS u(st, v, e, t, sv, p, m)
        RETURNING events.stream_id, events.stream_version, events.xid, events.position
    )
    SELECT 'e'::"char", ins.stream_id, ins.stream_version, ins.xid::text::bigint, ins.position,
           NULL::text, NULL::bigint
    FROM ins;

    -- Under the streams' locks nobody else creates or moves them, and a plain update costs
    -- PostgreSQL less than an upsert's speculative insert.
    UPDATE {schema}.streams AS s SET version = u.v
    FROM unnest(p_moved, p_moved_versions) AS u(st, v)
    WHERE s.stream_id = u.st;
    INSERT INTO {schema}.streams (stream_id, version)
    SELECT u.st, u.v FROM unnest(p_created, p_created_versions) AS u(st, v);

    INSERT INTO {schema}.idempotency_keys
        (key, stream_id, previous_version, current_version, last_xid, last_position)
    SELECT u.k, u.st, u.pv, u.cv, e.xid, e.position
    FROM unnest(p_key_keys, p_key_streams, p_key_previous, p_key_current) AS u(k, st, pv, cv)
    LEFT JOIN {schema}.events AS e
        ON u.cv > u.pv AND e.stream_id = u.st AND e.stream_version = u.cv;
END
$$;
