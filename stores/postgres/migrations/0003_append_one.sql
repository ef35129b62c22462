-- foldline event store, version 3: one append in one statement. `{schema}` is replaced by the
-- validated schema name, quoted.
--
-- A lone writer's group commits hold one append each, and each statement of a transaction costs
-- PostgreSQL a message, a portal and a flush. This function does a whole append without an
-- idempotency key: it takes the stream's advisory lock (before anything assigns the transaction
-- id, as every writer does, so the feed's order argument holds), then, in a statement of its own
-- (the function is VOLATILE, so that statement's snapshot is taken after the lock is held),
-- reads the stream's version, checks the expected one (NULL: any), inserts the events at the
-- versions after it and moves the stream's version, all or nothing. Called in autocommit it is
-- one statement, one round trip and one transaction; the lock ends with it.
--
-- Returns the version found, and the last event's version, xid and position when the events
-- were written (NULLs on a version conflict: nothing was written).
CREATE FUNCTION {schema}.append_one(
    p_lock            bigint,
    p_stream          text,
    p_expected        bigint,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions bigint[],
    p_payloads        text[],
    p_metadata        text[]
) RETURNS TABLE (r_found bigint, r_version bigint, r_xid bigint, r_position bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN QUERY
    WITH cur AS (
        SELECT coalesce(
            (SELECT s.version FROM {schema}.streams AS s WHERE s.stream_id = p_stream), 0
        ) AS v
    ), ok AS (
        SELECT cur.v FROM cur WHERE p_expected IS NULL OR cur.v = p_expected
    ), ins AS (
        INSERT INTO {schema}.events
            (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata)
        SELECT p_stream, ok.v + u.n, u.e, u.t, u.sv, u.p::jsonb, u.m::jsonb
        FROM ok, unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata)
            WITH ORDINALITY AS u(e, t, sv, p, m, n)
        RETURNING events.stream_version, events.position, events.xid
    ), up AS (
        INSERT INTO {schema}.streams (stream_id, version)
        SELECT p_stream, max(ins.stream_version) FROM ins HAVING count(*) > 0
        ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version
    ), last AS (
        SELECT ins.stream_version, ins.position, ins.xid::text::bigint AS xid
        FROM ins ORDER BY ins.stream_version DESC LIMIT 1
    )
    SELECT cur.v, last.stream_version, last.xid, last.position
    FROM cur LEFT JOIN last ON true;
END
$$;
