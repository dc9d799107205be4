-- Closing the loop (#21): replies on annotations, "me too" support, the opt-in public roadmap
-- and full-text search for similar feedback. Numbered like ../sqlite/0017_close_the_loop.sql.

-- A reply belongs to one annotation; its hub and widget are copied from it when it is written.
-- `internal` replies are for the hub's staff only.
CREATE TABLE annotation_replies (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    annotation_id BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    hub_id        BIGINT NOT NULL REFERENCES hubs(id) ON DELETE CASCADE,
    widget_id     BIGINT NOT NULL REFERENCES widgets(id) ON DELETE CASCADE,
    actor_id      BIGINT NOT NULL REFERENCES actors(id),
    body          TEXT NOT NULL CHECK (char_length(body) BETWEEN 1 AND 4000),
    internal      BIGINT NOT NULL DEFAULT 0 CHECK (internal IN (0, 1)),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX annotation_replies_annotation_idx ON annotation_replies (annotation_id, created_at, id);
CREATE INDEX annotation_replies_actor_idx ON annotation_replies (actor_id);

-- "Me too": one row per person or visitor supporting an annotation.
CREATE TABLE annotation_supports (
    annotation_id BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    actor_id      BIGINT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (annotation_id, actor_id)
);
CREATE INDEX annotation_supports_actor_idx ON annotation_supports (actor_id);

-- A hub whose roadmap is public has a row here (opt-in, by its operators).
CREATE TABLE hub_roadmaps (
    hub_id       BIGINT PRIMARY KEY REFERENCES hubs(id) ON DELETE CASCADE,
    published_at BIGINT NOT NULL
);

GRANT SELECT, INSERT, UPDATE ON annotation_replies TO ihf_authenticated;
GRANT SELECT, INSERT, DELETE ON annotation_supports TO ihf_authenticated;
GRANT SELECT ON hub_roadmaps TO ihf_authenticated;

-- Row Level Security: a reply is read by whoever reads its annotation (the EXISTS reads
-- annotations through their own policies, embed and API confinement included), and an internal
-- reply only by the hub's staff. Replies are written by staff and the annotation's author.
ALTER TABLE annotation_replies ENABLE ROW LEVEL SECURITY;
ALTER TABLE annotation_replies FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON annotation_replies TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY replies_read ON annotation_replies FOR SELECT TO ihf_authenticated
    USING (EXISTS (SELECT 1 FROM annotations a WHERE a.id = annotation_replies.annotation_id));
CREATE POLICY replies_internal_staff ON annotation_replies AS RESTRICTIVE FOR SELECT TO ihf_authenticated
    USING (internal = 0 OR (SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_staff_hub_ids()));
CREATE POLICY replies_insert ON annotation_replies FOR INSERT TO ihf_authenticated
    WITH CHECK (actor_id = (SELECT ihf_actor_id())
                AND EXISTS (SELECT 1 FROM annotations a
                             WHERE a.id = annotation_replies.annotation_id
                               AND a.hub_id = annotation_replies.hub_id AND a.widget_id = annotation_replies.widget_id
                               AND (a.actor_id = (SELECT ihf_actor_id()) OR (SELECT ihf_is_admin())
                                    OR a.hub_id IN (SELECT ihf_staff_hub_ids())))
                AND (internal = 0 OR (SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_staff_hub_ids())));
CREATE POLICY replies_update_own ON annotation_replies FOR UPDATE TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id())) WITH CHECK (actor_id = (SELECT ihf_actor_id()));

-- Supports: read with their annotation; given by oneself, on an annotation one reads of a public
-- or members widget; taken back by oneself.
ALTER TABLE annotation_supports ENABLE ROW LEVEL SECURITY;
ALTER TABLE annotation_supports FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON annotation_supports TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY supports_read ON annotation_supports FOR SELECT TO ihf_authenticated
    USING (EXISTS (SELECT 1 FROM annotations a WHERE a.id = annotation_supports.annotation_id));
