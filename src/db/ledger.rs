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

/// Checks a hub's entries one at a time, in `seq` order, keeping only the previous hash, so a
/// chain of any length is verified in constant memory (the CLI and the exports stream rows).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev: String,
    checked: usize,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { prev: GENESIS_HASH.to_owned(), checked: 0 }
    }
}

impl ChainVerifier {
    /// Checks the next entry: its position, its link to the previous entry and its own hash.
    pub fn push(&mut self, entry: &LedgerEntry) -> Result<(), ChainBreak> {
        let expected_seq = self.checked as i64 + 1;
        if entry.seq != expected_seq {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: format!("expected entry #{expected_seq}, found #{}", entry.seq),
            });
        }
        if entry.prev_hash != self.prev {
            return Err(ChainBreak {
                seq: entry.seq,
                reason: "prev_hash does not match the previous entry's hash".into(),
            });
        }
        if entry.expected_hash() != entry.hash {
            return Err(ChainBreak { seq: entry.seq, reason: "content does not match its hash".into() });
        }
        self.prev.clone_from(&entry.hash);
        self.checked += 1;
        Ok(())
    }

    /// How many entries checked out so far.
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// The hash of the last entry checked (the chain's head), or the genesis hash.
    pub fn head(&self) -> &str {
        &self.prev
    }
}

/// Walks a hub's entries (in `seq` order) and returns how many it checked, or the first break.
pub fn verify_chain(entries: &[LedgerEntry]) -> Result<usize, ChainBreak> {
    let mut verifier = ChainVerifier::default();
    for entry in entries {
        verifier.push(entry)?;
    }
    Ok(verifier.checked())
}

/// The verdict on one hub's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    /// Entries that checked out (before the break, if any).
    pub checked: usize,
    /// The hash of the last good entry: keep it elsewhere to notice the newest entries vanishing.
    pub head: String,
    pub broken: Option<ChainBreak>,
}

const ENTRY_COLUMNS: &str =
    "SELECT id, hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash
     FROM ledger_entries WHERE hub_id = $1";

/// Verifies a hub's chain, streaming its rows through `executor` (a pool, or a transaction
/// that acts for a viewer).
pub async fn verify_hub<'e, E>(executor: E, hub_id: i64) -> Result<ChainVerdict, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    use futures_util::TryStreamExt;

    let sql = format!("{ENTRY_COLUMNS} ORDER BY seq");
    let mut rows = sqlx::query_as::<_, LedgerEntry>(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch(executor);
    let mut verifier = ChainVerifier::default();
    let mut broken = None;
    while let Some(entry) = rows.try_next().await? {
        if let Err(found) = verifier.push(&entry) {
            broken = Some(found);
            break;
        }
    }
    Ok(ChainVerdict { checked: verifier.checked(), head: verifier.head().to_owned(), broken })
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

/// The outcome of verifying one or every hub's chain.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Verifies the chain of one hub (by slug) or of every hub: one line per hub with the number of
/// entries checked and `ok`, or the first broken entry and why.
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
        let verdict = verify_hub(db.reader(), id).await?;
        report.lines.push(match verdict.broken {
            None => format!("{slug}: {} entries checked, ok", verdict.checked),
            Some(broken) => {
                report.ok = false;
                format!(
                    "{slug}: {} entries checked, broken at entry #{}: {}",
                    verdict.checked + 1,
                    broken.seq,
                    broken.reason
                )
            }
        });
    }
    Ok(report)
}
