//! Interaction events streamed by widgets.

use std::fmt::Write as _;

use sqlx::{Any, Transaction};

use super::{Db, StoreError};

/// The kinds of interaction event a widget may send.
pub const KINDS: [&str; 10] =
    ["view", "click", "hover", "scroll", "input", "submit", "error", "rage_click", "dead_click", "custom"];

/// An event to insert.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub hub_id: i64,
    pub widget_id: i64,
    /// One of [`KINDS`].
    pub kind: &'static str,
    pub actor_id: Option<i64>,
    pub occurred_at: i64,
    /// The text of a JSON object.
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

/// Events per INSERT statement; a batch travels as one JSON parameter, so this only bounds
/// how long one statement holds the writer.
const ROWS_PER_STATEMENT: usize = 1000;

/// The INSERT of a batch, the rows expanded from one JSON array parameter by the database
/// (`[[hub_id, widget_id, kind, actor_id, occurred_at, payload], …]`). One bound parameter per
/// statement instead of six per row: binding thousands of numbered parameters costs SQLite
/// time quadratic in their number. The dialects differ only in the array function.
const INSERT_SQLITE: &str = "INSERT INTO interaction_events (hub_id, widget_id, kind, actor_id, occurred_at, payload) \
     SELECT CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), value ->> 2, CAST(value ->> 3 AS BIGINT), \
     CAST(value ->> 4 AS BIGINT), value ->> 5 FROM json_each($1)";
const INSERT_POSTGRES: &str = "INSERT INTO interaction_events (hub_id, widget_id, kind, actor_id, occurred_at, payload) \
     SELECT CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), value ->> 2, CAST(value ->> 3 AS BIGINT), \
     CAST(value ->> 4 AS BIGINT), value ->> 5 FROM json_array_elements(CAST($1 AS JSON))";

/// `events` as the JSON array the INSERT expands; payloads are JSON objects already.
fn rows_json(events: &[NewEvent]) -> String {
    let mut json = String::with_capacity(events.iter().map(|e| e.payload.len() + 64).sum());
    json.push('[');
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        // Kinds are lowercase words (the column's CHECK holds them to `KINDS`): no escaping.
        let _ = write!(json, "[{},{},\"{}\",", event.hub_id, event.widget_id, event.kind);
        let _ = match event.actor_id {
            Some(actor) => write!(json, "{actor},"),
            None => write!(json, "null,"),
        };
        let _ = write!(json, "{},{}]", event.occurred_at, event.payload);
    }
    json.push(']');
    json
}

/// Inserts `events` inside the caller's transaction, a statement per 1,000.
pub async fn insert_batch(tx: &mut Transaction<'static, Any>, events: &[NewEvent]) -> Result<u64, StoreError> {
    let postgres = (**tx).backend_name() == "PostgreSQL";
    let insert = if postgres { INSERT_POSTGRES } else { INSERT_SQLITE };
    let mut inserted = 0;
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        inserted += sqlx::query(insert).bind(rows_json(chunk)).execute(&mut **tx).await?.rows_affected();
    }
    // PostgreSQL notifies through a statement trigger; SQLite's change feed gets one row per
    // batch and widget here rather than a trigger row per event.
    if !postgres {
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
