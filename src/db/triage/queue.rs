//! Reading the triage queue: a hub's annotations as triage rows (filtered, keyset-paginated,
//! by support), their counts per status and category, duplicates, the promote picker's
//! candidates and an annotation's triage history.

use crate::access::HubAccess;
use crate::db::annotations::Cursor;
use crate::db::sql::{SqlBuilder, like_pattern};
use crate::db::{Db, StoreError, visibility};
use crate::triage::status::AnnotationStatus;

/// An annotation as a triage row shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriageRow {
    pub id: i64,
    pub widget_id: i64,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub status: AnnotationStatus,
    pub dismiss_reason: Option<String>,
    pub duplicate_of: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    pub category_id: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub author_name: String,
    pub category_slug: String,
    pub category_label: String,
    pub category_colour: String,
    /// How many annotations are marked duplicates of this one.
    pub duplicates: i64,
    /// The requirement candidate this annotation is live evidence of, if any.
    pub candidate_id: Option<i64>,
    /// Who wrote it.
    pub actor_id: i64,
    /// How many people said "me too".
    pub supports: i64,
    /// How many replies it has (staff read them all).
    pub replies: i64,
}

/// A triage row over a page of annotations chosen first (alias `a`): the caller appends the
/// page's `WHERE … ORDER BY … LIMIT`, then [`PAGE_JOIN`] and the outer order. Cutting the page
/// before the joins lets PostgreSQL read the hub's queue index in order and stop after a page;
/// joined first, its estimate of the rows the policies let through was so low that it read
/// and sorted the whole hub (15 ms with 10,000 annotations instead of 2 ms).
const PAGE_SELECT: &str = "WITH page AS (SELECT a.id, a.widget_id, a.actor_id, a.category_id, a.body, a.status,
                a.dismiss_reason, a.duplicate_of, a.created_at, a.updated_at, a.version
           FROM annotations a";

/// Closes the page of [`PAGE_SELECT`] and joins what a row shows. The duplicate counts and the
/// candidates are read once for the whole page (grouped, for the page's ids), not once per row:
/// as correlated subqueries they were 45 % of PostgreSQL's time on the board (`perf`), each
/// row's subquery scanning the annotations again under the policies.
const PAGE_JOIN: &str = ")
 SELECT a.id, a.widget_id, a.body, a.status, a.dismiss_reason, a.duplicate_of,
        a.created_at, a.updated_at, a.version, a.category_id,
        w.slug AS widget_slug, w.name AS widget_name, p.display_name AS author_name,
        c.slug AS category_slug, c.label AS category_label, c.colour AS category_colour,
        COALESCE(dup.n, 0) AS duplicates, ev.candidate_id, a.actor_id,
        COALESCE(sup.n, 0) AS supports, COALESCE(rep.n, 0) AS replies
   FROM page a
   JOIN widgets w ON w.id = a.widget_id
   JOIN actors p ON p.id = a.actor_id
   JOIN categories c ON c.id = a.category_id
   LEFT JOIN (SELECT d.duplicate_of, COUNT(*) AS n FROM annotations d
               WHERE d.deleted_at IS NULL AND d.duplicate_of IN (SELECT id FROM page)
               GROUP BY d.duplicate_of) dup ON dup.duplicate_of = a.id
   LEFT JOIN (SELECT e.annotation_id, MIN(e.candidate_id) AS candidate_id FROM candidate_evidence e
               WHERE e.removed_at IS NULL AND e.annotation_id IN (SELECT id FROM page)
               GROUP BY e.annotation_id) ev ON ev.annotation_id = a.id
   LEFT JOIN (SELECT s.annotation_id, COUNT(*) AS n FROM annotation_supports s
               WHERE s.annotation_id IN (SELECT id FROM page)
               GROUP BY s.annotation_id) sup ON sup.annotation_id = a.id
   LEFT JOIN (SELECT rp.annotation_id, COUNT(*) AS n FROM annotation_replies rp
               WHERE rp.annotation_id IN (SELECT id FROM page)
               GROUP BY rp.annotation_id) rep ON rep.annotation_id = a.id";

