//! The queries of the data API and of embeds.
//!
//! Every function runs inside a transaction opened with [`begin`] for the request's
//! [`RlsScope`], so on PostgreSQL Row Level Security filters every row a second time (an embed
//! credential confines it to one widget, an API key to one hub). The `visible_to` argument is the
//! first wall, the access policy's predicate (`db::visibility`), and the only one on SQLite;
//! `None` leaves it out, for callers that were already confined by their credential or for the
//! test hook that proves RLS holds alone.

use sqlx::{Any, Transaction};

use super::annotations::Cursor;
use super::sql::SqlBuilder;
use super::visibility;
use super::{Backend, Db, StoreError, now_ms};
use crate::access::{Viewer, WidgetScope};
use crate::triage::status::AnnotationStatus;

/// A transaction of the data API.
pub type Tx = Transaction<'static, Any>;

/// Who a request acts for, as PostgreSQL's policies see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RlsScope {
    /// `ihf.actor_id`; `None` for a caller with no actor (yet).
    pub actor_id: Option<i64>,
    /// `ihf.embed_widget_id`: an embed credential reaches this widget only.
    pub embed_widget_id: Option<i64>,
    /// `ihf.api_hub_id`: an API key reaches this hub only.
    pub api_hub_id: Option<i64>,
}

/// Opens a transaction acting for `scope`: on the writer when `write`, else a reader (on
/// PostgreSQL the pools are one, so reads carry the embed confinement as well).
pub async fn begin(db: &Db, scope: RlsScope, write: bool) -> Result<Tx, StoreError> {
    let postgres = db.backend() == Backend::Postgres;
    let mut tx = if write || postgres {
        db.begin_write_as(scope.actor_id, scope.embed_widget_id).await?
    } else {
        db.begin_as(scope.actor_id).await?
    };
    if postgres && let Some(hub_id) = scope.api_hub_id {
        sqlx::query("SELECT set_config('ihf.api_hub_id', $1, true)").bind(hub_id.to_string()).execute(&mut *tx).await?;
    }
    Ok(tx)
}

/// Whether PostgreSQL's Row Level Security refused a write (`insufficient_privilege`).
pub fn is_policy_refusal(error: &StoreError) -> bool {
    matches!(error, StoreError::Other(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501"))
}

/// A widget as the data API shows it (never its embed secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WidgetInfo {
    pub id: i64,
    pub hub_id: i64,
    pub hub_slug: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    #[sqlx(try_from = "String")]
    pub policy_scope: WidgetScope,
    pub embed_key: String,
    pub archived_at: Option<i64>,
}

const WIDGET_SELECT: &str = "SELECT w.id, w.hub_id, h.slug AS hub_slug, w.slug, w.name, w.description, w.policy_scope, \
     w.embed_key, w.archived_at FROM widgets w JOIN hubs h ON h.id = w.hub_id";

/// The widget with this embed key, if the caller may read it.
pub async fn widget_by_key(
    tx: &mut Tx,
    embed_key: &str,
    visible_to: Option<&Viewer>,
) -> Result<Option<WidgetInfo>, StoreError> {
    let mut qb = SqlBuilder::new(WIDGET_SELECT);
    qb.push(" WHERE w.embed_key = ").push_bind(embed_key.to_owned());
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_widget_visible(&mut qb, viewer);
    }
    Ok(qb.build_query_as()?.fetch_optional(&mut **tx).await?)
}

/// The live widgets the caller may read, by hub and name; `hub_id` narrows to one hub.
pub async fn list_widgets(
    tx: &mut Tx,
    hub_id: Option<i64>,
    visible_to: Option<&Viewer>,
) -> Result<Vec<WidgetInfo>, StoreError> {
    let mut qb = SqlBuilder::new(WIDGET_SELECT);
    qb.push(" WHERE w.archived_at IS NULL AND h.archived_at IS NULL");
    if let Some(hub_id) = hub_id {
        qb.push(" AND w.hub_id = ").push_bind(hub_id);
    }
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_widget_visible(&mut qb, viewer);
    }
    qb.push(" ORDER BY h.slug, w.name, w.id LIMIT 500");
    Ok(qb.build_query_as()?.fetch_all(&mut **tx).await?)
}

/// A widget's counts as the caller may see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidgetCounts {
    pub annotations: i64,
    pub annotations_new: i64,
    /// Events since the given time; `None` when the caller may not read events.
    pub events: Option<i64>,
}

