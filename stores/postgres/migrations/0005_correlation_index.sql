-- foldline event store, version 5: events found by their correlation id. `{schema}` is replaced
-- by the validated schema name, quoted.
--
-- `foldline trace` gathers the events of one business transaction (a request, and everything
-- the aggregates and process managers did about it) by the correlation id their metadata
-- carries. Only events that carry one are indexed; the query's `=` on the same expression
-- implies `IS NOT NULL`, so the planner uses this partial index for it.

CREATE INDEX events_correlation_idx ON {schema}.events ((metadata ->> 'correlation_id'))
    WHERE metadata ->> 'correlation_id' IS NOT NULL;
