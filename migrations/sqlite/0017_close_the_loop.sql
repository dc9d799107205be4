-- Closing the loop (#21): replies on annotations, "me too" support, the opt-in public roadmap
-- and full-text search for similar feedback. Numbered like ../postgres/0017_close_the_loop.sql.

-- A reply belongs to one annotation; its hub and widget are copied from it when it is written
-- (the store inserts them from the annotation row), so the policies and the change feed need
-- no join. `internal` replies are for the hub's staff only.
CREATE TABLE annotation_replies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    annotation_id INTEGER NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    hub_id        INTEGER NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    widget_id     INTEGER NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    actor_id      INTEGER NOT NULL REFERENCES actors(id),
    body          TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    internal      INTEGER NOT NULL DEFAULT 0 CHECK (internal IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX annotation_replies_annotation_idx ON annotation_replies (annotation_id, created_at, id);
CREATE INDEX annotation_replies_actor_idx ON annotation_replies (actor_id);

-- "Me too": one row per person or visitor supporting an annotation.
CREATE TABLE annotation_supports (
    annotation_id INTEGER NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    actor_id      INTEGER NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (annotation_id, actor_id)
);
CREATE INDEX annotation_supports_actor_idx ON annotation_supports (actor_id);

-- A hub whose roadmap is public has a row here (opt-in, by its operators).
CREATE TABLE hub_roadmaps (
    hub_id       INTEGER PRIMARY KEY REFERENCES hubs(id) ON DELETE CASCADE,
    published_at INTEGER NOT NULL
);

-- The change feed: a reply or a support changes how its annotation shows, so it is announced
-- as an update of the annotation (its hub, widget and id). Every live region, embed stream and
-- API stream that shows the annotation re-renders it, with no new table to teach them.
CREATE TRIGGER annotation_replies_change_insert AFTER INSERT ON annotation_replies BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'update', NEW.hub_id, NEW.widget_id, NEW.annotation_id);
END;
CREATE TRIGGER annotation_replies_change_update AFTER UPDATE ON annotation_replies BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'update', NEW.hub_id, NEW.widget_id, NEW.annotation_id);
END;
CREATE TRIGGER annotation_replies_change_delete AFTER DELETE ON annotation_replies BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'update', OLD.hub_id, OLD.widget_id, OLD.annotation_id);
END;
CREATE TRIGGER annotation_supports_change_insert AFTER INSERT ON annotation_supports BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id)
    SELECT 'annotations', 'update', a.hub_id, a.widget_id, a.id FROM annotations a WHERE a.id = NEW.annotation_id;
END;
CREATE TRIGGER annotation_supports_change_delete AFTER DELETE ON annotation_supports BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id)
    SELECT 'annotations', 'update', a.hub_id, a.widget_id, a.id FROM annotations a WHERE a.id = OLD.annotation_id;
END;
CREATE TRIGGER hub_roadmaps_change_insert AFTER INSERT ON hub_roadmaps BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hubs', 'update', NEW.hub_id, NULL, NEW.hub_id);
END;
CREATE TRIGGER hub_roadmaps_change_delete AFTER DELETE ON hub_roadmaps BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hubs', 'update', OLD.hub_id, NULL, OLD.hub_id);
END;

-- Webhook event annotation.replied: the annotation as annotation.created sends it, and the reply.
CREATE TRIGGER annotation_replies_webhook AFTER INSERT ON annotation_replies BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'annotation.replied',
           json_object('event', 'annotation.replied', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'annotation', json(d.doc),
                       'reply', json_object('id', NEW.id,
                                            'author', json_object('id', p.id, 'display_name', p.display_name),
                                            'body', NEW.body,
                                            'internal', json(CASE WHEN NEW.internal = 1 THEN 'true' ELSE 'false' END),
                                            'created_at', NEW.created_at)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_annotation_docs d ON d.id = NEW.annotation_id JOIN actors p ON p.id = NEW.actor_id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' annotation.replied ') > 0;
END;

-- Similar feedback while typing: FTS5 over annotation bodies (external content: the text stays
-- in annotations only), kept in step by triggers.
CREATE VIRTUAL TABLE annotations_fts USING fts5(body, content = 'annotations', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2');
INSERT INTO annotations_fts (annotations_fts) VALUES ('rebuild');
CREATE TRIGGER annotations_fts_insert AFTER INSERT ON annotations BEGIN
    INSERT INTO annotations_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;
CREATE TRIGGER annotations_fts_delete AFTER DELETE ON annotations BEGIN
    INSERT INTO annotations_fts (annotations_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;
CREATE TRIGGER annotations_fts_update AFTER UPDATE OF body ON annotations BEGIN
    INSERT INTO annotations_fts (annotations_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO annotations_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;
