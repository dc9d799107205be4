//! The triage queue: filtered, keyset-paginated listings of a hub's annotations, their counts,
//! and the triage changes (recategorize, triage, dismiss, duplicate, reopen, promote, undo).
//!
//! Every change is optimistic: it names the version the client saw, is refused with
//! [`StoreError::Stale`] when the row moved on, bumps `annotations.version`, and writes one
//! `annotation_changes` row per field it changed (who, when, from → to). Several changes run in
//! one transaction, so a bulk action that fails half-way changes nothing.

use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

use super::annotations::Cursor;
use super::candidates;
use super::ledger::{self, NewEntry};
use super::sql::SqlBuilder;
use super::supports;
use super::{Backend, Db, StoreError, now_ms};
use crate::auth::policy::{self, HubAccess};

/// Why an annotation was dismissed: stored slug and label.
pub const DISMISS_REASONS: [(&str, &str); 5] = [
    ("not-actionable", "Not actionable"),
    ("out-of-scope", "Out of scope"),
    ("cannot-reproduce", "Cannot reproduce"),
    ("wont-fix", "Won't fix"),
    ("spam", "Spam"),
];

/// The label of a dismiss reason slug (the slug itself when unknown).
pub fn reason_label(slug: &str) -> &str {
    DISMISS_REASONS.iter().find(|(s, _)| *s == slug).map_or(slug, |(_, label)| label)
}

/// An annotation as a triage row shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriageRow {
    pub id: i64,
    pub widget_id: i64,
    pub body: String,
    pub status: String,
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

/// Escapes `LIKE` wildcards (with `\` as the escape character) and wraps in `%…%`.
pub fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

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
        qb.push(" AND LOWER(a.body) LIKE LOWER(").push_bind(like_pattern(text)).push(") ESCAPE '\\'");
    }
    if let Some(from) = f.from_ms {
        qb.push(" AND a.created_at >= ").push_bind(from);
    }
    if let Some(until) = f.until_ms {
        qb.push(" AND a.created_at < ").push_bind(until);
    }
    qb.push(" AND ");
    policy::push_hub_annotation_visible(qb, access);
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

/// The triage fields of an annotation: what a change sets and what undo restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TriageState {
    pub category_id: i64,
    pub status: String,
    pub dismiss_reason: Option<String>,
    pub duplicate_of: Option<i64>,
}

impl TriageState {
    fn with_status(&self, status: &str) -> Self {
        Self { category_id: self.category_id, status: status.to_owned(), dismiss_reason: None, duplicate_of: None }
    }
}

/// A triage decision about one annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Recategorize {
        category_id: i64,
    },
    Triage,
    Dismiss {
        reason: String,
    },
    Duplicate {
        of: i64,
    },
    Reopen,
    /// Undo: put the fields back as they were; `unlink` is the candidate a promotion linked.
    Restore {
        to: TriageState,
        unlink: Option<i64>,
    },
}

/// A change to apply to the annotation `id`, as of the version the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: i64,
    pub version: i64,
}

/// What a change did: the state before (for undo) and the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub id: i64,
    pub before: TriageState,
    pub after: TriageState,
    pub version: i64,
    /// The candidate a promotion linked (undo unlinks it).
    pub candidate: Option<i64>,
}

/// Why a triage change was not made.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The database refused, the row is gone ([`StoreError::NotFound`]) or changed meanwhile
    /// ([`StoreError::Stale`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change makes no sense for this annotation (shown to the person as is).
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for TriageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

struct Locked {
    version: i64,
    state: TriageState,
}

/// Reads an annotation's triage fields inside the transaction; on PostgreSQL the row is
/// locked so nothing changes it between this read and the write (SQLite has one writer).
async fn lock(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    id: i64,
) -> Result<Locked, StoreError> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT version, category_id, status, dismiss_reason, duplicate_of FROM annotations
             WHERE id = $1 AND hub_id = $2 AND deleted_at IS NULL"
        }
        Backend::Postgres => {
            "SELECT version, category_id, status, dismiss_reason, duplicate_of FROM annotations
             WHERE id = $1 AND hub_id = $2 AND deleted_at IS NULL FOR UPDATE"
        }
    };
    let row: (i64, i64, String, Option<String>, Option<i64>) =
        sqlx::query_as(sql).bind(id).bind(hub_id).fetch_one(&mut **tx).await?;
    Ok(Locked {
        version: row.0,
        state: TriageState { category_id: row.1, status: row.2, dismiss_reason: row.3, duplicate_of: row.4 },
    })
}