CREATE POLICY supports_insert_own ON annotation_supports FOR INSERT TO ihf_authenticated
    WITH CHECK (actor_id = (SELECT ihf_actor_id())
                AND EXISTS (SELECT 1 FROM annotations a JOIN widgets w ON w.id = a.widget_id
                             WHERE a.id = annotation_supports.annotation_id AND w.policy_scope IN ('public', 'members')));
CREATE POLICY supports_delete_own ON annotation_supports FOR DELETE TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id()));

-- The change feed: a reply or a support changes how its annotation shows, so it is announced as
-- an update of the annotation (its hub, widget and id), as the SQLite triggers do.
CREATE FUNCTION ihf_notify_annotation_touched() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    touched bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        touched := OLD.annotation_id;
    ELSE
        touched := NEW.annotation_id;
    END IF;
    PERFORM pg_notify('ihf_changes', json_build_object(
        'seq', nextval('ihf_change_seq'), 'table', 'annotations', 'op', 'update',
        'hub_id', a.hub_id, 'widget_id', a.widget_id, 'row_id', a.id
    )::text) FROM annotations a WHERE a.id = touched;
    RETURN NULL;
END;
$$;
CREATE TRIGGER annotation_replies_change AFTER INSERT OR UPDATE OR DELETE ON annotation_replies
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_annotation_touched();
CREATE TRIGGER annotation_supports_change AFTER INSERT OR DELETE ON annotation_supports
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_annotation_touched();

CREATE FUNCTION ihf_notify_roadmap() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    hub bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        hub := OLD.hub_id;
    ELSE
        hub := NEW.hub_id;
    END IF;
    PERFORM pg_notify('ihf_changes', json_build_object(
        'seq', nextval('ihf_change_seq'), 'table', 'hubs', 'op', 'update', 'hub_id', hub, 'widget_id', NULL, 'row_id', hub
    )::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER hub_roadmaps_change AFTER INSERT OR DELETE ON hub_roadmaps
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_roadmap();

-- Webhook event annotation.replied: the annotation as annotation.created sends it, and the reply.
CREATE FUNCTION ihf_reply_webhooks() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    hub json;
    doc json;
    reply json;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks WHERE hub_id = NEW.hub_id AND archived_at IS NULL) THEN
        RETURN NULL;
    END IF;
    SELECT json_build_object('id', h.id, 'slug', h.slug),
           json_build_object(
               'id', a.id,
               'widget', json_build_object('id', w.id, 'slug', w.slug, 'name', w.name),
               'author', json_build_object('id', p.id, 'display_name', p.display_name),
               'category', c.slug,
               'status', a.status,
               'body', a.body,
               'created_at', a.created_at,
               'updated_at', a.updated_at,
               'version', a.version),
           json_build_object(
               'id', NEW.id,
               'author', json_build_object('id', r.id, 'display_name', r.display_name),
               'body', NEW.body,
               'internal', NEW.internal = 1,
               'created_at', NEW.created_at)
      INTO hub, doc, reply
      FROM annotations a, hubs h, widgets w, actors p, categories c, actors r
     WHERE a.id = NEW.annotation_id AND h.id = a.hub_id AND w.id = a.widget_id AND p.id = a.actor_id
       AND c.id = a.category_id AND r.id = NEW.actor_id;
    PERFORM ihf_webhook_enqueue(NEW.hub_id, 'annotation.replied', json_build_object(
        'event', 'annotation.replied', 'occurred_at', ihf_now_ms(), 'hub', hub, 'annotation', doc, 'reply', reply));
    RETURN NULL;
END;
$$;
CREATE TRIGGER annotation_replies_webhooks AFTER INSERT ON annotation_replies
    FOR EACH ROW EXECUTE FUNCTION ihf_reply_webhooks();

-- Similar feedback while typing: the annotations' bodies as an English tsvector (stemmed, stop
-- words dropped), indexed for `@@`.
CREATE INDEX annotations_body_fts_idx ON annotations USING gin (to_tsvector('english', body));
