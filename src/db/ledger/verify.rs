//! Verifying the ledger: a hub's chain walked entry by entry, with its Merkle tree and its
//! checkpoints, and the report over one or every hub.

use super::entry::{GENESIS_HASH, LedgerEntry};
use crate::db::{Db, StoreError, ledger_tree};
use crate::transparency::merkle;

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
            let hub = crate::db::hubs::by_slug(db, slug).await?;
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