/// The hub's categories: id → (slug, archived).
async fn hub_categories(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
) -> Result<Vec<(i64, String, bool)>, StoreError> {
    let rows: Vec<(i64, String, Option<i64>)> =
        sqlx::query_as("SELECT id, slug, archived_at FROM categories WHERE hub_id = $1")
            .bind(hub_id)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(id, slug, archived)| (id, slug, archived.is_some())).collect())
}

/// The annotation that `of` stands for as an original: itself, or what it duplicates.
async fn original_of(tx: &mut Transaction<'static, Any>, hub_id: i64, id: i64, of: i64) -> Result<i64, TriageError> {
    let found: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT status, duplicate_of FROM annotations WHERE id = $1 AND hub_id = $2 AND deleted_at IS NULL",
    )
    .bind(of)
    .bind(hub_id)
    .fetch_optional(&mut **tx)
    .await?;
    let original = match found {
        None => return Err(TriageError::Refused(format!("annotation #{of} is not in this hub"))),
        // Link to the root so duplicates never form chains.
        Some((status, Some(root))) if status == "duplicate" => root,
        Some(_) => of,
    };
    if original == id {
        return Err(TriageError::Refused("an annotation cannot duplicate itself".into()));
    }
    Ok(original)
}

/// The state `change` leads to from `before`, or why it cannot.
async fn next_state(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
    id: i64,
    before: &TriageState,
    change: &Change,
    categories: &[(i64, String, bool)],
) -> Result<TriageState, TriageError> {
    let promoted = before.status == "promoted";
    let refuse_promoted =
        || TriageError::Refused("this annotation was promoted: change it through its requirement candidate".into());
    Ok(match change {
        Change::Recategorize { category_id } => match categories.iter().find(|(c, ..)| c == category_id) {
            Some((_, _, false)) => TriageState { category_id: *category_id, ..before.clone() },
            Some((_, _, true)) => return Err(TriageError::Refused("that category is archived".into())),
            None => return Err(TriageError::Refused("that category is not one of this hub's".into())),
        },
        Change::Triage if promoted => return Err(refuse_promoted()),
        Change::Triage => before.with_status("triaged"),
        Change::Dismiss { .. } if promoted => return Err(refuse_promoted()),
        Change::Dismiss { reason } => {
            if !DISMISS_REASONS.iter().any(|(slug, _)| slug == reason) {
                return Err(TriageError::Refused("choose a reason from the list".into()));
            }
            TriageState { dismiss_reason: Some(reason.clone()), ..before.with_status("dismissed") }
        }
        Change::Duplicate { .. } if promoted => return Err(refuse_promoted()),
        Change::Duplicate { of } => {
            let original = original_of(tx, hub_id, id, *of).await?;
            TriageState { duplicate_of: Some(original), ..before.with_status("duplicate") }
        }
        Change::Reopen if promoted => return Err(refuse_promoted()),
        Change::Reopen => before.with_status("new"),
        Change::Restore { to, .. } => {
            if !categories.iter().any(|(c, ..)| *c == to.category_id) {
                return Err(TriageError::Refused("that category is gone".into()));
            }
            to.clone()
        }
    })
}

/// Who changes which hub, and when: what every audit row records.
#[derive(Debug, Clone, Copy)]
struct Author {
    hub_id: i64,
    actor_id: i64,
    at: i64,
}

