//! Merkle trees as RFC 9162 (Certificate Transparency 2.0, section 2.1) defines them: the tree
//! hash of an ordered list of entries, inclusion proofs and consistency proofs, and their
//! verification. Pure functions only; where the nodes live is the store's business.
//!
//! - the hash of a leaf is `SHA-256(0x00 || entry)`, of an interior node
//!   `SHA-256(0x01 || left || right)`, of the empty tree `SHA-256()`;
//! - `MTH(D[0:n])` splits at the largest power of two smaller than `n`, so every tree of `n`
//!   leaves is made of the complete subtrees of `n`'s binary digits, largest on the left.
//!
//! A store keeps the hashes of complete subtrees ([`NodeId`]: `2^level` leaves starting at
//! `index * 2^level`). They never change once complete, an append adds one leaf and at most
//! `log2(n)` parents ([`append`]), and any root, inclusion proof or consistency proof of any
//! size needs at most about `2 * log2(n)` of them ([`Plan`]).
//!
//! - [`hash`]: leaf and node hashes, `MTH` and the streaming [`Frontier`];
//! - [`nodes`]: the complete subtrees a store keeps, and what an append adds;
//! - [`inclusion`] and [`consistency`]: the proofs' spans and their verification.

pub mod consistency;
pub mod error;
pub mod hash;
pub mod inclusion;
pub mod nodes;

pub use consistency::{consistency_spans, verify_consistency};
pub use error::ProofError;
pub use hash::{Frontier, Hash, empty_root, leaf_hash, node_hash, root_of};
pub use inclusion::{inclusion_spans, verify_inclusion};
pub use nodes::{NodeId, Plan, Span, append, append_needs};

#[cfg(test)]
mod tests;
