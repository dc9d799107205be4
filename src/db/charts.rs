//! Day-by-day figures behind the dashboard's and widget page's charts: events and annotations
//! per widget, annotations per category, and the triage backlog, over the last [`DAYS`] days.
//!
//! Days are UTC days; day `DAYS - 1` is today. The caller passes the widgets the viewer may see
//! (the access policy already applied), so these queries only count.

use std::collections::HashMap;

use super::sql::SqlBuilder;
use super::{Db, StoreError};
use crate::clock::DAY_MS;
use crate::triage::status::AnnotationStatus;

/// How many days the charts cover, today included.
pub const DAYS: usize = 14;

/// The first millisecond of the chart window that ends today (UTC) at `now_ms`.
pub fn window_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS - (DAYS as i64 - 1) * DAY_MS
}

/// One count per day, oldest first.
pub type Daily = [i64; DAYS];

/// Events and annotations per day of one widget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetActivity {
    pub events: Daily,
    pub annotations: Daily,
}

/// Annotations per day of one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryDaily {
    pub slug: String,
    pub label: String,
    pub colour: String,
    pub counts: Daily,
}

#[derive(sqlx::FromRow)]
struct DayCount {
    key: i64,
    day: i64,
    n: i64,
}

fn put(series: &mut Daily, day: i64, n: i64) {
    if let Some(slot) = usize::try_from(day).ok().and_then(|d| series.get_mut(d)) {
        *slot += n;
    }
}

/// `SELECT <key>, day, COUNT(*) FROM <table> WHERE widget_id IN (…) AND <time> >= start … GROUP BY`.
async fn day_counts(
    db: &Db,
    select_key: &str,
    from: &str,
    time: &str,
    widget_ids: &[i64],
    start: i64,
) -> Result<Vec<DayCount>, StoreError> {
    let mut qb = SqlBuilder::new(format!("SELECT {select_key} AS key, ({time} - "));
    qb.push_bind(start);
    qb.push(&format!(") / {DAY_MS} AS day, COUNT(*) AS n FROM {from} WHERE t.widget_id IN ("));
    qb.push_bind_list(widget_ids.iter().copied());
    qb.push(&format!(") AND {time} >= "));
    qb.push_bind(start);
    if from.starts_with("annotations") {
        qb.push(" AND t.deleted_at IS NULL");
    }
    qb.push(" GROUP BY 1, 2");
    Ok(qb.build_query_as()?.fetch_all(db.reader()).await?)
}

/// Events and annotations per day of each widget in `widget_ids`, from `start` (see [`window_start`]).
pub async fn widget_activity(
    db: &Db,
    widget_ids: &[i64],
    start: i64,
) -> Result<HashMap<i64, WidgetActivity>, StoreError> {
    let mut out: HashMap<i64, WidgetActivity> = widget_ids.iter().map(|id| (*id, WidgetActivity::default())).collect();
    if widget_ids.is_empty() {
        return Ok(out);
    }
    let events = day_counts(db, "t.widget_id", "interaction_events t", "t.occurred_at", widget_ids, start).await?;
    for row in events {
        put(&mut out.entry(row.key).or_default().events, row.day, row.n);
    }
    let annotations = day_counts(db, "t.widget_id", "annotations t", "t.created_at", widget_ids, start).await?;
    for row in annotations {
        put(&mut out.entry(row.key).or_default().annotations, row.day, row.n);
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct CategoryRow {
    id: i64,
    slug: String,
    label: String,
    colour: String,
}

/// Annotations per day and category (the hub's categories in their order; archived ones only
/// when they have annotations in the window) on the widgets in `widget_ids`.
pub async fn category_daily(
    db: &Db,
    hub_id: i64,
    widget_ids: &[i64],
    start: i64,
) -> Result<Vec<CategoryDaily>, StoreError> {
    let categories: Vec<CategoryRow> =
        sqlx::query_as("SELECT id, slug, label, colour FROM categories WHERE hub_id = $1 ORDER BY position, id")
            .bind(hub_id)
            .fetch_all(db.reader())
            .await?;
    let mut counts: HashMap<i64, Daily> = HashMap::new();
    if !widget_ids.is_empty() {
        let rows = day_counts(db, "t.category_id", "annotations t", "t.created_at", widget_ids, start).await?;
        for row in rows {
            put(counts.entry(row.key).or_insert([0; DAYS]), row.day, row.n);
        }
    }
    let archived: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND archived_at IS NOT NULL")
            .bind(hub_id)
            .fetch_all(db.reader())
            .await?;
    Ok(categories
        .into_iter()
        .filter(|c| !archived.contains(&c.id) || counts.contains_key(&c.id))
        .map(|c| CategoryDaily {
            counts: counts.get(&c.id).copied().unwrap_or([0; DAYS]),
            slug: c.slug,
            label: c.label,
            colour: c.colour,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct BacklogRow {
    id: i64,
    created_at: i64,
    #[sqlx(try_from = "String")]
    status: AnnotationStatus,
}

#[derive(sqlx::FromRow)]
struct StatusChange {
    annotation_id: i64,
    old_value: Option<String>,
    created_at: i64,
}

/// How many annotations on `widget_ids` awaited triage (status `new`) at the end of each day of
/// the window; today's figure is the backlog now (`now_ms`). An annotation's status at a moment
/// is the `old_value` of its first status change after that moment, or its status now.
pub async fn backlog(db: &Db, widget_ids: &[i64], start: i64, now_ms: i64) -> Result<Daily, StoreError> {
    let mut out = [0; DAYS];
    if widget_ids.is_empty() {
        return Ok(out);
    }
    // Only annotations new now or whose status changed in the window can count on some day.
    let mut qb = SqlBuilder::new(
        "SELECT a.id, a.created_at, a.status FROM annotations a WHERE a.deleted_at IS NULL AND a.widget_id IN (",
    );
    qb.push_bind_list(widget_ids.iter().copied());
    qb.push(") AND (a.status = 'new' OR EXISTS (SELECT 1 FROM annotation_changes c WHERE c.annotation_id = a.id AND c.field = 'status' AND c.created_at >= ");
    qb.push_bind(start);
    qb.push("))");
    let rows: Vec<BacklogRow> = qb.build_query_as()?.fetch_all(db.reader()).await?;
    let mut qb = SqlBuilder::new(
        "SELECT c.annotation_id, c.old_value, c.created_at FROM annotation_changes c JOIN annotations a ON a.id = c.annotation_id
          WHERE c.field = 'status' AND a.widget_id IN (",
    );
    qb.push_bind_list(widget_ids.iter().copied());
    qb.push(") AND c.created_at >= ");
    qb.push_bind(start);
    qb.push(" ORDER BY c.created_at, c.id");
    let changes: Vec<StatusChange> = qb.build_query_as()?.fetch_all(db.reader()).await?;
    let mut by_annotation: HashMap<i64, Vec<&StatusChange>> = HashMap::new();
    for change in &changes {
        by_annotation.entry(change.annotation_id).or_default().push(change);
    }
    for (day, slot) in out.iter_mut().enumerate() {
        let end = (start + (day as i64 + 1) * DAY_MS - 1).min(now_ms);
        *slot = rows
            .iter()
            .filter(|a| a.created_at <= end)
            .filter(|a| {
                let later = by_annotation.get(&a.id).and_then(|list| list.iter().find(|c| c.created_at > end));
                match later {
                    Some(change) => change.old_value.as_deref() == Some(AnnotationStatus::New.as_str()),
                    None => a.status == AnnotationStatus::New,
                }
            })
            .count() as i64;
    }
    Ok(out)
}
