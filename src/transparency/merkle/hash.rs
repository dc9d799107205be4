//! Tree hashing (RFC 9162, 2.1.1): leaf and interior-node hashes, `MTH` from the definition,
//! and the in-memory right edge that computes it while streaming entries.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (for `n >= 2`).
pub(super) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// A tree held in memory as its right edge (one complete subtree per binary digit of the size):
/// for verifiers that stream entries, in `O(log n)` memory.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// `(level, hash)`, largest (leftmost) first.
    edge: Vec<(u8, Hash)>,
    size: u64,
}

impl Frontier {
    /// Appends a leaf (its hash, see [`leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        let (mut level, mut hash) = (0u8, leaf);
        while let Some(&(top, left)) = self.edge.last() {
            if top != level {
                break;
            }
            self.edge.pop();
            hash = node_hash(&left, &hash);
            level += 1;
        }
        self.edge.push((level, hash));
        self.size += 1;
    }

    /// How many leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash of the tree so far.
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev().map(|(_, h)| *h);
        let Some(mut acc) = hashes.next() else { return empty_root() };
        for left in hashes {
            acc = node_hash(&left, &acc);
        }
        acc
    }
}

/// `MTH` computed straight from the definition, for tests and small trees.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}
