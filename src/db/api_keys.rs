//! Per-hub API keys for the data API: made by operators, shown once, stored as SHA-256 hashes,
//! refused from the moment they are revoked.
//!
//! A key belongs to the person who made it: the API acts as them, confined to the key's hub. So
//! it authenticates only while its maker is an operator of that hub (or a site administrator):
//! demote or remove them and their keys stop at the next request (and work again if the role
//! comes back; revoke a key to end it for good).

use super::{Db, StoreError, now_ms};
use crate::crypto;

/// Every key starts with this, so a leaked one is easy to recognise (and to scan for).
pub const PREFIX: &str = "ihf_";
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// A key as the settings page lists it (never the key itself).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: i64,
    pub hub_id: i64,
    pub name: String,
    pub created_by_name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// 1 while the maker is an operator of the hub or a site administrator (the key works).
    pub maker_holds_role: i64,
}

/// The predicate "the maker of key `k` is an operator of its hub or a site administrator".
const MAKER_HOLDS_ROLE: &str = "(EXISTS (SELECT 1 FROM hub_members m
      WHERE m.hub_id = k.hub_id AND m.actor_id = k.created_by AND m.role = 'operator')
   OR EXISTS (SELECT 1 FROM actors ad WHERE ad.id = k.created_by AND ad.is_admin = 1))";

/// What a live key authenticates: its hub, and the operator who made it (the API acts as them,
/// confined to the hub).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyHolder {
    pub id: i64,
    pub hub_id: i64,
    pub created_by: i64,
    last_used_at: Option<i64>,
}

/// Creates a key named `name` for a hub; returns its id and the key, which exists nowhere else.
pub async fn create(db: &Db, hub_id: i64, name: &str, created_by: i64) -> Result<(i64, String), StoreError> {
    let key = format!("{PREFIX}{}", crypto::random_token(32));
    let id = sqlx::query_scalar(
        "INSERT INTO api_keys (hub_id, name, key_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(name)
    .bind(crypto::sha256_hex(key.as_bytes()))
    .bind(created_by)
    .bind(now_ms())
    .fetch_one(db.writer())
    .await?;
    Ok((id, key))
}

/// The keys of a hub, live ones first, newest first.
pub async fn list(db: &Db, hub_id: i64) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT k.id, k.hub_id, k.name, a.display_name AS created_by_name, k.created_at, k.last_used_at, k.revoked_at,
            CASE WHEN {MAKER_HOLDS_ROLE} THEN 1 ELSE 0 END AS maker_holds_role
         FROM api_keys k JOIN actors a ON a.id = k.created_by
         WHERE k.hub_id = $1 ORDER BY k.revoked_at IS NOT NULL, k.created_at DESC, k.id DESC"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_all(db.reader()).await?)
}

/// Revokes a live key of the hub; `NotFound` when there is none.
pub async fn revoke(db: &Db, hub_id: i64, id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND hub_id = $3 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .bind(hub_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The holder of `key` when it is a live key of a live hub whose maker still is an operator of
/// it (or a site administrator). Looked up on every request, so a revoked key, or one whose
/// maker lost the role, is refused at once.
pub async fn authenticate(db: &Db, key: &str) -> Result<Option<KeyHolder>, StoreError> {
    if !key.starts_with(PREFIX) {
        return Ok(None);
    }
    let sql = format!(
        "SELECT k.id, k.hub_id, k.created_by, k.last_used_at FROM api_keys k JOIN hubs h ON h.id = k.hub_id
         WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND h.archived_at IS NULL AND {MAKER_HOLDS_ROLE}"
    );
    let holder: Option<KeyHolder> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(crypto::sha256_hex(key.as_bytes()))
        .fetch_optional(db.reader())
        .await?;
    if let Some(holder) = &holder {
        let now = now_ms();
        if holder.last_used_at.is_none_or(|at| now - at > TOUCH_EVERY_MS)
            && let Err(e) = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(holder.id)
                .execute(db.writer())
                .await
        {
            tracing::warn!(error = %e, "could not record API key use");
        }
    }
    Ok(holder)
}
