-- The access policy of 0002 (and 0006), evaluated once per statement instead of once per row.
-- Numbered like ../sqlite/0011_policy_once_per_statement.sql. Same rules, same rows visible
-- (tests/access.rs compares every policy with its 0002 form for every demo person).
--
-- Before: a SECURITY DEFINER function cannot be inlined, so `ihf_is_member(hub_id)` in
-- widgets_read ran two SPI queries for every widget row a statement touched (the feed joins a
-- widget to each annotation: 95 calls for one page of the demo), and events_read,
-- candidates_read and ledger_read did the same per row. Now the actor's hubs are a set the
-- planner hashes once per statement (`hub_id IN (SELECT …)`, a hashed SubPlan; the admin flag an
-- InitPlan), and each row costs a hash probe.

-- The hubs the current actor is a member of (any role) / a triager or operator of.
-- Administrators are handled by `(SELECT ihf_is_admin())` next to them, as in ihf_is_member.
CREATE FUNCTION ihf_member_hub_ids() RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT m.hub_id FROM hub_members m WHERE m.actor_id = ihf_actor_id();
END
$$;

CREATE FUNCTION ihf_staff_hub_ids() RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT m.hub_id FROM hub_members m WHERE m.actor_id = ihf_actor_id() AND m.role IN ('triager', 'operator');
END
$$;

-- The same test as 0002's, in PL/pgSQL: a SQL function that cannot be inlined is planned again
-- for every statement that calls it, PL/pgSQL keeps its plan for the connection's life.
CREATE OR REPLACE FUNCTION ihf_is_admin() RETURNS boolean LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM actors WHERE id = ihf_actor_id() AND is_admin = 1);
END
$$;

-- 0006's set of readable widgets, set-based: it called ihf_is_staff and ihf_is_member (each
-- two SPI queries) for every widget of every hub. is_staff(h) = admin OR h in staff hubs;
-- members AND is_member(h) = members AND (admin OR h in member hubs).
CREATE OR REPLACE FUNCTION ihf_readable_widget_ids() RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
BEGIN
    RETURN QUERY SELECT w.id FROM widgets w
     WHERE w.policy_scope = 'public'
        OR w.owner_id = ihf_actor_id()
        OR (SELECT ihf_is_admin())
        OR w.hub_id IN (SELECT ihf_staff_hub_ids())
        OR (w.policy_scope = 'members' AND w.hub_id IN (SELECT ihf_member_hub_ids()));
END
$$;

-- annotations ---------------------------------------------------------------------------
-- The seed's verbatim policy, restated: `widget_id IN (…)` is the same test as the EXISTS
-- (widget_id is NOT NULL, widgets.id is the key, the subquery sees widgets through the same
-- RLS), but the planner hashes the public widgets once per statement instead of probing
-- widgets for every row.
DROP POLICY "Public widget annotations are readable" ON annotations;
CREATE POLICY "Public widget annotations are readable" ON annotations FOR SELECT TO ihf_authenticated
    USING (widget_id IN (SELECT w.id FROM widgets w WHERE w.policy_scope = 'public'));

DROP POLICY annotations_update ON annotations;
CREATE POLICY annotations_update ON annotations FOR UPDATE TO ihf_authenticated
    USING (actor_id = (SELECT ihf_actor_id()) OR (SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_staff_hub_ids()));

-- widgets -------------------------------------------------------------------------------
DROP POLICY widgets_read ON widgets;
CREATE POLICY widgets_read ON widgets FOR SELECT TO ihf_authenticated
    USING (policy_scope = 'public' OR owner_id = (SELECT ihf_actor_id())
           OR (SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_member_hub_ids()));

-- interaction events --------------------------------------------------------------------
DROP POLICY events_read ON interaction_events;
CREATE POLICY events_read ON interaction_events FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_member_hub_ids()));
DROP POLICY events_insert ON interaction_events;
CREATE POLICY events_insert ON interaction_events FOR INSERT TO ihf_authenticated
    WITH CHECK (widget_id = (SELECT ihf_embed_widget_id()) OR (SELECT ihf_is_admin())
                OR hub_id IN (SELECT ihf_member_hub_ids()));

-- requirement candidates and the ledger -----------------------------------------------------
DROP POLICY candidates_read ON requirement_candidates;
CREATE POLICY candidates_read ON requirement_candidates FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL
           AND ((SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_member_hub_ids())));
DROP POLICY ledger_read ON ledger_entries;
CREATE POLICY ledger_read ON ledger_entries FOR SELECT TO ihf_authenticated
    USING ((SELECT ihf_embed_widget_id()) IS NULL
           AND ((SELECT ihf_is_admin()) OR hub_id IN (SELECT ihf_member_hub_ids())));

-- indexes -------------------------------------------------------------------------------
-- The pages' orders, live rows only: the feed reads a hub newest first and stops after a
-- page; the triage queue reads one status oldest first (ties by id) and its counts group the
-- hub by status and category. The queue index covers what the counts and the policies read
-- (widget_id, actor_id), so neither needs the table; it supersedes 0006's index.
CREATE INDEX annotations_hub_feed_idx ON annotations (hub_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX annotations_hub_queue_idx ON annotations (hub_id, status, created_at, id, category_id, widget_id, actor_id)
    WHERE deleted_at IS NULL;
DROP INDEX annotations_hub_triage_idx;
