//! The Merkle tree over each hub's ledger, and its signed checkpoints.
//!
//! Each hub's ledger is an RFC 9162 log (see [`crate::transparency::merkle`]): entry `seq` is
//! leaf `seq - 1`, its leaf input the entry's canonical bytes. `ledger_tree_nodes` keeps the
//! hash of every complete subtree, written in the transaction that appends the entry (one leaf
//! and on average one parent per append), so any root, inclusion proof or consistency proof
//! reads about `2 log2(n)` rows in one query, whatever the ledger's size.
//!
//! After each append the instance signs the hub's new tree head, a C2SP checkpoint whose origin
//! (and key name) is `<instance name>/<hub slug>`, with the instance's Ed25519 key; both are made
//! once, on first use, and kept in `server_secrets` like the server secret.

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::sql::SqlBuilder;
use super::{Backend, Db, Dialect, StoreError, now_ms};
use crate::transparency::merkle::{self, Hash, NodeId, Plan, Span};
use crate::transparency::note::{Checkpoint, NoteSigner, VerifierKey};

/// The `server_secrets` row holding the signing key's 32-byte seed (hex).
const KEY_SECRET: &str = "ledger-signing-key";
/// The `server_secrets` row holding the instance's log name.
const NAME_SECRET: &str = "ledger-name";

/// A store error for a tree that lacks a node it must have (a damaged or tampered database).
fn damaged(what: String) -> StoreError {
    StoreError::Other(sqlx::Error::Protocol(what))
}

/// Whether `name` can name a log: non-empty, printable, without spaces or `+` (C2SP key names).
pub fn valid_log_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The instance's log identity: its name and its Ed25519 signing key.
#[derive(Clone)]
pub struct LogIdentity {
    name: String,
    seed: [u8; 32],
}

impl std::fmt::Debug for LogIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogIdentity").field("name", &self.name).field("seed", &"[redacted]").finish()
    }
}

impl LogIdentity {
    fn from_secrets(rows: &[(String, String)]) -> Option<Self> {
        let get = |key: &str| rows.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str());
        let seed = hex::decode(get(KEY_SECRET)?).ok()?.try_into().ok()?;
        Some(Self { name: get(NAME_SECRET)?.to_owned(), seed })
    }

    /// The instance's log name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The origin line (and key name) of a hub's checkpoints: `<instance name>/<hub slug>`.
    pub fn origin(&self, hub_slug: &str) -> String {
        format!("{}/{hub_slug}", self.name)
    }

    /// The signer of a hub's checkpoints.
    pub fn signer(&self, hub_slug: &str) -> Result<NoteSigner, StoreError> {
        NoteSigner::new(&self.origin(hub_slug), &self.seed).map_err(|e| StoreError::Config(e.to_string()))
    }

    /// The verifier key of a hub's checkpoints.
    pub fn verifier(&self, hub_slug: &str) -> Result<VerifierKey, StoreError> {
        self.signer(hub_slug)?
            .vkey()
            .parse()
            .map_err(|e: crate::transparency::note::NoteError| StoreError::Config(e.to_string()))
    }
}

const IDENTITY_SQL: &str = "SELECT name, value FROM server_secrets WHERE name IN ('ledger-signing-key', 'ledger-name')";

