-- The triage board. Numbered like ../sqlite/0006_triage.sql.
--
-- Its queue is (hub, status) oldest first, and its counts group a hub's live annotations by
-- status and category: one index serves both, covering the counts without reading the rows.
CREATE INDEX annotations_hub_triage_idx ON annotations (hub_id, status, created_at, category_id, widget_id)
    WHERE deleted_at IS NULL;

-- The annotations read policy, evaluated once per statement instead of once per row.
--
-- `annotations_widget_readers` called ihf_widget_readable(widget_id) for every row; a
-- SECURITY DEFINER function cannot be inlined, so counting a hub of 10,000 annotations (the
-- triage board's counts) took over a second. The same rule as a set of widget ids becomes a
-- hashed subplan: one evaluation per statement, one hash lookup per row.
CREATE FUNCTION ihf_readable_widget_ids() RETURNS SETOF bigint LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT w.id FROM widgets w
     WHERE w.policy_scope = 'public'
        OR w.owner_id = ihf_actor_id()
        OR ihf_is_staff(w.hub_id)
        OR (w.policy_scope = 'members' AND ihf_is_member(w.hub_id))
$$;

DROP POLICY annotations_widget_readers ON annotations;
CREATE POLICY annotations_widget_readers ON annotations FOR SELECT TO ihf_authenticated
    USING (widget_id IN (SELECT ihf_readable_widget_ids()));
