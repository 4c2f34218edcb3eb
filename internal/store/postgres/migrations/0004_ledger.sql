-- Tamper evidence (internal/ledger, ledgerpg): one RFC 6962 Merkle tree per
-- project and per company. Rows are only ever inserted, except each tree's
-- size/root and the single appender position, which move forward together
-- in one transaction per commit. Retention never touches these tables: the
-- hashes of deleted events keep the rest of the trail verifiable.
CREATE TABLE ledger_state (
    id       smallint PRIMARY KEY CHECK (id = 1),
    position bigint   NOT NULL -- store Seq up to which events are leaves
);
INSERT INTO ledger_state (id, position) VALUES (1, 0);

CREATE TABLE ledger_trees (
    id         bigserial PRIMARY KEY,
    tree       text   NOT NULL UNIQUE, -- ledger.TreeID.String()
    company_id text   NOT NULL,
    project_id text   NOT NULL,        -- '' for the company-level tree
    size       bigint NOT NULL,
    root       bytea  NOT NULL
);
CREATE INDEX ledger_trees_company ON ledger_trees (company_id);

-- Every complete subtree (leaves are level 0): what inclusion and
-- consistency proofs read, O(log n) primary-key lookups each.
CREATE TABLE ledger_nodes (
    tree_id bigint   NOT NULL,
    level   smallint NOT NULL,
    idx     bigint   NOT NULL,
    hash    bytea    NOT NULL,
    PRIMARY KEY (tree_id, level, idx)
);

-- Leaf index of each event by its store Seq (event id → Seq → leaf).
CREATE TABLE ledger_leaves (
    tree_id bigint NOT NULL,
    seq     bigint NOT NULL,
    idx     bigint NOT NULL,
    PRIMARY KEY (tree_id, seq)
);

CREATE TABLE ledger_checkpoints (
    tree_id    bigint      NOT NULL,
    size       bigint      NOT NULL,
    note       bytea       NOT NULL, -- the signed note
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tree_id, size)
);
