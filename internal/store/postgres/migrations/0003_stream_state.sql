-- Stream connectors (stream.Record), shared by every instance. The API of
-- any instance writes the control columns (spec, paused, auto_paused,
-- revision; cursor_seq and epoch on a replay) in a row-locked
-- read-modify-write; the instance delivering writes only cursor_seq and
-- counters, and only while epoch is the one it claimed, so a deliverer
-- that lost its lease cannot move the cursor of the one that replaced it.
-- spec holds destination secrets (tokens, HMAC keys): protect the database
-- as the key material it is. json, not jsonb: the config comes back as
-- the user wrote it.
CREATE TABLE stream_connectors (
    id          text    PRIMARY KEY,
    company_id  text    NOT NULL,
    project_id  text    NOT NULL,
    spec        json    NOT NULL,
    paused      boolean NOT NULL,
    auto_paused boolean NOT NULL,
    revision    bigint  NOT NULL,
    epoch       bigint  NOT NULL,
    cursor_seq  bigint  NOT NULL,
    counters    json    NOT NULL
);
CREATE INDEX stream_connectors_scope_idx ON stream_connectors (project_id, company_id);
