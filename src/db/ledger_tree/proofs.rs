//! Inclusion and consistency proofs from a hub's stored tree, and the answers the HTTP API and
//! the CLI give (hashes in base64, with the signed checkpoints they refer to).

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::checkpoints::{checkpoint_note, signed_size};
use super::identity::LogIdentity;
use super::store::{damaged, read_nodes};
use crate::db::StoreError;
use crate::db::ledger::entry::{LedgerEntry, entry_at};
use crate::transparency::merkle::{self, Hash, NodeId, Plan, Span};

/// That entry `seq` is in the tree of `tree_size` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    /// The stored leaf hash of the entry (an auditor recomputes it from the entry).
    pub leaf_hash: Hash,
    pub root: Hash,
    pub proof: Vec<Hash>,
}

/// That the tree of `from` entries is a prefix of the tree of `to` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub old_root: Hash,
    pub new_root: Hash,
    pub proof: Vec<Hash>,
}

fn hashes_of(plan: &Plan, nodes: &HashMap<NodeId, Hash>, hub_id: i64) -> Result<Vec<Hash>, StoreError> {
    plan.hashes(nodes).ok_or_else(|| damaged(format!("hub {hub_id}: a tree node a proof needs is missing")))
}

/// The inclusion proof of entry `seq` in a hub's tree of `size` entries (one query). `size`
/// must not exceed the tree; `None` when `seq` is not within `1..=size`.
pub async fn inclusion_proof<'e, E>(
    executor: E,
    hub_id: i64,
    seq: u64,
    size: u64,
) -> Result<Option<InclusionProof>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if seq == 0 || seq > size {
        return Ok(None);
    }
    let index = seq - 1;
    let mut spans = merkle::inclusion_spans(index, size);
    spans.push(Span { start: 0, end: size });
    spans.push(Span { start: index, end: seq });
    let plan = Plan { spans };
    let nodes = read_nodes(executor, hub_id, &plan.nodes()).await?;
    let mut hashes = hashes_of(&plan, &nodes, hub_id)?;
    let (leaf_hash, root) = match (hashes.pop(), hashes.pop()) {
        (Some(leaf), Some(root)) => (leaf, root),
        _ => return Err(damaged("an empty proof plan".into())),
    };
    Ok(Some(InclusionProof { seq, tree_size: size, leaf_hash, root, proof: hashes }))
}

/// The consistency proof from a hub's tree of `from` entries to its tree of `to` entries (one
/// query); `None` unless `from <= to`. `to` must not exceed the tree.
pub async fn consistency_proof<'e, E>(
    executor: E,
    hub_id: i64,
    from: u64,
    to: u64,
) -> Result<Option<ConsistencyProof>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if from > to {
        return Ok(None);
    }
    let mut spans = merkle::consistency_spans(from, to);
    spans.push(Span { start: 0, end: from });
    spans.push(Span { start: 0, end: to });
    let plan = Plan { spans };
    let nodes = read_nodes(executor, hub_id, &plan.nodes()).await?;
    let mut hashes = hashes_of(&plan, &nodes, hub_id)?;
    let (new_root, old_root) = match (hashes.pop(), hashes.pop()) {
        (Some(new), Some(old)) => (new, old),
        _ => return Err(damaged("an empty proof plan".into())),
    };
    Ok(Some(ConsistencyProof { from, to, old_root, new_root, proof: hashes }))
}

/// Base64, as checkpoints write hashes.
fn b64(hash: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// An inclusion proof as the HTTP API and the CLI give it (hashes in base64).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InclusionAnswer {
    pub origin: String,
    pub seq: u64,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub root_hash: String,
    pub proof: Vec<String>,
    /// The signed checkpoint of `tree_size` entries (with any cosignatures).
    pub checkpoint: Option<String>,
    /// The entry, whose canonical form hashes to `leaf_hash` if it is intact.
    pub entry: LedgerEntry,
}

/// A consistency proof as the HTTP API and the CLI give it (hashes in base64).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsistencyAnswer {
    pub origin: String,
    pub from: u64,
    pub to: u64,
    pub old_root: String,
    pub new_root: String,
    pub proof: Vec<String>,
    pub old_checkpoint: Option<String>,
    pub new_checkpoint: Option<String>,
}

/// The inclusion proof of entry `seq` against the tree of `size` entries (the newest signed
/// size when `None`), or why it cannot be given.
pub async fn prove_inclusion(
    tx: &mut Transaction<'static, Any>,
    identity: &LogIdentity,
    hub_id: i64,
    hub_slug: &str,
    seq: u64,
    size: Option<u64>,
) -> Result<Result<InclusionAnswer, String>, StoreError> {
    let signed = signed_size(&mut **tx, hub_id).await?;
    let size = size.unwrap_or(signed);
    if size > signed {
        return Ok(Err(format!("the tree has {signed} signed entries, not {size}")));
    }
    let Some(proof) = inclusion_proof(&mut **tx, hub_id, seq, size).await? else {
        return Ok(Err(format!("there is no entry #{seq} in the tree of {size} entries")));
    };
    let entry = entry_at(&mut **tx, hub_id, seq as i64).await?;
    let Some(entry) = entry else {
        return Ok(Err(format!("entry #{seq} is missing from the ledger")));
    };
    Ok(Ok(InclusionAnswer {
        origin: identity.origin(hub_slug),
        seq,
        leaf_index: seq - 1,
        tree_size: size,
        leaf_hash: b64(&proof.leaf_hash),
        root_hash: b64(&proof.root),
        proof: proof.proof.iter().map(b64).collect(),
        checkpoint: checkpoint_note(tx, hub_id, size).await?,
        entry,
    }))
}

/// The consistency proof from the tree of `from` entries to the tree of `to` entries (the
/// newest signed size when `None`), or why it cannot be given.
pub async fn prove_consistency(
    tx: &mut Transaction<'static, Any>,
    identity: &LogIdentity,
    hub_id: i64,
    hub_slug: &str,
    from: u64,
    to: Option<u64>,
) -> Result<Result<ConsistencyAnswer, String>, StoreError> {
    let signed = signed_size(&mut **tx, hub_id).await?;
    let to = to.unwrap_or(signed);
    if to > signed {
        return Ok(Err(format!("the tree has {signed} signed entries, not {to}")));
    }
    let Some(proof) = consistency_proof(&mut **tx, hub_id, from, to).await? else {
        return Ok(Err(format!(
            "a tree of {from} entries cannot be a prefix of one of {to}: the log has {signed} signed entries now"
        )));
    };
    Ok(Ok(ConsistencyAnswer {
        origin: identity.origin(hub_slug),
        from,
        to,
        old_root: b64(&proof.old_root),
        new_root: b64(&proof.new_root),
        proof: proof.proof.iter().map(b64).collect(),
        old_checkpoint: checkpoint_note(tx, hub_id, from).await?,
        new_checkpoint: checkpoint_note(tx, hub_id, to).await?,
    }))
}
