//! The ledger page's verdict on a hub's log, checked in `O(log n)` from its newest checkpoint.

use sqlx::{Any, Transaction};

use super::checkpoints::latest_checkpoint;
use super::identity::LogIdentity;
use super::store::read_nodes;
use crate::db::StoreError;
use crate::db::ledger::entry::last_entry;
use crate::transparency::merkle::{NodeId, Span};
use crate::transparency::note::Checkpoint;

/// What the ledger page says about a hub's log, checked in `O(log n)` from the newest
/// checkpoint rather than by re-hashing the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadVerdict {
    /// Entries the latest checkpoint covers.
    pub size: u64,
    /// Its root hash (base64, as in the checkpoint).
    pub root: String,
    /// The key name that signed it.
    pub key_name: String,
    /// When it was signed (ms).
    pub signed_at: Option<i64>,
    /// What does not check out, if anything.
    pub problem: Option<String>,
}

/// Checks a hub's newest checkpoint: its signature, that it covers every entry (no more, no
/// fewer), that the newest entry matches its hash and its leaf, and that the stored tree has
/// the signed root. Reads run through `tx` (acting for the viewer).
pub async fn head_verdict(
    tx: &mut Transaction<'static, Any>,
    identity: &LogIdentity,
    hub_id: i64,
    hub_slug: &str,
) -> Result<HeadVerdict, StoreError> {
    let key = identity.verifier(hub_slug)?;
    let mut verdict =
        HeadVerdict { size: 0, root: String::new(), key_name: key.name.clone(), signed_at: None, problem: None };
    let latest = latest_checkpoint(&mut **tx, hub_id).await?;
    let last = last_entry(&mut **tx, hub_id).await?;
    let entries = last.as_ref().map_or(0, |e| e.seq as u64);
    let Some(latest) = latest else {
        if entries > 0 {
            verdict.problem = Some(format!("{entries} entries but no signed checkpoint"));
        }
        return Ok(verdict);
    };
    verdict.size = latest.tree_size as u64;
    verdict.signed_at = Some(latest.created_at);
    let checkpoint = match Checkpoint::open(&latest.note, &key) {
        Ok(checkpoint) => checkpoint,
        Err(e) => {
            verdict.problem = Some(format!("the latest checkpoint does not verify ({e})"));
            return Ok(verdict);
        }
    };
    verdict.root = checkpoint.root_base64();
    verdict.problem = if checkpoint.size != verdict.size || checkpoint.root != latest.root() {
        Some("the stored checkpoint row disagrees with its signed note".into())
    } else if entries < verdict.size {
        Some(format!(
            "the latest checkpoint covers {} entries but only {entries} remain: entries were removed",
            verdict.size
        ))
    } else if entries > verdict.size {
        Some(format!("{} entries are not covered by a signed checkpoint", entries - verdict.size))
    } else {
        match last {
            Some(entry) if entry.expected_hash() != entry.hash => {
                Some(format!("entry #{} does not match its hash", entry.seq))
            }
            Some(entry) => {
                let index = entry.seq as u64 - 1;
                let mut ids = Span { start: 0, end: verdict.size }.nodes();
                ids.push(NodeId::leaf(index));
                let nodes = read_nodes(&mut **tx, hub_id, &ids).await?;
                let root = Span { start: 0, end: verdict.size }.hash(|id| nodes.get(&id).copied());
                if nodes.get(&NodeId::leaf(index)) != Some(&entry.leaf_hash()) {
                    Some(format!("entry #{} does not match its leaf in the Merkle tree", entry.seq))
                } else if root != Some(checkpoint.root) {
                    Some("the Merkle tree does not have the signed root".into())
                } else {
                    None
                }
            }
            None => None,
        }
    };
    Ok(verdict)
}
