-- foldline event store, version 4: the timers of process managers. `{schema}` is replaced by
-- the validated schema name, quoted.
--
-- A timer waits here until it is due; a runner claims due ones with `FOR UPDATE SKIP LOCKED`
-- (so runners at once never claim the same one) for a lease (`claimed_until`), fires it by
-- recording it in the instance's stream, then deletes it. A runner that dies holding a lease
-- leaves the timer to be claimed again once the lease ends: late rather than never.

CREATE TABLE {schema}.process_timers (
    id             uuid        PRIMARY KEY,
    process        text        NOT NULL,
    instance       text        NOT NULL,
    timeout        bytea       NOT NULL,
    due_at         timestamptz NOT NULL,
    claimed_until  timestamptz
);

-- Claiming: a process's timers by due time.
CREATE INDEX process_timers_due ON {schema}.process_timers (process, due_at);
-- Cancelling and listing: an instance's timers.
CREATE INDEX process_timers_instance ON {schema}.process_timers (process, instance);