async fn create_identity(conn: &mut sqlx::AnyConnection, name: Option<&str>) -> Result<(), StoreError> {
    let name = match name {
        Some(name) if !valid_log_name(name) => {
            return Err(StoreError::Config(format!(
                "the ledger name {name:?} must be non-empty, without spaces or '+' (e.g. feedback.example.com)"
            )));
        }
        Some(name) => name.to_owned(),
        None => format!("ihf-{}", hex::encode(rand::random::<[u8; 4]>())),
    };
    let seed: [u8; 32] = rand::random();
    for (key, value) in [(NAME_SECRET, name), (KEY_SECRET, hex::encode(seed))] {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The instance's log identity, made on first use (`name`, or `ihf-` and 8 random hex digits,
/// and a fresh key). A name given later does not replace the one in use: the origin of a log
/// cannot change without breaking every checkpoint anyone kept. Concurrent first starts agree.
pub async fn ensure_identity(db: &Db, name: Option<&str>) -> Result<LogIdentity, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(db.reader()).await?;
    if let Some(identity) = LogIdentity::from_secrets(&rows) {
        if let Some(wanted) = name
            && wanted != identity.name
        {
            tracing::warn!(
                configured = wanted,
                in_use = identity.name,
                "the ledger name is fixed once checkpoints are signed; keeping the one in use"
            );
        }
        return Ok(identity);
    }
    create_identity(&mut *db.writer().acquire().await?, name).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(db.writer()).await?;
    LogIdentity::from_secrets(&rows).ok_or_else(|| damaged("the ledger signing key is unreadable".into()))
}

/// The log identity, read (or made) inside a writing transaction.
async fn identity_in(tx: &mut Transaction<'static, Any>) -> Result<LogIdentity, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(&mut **tx).await?;
    if let Some(identity) = LogIdentity::from_secrets(&rows) {
        return Ok(identity);
    }
    create_identity(tx, None).await?;
    let rows: Vec<(String, String)> = sqlx::query_as(IDENTITY_SQL).fetch_all(&mut **tx).await?;
    LogIdentity::from_secrets(&rows).ok_or_else(|| damaged("the ledger signing key is unreadable".into()))
}

/// The instance's log identity for readers (made if there is none yet).
pub async fn identity(db: &Db) -> Result<LogIdentity, StoreError> {
    ensure_identity(db, None).await
}

fn to_hash(bytes: &[u8]) -> Option<Hash> {
    bytes.try_into().ok()
}

/// The nodes of a hub's tree among `ids` (those stored), in one query.
pub async fn read_nodes<'e, E>(executor: E, hub_id: i64, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // One primary-key lookup per node, glued with UNION ALL: an OR of (level, idx) pairs made
    // SQLite scan the hub's whole tree (13 ms per proof at 27,000 entries).
    let mut qb = SqlBuilder::new("");
    for (i, id) in ids.iter().enumerate() {
        qb.push(if i == 0 { "" } else { " UNION ALL " });
        qb.push("SELECT level, idx, hash FROM ledger_tree_nodes WHERE hub_id = ");
        if i == 0 {
            qb.push_bind(hub_id);
        } else {
            qb.push("$1");
        }
        qb.push(" AND level = ").push_bind(i64::from(id.level)).push(" AND idx = ").push_bind(id.index as i64);
    }
    let rows: Vec<(i64, i64, Vec<u8>)> = qb.build_query_as()?.fetch_all(executor).await?;
    let mut nodes = HashMap::with_capacity(rows.len());
    for (level, index, hash) in rows {
        let hash = to_hash(&hash).ok_or_else(|| damaged(format!("tree node ({level}, {index}) is not 32 bytes")))?;
        nodes.insert(NodeId { level: level as u8, index: index as u64 }, hash);
    }
    Ok(nodes)
}

/// Adds leaf number `size` (0-based) to a hub's tree inside the caller's transaction and
/// returns the new root. The tree must hold exactly `size` leaves.
pub async fn grow(tx: &mut Transaction<'static, Any>, hub_id: i64, size: u64, leaf: Hash) -> Result<Hash, StoreError> {
    let needs = merkle::append_needs(size);
    let created_ids: Vec<NodeId> =
        (0..=needs.len() as u8).map(|level| NodeId { level, index: size >> level }).collect();
    let root_span = Span { start: 0, end: size + 1 };
    let mut want = needs.clone();
    want.extend(root_span.nodes().into_iter().filter(|id| !created_ids.contains(id)));
    want.sort_unstable();
    want.dedup();
    let mut nodes = read_nodes(&mut **tx, hub_id, &want).await?;
    let siblings = needs
        .iter()
        .map(|id| nodes.get(id).copied().ok_or_else(|| damaged(format!("hub {hub_id}: tree node {id:?} is missing"))))
        .collect::<Result<Vec<Hash>, StoreError>>()?;
    let created = merkle::append(size, leaf, &siblings);
    let mut qb = SqlBuilder::new("INSERT INTO ledger_tree_nodes (hub_id, level, idx, hash) VALUES ");
    for (i, (id, hash)) in created.iter().enumerate() {
        qb.push(if i == 0 { "(" } else { ", (" });
        qb.push_bind(hub_id).push(", ").push_bind(i64::from(id.level)).push(", ").push_bind(id.index as i64);
        qb.push(", ").push_bind(hash.to_vec()).push(")");
    }
    qb.build()?.execute(&mut **tx).await?;
    nodes.extend(created);
    root_span
        .hash(|id| nodes.get(&id).copied())
        .ok_or_else(|| damaged(format!("hub {hub_id}: the tree of {} leaves lacks a node", size + 1)))
}

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

/// The root of a hub's tree of `size` entries from its stored nodes (`None` if one is missing).
pub async fn root_at<'e, E>(executor: E, hub_id: i64, size: u64) -> Result<Option<Hash>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let span = Span { start: 0, end: size };
    let nodes = read_nodes(executor, hub_id, &span.nodes()).await?;
    Ok(span.hash(|id| nodes.get(&id).copied()))
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
            let batch = super::ledger::page_after(&mut *tx, hub_id, size as i64, 1000).await?;
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
    let last = super::ledger::last_entry(&mut **tx, hub_id).await?;
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
    pub entry: super::ledger::LedgerEntry,
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
    let entry = super::ledger::entry_at(&mut **tx, hub_id, seq as i64).await?;
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
