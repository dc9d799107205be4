//! The SQLite and PostgreSQL migrations describe the same tables with the same columns: a column
//! added to one dialect only is a feature that works on one database only. Tables that exist by
//! design in one dialect are listed here with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::BTreeSet;

use ihf::db::{Backend, Db};

/// Tables only one dialect has, and why.
const DIALECT_ONLY: &[(&str, &str)] = &[
    (
        "change_log",
        "SQLite's change feed is a table the server tails; PostgreSQL sends the same changes with \
         NOTIFY from its triggers (migrations/*/0003_change_feed.sql)",
    ),
    (
        "annotations_fts_data",
        "FTS5's shadow tables of the similar-feedback index (the virtual table itself is skipped); \
         PostgreSQL indexes to_tsvector(body) instead (migrations/*/0017_close_the_loop.sql)",
    ),
    ("annotations_fts_idx", "FTS5 shadow table, as annotations_fts_data"),
    ("annotations_fts_docsize", "FTS5 shadow table, as annotations_fts_data"),
    ("annotations_fts_config", "FTS5 shadow table, as annotations_fts_data"),
];

/// `table.column NOT NULL?` for every column of every application table. A primary key column
/// counts as NOT NULL on SQLite too: PostgreSQL implies it, and SQLite's `pragma_table_info`
/// reports `notnull = 0` for a key declared without it.
async fn columns(backend: Backend) -> BTreeSet<String> {
    let url = common::fresh_database_url(backend).await;
    let db = Db::connect(&url, 2).await.expect("connect");
    db.migrate().await.expect("migrate");
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT m.name, p.name, CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 1 ELSE 0 END FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.sql NOT LIKE 'CREATE VIRTUAL TABLE%'"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text, CASE is_nullable WHEN 'NO' THEN 1 ELSE 0 END \
             FROM information_schema.columns c WHERE table_schema = 'public' \
             AND table_name NOT LIKE '\\_sqlx%' \
             AND EXISTS (SELECT 1 FROM information_schema.tables t WHERE t.table_schema = 'public' \
             AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE')"
        }
    };
    let rows: Vec<(String, String, i64)> = sqlx::query_as(sql).fetch_all(db.reader()).await.expect("schema query");
    db.close().await;
    rows.into_iter()
        .filter(|(table, _, _)| !DIALECT_ONLY.iter().any(|(only, _)| only == table))
        .map(|(table, column, not_null)| format!("{table}.{column}{}", if not_null != 0 { " NOT NULL" } else { "" }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_migrations_describe_the_same_tables_and_columns() {
    if !common::pg_enabled() {
        return;
    }
    let sqlite = columns(Backend::Sqlite).await;
    let postgres = columns(Backend::Postgres).await;
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the migrations differ:\n  only in SQLite: {only_sqlite:#?}\n  only in PostgreSQL: {only_postgres:#?}"
    );
    assert!(sqlite.len() > 50, "the schema query found too few columns: {sqlite:?}");
}
