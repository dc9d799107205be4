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
//!
//! The same canonical bytes are the entry's leaf in the hub's Merkle tree, which the append
//! extends and checkpoints in the same transaction (see [`super::ledger_tree`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::{Backend, Db, Dialect, StoreError, ledger_tree, now_ms};
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

/// Appends an entry to its hub's chain inside the caller's transaction, adds it to the hub's
/// Merkle tree and signs the new checkpoint (all in that transaction).
///
/// On PostgreSQL the hub row is locked first so concurrent appends to one hub queue up; on
/// SQLite the single writer connection already serializes them.
pub async fn append(tx: &mut Transaction<'static, Any>, entry: &NewEntry<'_>) -> Result<LedgerEntry, StoreError> {
    let (slug, identity) = ledger_tree::prepare_append(tx, entry.hub_id).await?;
    let stored = insert(tx, entry).await?;
    ledger_tree::record_append(tx, &identity, entry.hub_id, &slug, stored.seq, stored.leaf_hash()).await?;
    Ok(stored)
}

/// The hash chain alone, without the tree and the checkpoint: what an append cost before the
/// ledger became a transparency log. Only for the benchmark that compares the two; a ledger
/// written this way has no tree (see [`ledger_tree::backfill`]).
#[doc(hidden)]
pub async fn append_chain_only(
    tx: &mut Transaction<'static, Any>,
    entry: &NewEntry<'_>,
) -> Result<LedgerEntry, StoreError> {
    if tx.backend() == Backend::Postgres {
        let sql = format!("SELECT id FROM hubs WHERE id = $1{}", ledger_tree::HUB_APPEND_LOCK);
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(entry.hub_id).execute(&mut **tx).await?;
    }
    insert(tx, entry).await
}

async fn insert(tx: &mut Transaction<'static, Any>, entry: &NewEntry<'_>) -> Result<LedgerEntry, StoreError> {
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

/// The verdict on one hub's chain and tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainVerdict {
    /// Entries that checked out (before the break, if any).
    pub checked: usize,
    /// The hash of the last good entry: keep it elsewhere to notice the newest entries vanishing.
    pub head: String,
    pub broken: Option<ChainBreak>,
    /// Checkpoints whose root was recomputed from the entries and matched.
    pub checkpoints: usize,
    /// A problem with the log as a whole (after the walk): checkpoints beyond the entries, a
    /// signature that does not verify.
    pub log_problem: Option<String>,
}

const ENTRY_COLUMNS: &str =
    "SELECT id, hub_id, seq, candidate_id, actor_id, action, rationale, detail, created_at, prev_hash, hash
     FROM ledger_entries WHERE hub_id = $1";

/// An entry with its stored leaf and, when one was signed at its size, the checkpoint's root.
#[derive(sqlx::FromRow)]
struct WalkRow {
    #[sqlx(flatten)]
    entry: LedgerEntry,
    leaf: Option<Vec<u8>>,
    checkpoint_root: Option<Vec<u8>>,
}

/// Verifies a hub's chain and tree in one streaming pass (constant memory): each entry's
/// position, link and hash, its leaf in the Merkle tree, and the root of every checkpoint
/// against the tree recomputed from the entries; then that no checkpoint covers more entries
/// than remain and that the newest checkpoint's signature verifies.
pub async fn verify_hub(db: &Db, hub_id: i64, hub_slug: &str) -> Result<ChainVerdict, StoreError> {
    use futures_util::TryStreamExt;

    let mut rows = sqlx::query_as::<_, WalkRow>(
        "SELECT e.id, e.hub_id, e.seq, e.candidate_id, e.actor_id, e.action, e.rationale, e.detail, e.created_at,
                e.prev_hash, e.hash, n.hash AS leaf, c.root_hash AS checkpoint_root
         FROM ledger_entries e
         LEFT JOIN ledger_tree_nodes n ON n.hub_id = e.hub_id AND n.level = 0 AND n.idx = e.seq - 1
         LEFT JOIN ledger_checkpoints c ON c.hub_id = e.hub_id AND c.tree_size = e.seq
         WHERE e.hub_id = $1 ORDER BY e.seq",
    )
    .bind(hub_id)
    .fetch(db.reader());
    let mut verifier = ChainVerifier::default();
    let mut tree = merkle::Frontier::default();
    let (mut broken, mut checkpoints) = (None, 0);
    while let Some(row) = rows.try_next().await? {
        let entry = &row.entry;
        if let Err(found) = verifier.push(entry) {
            broken = Some(found);
            break;
        }
        let leaf = entry.leaf_hash();
        if row.leaf.as_deref() != Some(leaf.as_slice()) {
            let reason = if row.leaf.is_none() {
                "missing from the Merkle tree"
            } else {
                "does not match its leaf in the Merkle tree"
            };
            broken = Some(ChainBreak { seq: entry.seq, reason: reason.into() });
            verifier.checked -= 1;
            break;
        }
        tree.push(leaf);
        if let Some(root) = row.checkpoint_root {
            if root != tree.root() {
                broken = Some(ChainBreak {
                    seq: entry.seq,
                    reason: format!("the signed checkpoint of {} entries does not match the entries", entry.seq),
                });
                break;
            }
            checkpoints += 1;
        }
    }
    drop(rows);
    let mut log_problem = None;
    if broken.is_none() {
        let latest = ledger_tree::latest_checkpoint(db.reader(), hub_id).await?;
        if let Some(latest) = latest {
            let key = ledger_tree::identity(db).await?.verifier(hub_slug)?;
            if latest.tree_size as u64 > tree.size() {
                log_problem = Some(format!(
                    "a signed checkpoint covers {} entries but only {} remain: entries were removed",
                    latest.tree_size,
                    tree.size()
                ));
            } else if let Err(e) = crate::transparency::note::Checkpoint::open(&latest.note, &key) {
                log_problem = Some(format!("the latest checkpoint's signature does not verify ({e})"));
            } else if (latest.tree_size as u64) < tree.size() {
                log_problem = Some(format!(
                    "{} entries are not covered by a signed checkpoint",
                    tree.size() - latest.tree_size as u64
                ));
            }
        } else if tree.size() > 0 {
            log_problem = Some(format!("{} entries but no signed checkpoint", tree.size()));
        }
    }
    Ok(ChainVerdict { checked: verifier.checked(), head: verifier.head().to_owned(), broken, checkpoints, log_problem })
}

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

/// The outcome of verifying one or every hub's chain.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub ok: bool,
    pub lines: Vec<String>,
}

/// Verifies the chain and tree of one hub (by slug) or of every hub: one line per hub with the
/// number of entries checked and `ok`, or the first broken entry and why.
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
        let verdict = verify_hub(db, id, &slug).await?;
        report.lines.push(match (verdict.broken, verdict.log_problem) {
            (None, None) => format!(
                "{slug}: {} entries checked, ok (Merkle tree and {} signed checkpoints match)",
                verdict.checked, verdict.checkpoints
            ),
            (Some(broken), _) => {
                report.ok = false;
                format!(
                    "{slug}: {} entries checked, broken at entry #{}: {}",
                    verdict.checked + 1,
                    broken.seq,
                    broken.reason
                )
            }
            (None, Some(problem)) => {
                report.ok = false;
                format!("{slug}: {} entries checked, broken: {problem}", verdict.checked)
            }
        });
    }
    Ok(report)
}
