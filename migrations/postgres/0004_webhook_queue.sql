-- Webhook deliveries are enqueued by triggers, inside the transaction that wrote the row, so
-- every write path (the web UI, the data API, an embed, the CLI, psql, another instance)
-- enqueues exactly once and nothing is enqueued for a write that rolls back. Numbered like
-- ../sqlite/0004_webhook_queue.sql; the events and payloads are the same.
--
-- One row in webhook_deliveries per subscribed, non-archived webhook of the row's hub:
--   annotation.created   an annotation is inserted
--   annotation.updated   its body changed
--   annotation.triaged   its status changed away from 'new'
--   candidate.created    a requirement candidate is inserted
--   candidate.decided    a candidate's status changed
-- The functions are SECURITY DEFINER: writes made as ihf_authenticated (which has no rights on
-- the webhook tables) enqueue too.

CREATE INDEX webhooks_hub_idx ON webhooks (hub_id);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- Exports read a hub's annotations in keyset pages by (created_at, id): the index lets each
-- page start where the last ended and stop after one page, whatever the size of the hub.
CREATE INDEX annotations_hub_created_id_idx ON annotations (hub_id, created_at, id);

CREATE FUNCTION ihf_now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

-- One delivery per subscribed webhook of `p_hub`; `p_body` is the JSON the worker POSTs.
CREATE FUNCTION ihf_webhook_enqueue(p_hub bigint, p_event text, p_body json) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
    SELECT wh.id, p_event, p_body::text, ihf_now_ms(), ihf_now_ms()
      FROM webhooks wh
     WHERE wh.hub_id = p_hub AND wh.archived_at IS NULL
       AND p_event = ANY (string_to_array(wh.events, ' '))
$$;

CREATE FUNCTION ihf_annotation_webhooks() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    events text[] := '{}';
    ev text;
    hub json;
    doc json;
BEGIN
    IF TG_OP = 'INSERT' THEN
        events := array_append(events, 'annotation.created');
    ELSE
        IF NEW.body IS DISTINCT FROM OLD.body THEN
            events := array_append(events, 'annotation.updated');
        END IF;
        IF OLD.status = 'new' AND NEW.status <> 'new' THEN
            events := array_append(events, 'annotation.triaged');
        END IF;
    END IF;
    -- Cheap way out for hubs without webhooks (bulk imports, the demo seed).
    IF cardinality(events) = 0
       OR NOT EXISTS (SELECT 1 FROM webhooks WHERE hub_id = NEW.hub_id AND archived_at IS NULL) THEN
        RETURN NULL;
    END IF;
    SELECT json_build_object('id', h.id, 'slug', h.slug),
           json_build_object(
               'id', NEW.id,
               'widget', json_build_object('id', w.id, 'slug', w.slug, 'name', w.name),
               'author', json_build_object('id', p.id, 'display_name', p.display_name),
               'category', c.slug,
               'status', NEW.status,
               'body', NEW.body,
               'created_at', NEW.created_at,
               'updated_at', NEW.updated_at,
               'version', NEW.version)
      INTO hub, doc
      FROM hubs h, widgets w, actors p, categories c
     WHERE h.id = NEW.hub_id AND w.id = NEW.widget_id AND p.id = NEW.actor_id AND c.id = NEW.category_id;
    FOREACH ev IN ARRAY events LOOP
        IF ev = 'annotation.triaged' THEN
            PERFORM ihf_webhook_enqueue(NEW.hub_id, ev, json_build_object(
                'event', ev, 'occurred_at', ihf_now_ms(), 'hub', hub, 'annotation', doc, 'previous_status', OLD.status));
        ELSE
            PERFORM ihf_webhook_enqueue(NEW.hub_id, ev, json_build_object(
                'event', ev, 'occurred_at', ihf_now_ms(), 'hub', hub, 'annotation', doc));
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE FUNCTION ihf_candidate_webhooks() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    hub json;
    doc json;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE hub_id = NEW.hub_id AND archived_at IS NULL) THEN
        RETURN NULL;
    END IF;
    SELECT json_build_object('id', h.id, 'slug', h.slug) INTO hub FROM hubs h WHERE h.id = NEW.hub_id;
    doc := json_build_object(
        'id', NEW.id,
        'title', NEW.title,
        'statement', NEW.statement,
        'status', NEW.status,
        'created_by', NEW.created_by,
        'created_at', NEW.created_at,
        'updated_at', NEW.updated_at,
        'version', NEW.version);
    IF TG_OP = 'INSERT' THEN
        PERFORM ihf_webhook_enqueue(NEW.hub_id, 'candidate.created', json_build_object(
            'event', 'candidate.created', 'occurred_at', ihf_now_ms(), 'hub', hub, 'candidate', doc));
    ELSE
        PERFORM ihf_webhook_enqueue(NEW.hub_id, 'candidate.decided', json_build_object(
            'event', 'candidate.decided', 'occurred_at', ihf_now_ms(), 'hub', hub, 'candidate', doc,
            'previous_status', OLD.status));
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER annotations_webhooks AFTER INSERT OR UPDATE ON annotations
    FOR EACH ROW EXECUTE FUNCTION ihf_annotation_webhooks();
CREATE TRIGGER requirement_candidates_webhooks AFTER INSERT OR UPDATE ON requirement_candidates
    FOR EACH ROW EXECUTE FUNCTION ihf_candidate_webhooks();
