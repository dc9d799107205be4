//! Hubs: a product team's group of widgets.

use sqlx::{Any, Transaction};

use super::{Db, StoreError, categories, now_ms};

/// A hub as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hub {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

/// A hub with the counts the hubs index shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HubSummary {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub widget_count: i64,
    pub awaiting_triage: i64,
    pub events_24h: i64,
}

/// Which hubs a listing may include.
#[derive(Debug, Clone, Copy)]
pub enum HubScope {
    /// Every hub (site administrators).
    All,
    /// The hubs this actor is a member of.
    MemberOf(i64),
    /// No hub (anonymous visitors).
    None,
}

const SUMMARY_COLUMNS: &str = "SELECT h.id, h.slug, h.name, h.description,
    (SELECT COUNT(*) FROM widgets w WHERE w.hub_id = h.id AND w.archived_at IS NULL) AS widget_count,
    (SELECT COUNT(*) FROM annotations a WHERE a.hub_id = h.id AND a.status = 'new' AND a.deleted_at IS NULL) AS awaiting_triage,
    (SELECT COUNT(*) FROM interaction_events e WHERE e.hub_id = h.id AND e.occurred_at >= $1) AS events_24h
  FROM hubs h";

/// The hubs of `scope`, by name, with their counts; events are counted from `since_ms` on.
pub async fn summaries(db: &Db, scope: HubScope, since_ms: i64) -> Result<Vec<HubSummary>, StoreError> {
    let rows = match scope {
        HubScope::None => Vec::new(),
        HubScope::All => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SUMMARY_COLUMNS} WHERE h.archived_at IS NULL ORDER BY h.name"
            )))
            .bind(since_ms)
            .fetch_all(db.reader())
            .await?
        }
        HubScope::MemberOf(actor_id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SUMMARY_COLUMNS} WHERE h.archived_at IS NULL
                   AND EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = h.id AND m.actor_id = $2)
                 ORDER BY h.name"
            )))
            .bind(since_ms)
            .bind(actor_id)
            .fetch_all(db.reader())
            .await?
        }
    };
    Ok(rows)
}

/// The hub with this slug (archived ones included), or [`StoreError::NotFound`].
pub async fn by_slug(db: &Db, slug: &str) -> Result<Hub, StoreError> {
    Ok(sqlx::query_as("SELECT id, slug, name, description, created_at, archived_at FROM hubs WHERE slug = $1")
        .bind(slug)
        .fetch_one(db.reader())
        .await?)
}

/// Which hub a page names: by its URL slug or, for a live region, by id.
#[derive(Debug, Clone, Copy)]
pub enum HubKey<'a> {
    Slug(&'a str),
    Id(i64),
}

/// A hub with the role `actor_id` holds in it (none for anonymous viewers and non-members),
/// in one query: every hub page needs both.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HubWithRole {
    #[sqlx(flatten)]
    pub hub: Hub,
    pub role: Option<String>,
}

/// The hub `key` with the role of `actor_id` in it, or [`StoreError::NotFound`].
pub async fn with_role(db: &Db, key: HubKey<'_>, actor_id: Option<i64>) -> Result<HubWithRole, StoreError> {
    let sql = |by: &str| {
        format!(
            "SELECT h.id, h.slug, h.name, h.description, h.created_at, h.archived_at,
                (SELECT m.role FROM hub_members m WHERE m.hub_id = h.id AND m.actor_id = $1) AS role
             FROM hubs h WHERE h.{by} = $2"
        )
    };
    // -1 matches no member: anonymous viewers have no role.
    let actor = actor_id.unwrap_or(-1);
    let query = match key {
        HubKey::Slug(slug) => sqlx::query_as(sqlx::AssertSqlSafe(sql("slug"))).bind(actor).bind(slug.to_owned()),
        HubKey::Id(id) => sqlx::query_as(sqlx::AssertSqlSafe(sql("id"))).bind(actor).bind(id),
    };
    Ok(query.fetch_one(db.reader()).await?)
}

/// The hub with this id, or [`StoreError::NotFound`].
pub async fn by_id(db: &Db, id: i64) -> Result<Hub, StoreError> {
    Ok(sqlx::query_as("SELECT id, slug, name, description, created_at, archived_at FROM hubs WHERE id = $1")
        .bind(id)
        .fetch_one(db.reader())
        .await?)
}

/// Creates a hub with the default categories, in one transaction.
pub async fn create(db: &Db, slug: &str, name: &str, description: &str) -> Result<Hub, StoreError> {
    let mut tx = db.writer().begin().await?;
    let hub = insert(&mut tx, slug, name, description).await?;
    tx.commit().await?;
    Ok(hub)
}

/// Inserts a hub and its default categories inside the caller's transaction.
pub async fn insert(
    tx: &mut Transaction<'static, Any>,
    slug: &str,
    name: &str,
    description: &str,
) -> Result<Hub, StoreError> {
    let hub: Hub = sqlx::query_as(
        "INSERT INTO hubs (slug, name, description, created_at) VALUES ($1, $2, $3, $4)
         RETURNING id, slug, name, description, created_at, archived_at",
    )
    .bind(slug)
    .bind(name)
    .bind(description)
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    categories::insert_defaults(tx, hub.id).await?;
    Ok(hub)
}

/// How many hubs exist (archived included): zero means a fresh database.
pub async fn count(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM hubs").fetch_one(db.reader()).await?)
}
