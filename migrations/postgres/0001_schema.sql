-- IHF schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_schema.sql:
-- the same tables, columns, constraints and indexes, numbered alike.
-- Times are integer milliseconds since the Unix epoch (UTC) in both dialects.

CREATE TABLE actors (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handle        TEXT UNIQUE,                       -- NULL for embed visitors
    display_name  TEXT NOT NULL,
    password_hash TEXT,                              -- NULL: cannot sign in with a password
    is_admin      BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
    kind          TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'visitor')),
    external_ref  TEXT UNIQUE,                       -- embed visitors: 'anon:<id>' or 'host:<widget>:<sub>'
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,                   -- SHA-256 of the cookie value
    actor_id     BIGINT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX sessions_actor_idx ON sessions (actor_id);

CREATE TABLE hubs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE CHECK (char_length(slug) BETWEEN 1 AND 64),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    archived_at BIGINT
);

CREATE TABLE hub_members (
    hub_id     BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    actor_id   BIGINT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('annotator', 'triager', 'operator')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (hub_id, actor_id)
);
CREATE INDEX hub_members_actor_idx ON hub_members (actor_id);

CREATE TABLE widgets (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id          BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    slug            TEXT NOT NULL CHECK (char_length(slug) BETWEEN 1 AND 64),
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    owner_id        BIGINT REFERENCES actors(id) ON DELETE SET NULL,
    policy_scope    TEXT NOT NULL DEFAULT 'members' CHECK (policy_scope IN ('public', 'members', 'private')),
    embed_key       TEXT NOT NULL UNIQUE,
    embed_secret    TEXT NOT NULL,
    allowed_origins TEXT NOT NULL DEFAULT '',        -- space-separated origins
    created_at      BIGINT NOT NULL,
    archived_at     BIGINT,
    CONSTRAINT widgets_hub_id_slug_key UNIQUE (hub_id, slug)
);
CREATE INDEX widgets_owner_idx ON widgets (owner_id);

CREATE TABLE interaction_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id      BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    widget_id   BIGINT NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('view', 'click', 'hover', 'scroll', 'input', 'submit', 'error', 'rage_click', 'dead_click', 'custom')),
    actor_id    BIGINT REFERENCES actors(id) ON DELETE SET NULL,
    occurred_at BIGINT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX interaction_events_hub_time_idx ON interaction_events (hub_id, occurred_at DESC);
CREATE INDEX interaction_events_widget_time_idx ON interaction_events (widget_id, occurred_at DESC);

CREATE TABLE categories (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id      BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    slug        TEXT NOT NULL CHECK (char_length(slug) BETWEEN 1 AND 32),
    label       TEXT NOT NULL,
    colour      TEXT NOT NULL DEFAULT 'slate',           -- a palette name (CSP forbids inline styles)
    position    BIGINT NOT NULL DEFAULT 0,
    archived_at BIGINT,
    CONSTRAINT categories_hub_id_slug_key UNIQUE (hub_id, slug)
);

CREATE TABLE annotations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id          BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    widget_id       BIGINT NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    actor_id        BIGINT NOT NULL REFERENCES actors(id),
    body            TEXT NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
    category_id     BIGINT NOT NULL REFERENCES categories(id),
    status          TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'triaged', 'promoted', 'dismissed', 'duplicate')),
    dismiss_reason  TEXT,
    duplicate_of    BIGINT REFERENCES annotations(id) ON DELETE SET NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT,
    version         BIGINT NOT NULL DEFAULT 1,
    CONSTRAINT annotations_actor_id_idempotency_key_key UNIQUE (actor_id, idempotency_key)
);
CREATE INDEX annotations_widget_time_idx ON annotations (widget_id, created_at DESC);
CREATE INDEX annotations_hub_status_time_idx ON annotations (hub_id, status, created_at);
CREATE INDEX annotations_hub_time_idx ON annotations (hub_id, created_at DESC);
CREATE INDEX annotations_actor_idx ON annotations (actor_id);
CREATE INDEX annotations_duplicate_of_idx ON annotations (duplicate_of);

-- Triage audit: every change of an annotation's triage fields, who and when, from -> to.
CREATE TABLE annotation_changes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    annotation_id BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    hub_id        BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    actor_id      BIGINT NOT NULL REFERENCES actors(id),
    field         TEXT NOT NULL,
    old_value     TEXT,
    new_value     TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX annotation_changes_annotation_idx ON annotation_changes (annotation_id, created_at);

-- Unread markers of the widget feedback inbox, per viewer.
CREATE TABLE inbox_reads (
    actor_id     BIGINT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    widget_id    BIGINT NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    read_up_to   BIGINT NOT NULL,
    PRIMARY KEY (actor_id, widget_id)
);

CREATE TABLE requirement_candidates (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id     BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    title      TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    statement  TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'accepted', 'rejected', 'deferred', 'implemented')),
    created_by BIGINT NOT NULL REFERENCES actors(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX requirement_candidates_hub_status_idx ON requirement_candidates (hub_id, status, updated_at DESC);

CREATE TABLE candidate_evidence (
    candidate_id   BIGINT NOT NULL REFERENCES requirement_candidates(id) ON DELETE CASCADE,
    annotation_id  BIGINT NOT NULL REFERENCES annotations(id),
    added_by       BIGINT NOT NULL REFERENCES actors(id),
    added_at       BIGINT NOT NULL,
    removed_at     BIGINT,
    removed_reason TEXT,
    PRIMARY KEY (candidate_id, annotation_id)
);
CREATE INDEX candidate_evidence_annotation_idx ON candidate_evidence (annotation_id);

-- The governance ledger: append-only, one hash chain per hub (seq 1, 2, 3 ... within a hub).
CREATE TABLE ledger_entries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id       BIGINT NOT NULL REFERENCES hubs(id),
    seq          BIGINT NOT NULL,
    candidate_id BIGINT REFERENCES requirement_candidates(id),
    actor_id     BIGINT NOT NULL REFERENCES actors(id),
    action       TEXT NOT NULL,
    rationale    TEXT NOT NULL DEFAULT '',
    detail       TEXT NOT NULL DEFAULT '{}',
    created_at   BIGINT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    CONSTRAINT ledger_entries_hub_id_seq_key UNIQUE (hub_id, seq)
);
CREATE INDEX ledger_entries_candidate_idx ON ledger_entries (candidate_id, seq);


CREATE TABLE api_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id       BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_by   BIGINT NOT NULL REFERENCES actors(id),
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE webhooks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hub_id      BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,                       -- space-separated event names
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    archived_at BIGINT
);

CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
CREATE FUNCTION ihf_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only';
END;
$$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ihf_ledger_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ihf_ledger_append_only();
