//! A hub's witnesses: where its checkpoints are sent for cosigning, and what they returned.
//!
//! A witness (C2SP `tlog-witness`) is a URL prefix and a cosigning key. Its row is its durable
//! queue: `cosigned_size` is the size it last cosigned, so a witness behind the newest
//! checkpoint is due; the worker sends it the newest checkpoint with a consistency proof from
//! that size (a burst of appends becomes one request), and on failure waits `next_attempt_at`.

use sqlx::Any;

use super::{Db, StoreError, now_ms};

/// A witness as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Witness {
    pub id: i64,
    pub hub_id: i64,
    pub url: String,
    pub vkey: String,
    pub name: String,
    pub cosigned_size: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "SELECT id, hub_id, url, vkey, name, cosigned_size, attempts, next_attempt_at, last_error
     FROM ledger_witnesses";

/// Adds a witness to a hub (`name` is the key name of `vkey`); returns its id.
/// [`StoreError::Conflict`] when the hub has a witness at this URL already.
pub async fn add(db: &Db, hub_id: i64, url: &str, vkey: &str, name: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO ledger_witnesses (hub_id, url, vkey, name, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(url)
    .bind(vkey)
    .bind(name)
    .bind(now_ms())
    .fetch_one(db.writer())
    .await?)
}

/// A hub's witnesses (not archived), oldest first.
pub async fn for_hub<'e, E>(executor: E, hub_id: i64) -> Result<Vec<Witness>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{COLUMNS} WHERE hub_id = $1 AND archived_at IS NULL ORDER BY id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_all(executor).await?)
}

/// The cosigning keys of a hub's witnesses.
pub async fn keys<'e, E>(executor: E, hub_id: i64) -> Result<Vec<String>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(sqlx::query_scalar("SELECT vkey FROM ledger_witnesses WHERE hub_id = $1 AND archived_at IS NULL ORDER BY id")
        .bind(hub_id)
        .fetch_all(executor)
        .await?)
}
