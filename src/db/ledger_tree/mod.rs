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
//!
//! - [`identity`]: the instance's log name and signing key;
//! - [`store`]: the stored nodes, read and grown by one leaf;
//! - [`checkpoints`]: signing a tree head on each append, reading the signed ones, backfilling;
//! - [`proofs`]: inclusion and consistency proofs, and their answers for the API and the CLI;
//! - [`verdict`]: the ledger page's check of the newest checkpoint.

pub mod checkpoints;
pub mod identity;
pub mod proofs;
pub mod store;
pub mod verdict;

pub use checkpoints::{
    HUB_APPEND_LOCK, StoredCheckpoint, backfill, checkpoint_at, checkpoint_note, latest_checkpoint, prepare_append,
    record_append, sign_checkpoint, signed_size,
};
pub use identity::{LogIdentity, ensure_identity, identity, valid_log_name};
pub use proofs::{
    ConsistencyAnswer, ConsistencyProof, InclusionAnswer, InclusionProof, consistency_proof, inclusion_proof,
    prove_consistency, prove_inclusion,
};
pub use store::{grow, read_nodes, root_at};
pub use verdict::{HeadVerdict, head_verdict};
