-- The change feed and server secrets. Numbered like ../sqlite/0003_change_feed.sql.
--
-- Every committed write to a table that live regions read sends a notification on the channel
-- `ihf_changes` (delivered at commit, to every instance's LISTEN connection, whoever wrote:
-- another instance or psql). Payload: {"seq","table","op","hub_id","widget_id","row_id"}, far
-- below NOTIFY's 8000-byte limit. Interaction events use a statement-level trigger: one
-- notification per widget per INSERT statement, not one per event.

CREATE SEQUENCE ihf_change_seq;

CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- TG_ARGV[0]: the column holding the hub id; TG_ARGV[1]: the widget id column ('' for none);
-- TG_ARGV[2]: the row id column.
CREATE FUNCTION ihf_notify_change() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    row_json jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_json := to_jsonb(OLD);
    ELSE
        row_json := to_jsonb(NEW);
    END IF;
    PERFORM pg_notify('ihf_changes', json_build_object(
        'seq', nextval('ihf_change_seq'),
        'table', TG_TABLE_NAME,
        'op', lower(TG_OP),
        'hub_id', (row_json ->> TG_ARGV[0])::bigint,
        'widget_id', CASE WHEN TG_ARGV[1] = '' THEN NULL ELSE (row_json ->> TG_ARGV[1])::bigint END,
        'row_id', (row_json ->> TG_ARGV[2])::bigint
    )::text);
    RETURN NULL;
END;
$$;

CREATE FUNCTION ihf_notify_events() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT hub_id, widget_id, max(id) AS row_id FROM new_rows GROUP BY hub_id, widget_id LOOP
        PERFORM pg_notify('ihf_changes', json_build_object(
            'seq', nextval('ihf_change_seq'), 'table', 'interaction_events', 'op', 'insert',
            'hub_id', r.hub_id, 'widget_id', r.widget_id, 'row_id', r.row_id
        )::text);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER annotations_change AFTER INSERT OR UPDATE OR DELETE ON annotations
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', 'widget_id', 'id');
CREATE TRIGGER widgets_change AFTER INSERT OR UPDATE OR DELETE ON widgets
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', 'id', 'id');
CREATE TRIGGER hubs_change AFTER INSERT OR UPDATE ON hubs
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('id', '', 'id');
CREATE TRIGGER hub_members_change AFTER INSERT OR UPDATE OR DELETE ON hub_members
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', '', 'actor_id');
CREATE TRIGGER categories_change AFTER INSERT OR UPDATE ON categories
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', '', 'id');
CREATE TRIGGER requirement_candidates_change AFTER INSERT OR UPDATE ON requirement_candidates
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', '', 'id');
CREATE TRIGGER ledger_entries_change AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_change('hub_id', '', 'candidate_id');
CREATE TRIGGER interaction_events_change AFTER INSERT ON interaction_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ihf_notify_events();

-- Evidence rows have no hub column: look it up.
CREATE FUNCTION ihf_notify_evidence() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    PERFORM pg_notify('ihf_changes', json_build_object(
        'seq', nextval('ihf_change_seq'), 'table', 'candidate_evidence', 'op', lower(TG_OP),
        'hub_id', (SELECT hub_id FROM requirement_candidates WHERE id = NEW.candidate_id),
        'widget_id', NULL, 'row_id', NEW.candidate_id
    )::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER candidate_evidence_change AFTER INSERT OR UPDATE ON candidate_evidence
    FOR EACH ROW EXECUTE FUNCTION ihf_notify_evidence();
