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
//!
//! - [`entry`]: an entry, its canonical bytes and hash, adding one to the chain, reading them;
//! - [`append`]: an append as the ledger makes it, chain and Merkle tree in one transaction;
//! - [`verify`]: walking a hub's chain and tree, and the report of every hub's.
//!
//! [`super::ledger_tree`] builds on [`entry`] alone, and [`append`] and [`verify`] on the tree,
//! so the two modules do not import each other.

pub mod append;
pub mod entry;
pub mod verify;

pub use append::{append, append_chain_only};
pub use entry::{
    GENESIS_HASH, LedgerEntry, NewEntry, canonical_bytes, entry_at, entry_hash, for_hub, last_entry, page_after,
};
pub use verify::{ChainBreak, ChainVerdict, ChainVerifier, VerifyReport, verify_all, verify_chain, verify_hub};
