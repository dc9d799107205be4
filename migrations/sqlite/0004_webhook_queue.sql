-- Webhook deliveries are enqueued by triggers, inside the transaction that wrote the row, so
-- every write path (the web UI, the data API, an embed, the CLI, plain SQL) enqueues exactly
-- once and nothing is enqueued for a write that rolls back. Numbered like
-- ../postgres/0004_webhook_queue.sql.
--
-- One row in webhook_deliveries per subscribed, non-archived webhook of the row's hub:
--   annotation.created   an annotation is inserted
--   annotation.updated   its body changed
--   annotation.triaged   its status changed away from 'new'
--   candidate.created    a requirement candidate is inserted
--   candidate.decided    a candidate's status changed
-- The payload is the JSON body the worker POSTs: {"event","occurred_at","hub","annotation"|"candidate"[,"previous_status"]}.

CREATE INDEX webhooks_hub_idx ON webhooks (hub_id);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- Exports read a hub's annotations in keyset pages by (created_at, id): the index lets each
-- page start where the last ended and stop after one page, whatever the size of the hub.
CREATE INDEX annotations_hub_created_id_idx ON annotations (hub_id, created_at, id);

-- What a webhook receives of an annotation.
CREATE VIEW webhook_annotation_docs AS
SELECT a.id, a.hub_id, h.slug AS hub_slug, json_object(
        'id', a.id,
        'widget', json_object('id', w.id, 'slug', w.slug, 'name', w.name),
        'author', json_object('id', p.id, 'display_name', p.display_name),
        'category', c.slug,
        'status', a.status,
        'body', a.body,
        'created_at', a.created_at,
        'updated_at', a.updated_at,
        'version', a.version) AS doc
  FROM annotations a
  JOIN hubs h ON h.id = a.hub_id
  JOIN widgets w ON w.id = a.widget_id
  JOIN actors p ON p.id = a.actor_id
  JOIN categories c ON c.id = a.category_id;

-- What a webhook receives of a requirement candidate.
CREATE VIEW webhook_candidate_docs AS
SELECT r.id, r.hub_id, h.slug AS hub_slug, json_object(
        'id', r.id,
        'title', r.title,
        'statement', r.statement,
        'status', r.status,
        'created_by', r.created_by,
        'created_at', r.created_at,
        'updated_at', r.updated_at,
        'version', r.version) AS doc
  FROM requirement_candidates r
  JOIN hubs h ON h.id = r.hub_id;

CREATE TRIGGER annotations_webhook_created AFTER INSERT ON annotations BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'annotation.created',
           json_object('event', 'annotation.created', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'annotation', json(d.doc)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_annotation_docs d ON d.id = NEW.id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' annotation.created ') > 0;
END;

CREATE TRIGGER annotations_webhook_updated AFTER UPDATE OF body ON annotations
WHEN OLD.body IS NOT NEW.body BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'annotation.updated',
           json_object('event', 'annotation.updated', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'annotation', json(d.doc)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_annotation_docs d ON d.id = NEW.id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' annotation.updated ') > 0;
END;

CREATE TRIGGER annotations_webhook_triaged AFTER UPDATE OF status ON annotations
WHEN OLD.status = 'new' AND NEW.status <> 'new' BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'annotation.triaged',
           json_object('event', 'annotation.triaged', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'annotation', json(d.doc),
                       'previous_status', OLD.status),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_annotation_docs d ON d.id = NEW.id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' annotation.triaged ') > 0;
END;

CREATE TRIGGER requirement_candidates_webhook_created AFTER INSERT ON requirement_candidates BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'candidate.created',
           json_object('event', 'candidate.created', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'candidate', json(d.doc)),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_candidate_docs d ON d.id = NEW.id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' candidate.created ') > 0;
END;

CREATE TRIGGER requirement_candidates_webhook_decided AFTER UPDATE OF status ON requirement_candidates
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, 'candidate.decided',
           json_object('event', 'candidate.decided', 'occurred_at', CAST(unixepoch('subsec') * 1000 AS INTEGER),
                       'hub', json_object('id', d.hub_id, 'slug', d.hub_slug), 'candidate', json(d.doc),
                       'previous_status', OLD.status),
           CAST(unixepoch('subsec') * 1000 AS INTEGER), CAST(unixepoch('subsec') * 1000 AS INTEGER)
      FROM webhooks wh JOIN webhook_candidate_docs d ON d.id = NEW.id
     WHERE wh.hub_id = NEW.hub_id AND wh.archived_at IS NULL
       AND instr(' ' || wh.events || ' ', ' candidate.decided ') > 0;
END;
