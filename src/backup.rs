//! `ihf backup` and `ihf restore` for the embedded SQLite database.
//!
//! A backup is `VACUUM INTO`: SQLite writes a compacted copy of one consistent snapshot (a
//! read transaction), so it is safe while the server runs and writes. PostgreSQL deployments
//! use `pg_dump` (see the README).
//!
//! A restore replaces the database file with a backup, but refuses to overwrite a database
//! that holds newer writes than the backup unless forced. "Newer" compares the newest
//! timestamp recorded anywhere in each database ([`newest_write_ms`]: people, hubs, widgets,
//! memberships, annotations and their edits, events, candidates, ledger entries, webhook
//! deliveries, session activity). Stop the server before restoring.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sqlx::{AnyConnection, Connection};

use crate::db::Backend;

/// What a backup or restore did, for the command's output.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub bytes: u64,
    /// The newest write in the copied database (epoch ms), 0 when empty.
    pub newest_write_ms: i64,
    pub annotations: i64,
}

/// The file an `sqlite:` URL names; an error for PostgreSQL, with the advice to use `pg_dump`.
pub fn sqlite_path(database_url: &str) -> anyhow::Result<PathBuf> {
    match Backend::from_url(database_url) {
        Some(Backend::Sqlite) => {}
        Some(Backend::Postgres) => bail!(
            "this is a PostgreSQL database: back it up with `pg_dump --format=custom` and restore with `pg_restore` (see the README)"
        ),
        None => bail!("DATABASE_URL must start with sqlite: or postgres://"),
    }
    let path = database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        bail!("DATABASE_URL names no database file");
    }
    Ok(PathBuf::from(path))
}

async fn open(path: &Path, read_only: bool) -> anyhow::Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    let mode = if read_only { "ro" } else { "rw" };
    let url = format!("sqlite://{}?mode={mode}", path.display());
    let mut conn = AnyConnection::connect(&url).await.with_context(|| format!("opening {}", path.display()))?;
    sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut conn).await?;
    Ok(conn)
}

/// The newest timestamp written anywhere in the database (epoch ms; 0 when empty).
pub async fn newest_write_ms(conn: &mut AnyConnection) -> anyhow::Result<i64> {
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(t) FROM (
            SELECT MAX(created_at) AS t FROM actors
            UNION ALL SELECT MAX(created_at) FROM hubs
            UNION ALL SELECT MAX(archived_at) FROM hubs
            UNION ALL SELECT MAX(created_at) FROM widgets
            UNION ALL SELECT MAX(archived_at) FROM widgets
            UNION ALL SELECT MAX(created_at) FROM hub_members
            UNION ALL SELECT MAX(updated_at) FROM annotations
            UNION ALL SELECT MAX(deleted_at) FROM annotations
            UNION ALL SELECT MAX(created_at) FROM annotation_changes
            UNION ALL SELECT MAX(occurred_at) FROM interaction_events
            UNION ALL SELECT MAX(updated_at) FROM requirement_candidates
            UNION ALL SELECT MAX(created_at) FROM ledger_entries
            UNION ALL SELECT MAX(created_at) FROM webhook_deliveries
            UNION ALL SELECT MAX(last_seen_at) FROM sessions
        ) AS newest",
    )
    .fetch_one(&mut *conn)
    .await
    .context("reading the newest write (is this an IHF database?)")?;
    Ok(newest.unwrap_or(0))
}

async fn check(conn: &mut AnyConnection, path: &Path) -> anyhow::Result<()> {
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut *conn).await?;
    if verdict != "ok" {
        bail!("{} is damaged: {verdict}", path.display());
    }
    Ok(())
}

async fn describe(path: &Path) -> anyhow::Result<Report> {
    let mut conn = open(path, true).await?;
    check(&mut conn, path).await?;
    let newest_write_ms = newest_write_ms(&mut conn).await?;
    let annotations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM annotations").fetch_one(&mut conn).await?;
    conn.close().await?;
    let bytes = std::fs::metadata(path)?.len();
    Ok(Report { path: path.to_owned(), bytes, newest_write_ms, annotations })
}

/// Writes a consistent copy of the database of `database_url` to `target` (which must not
/// exist), while the server may be running, and checks the copy.
pub async fn backup(database_url: &str, target: &Path) -> anyhow::Result<Report> {
    let source = sqlite_path(database_url)?;
    if !source.is_file() {
        bail!("there is no database at {}", source.display());
    }
    if target.exists() {
        bail!("{} exists already: choose a new file name", target.display());
    }
    let mut conn = open(&source, true).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .with_context(|| format!("writing {}", target.display()))?;
    conn.close().await?;
    describe(target).await
}

/// Replaces the database of `database_url` with the backup at `source`. Refuses when the
/// current database has newer writes than the backup, unless `force`.
pub async fn restore(database_url: &str, source: &Path, force: bool) -> anyhow::Result<Report> {
    let target = sqlite_path(database_url)?;
    if !source.is_file() {
        bail!("there is no backup at {}", source.display());
    }
    let backup = describe(source).await.with_context(|| format!("checking the backup {}", source.display()))?;
    if target.is_file() {
        let mut conn = open(&target, false).await?;
        let current =
            if force { 0 } else { newest_write_ms(&mut conn).await.context("pass --force to overwrite it anyway")? };
        if current > backup.newest_write_ms {
            bail!(
                "{} has newer writes ({}) than the backup ({}): pass --force to overwrite it",
                target.display(),
                crate::clock::iso(current),
                crate::clock::iso(backup.newest_write_ms)
            );
        }
        // Fold the write-ahead log into the file, so nothing of it is left to replay over the
        // restored database.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await?;
        conn.close().await?;
    } else if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let staging = target.with_extension("restoring");
    std::fs::copy(source, &staging).with_context(|| format!("copying to {}", staging.display()))?;
    std::fs::File::open(&staging)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", target.display()));
        if side.exists() {
            std::fs::remove_file(&side).with_context(|| format!("removing {}", side.display()))?;
        }
    }
    std::fs::rename(&staging, &target).with_context(|| format!("replacing {}", target.display()))?;
    Ok(Report { path: target, ..backup })
}
