//! Server-side sessions: the cookie holds a random token, the database its SHA-256.

use super::{Db, StoreError};

/// A live session with its person.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub csrf_token: String,
    pub last_seen_at: i64,
    pub actor_id: i64,
    pub handle: Option<String>,
    pub display_name: String,
    pub is_admin: i64,
    /// The person's unread notifications (the bell), read with the session: no extra round trip.
    pub unread: i64,
}

/// Stores a new session.
pub async fn create(
    db: &Db,
    token_hash: &str,
    actor_id: i64,
    csrf_token: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, actor_id, csrf_token, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(token_hash)
    .bind(actor_id)
    .bind(csrf_token)
    .bind(now)
    .bind(expires_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The session with this token hash if it is neither revoked nor expired at `now`.
pub async fn find_live(db: &Db, token_hash: &str, now: i64) -> Result<Option<SessionRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT s.token_hash, s.csrf_token, s.last_seen_at, a.id AS actor_id, a.handle, a.display_name, a.is_admin,
                (SELECT COUNT(*) FROM notifications n WHERE n.recipient_id = a.id AND n.read_at IS NULL) AS unread
         FROM sessions s JOIN actors a ON a.id = s.actor_id
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.reader())
    .await?)
}

/// Records activity: the session lives on until `expires_at`.
pub async fn touch(db: &Db, token_hash: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE token_hash = $3")
        .bind(now)
        .bind(expires_at)
        .bind(token_hash)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Revokes one session (sign-out); it is refused from then on.
pub async fn revoke(db: &Db, token_hash: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(token_hash)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Revokes every session of a person (password change, removal).
pub async fn revoke_all(db: &Db, actor_id: i64, now: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE actor_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(actor_id)
        .execute(db.writer())
        .await?
        .rows_affected())
}

/// The token hashes of sessions that ended at or after `since`: revoked then, or expired
/// between `since` and `now` (what live streams re-check, every few seconds, from two indexes).
/// A session ended earlier than `since` is not listed again.
pub async fn ended_since(db: &Db, since: i64, now: i64) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT token_hash FROM sessions WHERE revoked_at >= $1
         UNION
         SELECT token_hash FROM sessions WHERE expires_at >= $1 AND expires_at <= $2",
    )
    .bind(since)
    .bind(now)
    .fetch_all(db.reader())
    .await?)
}
