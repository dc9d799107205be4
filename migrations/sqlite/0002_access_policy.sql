-- Numbered like ../postgres/0002_access_policy.sql, which adds PostgreSQL's Row Level
-- Security. SQLite has no roles or RLS: the same rules are the predicates of src/auth/policy.rs,
-- applied by every query that reads on someone's behalf. Nothing to change in the schema.
SELECT 1;
