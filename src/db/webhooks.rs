//! Webhooks and their durable delivery queue.
//!
//! Deliveries are enqueued by database triggers (migration 0004) inside the transaction that
//! wrote the annotation or candidate, so every write path enqueues exactly once. The worker in
//! `crate::webhooks` claims due deliveries with a lease: [`claim_due`] pushes their
//! `next_attempt_at` past the lease in the same statement that selects them (on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, so instances sharing the database never claim the same row; on
//! SQLite the single writer serializes claims). A claimed delivery whose instance dies before
//! recording the outcome is due again when the lease runs out, so nothing is lost.

use super::{Db, StoreError, now_ms};

/// The events a webhook can subscribe to.
pub const EVENTS: [&str; 6] = [
    "annotation.created",
    "annotation.updated",
    "annotation.triaged",
    "annotation.replied",
    "candidate.created",
    "candidate.decided",
];

/// A webhook as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: i64,
    pub hub_id: i64,
    pub url: String,
    /// Space-separated event names.
    pub events: String,
    pub secret: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
}

impl Webhook {
    /// The subscribed events.
    pub fn event_list(&self) -> Vec<&str> {
        self.events.split_whitespace().collect()
    }
}

/// A webhook with its delivery counts, for the settings list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookSummary {
    pub id: i64,
    pub url: String,
    pub events: String,
    pub created_at: i64,
    pub archived_at: Option<i64>,
    pub pending: i64,
    pub failed: i64,
    pub delivered: i64,
}

/// One entry of the delivery log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// A claimed delivery with where to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub webhook_id: i64,
    pub event: String,
    pub payload: String,
    /// Attempts including this one.
    pub attempts: i64,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
}

const COLUMNS: &str = "id, hub_id, url, events, secret, created_at, archived_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event, payload, state, attempts, next_attempt_at, last_status, last_error, created_at, delivered_at";

/// Creates a webhook; `events` are space-separated names from [`EVENTS`].
pub async fn create(db: &Db, hub_id: i64, url: &str, events: &str, secret: &str) -> Result<Webhook, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhooks (hub_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(hub_id)
    .bind(url)
    .bind(events)
    .bind(secret)
    .bind(now_ms())
    .fetch_one(db.writer())
    .await?)
}

/// The webhooks of a hub (archived last) with their delivery counts.
pub async fn list_for_hub(db: &Db, hub_id: i64) -> Result<Vec<WebhookSummary>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT wh.id, wh.url, wh.events, wh.created_at, wh.archived_at,
            (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = wh.id AND d.state = 'pending') AS pending,
            (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = wh.id AND d.state = 'failed') AS failed,
            (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.webhook_id = wh.id AND d.state = 'delivered') AS delivered
         FROM webhooks wh WHERE wh.hub_id = $1
         ORDER BY wh.archived_at IS NOT NULL, wh.created_at DESC, wh.id DESC",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

/// The webhook `id` of hub `hub_id`, or [`StoreError::NotFound`].
pub async fn by_id(db: &Db, hub_id: i64, id: i64) -> Result<Webhook, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND hub_id = $2")))
        .bind(id)
        .bind(hub_id)
        .fetch_one(db.reader())
        .await?)
}

/// Archives (stops) or restores a webhook. Archiving gives up its pending deliveries, marked
/// failed with the reason, so restoring it later does not replay a backlog by surprise.
pub async fn set_archived(db: &Db, hub_id: i64, id: i64, archived: bool) -> Result<(), StoreError> {
    let now = now_ms();
    let mut tx = db.writer().begin().await?;
    let done = sqlx::query("UPDATE webhooks SET archived_at = $1 WHERE id = $2 AND hub_id = $3")
        .bind(archived.then_some(now))
        .bind(id)
        .bind(hub_id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    if archived {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_error = 'the webhook was archived'
             WHERE webhook_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The newest deliveries of a webhook, newest first.
pub async fn deliveries(db: &Db, webhook_id: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2"
    )))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?)
}

