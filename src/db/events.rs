//! Interaction events streamed by widgets.

use std::fmt::Write as _;

use sqlx::{Any, Transaction};

use super::{Backend, Db, Dialect, StoreError};

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

/// The INSERT of a batch, its rows expanded by the database from one JSON array parameter
/// (`[[hub_id, widget_id, kind, actor_id, occurred_at, payload], …]`). One parameter instead of
/// six a row: sqlx's SQLite binding looks each numbered parameter up by a linear scan, so
/// binding thousands of them costs time quadratic in their number. The array is read once into
/// the binary JSON form (`jsonb_each`, `jsonb_array_elements`); the dialects differ only there.
const INSERT_SQLITE: &str = "INSERT INTO interaction_events (hub_id, widget_id, kind, actor_id, occurred_at, payload) \
     SELECT CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), value ->> 2, CAST(value ->> 3 AS BIGINT), \
     CAST(value ->> 4 AS BIGINT), value ->> 5 FROM jsonb_each($1)";
const INSERT_POSTGRES: &str = "INSERT INTO interaction_events (hub_id, widget_id, kind, actor_id, occurred_at, payload) \
     SELECT CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), value ->> 2, CAST(value ->> 3 AS BIGINT), \
     CAST(value ->> 4 AS BIGINT), value ->> 5 FROM jsonb_array_elements(CAST($1 AS JSONB))";

/// SQLite's change feed: one row per widget an INSERT touched (PostgreSQL notifies through a
/// statement trigger), from a JSON array of `[hub_id, widget_id]` pairs.
const CHANGE_LOG_SQLITE: &str = "INSERT INTO change_log (table_name, op, hub_id, widget_id, row_id) \
     SELECT 'interaction_events', 'insert', CAST(value ->> 0 AS BIGINT), CAST(value ->> 1 AS BIGINT), NULL FROM json_each($1)";

/// Events encoded for the INSERT, ready to be sent alone or together with other batches.
#[derive(Debug, Clone)]
pub struct EncodedEvents {
    /// The rows of the JSON array, without its brackets.
    rows: String,
    len: u64,
    /// The (hub, widget) pairs the rows belong to, sorted, without repeats.
    widgets: Vec<(i64, i64)>,
}

impl EncodedEvents {
    /// Encodes `events`; their payloads are JSON objects already.
    pub fn new(events: &[NewEvent]) -> Self {
        let mut rows = String::with_capacity(events.iter().map(|e| e.payload.len() + 64).sum());
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                rows.push(',');
            }
            // Kinds are lowercase words (the column's CHECK holds them to `KINDS`): no escaping.
            let _ = write!(rows, "[{},{},\"{}\",", event.hub_id, event.widget_id, event.kind);
            let _ = match event.actor_id {
                Some(actor) => write!(rows, "{actor},"),
                None => write!(rows, "null,"),
            };
            let _ = write!(rows, "{},{}]", event.occurred_at, event.payload);
        }
        let mut widgets: Vec<(i64, i64)> = events.iter().map(|e| (e.hub_id, e.widget_id)).collect();
        widgets.sort_unstable();
        widgets.dedup();
        Self { rows, len: events.len() as u64, widgets }
    }

    /// How many events.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Inserts `batches` with one statement inside the caller's transaction (plus one change-log
/// statement on SQLite); returns the rows inserted.
pub async fn insert_encoded(tx: &mut Transaction<'static, Any>, batches: &[&EncodedEvents]) -> Result<u64, StoreError> {
    let batches: Vec<&EncodedEvents> = batches.iter().copied().filter(|b| !b.is_empty()).collect();
    if batches.is_empty() {
        return Ok(0);
    }
    let mut rows = String::with_capacity(batches.iter().map(|b| b.rows.len() + 1).sum::<usize>() + 1);
    rows.push('[');
    for (i, batch) in batches.iter().enumerate() {
        if i > 0 {
            rows.push(',');
        }
        rows.push_str(&batch.rows);
    }
    rows.push(']');
    let postgres = tx.backend() == Backend::Postgres;
    let insert = if postgres { INSERT_POSTGRES } else { INSERT_SQLITE };
    let inserted = sqlx::query(insert).bind(rows).execute(&mut **tx).await?.rows_affected();
    if !postgres {
        let mut widgets: Vec<(i64, i64)> = batches.iter().flat_map(|b| b.widgets.iter().copied()).collect();
        widgets.sort_unstable();
        widgets.dedup();
        let pairs = widgets.iter().map(|(hub, widget)| format!("[{hub},{widget}]")).collect::<Vec<_>>().join(",");
        sqlx::query(CHANGE_LOG_SQLITE).bind(format!("[{pairs}]")).execute(&mut **tx).await?;
    }
    Ok(inserted)
}

/// Inserts `events` inside the caller's transaction.
pub async fn insert_batch(tx: &mut Transaction<'static, Any>, events: &[NewEvent]) -> Result<u64, StoreError> {
    insert_encoded(tx, &[&EncodedEvents::new(events)]).await
}

/// Inserts `events` in one transaction.
pub async fn insert(db: &Db, events: &[NewEvent]) -> Result<u64, StoreError> {
    commit_encoded(db, &[&EncodedEvents::new(events)]).await
}

/// Inserts `batches` with one statement in one transaction on the writer.
pub async fn commit_encoded(db: &Db, batches: &[&EncodedEvents]) -> Result<u64, StoreError> {
    let written = async {
        let mut tx = db.begin_write().await?;
        let inserted = insert_encoded(&mut tx, batches).await?;
        tx.commit().await?;
        Ok(inserted)
    };
    db.note(written.await)
}
