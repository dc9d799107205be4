//! Annotation exports: keyset pages in ascending `(created_at, id)` order, so an export of any
//! size is read a page at a time and never held whole.

use super::sql::{SqlBuilder, like_pattern};
use super::visibility;
use super::{Db, StoreError};
use crate::access::Viewer;
use crate::triage::status::AnnotationStatus;

/// The triage board's filters, as an export applies them. `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct AnnotationFilter {
    pub widget_id: Option<i64>,
    pub category_id: Option<i64>,
    pub status: Option<String>,
    /// Matched case-insensitively anywhere in the body.
    pub text: Option<String>,
    /// `created_at >= from_ms`.
    pub from_ms: Option<i64>,
    /// `created_at < until_ms`.
    pub until_ms: Option<i64>,
}

/// One exported annotation.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub id: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub author_id: i64,
    pub author_name: String,
    pub category: String,
    #[sqlx(try_from = "String")]
    pub status: AnnotationStatus,
    pub body: String,
    pub duplicate_of: Option<i64>,
    pub version: i64,
}

/// The next page of a hub's annotations after `after` (`(created_at, id)` of the last row
/// sent), as `viewer` may read them, oldest first.
pub async fn page(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    filter: &AnnotationFilter,
    after: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<ExportRow>, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT a.id, a.created_at, a.updated_at, w.slug AS widget_slug, w.name AS widget_name,
                a.actor_id AS author_id, p.display_name AS author_name, c.slug AS category, a.status, a.body,
                a.duplicate_of, a.version
           FROM annotations a
           JOIN widgets w ON w.id = a.widget_id
           JOIN actors p ON p.id = a.actor_id
           JOIN categories c ON c.id = a.category_id
          WHERE a.deleted_at IS NULL AND a.hub_id = ",
    );
    qb.push_bind(hub_id);
    if let Some((created_at, id)) = after {
        // A row value, so both databases seek the (hub_id, created_at, id) index to the page.
        qb.push(" AND (a.created_at, a.id) > (").push_bind(created_at).push(", ").push_bind(id).push(")");
    }
    if let Some(widget_id) = filter.widget_id {
        qb.push(" AND a.widget_id = ").push_bind(widget_id);
    }
    if let Some(category_id) = filter.category_id {
        qb.push(" AND a.category_id = ").push_bind(category_id);
    }
    if let Some(status) = &filter.status {
        qb.push(" AND a.status = ").push_bind(status.clone());
    }
    if let Some(text) = &filter.text {
        qb.push(" AND LOWER(a.body) LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '\\'");
    }
    if let Some(from) = filter.from_ms {
        qb.push(" AND a.created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.until_ms {
        qb.push(" AND a.created_at < ").push_bind(until);
    }
    qb.push(" AND ");
    visibility::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY a.created_at, a.id LIMIT ").push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}
