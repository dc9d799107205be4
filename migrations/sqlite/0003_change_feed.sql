-- The change feed and server secrets. Numbered like ../postgres/0003_change_feed.sql.
--
-- Every committed write to a table that live regions read leaves a row in change_log (by the
-- triggers below); the server tails it and tells live regions what changed. Interaction events
-- arrive in batches, so their store function writes one change row per batch and widget
-- instead of a trigger firing per event.

CREATE TABLE change_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    op         TEXT NOT NULL,
    hub_id     INTEGER,
    widget_id  INTEGER,
    row_id     INTEGER
);

-- Secrets shared by every instance (HMAC keys for component state and tokens), made on first start.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TRIGGER annotations_change_insert AFTER INSERT ON annotations BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'insert', NEW.hub_id, NEW.widget_id, NEW.id);
END;
CREATE TRIGGER annotations_change_update AFTER UPDATE ON annotations BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'update', NEW.hub_id, NEW.widget_id, NEW.id);
END;
CREATE TRIGGER annotations_change_delete AFTER DELETE ON annotations BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('annotations', 'delete', OLD.hub_id, OLD.widget_id, OLD.id);
END;

CREATE TRIGGER widgets_change_insert AFTER INSERT ON widgets BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('widgets', 'insert', NEW.hub_id, NEW.id, NEW.id);
END;
CREATE TRIGGER widgets_change_update AFTER UPDATE ON widgets BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('widgets', 'update', NEW.hub_id, NEW.id, NEW.id);
END;
CREATE TRIGGER widgets_change_delete AFTER DELETE ON widgets BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('widgets', 'delete', OLD.hub_id, OLD.id, OLD.id);
END;

CREATE TRIGGER hubs_change_insert AFTER INSERT ON hubs BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hubs', 'insert', NEW.id, NULL, NEW.id);
END;
CREATE TRIGGER hubs_change_update AFTER UPDATE ON hubs BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hubs', 'update', NEW.id, NULL, NEW.id);
END;

CREATE TRIGGER hub_members_change_insert AFTER INSERT ON hub_members BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hub_members', 'insert', NEW.hub_id, NULL, NEW.actor_id);
END;
CREATE TRIGGER hub_members_change_update AFTER UPDATE ON hub_members BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hub_members', 'update', NEW.hub_id, NULL, NEW.actor_id);
END;
CREATE TRIGGER hub_members_change_delete AFTER DELETE ON hub_members BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('hub_members', 'delete', OLD.hub_id, NULL, OLD.actor_id);
END;

CREATE TRIGGER categories_change_insert AFTER INSERT ON categories BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('categories', 'insert', NEW.hub_id, NULL, NEW.id);
END;
CREATE TRIGGER categories_change_update AFTER UPDATE ON categories BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('categories', 'update', NEW.hub_id, NULL, NEW.id);
END;

CREATE TRIGGER requirement_candidates_change_insert AFTER INSERT ON requirement_candidates BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('requirement_candidates', 'insert', NEW.hub_id, NULL, NEW.id);
END;
CREATE TRIGGER requirement_candidates_change_update AFTER UPDATE ON requirement_candidates BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('requirement_candidates', 'update', NEW.hub_id, NULL, NEW.id);
END;

CREATE TRIGGER candidate_evidence_change_insert AFTER INSERT ON candidate_evidence BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id)
    SELECT 'candidate_evidence', 'insert', c.hub_id, NULL, c.id FROM requirement_candidates c WHERE c.id = NEW.candidate_id;
END;
CREATE TRIGGER candidate_evidence_change_update AFTER UPDATE ON candidate_evidence BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id)
    SELECT 'candidate_evidence', 'update', c.hub_id, NULL, c.id FROM requirement_candidates c WHERE c.id = NEW.candidate_id;
END;

CREATE TRIGGER ledger_entries_change_insert AFTER INSERT ON ledger_entries BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('ledger_entries', 'insert', NEW.hub_id, NULL, NEW.candidate_id);
END;