/// One `annotation_changes` row per field that differs between `before` and `after`.
async fn audit(
    tx: &mut Transaction<'static, Any>,
    by: Author,
    id: i64,
    before: &TriageState,
    after: &TriageState,
    categories: &[(i64, String, bool)],
) -> Result<(), StoreError> {
    let slug =
        |c: i64| categories.iter().find(|(id, ..)| *id == c).map_or_else(|| c.to_string(), |(_, s, _)| s.clone());
    let mut fields: Vec<(&str, Option<String>, Option<String>)> = Vec::new();
    if before.category_id != after.category_id {
        fields.push(("category", Some(slug(before.category_id)), Some(slug(after.category_id))));
    }
    if before.status != after.status {
        fields.push(("status", Some(before.status.clone()), Some(after.status.clone())));
    }
    if before.dismiss_reason != after.dismiss_reason {
        fields.push(("dismiss_reason", before.dismiss_reason.clone(), after.dismiss_reason.clone()));
    }
    if before.duplicate_of != after.duplicate_of {
        let show = |v: Option<i64>| v.map(|v| v.to_string());
        fields.push(("duplicate_of", show(before.duplicate_of), show(after.duplicate_of)));
    }
    for (field, old, new) in fields {
        record(tx, by, id, field, old.as_deref(), new.as_deref()).await?;
    }
    Ok(())
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    by: Author,
    id: i64,
    field: &str,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO annotation_changes (annotation_id, hub_id, actor_id, field, old_value, new_value, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(by.hub_id)
    .bind(by.actor_id)
    .bind(field)
    .bind(old)
    .bind(new)
    .bind(by.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the new state if the row is still at `expected` version; returns the new version.
async fn write_state(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
    id: i64,
    expected: i64,
    state: &TriageState,
    at: i64,
) -> Result<i64, StoreError> {
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE annotations SET category_id = $1, status = $2, dismiss_reason = $3, duplicate_of = $4,
                updated_at = $5, version = version + 1
          WHERE id = $6 AND hub_id = $7 AND version = $8 RETURNING version",
    )
    .bind(state.category_id)
    .bind(&state.status)
    .bind(state.dismiss_reason.as_deref())
    .bind(state.duplicate_of)
    .bind(at)
    .bind(id)
    .bind(hub_id)
    .bind(expected)
    .fetch_optional(&mut **tx)
    .await?;
    version.ok_or(StoreError::Stale)
}

/// Takes a promoted annotation off the candidate it was promoted to, with its ledger entry
/// (the ledger is append-only: the promotion stays on record, followed by its removal).
async fn unlink(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    by: Author,
    id: i64,
    candidate_id: i64,
) -> Result<(), StoreError> {
    let reason = "promotion undone in triage";
    let done = sqlx::query(
        "UPDATE candidate_evidence SET removed_at = $1, removed_reason = $2
          WHERE candidate_id = $3 AND annotation_id = $4 AND removed_at IS NULL
            AND candidate_id IN (SELECT id FROM requirement_candidates WHERE hub_id = $5)",
    )
    .bind(by.at)
    .bind(reason)
    .bind(candidate_id)
    .bind(id)
    .bind(by.hub_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id: by.hub_id,
            candidate_id: Some(candidate_id),
            actor_id: by.actor_id,
            action: "evidence_removed",
            rationale: reason,
            detail: serde_json::json!({ "annotation_id": id }).to_string(),
        },
    )
    .await?;
    record(tx, by, id, "candidate", Some(&candidate_id.to_string()), None).await
}

/// Applies every change in one transaction: all of them or none.
pub async fn apply(
    db: &Db,
    hub_id: i64,
    actor_id: i64,
    changes: &[(Target, Change)],
) -> Result<Vec<Applied>, TriageError> {
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let categories = hub_categories(&mut tx, hub_id).await?;
    let at = now_ms();
    let by = Author { hub_id, actor_id, at };
    let mut applied = Vec::with_capacity(changes.len());
    for (target, change) in changes {
        let locked = lock(&mut tx, db.backend(), hub_id, target.id).await?;
        if locked.version != target.version {
            return Err(StoreError::Stale.into());
        }
        let before = locked.state;
        let after = next_state(&mut tx, hub_id, target.id, &before, change, &categories).await?;
        if let Change::Restore { unlink: Some(candidate), .. } = change {
            unlink(&mut tx, db.backend(), by, target.id, *candidate).await?;
        }
        // Choosing what is already there changes nothing, not even the version.
        let unchanged = after == before && !matches!(change, Change::Restore { unlink: Some(_), .. });
        let version = if unchanged {
            target.version
        } else {
            write_state(&mut tx, hub_id, target.id, target.version, &after, at).await?
        };
        // A duplicate's "me too"s (and its author's) count for the original from now on; no
        // longer a duplicate (undone, reopened, or a duplicate of another), they come back.
        if after.duplicate_of != before.duplicate_of {
            if before.duplicate_of.is_some() {
                supports::move_back(&mut tx, target.id).await?;
            }
            if let Some(original) = after.duplicate_of {
                supports::move_to_original(&mut tx, target.id, original).await?;
            }
        }
        audit(&mut tx, by, target.id, &before, &after, &categories).await?;
        applied.push(Applied { id: target.id, before, after, version, candidate: None });
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(applied)
}

/// Where a promotion goes.
#[derive(Debug, Clone)]
pub enum Promotion<'a> {
    /// A new candidate with this title and statement.
    New { title: &'a str, statement: &'a str },
    /// An existing candidate of the hub.
    Existing { candidate_id: i64 },
}

/// Promotes an annotation to a requirement candidate: the candidate (when new), the evidence
/// link, the ledger entries and the audit rows in one transaction. Returns the candidate's id.
pub async fn promote(
    db: &Db,
    hub_id: i64,
    actor_id: i64,
    target: &Target,
    promotion: &Promotion<'_>,
) -> Result<Applied, TriageError> {
    let backend = db.backend();
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let locked = lock(&mut tx, backend, hub_id, target.id).await?;
    if locked.version != target.version {
        return Err(StoreError::Stale.into());
    }
    let before = locked.state;
    if before.status == "promoted" {
        return Err(TriageError::Refused("this annotation is already promoted".into()));
    }
    let candidate_id = match promotion {
        Promotion::New { title, statement } => {
            candidates::propose(&mut tx, backend, hub_id, actor_id, title, statement, &[target.id]).await?
        }
        Promotion::Existing { candidate_id } => {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM requirement_candidates WHERE id = $1 AND hub_id = $2")
                    .bind(candidate_id)
                    .bind(hub_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match status.as_deref() {
                Some("proposed" | "accepted" | "deferred") => {}
                Some(_) => return Err(TriageError::Refused("that candidate is closed".into())),
                None => return Err(TriageError::Refused("that candidate is not one of this hub's".into())),
            }
            let linked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2",
            )
            .bind(candidate_id)
            .bind(target.id)
            .fetch_one(&mut *tx)
            .await?;
            if linked > 0 {
                return Err(TriageError::Refused("this annotation was evidence of that candidate before".into()));
            }
            candidates::add_evidence(
                &mut tx,
                backend,
                hub_id,
                *candidate_id,
                target.id,
                actor_id,
                "promoted from triage",
            )
            .await?;
            *candidate_id
        }
    };
    // `add_evidence` set the status and bumped the version; a promoted annotation is neither
    // dismissed nor a duplicate any more.
    let at = now_ms();
    let version: i64 = sqlx::query_scalar(
        "UPDATE annotations SET dismiss_reason = NULL, duplicate_of = NULL, updated_at = $1
          WHERE id = $2 AND hub_id = $3 RETURNING version",
    )
    .bind(at)
    .bind(target.id)
    .bind(hub_id)
    .fetch_one(&mut *tx)
    .await?;
    // A promoted duplicate stands on its own: its support comes back to it.
    if before.duplicate_of.is_some() {
        supports::move_back(&mut tx, target.id).await?;
    }
    let categories = hub_categories(&mut tx, hub_id).await?;
    let after = before.with_status("promoted");
    let by = Author { hub_id, actor_id, at };
    audit(&mut tx, by, target.id, &before, &after, &categories).await?;
    record(&mut tx, by, target.id, "candidate", None, Some(&candidate_id.to_string())).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Applied { id: target.id, before, after, version, candidate: Some(candidate_id) })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("plain"), "%plain%");
    }

    #[test]
    fn reasons_have_labels() {
        assert_eq!(reason_label("spam"), "Spam");
        assert_eq!(reason_label("other"), "other");
    }
}
