//! Appending to the ledger: the entry, its leaf in the hub's Merkle tree and the signed
//! checkpoint, in the caller's transaction.

use sqlx::{Any, Transaction};

use super::entry::{LedgerEntry, NewEntry, insert};
use crate::db::{Backend, Dialect, StoreError, ledger_tree};

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