/// What the queue shows: every field narrows it; `status: None` means every status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub status: Option<String>,
    pub widget: Option<String>,
    pub category: Option<String>,
    /// Case-insensitive substring of the body; `%` and `_` match themselves.
    pub text: Option<String>,
    /// Created at or after (epoch ms).
    pub from_ms: Option<i64>,
    /// Created before (epoch ms).
    pub until_ms: Option<i64>,
    /// Most "me too"s first (ties oldest first) instead of oldest first.
    pub by_support: bool,
}

/// How many supporters annotation `a` has (`a` in scope).
const SUPPORTS_OF_A: &str = "(SELECT COUNT(*) FROM annotation_supports s WHERE s.annotation_id = a.id)";

/// Appends the hub, visibility and filter predicates (only alias `a` need be in scope). Widget
/// and category are looked up by slug once, so counts need not join them row by row.
fn push_filter(qb: &mut SqlBuilder, access: &HubAccess, hub_id: i64, f: &QueueFilter) {
    qb.push(" WHERE a.hub_id = ").push_bind(hub_id).push(" AND a.deleted_at IS NULL");
    if let Some(status) = &f.status {
        qb.push(" AND a.status = ").push_bind(status.clone());
    }
    if let Some(widget) = &f.widget {
        qb.push(" AND a.widget_id = (SELECT wf.id FROM widgets wf WHERE wf.hub_id = ").push_bind(hub_id);
        qb.push(" AND wf.slug = ").push_bind(widget.clone()).push(")");
    }
    if let Some(category) = &f.category {
        qb.push(" AND a.category_id = (SELECT cf.id FROM categories cf WHERE cf.hub_id = ").push_bind(hub_id);
        qb.push(" AND cf.slug = ").push_bind(category.clone()).push(")");
    }
    if let Some(text) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        qb.push(" AND LOWER(a.body) LIKE ").push_bind(like_pattern(text)).push(" ESCAPE '\\'");
    }
    if let Some(from) = f.from_ms {
        qb.push(" AND a.created_at >= ").push_bind(from);
    }
    if let Some(until) = f.until_ms {
        qb.push(" AND a.created_at < ").push_bind(until);
    }
    qb.push(" AND ");
    visibility::push_hub_annotation_visible(qb, access);
}