/// Counts the annotations of a widget the caller may read and, with `events_since`, its events.
pub async fn widget_counts(
    tx: &mut Tx,
    widget_id: i64,
    visible_to: Option<&Viewer>,
    events_since: Option<i64>,
) -> Result<WidgetCounts, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN a.status = 'new' THEN 1 ELSE 0 END), 0) FROM annotations a \
         JOIN widgets w ON w.id = a.widget_id WHERE a.deleted_at IS NULL AND a.widget_id = ",
    );
    qb.push_bind(widget_id);
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_annotation_visible(&mut qb, viewer);
    }
    let (annotations, annotations_new): (i64, i64) = qb.build_query_as()?.fetch_one(&mut **tx).await?;
    let events = match events_since {
        Some(since) => Some(
            sqlx::query_scalar("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1 AND occurred_at >= $2")
                .bind(widget_id)
                .bind(since)
                .fetch_one(&mut **tx)
                .await?,
        ),
        None => None,
    };
    Ok(WidgetCounts { annotations, annotations_new, events })
}

/// An annotation as the data API and the embed thread show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiAnnotation {
    pub id: i64,
    pub hub_id: i64,
    pub widget_id: i64,
    pub widget_key: String,
    pub actor_id: i64,
    pub author_name: String,
    pub body: String,
    pub category: String,
    pub category_label: String,
    pub category_colour: String,
    #[sqlx(try_from = "String")]
    pub status: AnnotationStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub version: i64,
    /// 1 when the row is live and matches the filter it was read with.
    pub matches: i64,
}

/// Which annotations a listing or subscription wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// A category slug.
    pub category: Option<String>,
    pub status: Option<String>,
    /// Only this author's (`author=me`).
    pub author_id: Option<i64>,
    /// Created at or after, epoch ms.
    pub created_after: Option<i64>,
    /// Created before, epoch ms.
    pub created_before: Option<i64>,
}

/// Newest or oldest first (by creation, then id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    Newest,
    Oldest,
}

const ANNOTATION_SELECT: &str = "SELECT a.id, a.hub_id, a.widget_id, w.embed_key AS widget_key, a.actor_id, \
     p.display_name AS author_name, a.body, c.slug AS category, c.label AS category_label, c.colour AS category_colour, \
     a.status, a.created_at, a.updated_at, a.deleted_at, a.version, ";
const ANNOTATION_FROM: &str = " FROM annotations a JOIN widgets w ON w.id = a.widget_id \
     JOIN actors p ON p.id = a.actor_id JOIN categories c ON c.id = a.category_id WHERE a.widget_id = ";

fn push_filter(qb: &mut SqlBuilder, filter: &Filter) {
    qb.push("(1 = 1");
    if let Some(category) = &filter.category {
        qb.push(" AND c.slug = ").push_bind(category.clone());
    }
    if let Some(status) = &filter.status {
        qb.push(" AND a.status = ").push_bind(status.clone());
    }
    if let Some(author) = filter.author_id {
        qb.push(" AND a.actor_id = ").push_bind(author);
    }
    if let Some(after) = filter.created_after {
        qb.push(" AND a.created_at >= ").push_bind(after);
    }
    if let Some(before) = filter.created_before {
        qb.push(" AND a.created_at < ").push_bind(before);
    }
    qb.push(")");
}

fn push_visible(qb: &mut SqlBuilder, visible_to: Option<&Viewer>) {
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_annotation_visible(qb, viewer);
    }
}

/// One page of a widget's live annotations matching `filter`, in `order`, after `cursor`.
pub async fn list_annotations(
    tx: &mut Tx,
    widget_id: i64,
    filter: &Filter,
    order: Order,
    cursor: Option<Cursor>,
    limit: i64,
    visible_to: Option<&Viewer>,
) -> Result<Vec<ApiAnnotation>, StoreError> {
    let mut qb = SqlBuilder::new(ANNOTATION_SELECT);
    qb.push("1 AS matches").push(ANNOTATION_FROM).push_bind(widget_id);
    qb.push(" AND a.deleted_at IS NULL AND ");
    push_filter(&mut qb, filter);
    push_visible(&mut qb, visible_to);
    let (cmp, dir) = match order {
        Order::Newest => ("<", "DESC"),
        Order::Oldest => (">", "ASC"),
    };
    if let Some(c) = cursor {
        qb.push(&format!(" AND (a.created_at {cmp} ")).push_bind(c.created_at);
        qb.push(" OR (a.created_at = ").push_bind(c.created_at);
        qb.push(&format!(" AND a.id {cmp} ")).push_bind(c.id).push("))");
    }
    qb.push(&format!(" ORDER BY a.created_at {dir}, a.id {dir} LIMIT ")).push_bind(limit);
    Ok(qb.build_query_as()?.fetch_all(&mut **tx).await?)
}

/// Most rows one [`changes_since`] call returns; a subscriber catches up over several.
pub const CHANGES_LIMIT: i64 = 1000;

