-- Notifications, in the app and by email (issue #21). Numbered like ../postgres/0021_notifications.sql.
--
-- Notifications are written by triggers inside the transaction that made the change, so every
-- write path notifies exactly once and a change that rolls back notifies nobody. Each trigger
-- checks the access policy for the recipient at that moment (`ihf_can_read` below, spelled out
-- inline: SQLite has no functions): a private annotation never notifies someone who cannot
-- read it. An immediate email is queued by a trigger on the notification itself; digests are
-- gathered by the mail worker (src/notifications).

ALTER TABLE actors ADD COLUMN email TEXT;
-- 'immediate', 'daily' (one digest a day) or 'off'. Embed visitors start 'off' and opt in.
ALTER TABLE actors ADD COLUMN email_mode TEXT NOT NULL DEFAULT 'immediate'
    CHECK (email_mode IN ('immediate', 'daily', 'off'));
UPDATE actors SET email_mode = 'off' WHERE kind = 'visitor';
ALTER TABLE actors ADD COLUMN last_digest_at INTEGER;

CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id  INTEGER NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    hub_id        INTEGER NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    -- new_feedback, triaged, dismissed, duplicate, promoted, candidate_accepted,
    -- candidate_rejected, candidate_deferred, candidate_implemented, replied, mentioned
    kind          TEXT NOT NULL,
    widget_id     INTEGER REFERENCES widgets(id) ON DELETE CASCADE,
    annotation_id INTEGER REFERENCES annotations(id) ON DELETE CASCADE,
    candidate_id  INTEGER REFERENCES requirement_candidates(id) ON DELETE CASCADE,
    reply_id      INTEGER,
    actor_id      INTEGER REFERENCES actors(id) ON DELETE SET NULL,   -- who caused it
    detail        TEXT NOT NULL DEFAULT '',                            -- reason, rationale, title
    created_at    INTEGER NOT NULL,
    read_at       INTEGER,
    digest_id     INTEGER                                              -- the digest mail that carried it
);
CREATE INDEX notifications_recipient_idx ON notifications (recipient_id, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (recipient_id) WHERE read_at IS NULL;

-- The mail queue: one row per mail, claimed like webhook deliveries (lease in next_attempt_at).
CREATE TABLE email_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id    INTEGER NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('immediate', 'digest')),
    notification_id INTEGER REFERENCES notifications(id) ON DELETE CASCADE,   -- immediate mails
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE state = 'pending';

-- The bell is live: its change rows carry the recipient as row_id.
CREATE TRIGGER notifications_change_insert AFTER INSERT ON notifications BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('notifications', 'insert', NEW.hub_id, NULL, NEW.recipient_id);
END;
CREATE TRIGGER notifications_change_update AFTER UPDATE OF read_at ON notifications BEGIN
    INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('notifications', 'update', NEW.hub_id, NULL, NEW.recipient_id);
END;

-- An immediate mail for a recipient who has an address and wants mail at once.
CREATE TRIGGER notifications_email AFTER INSERT ON notifications
WHEN (SELECT email IS NOT NULL AND email <> '' AND email_mode = 'immediate' FROM actors WHERE id = NEW.recipient_id)
BEGIN
    INSERT INTO email_outbox (recipient_id, kind, notification_id, next_attempt_at, created_at)
    VALUES (NEW.recipient_id, 'immediate', NEW.id, NEW.created_at, NEW.created_at);
END;

-- New feedback on a widget: its owner (who reads the widget's inbox whatever its scope),
-- unless the owner wrote it.
CREATE TRIGGER annotations_notify_owner AFTER INSERT ON annotations BEGIN
    INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, actor_id, detail, created_at)
    SELECT w.owner_id, NEW.hub_id, 'new_feedback', NEW.widget_id, NEW.id, NEW.actor_id, '', NEW.created_at
      FROM widgets w
     WHERE w.id = NEW.widget_id AND w.owner_id IS NOT NULL AND w.owner_id <> NEW.actor_id;