/// One page of the queue, oldest first, after `after`. Runs as the viewer (`access`).
pub async fn queue(
    db: &Db,
    access: &HubAccess,
    hub_id: i64,
    filter: &QueueFilter,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<TriageRow>, StoreError> {
    db.fetch_all_as(access.actor_id, queue_sql(access, hub_id, filter, after, limit)).await
}

fn queue_sql(access: &HubAccess, hub_id: i64, filter: &QueueFilter, after: Option<Cursor>, limit: i64) -> SqlBuilder {
    let mut qb = SqlBuilder::new(PAGE_SELECT);
    push_filter(&mut qb, access, hub_id, filter);
    if let Some(after) = after {
        let older = |qb: &mut SqlBuilder| {
            qb.push("(a.created_at > ").push_bind(after.created_at);
            qb.push(" OR (a.created_at = ").push_bind(after.created_at);
            qb.push(" AND a.id > ").push_bind(after.id).push("))");
        };
        if filter.by_support {
            // After the last row in (support descending, created_at, id) order, by its support now.
            let last = "(SELECT COUNT(*) FROM annotation_supports ls WHERE ls.annotation_id = ";
            qb.push(" AND (").push(SUPPORTS_OF_A).push(" < ").push(last).push_bind(after.id).push(")");
            qb.push(" OR (").push(SUPPORTS_OF_A).push(" = ").push(last).push_bind(after.id).push(") AND ");
            older(&mut qb);
            qb.push("))");
        } else {
            qb.push(" AND ");
            older(&mut qb);
        }
    }
    if filter.by_support {
        qb.push(" ORDER BY ").push(SUPPORTS_OF_A).push(" DESC, a.created_at, a.id LIMIT ").push_bind(limit);
        qb.push(PAGE_JOIN).push(" ORDER BY supports DESC, a.created_at, a.id");
    } else {
        qb.push(" ORDER BY a.created_at, a.id LIMIT ").push_bind(limit);
        qb.push(PAGE_JOIN).push(" ORDER BY a.created_at, a.id");
    }
    qb
}

/// The board's first queue page (`limit` rows) and its counts, in one transaction as the
/// viewer: one connection, one `SET ROLE`, and both from the same snapshot.
pub async fn board(
    db: &Db,
    access: &HubAccess,
    hub_id: i64,
    filter: &QueueFilter,
    limit: i64,
) -> Result<(Vec<TriageRow>, QueueCounts), StoreError> {
    let mut tx = db.begin_as(access.actor_id).await?;
    let rows = queue_sql(access, hub_id, filter, None, limit).build_query_as()?.fetch_all(&mut *tx).await?;
    let counts = counts_in(&mut tx, access, hub_id, filter).await?;
    Db::end_read(tx);
    Ok((rows, counts))
}

/// The rows with these ids in the hub (any status), for re-rendering after a change.
pub async fn rows(db: &Db, access: &HubAccess, hub_id: i64, ids: &[i64]) -> Result<Vec<TriageRow>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = SqlBuilder::new(PAGE_SELECT);
    push_filter(&mut qb, access, hub_id, &QueueFilter::default());
    qb.push(" AND a.id IN (").push_bind_list(ids.iter().copied()).push(")");
    qb.push(PAGE_JOIN).push(" ORDER BY a.created_at, a.id");
    db.fetch_all_as(access.actor_id, qb).await
}

/// One row, or [`StoreError::NotFound`].
pub async fn row(db: &Db, access: &HubAccess, hub_id: i64, id: i64) -> Result<TriageRow, StoreError> {
    rows(db, access, hub_id, &[id]).await?.into_iter().next().ok_or(StoreError::NotFound)
}

/// The annotations marked duplicates of `id`, oldest first.
pub async fn duplicates(db: &Db, access: &HubAccess, hub_id: i64, id: i64) -> Result<Vec<TriageRow>, StoreError> {
    let mut qb = SqlBuilder::new(PAGE_SELECT);
    push_filter(&mut qb, access, hub_id, &QueueFilter::default());
    qb.push(" AND a.duplicate_of = ").push_bind(id);
    qb.push(PAGE_JOIN).push(" ORDER BY a.created_at, a.id");
    db.fetch_all_as(access.actor_id, qb).await
}

/// Counts of the filtered queue per status (ignoring the status filter) and per category id
/// (ignoring the category filter), so each count says what choosing it would show.
#[derive(Debug, Clone, Default)]
pub struct QueueCounts {
    pub by_status: Vec<(String, i64)>,
    pub by_category: Vec<(i64, i64)>,
}

impl QueueCounts {
    /// The count of one status.
    pub fn status(&self, status: &str) -> i64 {
        self.by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)
    }

    /// The count of one category.
    pub fn category(&self, id: i64) -> i64 {
        self.by_category.iter().find(|(c, _)| *c == id).map_or(0, |(_, n)| *n)
    }
}

/// Counts read the annotations alone (the queue index covers them): no widget is joined.
const COUNT_FROM: &str = " FROM annotations a";

/// The counts panel of the queue, from one grouped scan: the status and category filters are
/// applied here, each to the other facet's counts.
pub async fn counts(db: &Db, access: &HubAccess, hub_id: i64, filter: &QueueFilter) -> Result<QueueCounts, StoreError> {
    let mut tx = db.begin_as(access.actor_id).await?;
    let counts = counts_in(&mut tx, access, hub_id, filter).await?;
    Db::end_read(tx);
    Ok(counts)
}

