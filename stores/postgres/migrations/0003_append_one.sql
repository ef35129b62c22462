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
DECLARE
    v_stored bigint;
    v_found  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    -- Each statement below takes its snapshot now, with the lock held.
    SELECT s.version INTO v_stored FROM {schema}.streams AS s WHERE s.stream_id = p_stream;
    v_found := coalesce(v_stored, 0);
    IF p_expected IS NOT NULL AND v_found <> p_expected THEN
        RETURN QUERY SELECT v_found, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    RETURN QUERY
    WITH ins AS (
        INSERT INTO {schema}.events
            (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata)
        SELECT p_stream, v_found + u.n, u.e, u.t, u.sv, u.p::jsonb, u.m::jsonb
        FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata)
            WITH ORDINALITY AS u(e, t, sv, p, m, n)
        RETURNING events.stream_version, events.position, events.xid
    )
    SELECT v_found, ins.stream_version, ins.xid::text::bigint, ins.position
    FROM ins ORDER BY ins.stream_version DESC LIMIT 1;
    -- The stream's row: an update where it exists (no speculative insert), else an insert;
    -- no other writer can create it meanwhile, every writer holding the stream's lock.
    IF v_stored IS NULL THEN
        INSERT INTO {schema}.streams (stream_id, version)
        VALUES (p_stream, v_found + cardinality(p_event_ids));
    ELSE
        UPDATE {schema}.streams SET version = v_found + cardinality(p_event_ids)
        WHERE stream_id = p_stream;
    END IF;
END
$$;
