-- Events, partitioned by day on occurred (epoch milliseconds). Every index
-- on events leads with project_id so that the table can be distributed by
-- project on Citus; company-level events use project_id '' (see README.md).
CREATE TABLE events (
    project_id     text     NOT NULL,
    company_id     text     NOT NULL,
    occurred       bigint   NOT NULL,
    -- From event_seq; exposed to ReadFrom in order only: see README.md.
    seq            bigint   NOT NULL,
    id             text     NOT NULL,
    level          text     NOT NULL CHECK (level IN ('project', 'company')),
    user_id        text     NOT NULL,
    action         text     NOT NULL,
    type           text     NOT NULL,
    actor_id       text     NOT NULL,
    device         text     NOT NULL,
    method         text     NOT NULL,
    geo            text     NOT NULL,
    remote_address text     NOT NULL,
    login_ids      text[]   NOT NULL,
    tenants        text[]   NOT NULL,
    -- Kept as json, not jsonb, so the sender's bytes come back unchanged.
    data           json,
    -- Every filterable value, prefixed by its field ("u:", "act:", "t:"…),
    -- so that one GIN index serves every list filter of the search API.
    attrs          text[]   NOT NULL,
    -- event.Tokens as lexemes, unnormalised (array_to_tsvector).
    tokens         tsvector NOT NULL,
    -- Tokens too long to be a lexeme, kept whole for an exact recheck.
    long_tokens    text[]
) PARTITION BY RANGE (occurred);

CREATE TABLE events_default PARTITION OF events DEFAULT;
-- Only the default partition spans many days: maintenance looks for recent
-- days in it, and retention deletes its old rows, both by occurred.
CREATE INDEX events_default_occurred_idx ON events_default (occurred);

CREATE INDEX events_scope_idx ON events (project_id, company_id, occurred DESC, seq DESC);
CREATE INDEX events_attrs_idx ON events USING gin (attrs);
CREATE INDEX events_tokens_idx ON events USING gin (tokens);
-- The one index not led by project_id: ReadFrom walks every project in seq order.
CREATE INDEX events_seq_idx ON events (seq);

-- A unique index on a partitioned table must include the partition key, so
-- (company_id, id) cannot be unique on events itself: this table enforces it
-- and points at the row for Get.
CREATE TABLE event_ids (
    company_id text   NOT NULL,
    id         text   NOT NULL,
    project_id text   NOT NULL,
    occurred   bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (company_id, id)
);
CREATE INDEX event_ids_occurred_idx ON event_ids (company_id, occurred);

-- CACHE 1 (the default) matters: ReadFrom reads last_value as the highest
-- seq handed out so far, which a per-session cache would make untrue.
CREATE SEQUENCE event_seq AS bigint CACHE 1;

-- The highest seq ReadFrom may expose: every seq at or below it is
-- committed or abandoned. An Append holds a shared advisory lock keyed
-- 2^62 + (event_seq's last_value before it draws its seqs) until it ends,
-- so the smallest such key bounds every seq still in flight. last_value
-- is read before the locks: a seq drawn after that read is above it.
-- The caller must read its rows in a later statement (a newer snapshot).
CREATE FUNCTION audittrail_read_horizon() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    handed_out bigint;
    in_flight  bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO handed_out FROM event_seq;
    SELECT min((l.classid::bigint << 32 | l.objid::bigint) - (1::bigint << 62)) INTO in_flight
      FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid::bigint >= (1::bigint << 30);
    RETURN least(handed_out, in_flight);
END
$$;

CREATE TABLE companies (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    search_window_days integer     NOT NULL,
    retention_days     integer     NOT NULL,
    search_rate_limit  integer,
    created            timestamptz NOT NULL
);

CREATE TABLE projects (
    id         text        PRIMARY KEY,
    company_id text        NOT NULL,
    name       text        NOT NULL,
    created    timestamptz NOT NULL
);
CREATE INDEX projects_company_idx ON projects (company_id);

CREATE TABLE management_keys (
    id          text        PRIMARY KEY,
    company_id  text        NOT NULL,
    name        text        NOT NULL,
    role        text        NOT NULL,
    project_ids text[]      NOT NULL,
    hash        bytea       NOT NULL,
    created     timestamptz NOT NULL,
    expires     timestamptz,
    revoked     timestamptz,
    rotated     timestamptz
);
CREATE INDEX management_keys_company_idx ON management_keys (company_id);

-- Sliding-log rate limiter: the admitted requests of the current window
-- per key, on the database's clock so that instances agree.
CREATE TABLE rate_limits (
    key  text          PRIMARY KEY,
    hits timestamptz[] NOT NULL
);

CREATE FUNCTION audittrail_rate_allow(p_key text, p_limit integer, p_per interval,
                                      OUT allowed boolean, OUT retry_after interval)
LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz;
    kept   timestamptz[];
BEGIN
    INSERT INTO rate_limits (key, hits) VALUES (p_key, '{}') ON CONFLICT (key) DO NOTHING;
    -- The row lock serialises concurrent calls for one key across instances;
    -- the clock is read after it so that hits are stored in time order.
    PERFORM 1 FROM rate_limits WHERE key = p_key FOR UPDATE;
    now_ts := clock_timestamp();
    SELECT coalesce(array_agg(h ORDER BY h), '{}') INTO kept
      FROM rate_limits r, unnest(r.hits) AS h
     WHERE r.key = p_key AND h > now_ts - p_per;
    IF cardinality(kept) < p_limit THEN
        allowed := true;
        retry_after := interval '0';
        UPDATE rate_limits SET hits = kept || now_ts WHERE key = p_key;
    ELSE
        allowed := false;
        -- The oldest admitted request leaves the window first.
        retry_after := kept[cardinality(kept) - p_limit + 1] + p_per - now_ts;
        UPDATE rate_limits SET hits = kept WHERE key = p_key;
    END IF;
END
$$;