async fn counts_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    access: &HubAccess,
    hub_id: i64,
    filter: &QueueFilter,
) -> Result<QueueCounts, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT a.status, a.category_id, COUNT(*){COUNT_FROM}"));
    let others = QueueFilter { status: None, category: None, ..filter.clone() };
    push_filter(&mut qb, access, hub_id, &others);
    qb.push(" GROUP BY a.status, a.category_id");
    let groups: Vec<(String, i64, i64)> = qb.build_query_as()?.fetch_all(&mut **tx).await?;
    let category: Option<Option<i64>> = match &filter.category {
        Some(slug) => Some(
            sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND slug = $2")
                .bind(hub_id)
                .bind(slug)
                .fetch_optional(&mut **tx)
                .await?,
        ),
        None => None,
    };
    let mut counts = QueueCounts::default();
    for (status, category_id, n) in groups {
        if category.is_none_or(|c| c == Some(category_id)) {
            add(&mut counts.by_status, status.clone(), n);
        }
        if filter.status.as_ref().is_none_or(|s| *s == status) {
            add(&mut counts.by_category, category_id, n);
        }
    }
    Ok(counts)
}

fn add<K: PartialEq>(totals: &mut Vec<(K, i64)>, key: K, n: i64) {
    match totals.iter_mut().find(|(k, _)| *k == key) {
        Some((_, total)) => *total += n,
        None => totals.push((key, n)),
    }
}

/// Annotations of the hub whose body contains `text`, newest first, for the duplicate picker
/// (`exclude` is the annotation being marked; duplicates themselves are left out).
pub async fn search(
    db: &Db,
    access: &HubAccess,
    hub_id: i64,
    text: &str,
    exclude: i64,
    limit: i64,
) -> Result<Vec<TriageRow>, StoreError> {
    let filter = QueueFilter { text: Some(text.to_owned()), ..QueueFilter::default() };
    let mut qb = SqlBuilder::new(PAGE_SELECT);
    push_filter(&mut qb, access, hub_id, &filter);
    qb.push(" AND a.id <> ").push_bind(exclude).push(" AND a.status <> 'duplicate'");
    qb.push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ").push_bind(limit);
    qb.push(PAGE_JOIN).push(" ORDER BY a.created_at DESC, a.id DESC");
    db.fetch_all_as(access.actor_id, qb).await
}

/// A candidate a triager may promote to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenCandidate {
    pub id: i64,
    pub title: String,
    pub status: String,
}

/// The hub's candidates that still take evidence, most recently updated first.
pub async fn open_candidates(db: &Db, hub_id: i64) -> Result<Vec<OpenCandidate>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, title, status FROM requirement_candidates
          WHERE hub_id = $1 AND status IN ('proposed', 'accepted', 'deferred') ORDER BY updated_at DESC, id DESC",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

/// One entry of an annotation's triage history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryEntry {
    pub field: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub created_at: i64,
    pub actor_name: String,
}

/// The audit trail of one annotation, oldest first.
pub async fn history(db: &Db, hub_id: i64, annotation_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT ch.field, ch.old_value, ch.new_value, ch.created_at, p.display_name AS actor_name
           FROM annotation_changes ch JOIN actors p ON p.id = ch.actor_id
          WHERE ch.annotation_id = $1 AND ch.hub_id = $2 ORDER BY ch.created_at, ch.id",
    )
    .bind(annotation_id)
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

/// Who made the latest triage change of an annotation, and when.
pub async fn last_change(db: &Db, annotation_id: i64) -> Result<Option<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT p.display_name, ch.created_at FROM annotation_changes ch JOIN actors p ON p.id = ch.actor_id
          WHERE ch.annotation_id = $1 ORDER BY ch.created_at DESC, ch.id DESC LIMIT 1",
    )
    .bind(annotation_id)
    .fetch_optional(db.reader())
    .await?)
}
