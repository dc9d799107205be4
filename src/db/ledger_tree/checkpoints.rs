//! Signed tree heads: one signed in the transaction of each append (and by the backfill of
//! entries older than the tree), and the stored ones read back.

use sqlx::{Any, Transaction};

use super::identity::{LogIdentity, identity_in};
use super::store::{damaged, grow, to_hash};
use crate::db::ledger::entry::page_after;
use crate::db::{Backend, Db, Dialect, StoreError, now_ms};
use crate::transparency::merkle::Hash;
use crate::transparency::note::Checkpoint;

/// A signed tree head as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCheckpoint {
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    /// The signed note (the checkpoint and the log's signature line).
    pub note: String,
    pub created_at: i64,
}

impl StoredCheckpoint {
    /// The root hash (zeros if the stored value is damaged; verification then fails).
    pub fn root(&self) -> Hash {
        to_hash(&self.root_hash).unwrap_or_default()
    }
}

/// Signs and stores the checkpoint of a hub's tree at `size` with root `root`.
pub async fn sign_checkpoint(
    tx: &mut Transaction<'static, Any>,
    identity: &LogIdentity,
    hub_id: i64,
    hub_slug: &str,
    size: u64,
    root: Hash,
) -> Result<StoredCheckpoint, StoreError> {
    let checkpoint = Checkpoint { origin: identity.origin(hub_slug), size, root };
    let note = identity.signer(hub_slug)?.sign(&checkpoint.body());
    let stored = StoredCheckpoint { tree_size: size as i64, root_hash: root.to_vec(), note, created_at: now_ms() };
    sqlx::query(
        "INSERT INTO ledger_checkpoints (hub_id, tree_size, root_hash, note, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hub_id)
    .bind(stored.tree_size)
    .bind(stored.root_hash.clone())
    .bind(&stored.note)
    .bind(stored.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(stored)
}

/// The row lock that queues a hub's appends on PostgreSQL. `FOR NO KEY UPDATE`, not `FOR
/// UPDATE`: the foreign-key checks of the rows written before the append in the same
/// transaction (a candidate, its evidence) hold `FOR KEY SHARE` on the hub, which `FOR UPDATE`
/// waits for, so two concurrent proposals in one hub deadlocked.
pub const HUB_APPEND_LOCK: &str = " FOR NO KEY UPDATE";

/// What an append needs to know about its hub before writing: its slug (for the origin) and
/// the log identity. On PostgreSQL the hub row is locked, so appends to one hub queue up.
pub async fn prepare_append(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
) -> Result<(String, LogIdentity), StoreError> {
    let lock = if tx.backend() == Backend::Postgres { HUB_APPEND_LOCK } else { "" };
    let slug: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT slug FROM hubs WHERE id = $1{lock}")))
        .bind(hub_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok((slug, identity_in(tx).await?))
}

/// Adds entry `seq` (leaf `seq - 1`) to the tree and signs the new tree head, inside the
/// transaction that appends the entry.
pub async fn record_append(
    tx: &mut Transaction<'static, Any>,
    identity: &LogIdentity,
    hub_id: i64,
    hub_slug: &str,
    seq: i64,
    leaf: Hash,
) -> Result<StoredCheckpoint, StoreError> {
    let size = (seq - 1) as u64;
    let root = grow(tx, hub_id, size, leaf).await?;
    sign_checkpoint(tx, identity, hub_id, hub_slug, size + 1, root).await
}

const CHECKPOINT_COLUMNS: &str =
    "SELECT tree_size, root_hash, note, created_at FROM ledger_checkpoints WHERE hub_id = $1";

/// A hub's newest checkpoint, if any.
pub async fn latest_checkpoint<'e, E>(executor: E, hub_id: i64) -> Result<Option<StoredCheckpoint>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{CHECKPOINT_COLUMNS} ORDER BY tree_size DESC LIMIT 1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).fetch_optional(executor).await?)
}

/// A hub's checkpoint of `size` entries, if one was signed.
pub async fn checkpoint_at<'e, E>(executor: E, hub_id: i64, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("{CHECKPOINT_COLUMNS} AND tree_size = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(hub_id).bind(size as i64).fetch_optional(executor).await?)
}

/// Builds the tree and a checkpoint for ledger entries written before the tree existed (a
/// database from before this migration), in transactions of up to 1,000 entries. Returns how
/// many entries it added. Safe to run on every start: a hub whose tree is complete costs one
/// query.
pub async fn backfill(db: &Db) -> Result<u64, StoreError> {
    let hubs: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT h.id,
                COALESCE((SELECT MAX(e.seq) FROM ledger_entries e WHERE e.hub_id = h.id), 0),
                (SELECT COUNT(*) FROM ledger_tree_nodes n WHERE n.hub_id = h.id AND n.level = 0)
         FROM hubs h",
    )
    .fetch_all(db.writer())
    .await?;
    let mut added = 0;
    for (hub_id, entries, leaves) in hubs {
        let mut size = leaves as u64;
        while (size as i64) < entries {
            let mut tx = db.writer().begin().await?;
            let (slug, identity) = prepare_append(&mut tx, hub_id).await?;
            let batch = page_after(&mut *tx, hub_id, size as i64, 1000).await?;
            let mut root = None;
            for entry in &batch {
                if entry.seq as u64 != size + 1 {
                    return Err(damaged(format!("hub {hub_id}: ledger entry #{} is missing", size + 1)));
                }
                root = Some(grow(&mut tx, hub_id, size, entry.leaf_hash()).await?);
                size += 1;
            }
            if let Some(root) = root {
                sign_checkpoint(&mut tx, &identity, hub_id, &slug, size, root).await?;
            }
            tx.commit().await?;
            added += batch.len() as u64;
            if batch.is_empty() {
                break;
            }
        }
    }
    Ok(added)
}

/// The size of a hub's signed tree (its newest checkpoint's), 0 when none.
pub async fn signed_size<'e, E>(executor: E, hub_id: i64) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let size: Option<i64> = sqlx::query_scalar("SELECT MAX(tree_size) FROM ledger_checkpoints WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(executor)
        .await?;
    Ok(size.unwrap_or_default() as u64)
}

/// The signed checkpoint of `size` entries with the cosignatures witnesses returned for it.
pub async fn checkpoint_note(
    tx: &mut Transaction<'static, Any>,
    hub_id: i64,
    size: u64,
) -> Result<Option<String>, StoreError> {
    let Some(checkpoint) = checkpoint_at(&mut **tx, hub_id, size).await? else { return Ok(None) };
    let lines: Vec<String> = sqlx::query_scalar(
        "SELECT line FROM ledger_cosignatures WHERE hub_id = $1 AND tree_size = $2 ORDER BY witness_id",
    )
    .bind(hub_id)
    .bind(size as i64)
    .fetch_all(&mut **tx)
    .await?;
    let mut note = checkpoint.note;
    for line in lines {
        note.push_str(&line);
        if !line.ends_with('\n') {
            note.push('\n');
        }
    }
    Ok(Some(note))
}
