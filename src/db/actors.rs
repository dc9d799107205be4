//! Actors: people who sign in, and the visitors of embeds.

use sqlx::{Any, Transaction};

use super::{Db, StoreError, now_ms};

/// An actor as stored (without the password hash).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Actor {
    pub id: i64,
    pub handle: Option<String>,
    pub display_name: String,
    pub is_admin: i64,
    pub kind: String,
}

/// An actor's credentials, for sign-in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: Option<String>,
}

/// A person's membership of a hub.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    pub hub_id: i64,
    pub role: String,
}

/// Inserts a person inside the caller's transaction and returns their id.
pub async fn insert_person(
    tx: &mut Transaction<'static, Any>,
    handle: &str,
    display_name: &str,
    password_hash: Option<&str>,
    is_admin: bool,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO actors (handle, display_name, password_hash, is_admin, kind, created_at)
         VALUES ($1, $2, $3, $4, 'person', $5) RETURNING id",
    )
    .bind(handle)
    .bind(display_name)
    .bind(password_hash)
    .bind(i64::from(is_admin))
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?)
}

/// Creates a person in its own transaction and returns their id.
pub async fn create_person(
    db: &Db,
    handle: &str,
    display_name: &str,
    password_hash: Option<&str>,
    is_admin: bool,
) -> Result<i64, StoreError> {
    let mut tx = db.writer().begin().await?;
    let id = insert_person(&mut tx, handle, display_name, password_hash, is_admin).await?;
    tx.commit().await?;
    Ok(id)
}

/// The actor with this id, or [`StoreError::NotFound`].
pub async fn by_id(db: &Db, id: i64) -> Result<Actor, StoreError> {
    Ok(sqlx::query_as("SELECT id, handle, display_name, is_admin, kind FROM actors WHERE id = $1")
        .bind(id)
        .fetch_one(db.reader())
        .await?)
}

/// The person with this handle, or [`StoreError::NotFound`].
pub async fn by_handle(db: &Db, handle: &str) -> Result<Actor, StoreError> {
    Ok(sqlx::query_as("SELECT id, handle, display_name, is_admin, kind FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(db.reader())
        .await?)
}

/// The site administrators' ids (a handful, from their own index).
pub async fn admin_ids(db: &Db) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM actors WHERE is_admin = 1").fetch_all(db.reader()).await?)
}

/// The credentials of the person with this handle, or [`StoreError::NotFound`].
pub async fn credentials(db: &Db, handle: &str) -> Result<Credentials, StoreError> {
    Ok(sqlx::query_as("SELECT id, password_hash FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(db.reader())
        .await?)
}

/// Replaces a person's password hash.
pub async fn set_password_hash(db: &Db, actor_id: i64, hash: &str) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE actors SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(actor_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Grants `role` in a hub, replacing any role held before.
pub async fn grant(db: &Db, hub_id: i64, actor_id: i64, role: &str) -> Result<(), StoreError> {
    let mut tx = db.writer().begin().await?;
    grant_in(&mut tx, hub_id, actor_id, role).await?;
    tx.commit().await?;
    Ok(())
}

/// [`grant`] inside the caller's transaction.
pub async fn grant_in(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
    actor_id: i64,
    role: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO hub_members (hub_id, actor_id, role, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hub_id, actor_id) DO UPDATE SET role = excluded.role",
    )
    .bind(hub_id)
    .bind(actor_id)
    .bind(role)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes a membership; `NotFound` when there was none.
pub async fn revoke(db: &Db, hub_id: i64, actor_id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("DELETE FROM hub_members WHERE hub_id = $1 AND actor_id = $2")
        .bind(hub_id)
        .bind(actor_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The actor's role in a hub, if any.
pub async fn role_in(db: &Db, hub_id: i64, actor_id: i64) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT role FROM hub_members WHERE hub_id = $1 AND actor_id = $2")
        .bind(hub_id)
        .bind(actor_id)
        .fetch_optional(db.reader())
        .await?)
}
