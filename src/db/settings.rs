//! What the settings pages change: hubs (archive), widgets (edit, archive, rotate the embed
//! secret) and hub memberships. Creating hubs and widgets uses `hubs::create` and
//! `widgets::create`. Archiving only sets `archived_at`: nothing is ever deleted here.

use super::hubs::Hub;
use super::{Backend, Db, StoreError, now_ms};
use crate::access::WidgetScope;

/// Every hub, archived ones last, for site administrators.
pub async fn all_hubs(db: &Db) -> Result<Vec<Hub>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, slug, name, description, created_at, archived_at FROM hubs
         ORDER BY archived_at IS NOT NULL, name, id",
    )
    .fetch_all(db.reader())
    .await?)
}

/// Archives or restores a hub.
pub async fn set_hub_archived(db: &Db, hub_id: i64, archived: bool) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE hubs SET archived_at = $1 WHERE id = $2")
        .bind(archived.then(now_ms))
        .bind(hub_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A widget row of the settings list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WidgetListing {
    pub id: i64,
    pub slug: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub policy_scope: WidgetScope,
    pub owner_name: Option<String>,
    pub archived_at: Option<i64>,
}

/// Every widget of a hub, archived ones last.
pub async fn widgets(db: &Db, hub_id: i64) -> Result<Vec<WidgetListing>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT w.id, w.slug, w.name, w.policy_scope, o.display_name AS owner_name, w.archived_at
           FROM widgets w LEFT JOIN actors o ON o.id = w.owner_id
          WHERE w.hub_id = $1
          ORDER BY w.archived_at IS NOT NULL, w.name, w.id",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

/// The editable fields of a widget.
#[derive(Debug, Clone)]
pub struct WidgetFields<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub owner_id: Option<i64>,
    pub policy_scope: &'a str,
    /// Space-separated origins.
    pub allowed_origins: &'a str,
}

/// Saves a widget's fields; a slug taken in the hub is [`StoreError::SlugTaken`].
pub async fn update_widget(db: &Db, hub_id: i64, widget_id: i64, f: &WidgetFields<'_>) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE widgets SET slug = $1, name = $2, description = $3, owner_id = $4, policy_scope = $5, allowed_origins = $6
         WHERE id = $7 AND hub_id = $8",
    )
    .bind(f.slug)
    .bind(f.name)
    .bind(f.description)
    .bind(f.owner_id)
    .bind(f.policy_scope)
    .bind(f.allowed_origins)
    .bind(widget_id)
    .bind(hub_id)
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Archives or restores a widget.
pub async fn set_widget_archived(db: &Db, hub_id: i64, widget_id: i64, archived: bool) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE widgets SET archived_at = $1 WHERE id = $2 AND hub_id = $3")
        .bind(archived.then(now_ms))
        .bind(widget_id)
        .bind(hub_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Replaces a widget's embed secret with a fresh one and returns it (shown once).
pub async fn rotate_embed_secret(db: &Db, hub_id: i64, widget_id: i64) -> Result<String, StoreError> {
    let secret = crate::crypto::random_token(32);
    let done = sqlx::query("UPDATE widgets SET embed_secret = $1 WHERE id = $2 AND hub_id = $3")
        .bind(&secret)
        .bind(widget_id)
        .bind(hub_id)
        .execute(db.writer())
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(secret)
}

/// A member of a hub.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub actor_id: i64,
    pub handle: Option<String>,
    pub display_name: String,
    pub role: String,
    pub created_at: i64,
}

/// The members of a hub, operators first, then by name.
pub async fn members(db: &Db, hub_id: i64) -> Result<Vec<Member>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.actor_id, a.handle, a.display_name, m.role, m.created_at
           FROM hub_members m JOIN actors a ON a.id = m.actor_id
          WHERE m.hub_id = $1
          ORDER BY CASE m.role WHEN 'operator' THEN 0 WHEN 'triager' THEN 1 ELSE 2 END, a.display_name, a.id",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

/// What became of a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    Done,
    /// The person already is a member (adding).
    AlreadyMember,
    /// The person is not a member (changing or removing).
    NotMember,
    /// Refused: the hub would be left without an operator.
    LastOperator,
}

/// Adds a person to a hub with a role (never replaces an existing membership).
pub async fn add_member(db: &Db, hub_id: i64, actor_id: i64, role: &str) -> Result<MembershipChange, StoreError> {
    let result = sqlx::query("INSERT INTO hub_members (hub_id, actor_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(hub_id)
        .bind(actor_id)
        .bind(role)
        .bind(now_ms())
        .execute(db.writer())
        .await;
    match result {
        Ok(_) => Ok(MembershipChange::Done),
        Err(e) => match StoreError::from(e) {
            StoreError::Conflict { .. } => Ok(MembershipChange::AlreadyMember),
            other => Err(other),
        },
    }
}

/// Changes a member's role (`Some`) or removes them (`None`), refusing to leave the hub
/// without an operator. The check and the write share one transaction; on PostgreSQL the hub
/// row is locked first, so two operators removing each other at once cannot both succeed
/// (SQLite's single writer already serializes them).
pub async fn change_member(
    db: &Db,
    hub_id: i64,
    actor_id: i64,
    role: Option<&str>,
) -> Result<MembershipChange, StoreError> {
    let mut tx = db.writer().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SELECT id FROM hubs WHERE id = $1 FOR UPDATE").bind(hub_id).execute(&mut *tx).await?;
    }
    let current: Option<String> =
        sqlx::query_scalar("SELECT role FROM hub_members WHERE hub_id = $1 AND actor_id = $2")
            .bind(hub_id)
            .bind(actor_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(current) = current else {
        return Ok(MembershipChange::NotMember);
    };
    if current == "operator" && role != Some("operator") {
        let operators: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM hub_members WHERE hub_id = $1 AND role = 'operator'")
                .bind(hub_id)
                .fetch_one(&mut *tx)
                .await?;
        if operators <= 1 {
            return Ok(MembershipChange::LastOperator);
        }
    }
    let query = match role {
        Some(role) => {
            sqlx::query("UPDATE hub_members SET role = $1 WHERE hub_id = $2 AND actor_id = $3").bind(role.to_owned())
        }
        None => sqlx::query("DELETE FROM hub_members WHERE hub_id = $1 AND actor_id = $2"),
    };
    query.bind(hub_id).bind(actor_id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(MembershipChange::Done)
}
