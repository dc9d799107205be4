//! The governance ledger: append-only entries, one SHA-256 hash chain per hub.
//!
//! An entry's hash is `SHA-256(canonical)` in lowercase hex, where `canonical` is the compact
//! JSON object below, keys in exactly this order, no whitespace, strings JSON-escaped:
//!
//! `{"hub_id":1,"seq":3,"candidate_id":7,"actor_id":2,"action":"status_changed","rationale":"…","detail":"{…}","created_at":1700000000000,"prev_hash":"…"}`
//!
//! `candidate_id` is `null` when the entry concerns no candidate; `detail` is the stored detail
//! text (itself JSON) as a string; `prev_hash` is the previous entry's hash in the hub, or 64
//! zeros for the first (`seq` 1). Changing any field of any entry breaks its hash, and removing
//! or reordering entries breaks the chain.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::{Backend, Db, StoreError, now_ms};

/// The `prev_hash` of a hub's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A ledger entry as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
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
    let canonical = Canonical { hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash };
    // Serializing plain integers and strings cannot fail.
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

impl LedgerEntry {
    /// The hash this entry should carry, recomputed from its fields.
    pub fn expected_hash(&self) -> String {
        entry_hash(
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
}

/// Appends an entry to its hub's chain inside the caller's transaction.
///
/// On PostgreSQL the hub row is locked first so concurrent appends to one hub queue up; on
/// SQLite the single writer connection already serializes them.
pub async fn append(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    entry: &NewEntry<'_>,
) -> Result<LedgerEntry, StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT id FROM hubs WHERE id = $1 FOR UPDATE").bind(entry.hub_id).execute(&mut **tx).await?;
    }
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

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: String,
}

/// Walks a hub's entries (in `seq` order) and returns the first break, if any.
pub fn verify_chain(entries: &[LedgerEntry]) -> Result<usize, ChainBreak> {
    let mut prev = GENESIS_HASH.to_owned();
    for (index, entry) in entries.iter().enumerate() {
        let expected_seq = index as i64 + 1;
        if entry.seq != expected_seq {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: format!("expected entry #{expected_seq}, found #{}", entry.seq),
            });
        }
        if entry.prev_hash != prev {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: "prev_hash does not match the previous entry's hash".into(),
            });
        }
        if entry.expected_hash() != entry.hash {
            return Err(ChainBreak { seq: entry.seq, reason: "content does not match its hash".into() });
        }
        prev = entry.hash.clone();
    }
    Ok(entries.len())
}

/// The outcome of verifying one or every hub's chain.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Verifies the chain of one hub (by slug) or of every hub.
pub async fn verify_all(db: &Db, hub_slug: Option<&str>) -> Result<VerifyReport, StoreError> {
    let hubs: Vec<(i64, String)> = match hub_slug {
        Some(slug) => vec![{
            let hub = super::hubs::by_slug(db, slug).await?;
            (hub.id, hub.slug)
        }],
        None => sqlx::query_as("SELECT id, slug FROM hubs ORDER BY slug").fetch_all(db.reader()).await?,
    };
    let mut report = VerifyReport { ok: true, lines: Vec::new() };
    for (id, slug) in hubs {
        let entries = for_hub(db, id).await?;
        match verify_chain(&entries) {
            Ok(checked) => report.lines.push(format!("{slug}: {checked} entries checked, ok")),
            Err(broken) => {
                report.ok = false;
                report.lines.push(format!("{slug}: broken at entry #{}: {}", broken.seq, broken.reason));
            }
        }
    }
    Ok(report)
}
