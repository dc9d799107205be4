//! Interaction events streamed by widgets.

use sqlx::{Any, Transaction};

use super::sql::SqlBuilder;

use super::{Db, StoreError};

/// The kinds of interaction event a widget may send.
pub const KINDS: [&str; 10] =
    ["view", "click", "hover", "scroll", "input", "submit", "error", "rage_click", "dead_click", "custom"];

/// An event to insert.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub hub_id: i64,
    pub widget_id: i64,
    pub kind: String,
    pub actor_id: Option<i64>,
    pub occurred_at: i64,
    pub payload: String,
}

/// A recent event as the dashboard's signal list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecentEvent {
    pub id: i64,
    pub kind: String,
    pub occurred_at: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub actor_name: Option<String>,
}

/// The `limit` most recent events of a hub, newest first.
pub async fn recent_for_hub(db: &Db, hub_id: i64, limit: i64) -> Result<Vec<RecentEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.kind, e.occurred_at, w.slug AS widget_slug, w.name AS widget_name, a.display_name AS actor_name
         FROM interaction_events e
         JOIN widgets w ON w.id = e.widget_id
         LEFT JOIN actors a ON a.id = e.actor_id
         WHERE e.hub_id = $1
         ORDER BY e.occurred_at DESC, e.id DESC
         LIMIT $2",
    )
    .bind(hub_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?)
}

/// Rows per INSERT statement: 6 parameters a row stays under SQLite's 32,766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts `events` with one multi-row INSERT per 500 rows, inside the caller's transaction.
pub async fn insert_batch(tx: &mut Transaction<'static, Any>, events: &[NewEvent]) -> Result<u64, StoreError> {
    let mut inserted = 0;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut sql = SqlBuilder::new(
            "INSERT INTO interaction_events (hub_id, widget_id, kind, actor_id, occurred_at, payload) VALUES ",
        );
        for (i, event) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.push_bind(event.hub_id).push(", ").push_bind(event.widget_id).push(", ");
            sql.push_bind(event.kind.clone()).push(", ").push_bind(event.actor_id).push(", ");
            sql.push_bind(event.occurred_at).push(", ").push_bind(event.payload.clone()).push(")");
        }
        inserted += sql.build()?.execute(&mut **tx).await?.rows_affected();
    }
    // PostgreSQL notifies through a statement trigger; SQLite's change feed gets one row per
    // batch and widget here rather than a trigger row per event.
    if (**tx).backend_name() != "PostgreSQL" {
        let mut widgets: Vec<(i64, i64)> = events.iter().map(|e| (e.hub_id, e.widget_id)).collect();
        widgets.sort_unstable();
        widgets.dedup();
        for (hub_id, widget_id) in widgets {
            sqlx::query(
                "INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) VALUES ('interaction_events', 'insert', $1, $2, NULL)",
            )
            .bind(hub_id)
            .bind(widget_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(inserted)
}

/// Inserts `events` in one transaction.
pub async fn insert(db: &Db, events: &[NewEvent]) -> Result<u64, StoreError> {
    let mut tx = db.writer().begin().await?;
    let inserted = insert_batch(&mut tx, events).await?;
    tx.commit().await?;
    Ok(inserted)
}
