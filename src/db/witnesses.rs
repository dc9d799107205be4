//! A hub's witnesses: where its checkpoints are sent for cosigning, and what they returned.
//!
//! A witness (C2SP `tlog-witness`) is a URL prefix and a cosigning key. Its row is its durable
//! queue: `cosigned_size` is the size it last cosigned, so a witness behind the newest
//! checkpoint is due; the worker sends it the newest checkpoint with a consistency proof from
//! that size (a burst of appends becomes one request), and on failure waits `next_attempt_at`.
//! A claim is `next_attempt_at` moved past a lease (see [`claim_due`]): no extra lock table.

use sqlx::Any;

use super::{Db, StoreError, now_ms};

/// A witness as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Witness {
    pub id: i64,
    pub hub_id: i64,
    pub url: String,
    pub vkey: String,
    pub name: String,
    pub cosigned_size: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "SELECT id, hub_id, url, vkey, name, cosigned_size, attempts, next_attempt_at, last_error
     FROM ledger_witnesses";

/// Adds a witness to a hub (`name` is the key name of `vkey`); returns its id. A witness
/// removed earlier at this URL comes back with the new key, starting again from size 0 (the
/// witness answers with the size it has). [`StoreError::Conflict`] when the hub has a witness
/// at this URL already.
pub async fn add(db: &Db, hub_id: i64, url: &str, vkey: &str, name: &str) -> Result<i64, StoreError> {
    let revived: Option<i64> = sqlx::query_scalar(
        "UPDATE ledger_witnesses SET archived_at = NULL, vkey = $3, name = $4, cosigned_size = 0, attempts = 0,
                next_attempt_at = 0, last_error = NULL
         WHERE hub_id = $1 AND url = $2 AND archived_at IS NOT NULL RETURNING id",
    )
    .bind(hub_id)
    .bind(url)
    .bind(vkey)
    .bind(name)
    .fetch_optional(db.writer())
    .await?;
    if let Some(id) = revived {
        return Ok(id);
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO ledger_witnesses (hub_id, url, vkey, name, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(url)
    .bind(vkey)
    .bind(name)
    .bind(now_ms())
    .fetch_one(db.writer())
    .await?)
}

/// A hub's witnesses (not archived), oldest first.
pub async fn for_hub<'e, E>(executor: E, hub_id: i64) -> Result<Vec<Witness>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{COLUMNS} WHERE hub_id = $1 AND archived_at IS NULL ORDER BY id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_all(executor).await?)
}

/// The cosigning keys of a hub's witnesses.
pub async fn keys<'e, E>(executor: E, hub_id: i64) -> Result<Vec<String>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(sqlx::query_scalar("SELECT vkey FROM ledger_witnesses WHERE hub_id = $1 AND archived_at IS NULL ORDER BY id")
        .bind(hub_id)
        .fetch_all(executor)
        .await?)
}

/// A witness by id in a hub (archived ones too).
pub async fn by_id(db: &Db, hub_id: i64, id: i64) -> Result<Witness, StoreError> {
    let sql = format!("{COLUMNS} WHERE hub_id = $1 AND id = $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(hub_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?
        .ok_or(StoreError::NotFound)
}

/// Removes a witness from a hub: it is sent nothing more; the cosignatures it returned stay
/// (they were verified when they came, and auditors may hold checkpoints that carry them).
/// [`StoreError::NotFound`] when the hub has no such witness.
pub async fn archive(db: &Db, hub_id: i64, id: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE ledger_witnesses SET archived_at = $3 WHERE hub_id = $1 AND id = $2 AND archived_at IS NULL",
    )
    .bind(hub_id)
    .bind(id)
    .bind(now_ms())
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// What a hub's page says about one witness: who, what it last cosigned and when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Cosigner {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub cosigned_size: i64,
    /// When it signed the checkpoint of `cosigned_size` entries (seconds, from its cosignature).
    pub signed_at: Option<i64>,
    pub last_error: Option<String>,
}

impl Cosigner {
    /// When it signed, in milliseconds.
    pub fn signed_at_ms(&self) -> Option<i64> {
        self.signed_at.map(|s| s.saturating_mul(1000))
    }

    /// Whether it cosigned the checkpoint of `size` entries (or a later one).
    pub fn covers(&self, size: impl std::borrow::Borrow<u64>) -> bool {
        self.cosigned_size >= 0 && self.cosigned_size as u64 >= *size.borrow()
    }
}

