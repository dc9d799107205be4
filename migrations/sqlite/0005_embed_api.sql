-- Numbered like ../postgres/0005_embed_api.sql, which adds Row Level Security policies for embed
-- visitors and hub API keys. SQLite has no RLS: the same confinement is applied by the queries
-- of src/db/api.rs and the checks of src/web/api/. Nothing to change in the schema.
SELECT 1;