END;

-- Triaged, dismissed (with the reason) or marked duplicate: the author, unless they did it
-- (an author always reads their own annotation).
CREATE TRIGGER annotation_changes_notify AFTER INSERT ON annotation_changes
WHEN NEW.field = 'status' AND NEW.new_value IN ('triaged', 'dismissed', 'duplicate')
BEGIN
    INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, actor_id, detail, created_at)
    SELECT a.actor_id, a.hub_id, NEW.new_value, a.widget_id, a.id, NEW.actor_id,
           CASE NEW.new_value WHEN 'dismissed' THEN COALESCE(a.dismiss_reason, '')
                              WHEN 'duplicate' THEN COALESCE(CAST(a.duplicate_of AS TEXT), '')
                              ELSE '' END,
           NEW.created_at
      FROM annotations a
     WHERE a.id = NEW.annotation_id AND a.deleted_at IS NULL AND a.actor_id <> NEW.actor_id;
END;

-- Promoted (evidence added to a candidate): the author, with the candidate's title.
CREATE TRIGGER ledger_notify_promoted AFTER INSERT ON ledger_entries
WHEN NEW.action = 'evidence_added'
BEGIN
    INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, candidate_id, actor_id, detail, created_at)
    SELECT a.actor_id, NEW.hub_id, 'promoted', a.widget_id, a.id, NEW.candidate_id, NEW.actor_id, c.title, NEW.created_at
      FROM annotations a JOIN requirement_candidates c ON c.id = NEW.candidate_id
     WHERE a.id = CAST(json_extract(NEW.detail, '$.annotation_id') AS INTEGER)
       AND a.hub_id = NEW.hub_id AND a.deleted_at IS NULL AND a.actor_id <> NEW.actor_id;
END;

-- A candidate accepted, rejected, deferred or implemented: the author of each annotation that
-- is its active evidence and everyone who supports one ("me too") and may still read it, once
-- per person, with the rationale.
CREATE TRIGGER ledger_notify_decided AFTER INSERT ON ledger_entries
WHEN NEW.action = 'status_changed'
     AND json_extract(NEW.detail, '$.to') IN ('accepted', 'rejected', 'deferred', 'implemented')
BEGIN
    INSERT INTO notifications (recipient_id, hub_id, kind, widget_id, annotation_id, candidate_id, actor_id, detail, created_at)
    SELECT x.recipient, NEW.hub_id, 'candidate_' || json_extract(NEW.detail, '$.to'), MIN(x.widget_id), MIN(x.annotation_id),
           NEW.candidate_id, NEW.actor_id, NEW.rationale, NEW.created_at
      FROM (SELECT a.actor_id AS recipient, a.widget_id, a.id AS annotation_id
              FROM candidate_evidence e JOIN annotations a ON a.id = e.annotation_id
             WHERE e.candidate_id = NEW.candidate_id AND e.removed_at IS NULL AND a.deleted_at IS NULL
            UNION ALL
            SELECT s.actor_id, a.widget_id, a.id
              FROM candidate_evidence e JOIN annotations a ON a.id = e.annotation_id
              JOIN annotation_supports s ON s.annotation_id = a.id
              JOIN widgets w ON w.id = a.widget_id JOIN actors sp ON sp.id = s.actor_id
             WHERE e.candidate_id = NEW.candidate_id AND e.removed_at IS NULL AND a.deleted_at IS NULL
               AND (w.policy_scope = 'public' OR sp.is_admin = 1
                   OR (w.policy_scope = 'members' AND EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = a.hub_id AND m.actor_id = s.actor_id))
                   OR (w.policy_scope = 'private' AND (w.owner_id = s.actor_id OR EXISTS (SELECT 1 FROM hub_members m
                        WHERE m.hub_id = a.hub_id AND m.actor_id = s.actor_id AND m.role IN ('triager', 'operator')))))) x
     WHERE x.recipient <> NEW.actor_id
     GROUP BY x.recipient;
END;
