//! A ledger entry: what it says, its canonical bytes and hash, adding one to its hub's chain, and
//! reading entries back.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use crate::db::{Db, StoreError, now_ms};
use crate::transparency::merkle::{self, Hash};

/// The `prev_hash` of a hub's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A ledger entry as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub hub_id: i64,
    pub seq: i64,
    pub candidate_id: Option<i64>,
    pub actor_id: i64,
    pub action: String,
    pub rationale: String,
    pub detail: String,
    pub created_at: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// What a new entry says.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub hub_id: i64,
    pub candidate_id: Option<i64>,
    pub actor_id: i64,
    pub action: &'a str,
    pub rationale: &'a str,
    pub detail: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    hub_id: i64,
    seq: i64,
    candidate_id: Option<i64>,
    actor_id: i64,
    action: &'a str,
    rationale: &'a str,
    detail: &'a str,
    created_at: i64,
    prev_hash: &'a str,
}

/// The canonical bytes of an entry with these fields (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub fn canonical_bytes(
    hub_id: i64,
    seq: i64,
    candidate_id: Option<i64>,
    actor_id: i64,
    action: &str,
    rationale: &str,
    detail: &str,
    created_at: i64,
    prev_hash: &str,
) -> Vec<u8> {
    let canonical = Canonical { hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash };
    // Serializing plain integers and strings cannot fail.
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// The hash of an entry with these fields (see the module documentation).
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    hub_id: i64,
    seq: i64,
    candidate_id: Option<i64>,
    actor_id: i64,
    action: &str,
    rationale: &str,
    detail: &str,
    created_at: i64,
    prev_hash: &str,
) -> String {
    let json = canonical_bytes(hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash);
    hex::encode(Sha256::digest(&json))
}

impl LedgerEntry {
    /// The canonical bytes of this entry: what its hash and its Merkle leaf are computed over.
    pub fn canonical(&self) -> Vec<u8> {
        canonical_bytes(
            self.hub_id,
            self.seq,
            self.candidate_id,
            self.actor_id,
            &self.action,
            &self.rationale,
            &self.detail,
            self.created_at,
            &self.prev_hash,
        )
    }

    /// The hash this entry should carry, recomputed from its fields.
    pub fn expected_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical()))
    }

    /// Its leaf hash in the hub's Merkle tree: `SHA-256(0x00 || canonical bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical())
    }
}

/// Adds an entry to its hub's hash chain (the next `seq`, linked to the previous hash).
pub(super) async fn insert(
    tx: &mut Transaction<'static, Any>,
    entry: &NewEntry<'_>,
) -> Result<LedgerEntry, StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM ledger_entries WHERE hub_id = $1 ORDER BY seq DESC LIMIT 1")
            .bind(entry.hub_id)
            .fetch_optional(&mut **tx)
            .await?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let created_at = now_ms();
    let hash = entry_hash(
        entry.hub_id,
        seq,
        entry.candidate_id,
        entry.actor_id,
        entry.action,
        entry.rationale,
        &entry.detail,
        created_at,
        &prev_hash,
    );
    Ok(sqlx::query_as(
        "INSERT INTO ledger_entries (hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id, hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash",
    )
    .bind(entry.hub_id)
    .bind(seq)
    .bind(entry.candidate_id)
    .bind(entry.actor_id)
    .bind(entry.action)
    .bind(entry.rationale)
    .bind(&entry.detail)
    .bind(created_at)
    .bind(&prev_hash)
    .bind(&hash)
    .fetch_one(&mut **tx)
    .await?)
}

/// Every entry of a hub, in chain order.
pub async fn for_hub(db: &Db, hub_id: i64) -> Result<Vec<LedgerEntry>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash
         FROM ledger_entries WHERE hub_id = $1 ORDER BY seq",
    )
    .bind(hub_id)
    .fetch_all(db.reader())
    .await?)
}

const ENTRY_COLUMNS: &str =
    "SELECT id, hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash
     FROM ledger_entries WHERE hub_id = $1";

/// Entry `seq` of a hub, if any.
pub async fn entry_at<'e, E>(executor: E, hub_id: i64, seq: i64) -> Result<Option<LedgerEntry>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{ENTRY_COLUMNS} AND seq = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).bind(seq).fetch_optional(executor).await?)
}

/// The newest entry of a hub, if any.
pub async fn last_entry<'e, E>(executor: E, hub_id: i64) -> Result<Option<LedgerEntry>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{ENTRY_COLUMNS} ORDER BY seq DESC LIMIT 1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_optional(executor).await?)
}

/// Up to `limit` entries of a hub after `after_seq`, in chain order (for exports, page by page).
pub async fn page_after<'e, E>(
    executor: E,
    hub_id: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<LedgerEntry>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{ENTRY_COLUMNS} AND seq > $2 ORDER BY seq LIMIT $3");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).bind(after_seq).bind(limit).fetch_all(executor).await?)
}
