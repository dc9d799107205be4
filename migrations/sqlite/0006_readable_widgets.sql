-- Numbered like ../postgres/0006_readable_widgets.sql, which makes a Row Level Security
-- policy cheaper. SQLite has no Row Level Security: nothing to change here.
SELECT 1;
