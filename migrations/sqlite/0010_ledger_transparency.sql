-- The ledger as a transparency log. Numbered like ../postgres/0010_ledger_transparency.sql.
--
-- ledger_tree_nodes: the RFC 9162 Merkle tree over each hub's ledger entries, as the hashes of
--   its complete subtrees: (level, idx) covers the 2^level leaves from idx * 2^level on; the
--   leaf of entry seq is (0, seq - 1) = SHA-256(0x00 || canonical entry). Written in the
--   transaction that appends the entry; a node never changes once written.
-- ledger_checkpoints: the signed tree head (a C2SP tlog-checkpoint note) after each append.
-- ledger_witnesses: where a hub's checkpoints are sent for cosigning (C2SP tlog-witness), with
--   the witness's state: the size it last cosigned, and when to try again after a failure.
-- ledger_cosignatures: what the witnesses returned (C2SP tlog-cosignature lines).

CREATE TABLE ledger_tree_nodes (
    hub_id INTEGER NOT NULL REFERENCES hubs(id),
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (hub_id, level, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_checkpoints (
    hub_id     INTEGER NOT NULL REFERENCES hubs(id),
    tree_size  INTEGER NOT NULL,
    root_hash  BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, tree_size)
);

CREATE TRIGGER ledger_tree_nodes_no_update BEFORE UPDATE ON ledger_tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'ledger tree nodes are append-only');
END;
CREATE TRIGGER ledger_tree_nodes_no_delete BEFORE DELETE ON ledger_tree_nodes
BEGIN
    SELECT RAISE(ABORT, 'ledger tree nodes are append-only');
END;
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger checkpoints are append-only');
END;
CREATE TRIGGER ledger_checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'ledger checkpoints are append-only');
END;

CREATE TABLE ledger_witnesses (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    hub_id          INTEGER NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    vkey            TEXT NOT NULL,
    name            TEXT NOT NULL,
    cosigned_size   INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    archived_at     INTEGER,
    CONSTRAINT ledger_witnesses_hub_url_key UNIQUE (hub_id, url)
);

CREATE TABLE ledger_cosignatures (
    hub_id      INTEGER NOT NULL REFERENCES hubs(id),
    tree_size   INTEGER NOT NULL,
    witness_id  INTEGER NOT NULL REFERENCES ledger_witnesses(id) ON DELETE CASCADE,
    line        TEXT NOT NULL,
    signed_at   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (hub_id, tree_size, witness_id)
);
