-- Closing the loop (#21): undoing "mark as duplicate" gives the support back. Marking a
-- duplicate moves its "me too"s (and its author) to the original; this table remembers each
-- move, so undoing the marking (or reopening the duplicate, or marking it a duplicate of
-- another) moves them back. Numbered like ../sqlite/0024_support_moves.sql. Written by the
-- server's triage transaction only: no grant to ihf_authenticated.
CREATE TABLE support_moves (
    duplicate_id BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    original_id  BIGINT NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    actor_id     BIGINT NOT NULL REFERENCES actors(id) ON DELETE CASCADE,
    -- When the support was given on the duplicate (or when its author was counted).
    created_at   BIGINT NOT NULL,
    -- 1: the actor supported the duplicate (given back on undo); 0: the duplicate's author.
    on_duplicate BIGINT NOT NULL CHECK (on_duplicate IN (0, 1)),
    -- 1: the move added the support of the original (taken away on undo, unless another
    -- duplicate's move still counts it); 0: it was there already.
    added        BIGINT NOT NULL CHECK (added IN (0, 1)),
    PRIMARY KEY (duplicate_id, actor_id)
);
CREATE INDEX support_moves_original_idx ON support_moves (original_id, actor_id);
