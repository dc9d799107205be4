//! Annotations: inline feedback on a widget.

use sqlx::{Any, Transaction};

use super::sql::SqlBuilder;

use crate::auth::Viewer;
use crate::auth::policy;

use super::{Db, StoreError, now_ms};

/// The statuses an annotation moves through in triage.
pub const STATUSES: [&str; 5] = ["new", "triaged", "promoted", "dismissed", "duplicate"];

/// An annotation with what a feed or thread row shows of its widget, author and category.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AnnotationRow {
    pub id: i64,
    pub hub_id: i64,
    pub widget_id: i64,
    pub actor_id: i64,
    pub body: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub author_name: String,
    pub category_slug: String,
    pub category_label: String,
    pub category_colour: String,
}

/// A position in a newest-first listing: the last row's `(created_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: i64,
}

impl Cursor {
    /// Parses `"<created_at>-<id>"` as written by [`Cursor::to_param`].
    pub fn parse(param: &str) -> Option<Self> {
        let (created_at, id) = param.split_once('-')?;
        Some(Self { created_at: created_at.parse().ok()?, id: id.parse().ok()? })
    }

    /// The query-string form of the cursor.
    pub fn to_param(self) -> String {
        format!("{}-{}", self.created_at, self.id)
    }
}

/// What it takes to create an annotation.
#[derive(Debug, Clone)]
pub struct NewAnnotation<'a> {
    pub hub_id: i64,
    pub widget_id: i64,
    pub actor_id: i64,
    pub body: &'a str,
    pub category_id: i64,
    pub status: &'a str,
    pub created_at: i64,
    pub idempotency_key: Option<&'a str>,
}

pub(crate) const ROW_SELECT: &str =
    "SELECT a.id, a.hub_id, a.widget_id, a.actor_id, a.body, a.status, a.created_at, a.updated_at, a.version,
        w.slug AS widget_slug, w.name AS widget_name, p.display_name AS author_name,
        c.slug AS category_slug, c.label AS category_label, c.colour AS category_colour
   FROM annotations a
   JOIN widgets w ON w.id = a.widget_id
   JOIN actors p ON p.id = a.actor_id
   JOIN categories c ON c.id = a.category_id";

/// One page of a hub's annotation feed that `viewer` may read, newest first, after `before`.
/// Runs as the viewer (Row Level Security on PostgreSQL) with the policy's predicate.
pub async fn feed_for_hub(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Vec<AnnotationRow>, StoreError> {
    let before = before.unwrap_or(Cursor { created_at: i64::MAX, id: i64::MAX });
    let mut qb = SqlBuilder::new(ROW_SELECT);
    qb.push(" WHERE a.hub_id = ").push_bind(hub_id);
    qb.push(" AND a.deleted_at IS NULL AND (a.created_at < ").push_bind(before.created_at);
    qb.push(" OR (a.created_at = ").push_bind(before.created_at);
    qb.push(" AND a.id < ").push_bind(before.id).push(")) AND ");
    policy::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ").push_bind(limit);
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let rows = qb.build_query_as()?.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Inserts an annotation inside the caller's transaction and returns its id.
pub async fn insert(tx: &mut Transaction<'static, Any>, new: &NewAnnotation<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, status, idempotency_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(new.hub_id)
    .bind(new.widget_id)
    .bind(new.actor_id)
    .bind(new.body)
    .bind(new.category_id)
    .bind(new.status)
    .bind(new.idempotency_key)
    .bind(new.created_at)
    .fetch_one(&mut **tx)
    .await?)
}

/// Creates an annotation in its own transaction and returns its id.
pub async fn create(db: &Db, new: &NewAnnotation<'_>) -> Result<i64, StoreError> {
    let mut tx = db.writer().begin().await?;
    let id = insert(&mut tx, new).await?;
    tx.commit().await?;
    Ok(id)
}

/// The current time, for callers that create annotations "now".
pub fn created_now() -> i64 {
    now_ms()
}
