-- The ledger as a transparency log. Numbered like ../sqlite/0010_ledger_transparency.sql, which
-- says what each table holds.

CREATE TABLE ledger_tree_nodes (
    hub_id BIGINT NOT NULL REFERENCES hubs(id),
    level  BIGINT NOT NULL,
    idx    BIGINT NOT NULL,
    hash   BYTEA NOT NULL,
    PRIMARY KEY (hub_id, level, idx)
);

CREATE TABLE ledger_checkpoints (
    hub_id     BIGINT NOT NULL REFERENCES hubs(id),
    tree_size  BIGINT NOT NULL,
    root_hash  BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, tree_size)
);

CREATE FUNCTION ihf_ledger_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER ledger_tree_nodes_no_update BEFORE UPDATE OR DELETE ON ledger_tree_nodes
    FOR EACH ROW EXECUTE FUNCTION ihf_ledger_log_append_only();
CREATE TRIGGER ledger_tree_nodes_no_truncate BEFORE TRUNCATE ON ledger_tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION ihf_ledger_log_append_only();
CREATE TRIGGER ledger_checkpoints_no_update BEFORE UPDATE OR DELETE ON ledger_checkpoints
    FOR EACH ROW EXECUTE FUNCTION ihf_ledger_log_append_only();
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ihf_ledger_log_append_only();

CREATE TABLE ledger_witnesses (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id          BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    vkey            TEXT NOT NULL,
    name            TEXT NOT NULL,
    cosigned_size   BIGINT NOT NULL DEFAULT 0,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    archived_at     BIGINT,
    CONSTRAINT ledger_witnesses_hub_url_key UNIQUE (hub_id, url)
);

CREATE TABLE ledger_cosignatures (
    hub_id      BIGINT NOT NULL REFERENCES hubs(id),
    tree_size   BIGINT NOT NULL,
    witness_id  BIGINT NOT NULL REFERENCES ledger_witnesses(id) ON DELETE CASCADE,
    line        TEXT NOT NULL,
    signed_at   BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, tree_size, witness_id)
);

-- Members read their hub's tree, checkpoints, witnesses and cosignatures, as they read its
-- ledger; nobody acting for a person changes them.
GRANT SELECT ON ledger_tree_nodes, ledger_checkpoints, ledger_cosignatures TO ihf_authenticated;
GRANT SELECT (id, hub_id, url, vkey, name, cosigned_size, attempts, next_attempt_at, last_error, created_at, archived_at)
    ON ledger_witnesses TO ihf_authenticated;

ALTER TABLE ledger_tree_nodes ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_tree_nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON ledger_tree_nodes TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY ledger_tree_read ON ledger_tree_nodes FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND (SELECT ihf_api_hub_id()) IS NULL AND ihf_is_member(hub_id));

ALTER TABLE ledger_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON ledger_checkpoints TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY ledger_checkpoints_read ON ledger_checkpoints FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND (SELECT ihf_api_hub_id()) IS NULL AND ihf_is_member(hub_id));

ALTER TABLE ledger_witnesses ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_witnesses FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON ledger_witnesses TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY ledger_witnesses_read ON ledger_witnesses FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND (SELECT ihf_api_hub_id()) IS NULL AND ihf_is_member(hub_id));

ALTER TABLE ledger_cosignatures ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_cosignatures FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON ledger_cosignatures TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY ledger_cosignatures_read ON ledger_cosignatures FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND (SELECT ihf_api_hub_id()) IS NULL AND ihf_is_member(hub_id));