/// The widget's annotations the caller may read that changed after `since` (epoch ms), deleted
/// ones included, oldest change first; `matches` tells whether each is live and in `filter`.
pub async fn changes_since(
    tx: &mut Tx,
    widget_id: i64,
    since: i64,
    filter: &Filter,
    visible_to: Option<&Viewer>,
) -> Result<Vec<ApiAnnotation>, StoreError> {
    let mut qb = SqlBuilder::new(ANNOTATION_SELECT);
    qb.push("CASE WHEN a.deleted_at IS NULL AND ");
    push_filter(&mut qb, filter);
    qb.push(" THEN 1 ELSE 0 END AS matches").push(ANNOTATION_FROM).push_bind(widget_id);
    qb.push(" AND a.updated_at > ").push_bind(since);
    push_visible(&mut qb, visible_to);
    qb.push(" ORDER BY a.updated_at, a.id LIMIT ").push_bind(CHANGES_LIMIT);
    Ok(qb.build_query_as()?.fetch_all(&mut **tx).await?)
}

/// The live annotation `id` of a widget, if the caller may read it.
pub async fn get_annotation(
    tx: &mut Tx,
    widget_id: i64,
    id: i64,
    visible_to: Option<&Viewer>,
) -> Result<Option<ApiAnnotation>, StoreError> {
    let mut qb = SqlBuilder::new(ANNOTATION_SELECT);
    qb.push("1 AS matches").push(ANNOTATION_FROM).push_bind(widget_id);
    qb.push(" AND a.deleted_at IS NULL AND a.id = ").push_bind(id);
    push_visible(&mut qb, visible_to);
    Ok(qb.build_query_as()?.fetch_optional(&mut **tx).await?)
}

/// The annotation an author made with an idempotency key (to answer a retried create).
pub async fn by_idempotency_key(tx: &mut Tx, actor_id: i64, key: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM annotations WHERE actor_id = $1 AND idempotency_key = $2")
        .bind(actor_id)
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?)
}

/// What an update changes; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub body: Option<String>,
    /// (category id, its slug for the audit trail)
    pub category: Option<(i64, String)>,
    pub status: Option<AnnotationStatus>,
}

/// Applies `changes` to `current` if it is still at `current.version` (else [`StoreError::Stale`]),
/// recording triage changes in the audit trail as `by_actor`.
pub async fn update_annotation(
    tx: &mut Tx,
    current: &ApiAnnotation,
    changes: &Changes,
    by_actor: Option<i64>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE annotations SET body = COALESCE($1, body), category_id = COALESCE($2, category_id),
            status = COALESCE($3, status), updated_at = $4, version = version + 1
         WHERE id = $5 AND version = $6 AND deleted_at IS NULL",
    )
    .bind(changes.body.clone())
    .bind(changes.category.as_ref().map(|(id, _)| *id))
    .bind(changes.status.map(AnnotationStatus::as_str))
    .bind(now)
    .bind(current.id)
    .bind(current.version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    let Some(actor_id) = by_actor else { return Ok(()) };
    let triage = [
        ("category", current.category.as_str(), changes.category.as_ref().map(|(_, slug)| slug.as_str())),
        ("status", current.status.as_str(), changes.status.map(AnnotationStatus::as_str)),
    ];
    for (field, old, new) in triage {
        if let Some(new) = new.filter(|new| *new != old) {
            sqlx::query(
                "INSERT INTO annotation_changes (annotation_id, hub_id, actor_id, field, old_value, new_value, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(current.id)
            .bind(current.hub_id)
            .bind(actor_id)
            .bind(field)
            .bind(old.to_owned())
            .bind(new.to_owned())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Deletes an annotation (softly: subscribers see a `delete`, the row stays for the audit trail)
/// if it is still at `current.version`.
pub async fn delete_annotation(tx: &mut Tx, current: &ApiAnnotation) -> Result<(), StoreError> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE annotations SET deleted_at = $1, updated_at = $1, version = version + 1
         WHERE id = $2 AND version = $3 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(current.id)
    .bind(current.version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// An interaction event as the data API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiEvent {
    pub id: i64,
    pub kind: String,
    pub actor_id: Option<i64>,
    pub occurred_at: i64,
    pub payload: String,
}

/// One page of a widget's events, newest first, before `cursor`, of one `kind` if given.
pub async fn list_events(
    tx: &mut Tx,
    widget_id: i64,
    kind: Option<&str>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<ApiEvent>, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT e.id, e.kind, e.actor_id, e.occurred_at, e.payload FROM interaction_events e WHERE e.widget_id = ",
    );
    qb.push_bind(widget_id);
    if let Some(kind) = kind {
        qb.push(" AND e.kind = ").push_bind(kind.to_owned());
    }
    if let Some(c) = cursor {
        qb.push(" AND (e.occurred_at < ").push_bind(c.created_at);
        qb.push(" OR (e.occurred_at = ").push_bind(c.created_at).push(" AND e.id < ").push_bind(c.id).push("))");
    }
    qb.push(" ORDER BY e.occurred_at DESC, e.id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as()?.fetch_all(&mut **tx).await?)
}