/// Queues the payload of delivery `delivery_id` again as a new delivery (the log keeps both).
/// Returns the new delivery's id; [`StoreError::NotFound`] unless the delivery belongs to a
/// live webhook of hub `hub_id`.
pub async fn replay(db: &Db, hub_id: i64, webhook_id: i64, delivery_id: i64) -> Result<i64, StoreError> {
    let now = now_ms();
    Ok(sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at)
         SELECT d.webhook_id, d.event, d.payload, $1, $1
           FROM webhook_deliveries d JOIN webhooks wh ON wh.id = d.webhook_id
          WHERE d.id = $2 AND d.webhook_id = $3 AND wh.hub_id = $4 AND wh.archived_at IS NULL
         RETURNING id",
    )
    .bind(now)
    .bind(delivery_id)
    .bind(webhook_id)
    .bind(hub_id)
    .fetch_one(db.writer())
    .await?)
}

/// When the next pending delivery is due (a cheap read, so an idle worker never takes the
/// SQLite writer just to find nothing).
pub async fn next_due_at(db: &Db) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'")
        .fetch_one(db.reader())
        .await?)
}

/// How many deliveries wait to be sent (the `ihf_webhook_queue_depth` gauge).
pub async fn queue_depth(db: &Db) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
        .fetch_one(db.reader())
        .await?)
}

/// Claims up to `limit` due deliveries for `lease_ms`: counts the attempt and moves
/// `next_attempt_at` to the end of the lease, in one statement. Deliveries to the webhooks in
/// `busy` (whose receivers are still answering earlier ones) are left for later.
pub async fn claim_due(
    db: &Db,
    now: i64,
    lease_ms: i64,
    limit: i64,
    busy: &[i64],
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let lock = db.backend().claim_lock();
    let mut claim =
        super::sql::SqlBuilder::new("UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ");
    claim
        .push_bind(now + lease_ms)
        .push(" WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ")
        .push_bind(now);
    if !busy.is_empty() {
        claim.push(" AND webhook_id NOT IN (").push_bind_list(busy.iter().copied()).push(")");
    }
    claim.push(" ORDER BY next_attempt_at, id LIMIT ").push_bind(limit).push(lock).push(") RETURNING id");
    let mut tx = db.begin_write().await?;
    let ids: Vec<i64> = claim.build_query_scalar()?.fetch_all(&mut *tx).await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut qb = super::sql::SqlBuilder::new(
        "SELECT d.id, d.webhook_id, d.event, d.payload, d.attempts, d.created_at, wh.url, wh.secret
           FROM webhook_deliveries d JOIN webhooks wh ON wh.id = d.webhook_id WHERE d.id IN (",
    );
    qb.push_bind_list(ids).push(") ORDER BY d.next_attempt_at, d.id");
    let claimed = qb.build_query_as()?.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Puts claimed deliveries back, due now, their attempt not counted (the worker claimed more
/// for one webhook than it sends to it at once).
pub async fn unclaim(db: &Db, ids: &[i64]) -> Result<(), StoreError> {
    let mut qb =
        super::sql::SqlBuilder::new("UPDATE webhook_deliveries SET attempts = attempts - 1, next_attempt_at = ");
    qb.push_bind(now_ms()).push(" WHERE state = 'pending' AND id IN (").push_bind_list(ids.iter().copied()).push(")");
    qb.build()?.execute(db.writer()).await?;
    Ok(())
}

/// What came of one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { status: i64 },
    /// It failed; try again at `retry_at`.
    Retry { status: Option<i64>, error: String, retry_at: i64 },
    /// It failed for good (out of time, or refused before sending).
    Failed { status: Option<i64>, error: String },
}

/// Records the outcome of an attempt on a claimed delivery.
pub async fn record(db: &Db, delivery_id: i64, outcome: &Outcome) -> Result<(), StoreError> {
    let now = now_ms();
    let query = match outcome {
        Outcome::Delivered { status } => sqlx::query(
            "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = $1, last_status = $2, last_error = NULL
             WHERE id = $3",
        )
        .bind(now)
        .bind(*status),
        Outcome::Retry { status, error, retry_at } => sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, last_status = $2, last_error = $3 WHERE id = $4",
        )
        .bind(*retry_at)
        .bind(*status)
        .bind(error.clone()),
        Outcome::Failed { status, error } => sqlx::query(
            "UPDATE webhook_deliveries SET state = 'failed', last_status = $1, last_error = $2 WHERE id = $3",
        )
        .bind(*status)
        .bind(error.clone()),
    };
    query.bind(delivery_id).execute(db.writer()).await?;
    Ok(())
}