/// A hub's witnesses with the newest checkpoint each cosigned, as verified and stored here
/// (readable by hub members).
pub async fn cosigners<'e, E>(executor: E, hub_id: i64) -> Result<Vec<Cosigner>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(sqlx::query_as(
        // What it cosigned is what this log verified and stored, not the size the witness says
        // it has (a 409 answer is not signed).
        "SELECT w.id, w.name, w.url, COALESCE(c.tree_size, 0) AS cosigned_size, c.signed_at, w.last_error
         FROM ledger_witnesses w
         LEFT JOIN ledger_cosignatures c ON c.hub_id = w.hub_id AND c.witness_id = w.id
              AND c.tree_size = (SELECT MAX(x.tree_size) FROM ledger_cosignatures x
                                 WHERE x.hub_id = w.hub_id AND x.witness_id = w.id)
         WHERE w.hub_id = $1 AND w.archived_at IS NULL ORDER BY w.id",
    )
    .bind(hub_id)
    .fetch_all(executor)
    .await?)
}

/// A witness claimed for one attempt, with what to send it.
#[derive(Debug, Clone)]
pub struct ClaimedWitness {
    pub witness: Witness,
    pub hub_slug: String,
    /// The size of the hub's newest checkpoint, the one to send.
    pub size: i64,
}

/// Claims up to `limit` witnesses that are behind their hub's newest checkpoint and due, each
/// for `lease_ms`: a claim moves `next_attempt_at` past the lease only if nobody else moved it
/// first, so one witness is sent one request at a time across every instance, and a crashed
/// sender's claim runs out by itself. Each claim counts an attempt. The newest size is one
/// index lookup per due witness (`MAX` over the checkpoints' primary key), not a scan.
pub async fn claim_due(db: &Db, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<ClaimedWitness>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Due {
        id: i64,
        next_attempt_at: i64,
        cosigned_size: i64,
        slug: String,
        size: i64,
    }
    let due: Vec<Due> = sqlx::query_as(
        "SELECT w.id, w.next_attempt_at, w.cosigned_size, h.slug, s.size
         FROM ledger_witnesses w
         JOIN hubs h ON h.id = w.hub_id
         JOIN (SELECT w2.id,
                      (SELECT MAX(c.tree_size) FROM ledger_checkpoints c WHERE c.hub_id = w2.hub_id) AS size
               FROM ledger_witnesses w2
               WHERE w2.archived_at IS NULL AND w2.next_attempt_at <= $1) s ON s.id = w.id
         WHERE s.size IS NOT NULL AND w.cosigned_size < s.size
         ORDER BY w.next_attempt_at, w.id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in due {
        let done = sqlx::query(
            "UPDATE ledger_witnesses SET next_attempt_at = $2, attempts = attempts + 1
             WHERE id = $1 AND next_attempt_at = $3 AND cosigned_size = $4 AND archived_at IS NULL",
        )
        .bind(row.id)
        .bind(now + lease_ms)
        .bind(row.next_attempt_at)
        .bind(row.cosigned_size)
        .execute(db.writer())
        .await?;
        if done.rows_affected() == 1 {
            let sql = format!("{COLUMNS} WHERE id = $1");
            let witness: Witness = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(row.id).fetch_one(db.writer()).await?;
            claimed.push(ClaimedWitness { witness, hub_slug: row.slug, size: row.size });
        }
    }
    Ok(claimed)
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The witness cosigned the checkpoint of `size` entries; `line` verified against its key.
    Cosigned { size: i64, line: String, signed_at: i64 },
    /// The witness has cosigned `size` entries, not what we thought: send again from there now.
    SizeIs { size: i64, error: String },
    /// Try again at `retry_at`.
    Retry { error: String, retry_at: i64 },
}

/// Records an attempt's outcome and releases the claim (idempotent).
pub async fn record(db: &Db, witness: &Witness, attempt: &Attempt) -> Result<(), StoreError> {
    match attempt {
        Attempt::Cosigned { size, line, signed_at } => {
            let mut tx = db.writer().begin().await?;
            sqlx::query(
                "INSERT INTO ledger_cosignatures (hub_id, tree_size, witness_id, line, signed_at, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hub_id, tree_size, witness_id) DO NOTHING",
            )
            .bind(witness.hub_id)
            .bind(size)
            .bind(witness.id)
            .bind(line)
            .bind(signed_at)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE ledger_witnesses SET cosigned_size = CASE WHEN cosigned_size < $2 THEN $2 ELSE cosigned_size END,
                        attempts = 0, next_attempt_at = 0, last_error = NULL
                 WHERE id = $1",
            )
            .bind(witness.id)
            .bind(size)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Attempt::SizeIs { size, error } => {
            sqlx::query(
                "UPDATE ledger_witnesses SET cosigned_size = $2, next_attempt_at = 0, last_error = $3 WHERE id = $1",
            )
            .bind(witness.id)
            .bind(size)
            .bind(error)
            .execute(db.writer())
            .await?;
        }
        Attempt::Retry { error, retry_at } => {
            sqlx::query("UPDATE ledger_witnesses SET next_attempt_at = $2, last_error = $3 WHERE id = $1")
                .bind(witness.id)
                .bind(retry_at)
                .bind(error)
                .execute(db.writer())
                .await?;
        }
    }
    Ok(())
}
