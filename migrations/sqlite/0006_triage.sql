-- The triage board. Numbered like ../postgres/0006_triage.sql.
--
-- Its queue is (hub, status) oldest first, and its counts group a hub's live annotations by
-- status and category: one index serves both, covering the counts without reading the rows.
CREATE INDEX annotations_hub_triage_idx ON annotations (hub_id, status, created_at, category_id, widget_id)
    WHERE deleted_at IS NULL;
