-- Numbered like ../postgres/0011_policy_once_per_statement.sql, whose policy changes have no
-- SQLite counterpart (the queries' own predicates are the access policy here): the indexes only.
--
-- The pages' orders, live rows only: the feed reads a hub newest first and stops after a
-- page; the triage queue reads one status oldest first (ties by id) and its counts group the
-- hub by status and category. The queue index covers what the counts read; it supersedes
-- 0006's index.
CREATE INDEX annotations_hub_feed_idx ON annotations (hub_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX annotations_hub_queue_idx ON annotations (hub_id, status, created_at, id, category_id, widget_id, actor_id)
    WHERE deleted_at IS NULL;
DROP INDEX annotations_hub_triage_idx;
