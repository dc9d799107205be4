-- The access policy, a second time, as Row Level Security (see src/auth/policy.rs for the
-- rules). Requests that act for a person run `SET LOCAL ROLE ihf_authenticated` and
-- `set_config('ihf.actor_id', …, true)` inside their transaction; the server's own queries run
-- as the migrating user, which keeps full access through the `ihf_server` policies.

DO $$
BEGIN
    CREATE ROLE ihf_authenticated NOLOGIN NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created by another database of this cluster
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT ihf_authenticated TO %I', current_user);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'could not grant ihf_authenticated to %: %', current_user, SQLERRM;
END
$$;

CREATE FUNCTION ihf_actor_id() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('ihf.actor_id', true), '')::bigint
$$;

CREATE FUNCTION ihf_embed_widget_id() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('ihf.embed_widget_id', true), '')::bigint
$$;

-- SECURITY DEFINER: these look at memberships and widgets without recursing into RLS.
CREATE FUNCTION ihf_is_admin() RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT EXISTS (SELECT 1 FROM actors WHERE id = ihf_actor_id() AND is_admin = 1)
$$;

CREATE FUNCTION ihf_hub_role(hub bigint) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT role FROM hub_members WHERE hub_id = hub AND actor_id = ihf_actor_id()
$$;

CREATE FUNCTION ihf_is_member(hub bigint) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT ihf_is_admin() OR ihf_hub_role(hub) IS NOT NULL
$$;

CREATE FUNCTION ihf_is_staff(hub bigint) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT ihf_is_admin() OR ihf_hub_role(hub) IN ('triager', 'operator')
$$;

-- Everything but the author rule: may the current actor read this widget and its annotations?
CREATE FUNCTION ihf_widget_readable(widget bigint) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT EXISTS (
        SELECT 1 FROM widgets w
        WHERE w.id = widget
          AND (w.policy_scope = 'public'
               OR w.owner_id = ihf_actor_id()
               OR ihf_is_staff(w.hub_id)
               OR (w.policy_scope = 'members' AND ihf_is_member(w.hub_id)))
    )
$$;

GRANT USAGE ON SCHEMA public TO ihf_authenticated;
GRANT SELECT (id, handle, display_name, is_admin, kind, created_at) ON actors TO ihf_authenticated;
GRANT SELECT ON hubs, hub_members, widgets, categories, interaction_events, annotations, annotation_changes,
    inbox_reads, requirement_candidates, candidate_evidence, ledger_entries TO ihf_authenticated;
GRANT INSERT, UPDATE, DELETE ON annotations, inbox_reads TO ihf_authenticated;
GRANT INSERT ON annotation_changes, interaction_events TO ihf_authenticated;
REVOKE UPDATE, DELETE, TRUNCATE ON ledger_entries FROM ihf_authenticated;

-- annotations ---------------------------------------------------------------------------
ALTER TABLE annotations ENABLE ROW LEVEL SECURITY;
ALTER TABLE annotations FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON annotations TO CURRENT_USER USING (true) WITH CHECK (true);
-- The seed's two policies.
CREATE POLICY "Users can view own annotations" ON annotations FOR SELECT TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id()));
CREATE POLICY "Public widget annotations are readable" ON annotations FOR SELECT TO ihf_authenticated
    USING (EXISTS (SELECT 1 FROM widgets w WHERE w.id = annotations.widget_id AND w.policy_scope = 'public'));
-- Members, owners and staff.
CREATE POLICY annotations_widget_readers ON annotations FOR SELECT TO ihf_authenticated
    USING (ihf_widget_readable(widget_id));
CREATE POLICY annotations_insert_own ON annotations FOR INSERT TO ihf_authenticated
    WITH CHECK (actor_id = (SELECT ihf_actor_id()) AND ihf_widget_readable(widget_id));
CREATE POLICY annotations_update ON annotations FOR UPDATE TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id()) OR ihf_is_staff(hub_id));
CREATE POLICY annotations_delete_own ON annotations FOR DELETE TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id()));
-- An embed visitor reaches its one widget and nothing else.
CREATE POLICY annotations_embed_confine ON annotations AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL OR widget_id = (SELECT ihf_embed_widget_id()))
    WITH CHECK ((SELECT ihf_embed_widget_id()) IS NULL OR widget_id = (SELECT ihf_embed_widget_id()));

-- widgets -------------------------------------------------------------------------------
ALTER TABLE widgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE widgets FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON widgets TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY widgets_read ON widgets FOR SELECT TO ihf_authenticated
    USING (policy_scope = 'public' OR owner_id = (SELECT ihf_actor_id()) OR ihf_is_member(hub_id));
CREATE POLICY widgets_embed_confine ON widgets AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL OR id = (SELECT ihf_embed_widget_id()));

-- interaction events --------------------------------------------------------------------
ALTER TABLE interaction_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE interaction_events FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON interaction_events TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY events_read ON interaction_events FOR SELECT TO ihf_authenticated
    USING (ihf_is_member(hub_id));
CREATE POLICY events_insert ON interaction_events FOR INSERT TO ihf_authenticated
    WITH CHECK (widget_id = (SELECT ihf_embed_widget_id()) OR ihf_is_member(hub_id));
CREATE POLICY events_embed_confine ON interaction_events AS RESTRICTIVE TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL OR widget_id = (SELECT ihf_embed_widget_id()))
    WITH CHECK ((SELECT ihf_embed_widget_id()) IS NULL OR widget_id = (SELECT ihf_embed_widget_id()));

-- requirement candidates and the ledger -----------------------------------------------------
ALTER TABLE requirement_candidates ENABLE ROW LEVEL SECURITY;
ALTER TABLE requirement_candidates FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON requirement_candidates TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY candidates_read ON requirement_candidates FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND ihf_is_member(hub_id));

ALTER TABLE ledger_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY ihf_server ON ledger_entries TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY ledger_read ON ledger_entries FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL AND ihf_is_member(hub_id));
