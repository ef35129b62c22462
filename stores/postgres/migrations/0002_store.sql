-- foldline event store, version 2: the store's own id. `{schema}` is replaced by the validated
-- schema name, quoted.
--
-- Drawn once, when the schema is created: with the server's system identifier, the database
-- and the schema it makes the store's identity, which projection slots record. A schema dropped
-- and created again is another feed (positions start over), and gets another id.

CREATE TABLE {schema}.store (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO {schema}.store DEFAULT VALUES;
