-- Live streams follow their sessions (#15, #16): every 2 s the server asks which sessions
-- ended since it last looked (revoked, or expired) and who the administrators are, instead of
-- reading the row of every session behind an open stream. These indexes answer both from a
-- few pages. Numbered like ../postgres/0025_session_check_indexes.sql.
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX actors_admins_idx ON actors (id) WHERE is_admin = 1;
