-- Embeds and the data API. Numbered like ../sqlite/0005_embed_api.sql.
--
-- 1. An embed visitor may annotate the one widget its embed is confined to (ihf.embed_widget_id),
--    whatever the widget's scope; on a non-public widget the visitor then reads only their own
--    annotations ("Users can view own annotations").
CREATE POLICY annotations_insert_embed ON annotations FOR INSERT TO ihf_authenticated
    WITH CHECK (actor_id = (SELECT ihf_actor_id()) AND widget_id = (SELECT ihf_embed_widget_id()));

-- 2. A hub's API key reaches that hub only. Requests authenticated by one set `ihf.api_hub_id`
--    (with SET LOCAL semantics, like ihf.actor_id); these restrictive policies confine every row
--    they read or write to the hub, whatever the key's creator could see elsewhere.
CREATE FUNCTION ihf_api_hub_id() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('ihf.api_hub_id', true), '')::bigint
$$;

CREATE POLICY annotations_api_confine ON annotations AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()))
    WITH CHECK ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()));
CREATE POLICY widgets_api_confine ON widgets AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()));
CREATE POLICY events_api_confine ON interaction_events AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()))
    WITH CHECK ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()));
CREATE POLICY candidates_api_confine ON requirement_candidates AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()));
CREATE POLICY ledger_api_confine ON ledger_entries AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_api_hub_id()) IS NULL OR hub_id = (SELECT ihf_api_hub_id()));

-- 3. An embed visitor reads the widget it is confined to (its name and scope, for the composer
--    and the joins of its own annotations), whatever the widget's scope.
CREATE POLICY widgets_embed_read ON widgets FOR SELECT TO ihf_authenticated
    USING (id = (SELECT ihf_embed_widget_id()));
