//! The complete subtrees a store keeps: their ids, the spans of a proof made of them, the plan of
//! the nodes a set of spans needs, and the nodes an append needs and completes.

use std::collections::HashMap;

use super::hash::{Hash, empty_root, node_hash};

/// A complete subtree: the `2^level` leaves from `index * 2^level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    /// The leaf with this (0-based) index.
    pub fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The first leaf it covers.
    pub fn start(self) -> u64 {
        self.index << self.level
    }
}

/// Leaves `start..end` of a tree, as one element of a proof: `MTH(D[start:end])`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    /// The complete subtrees this span is made of, left to right (largest first).
    ///
    /// Spans of RFC 9162 proofs start on a multiple of a power of two at least as large as
    /// themselves, so the greedy split below is exactly the split `MTH` makes.
    pub fn nodes(self) -> Vec<NodeId> {
        let mut nodes = Vec::new();
        let mut start = self.start;
        while start < self.end {
            let mut level = 63 - (self.end - start).leading_zeros();
            if start != 0 {
                level = level.min(start.trailing_zeros());
            }
            nodes.push(NodeId { level: level as u8, index: start >> level });
            start += 1 << level;
        }
        nodes
    }

    /// `MTH(D[start:end])` from the hashes of its complete subtrees (`None` when one is missing).
    pub fn hash(self, node: impl Fn(NodeId) -> Option<Hash>) -> Option<Hash> {
        if self.start >= self.end {
            return Some(empty_root());
        }
        let nodes = self.nodes();
        let mut hashes = nodes.into_iter().rev().map(node);
        let mut acc = hashes.next()??;
        for left in hashes {
            acc = node_hash(&left?, &acc);
        }
        Some(acc)
    }
}

/// The complete subtrees a set of spans needs, so a store can read them in one query.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub spans: Vec<Span>,
}

impl Plan {
    /// The nodes to read, each once.
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.spans.iter().flat_map(|s| s.nodes()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The span hashes, in order, from the nodes read (`None` when one is missing).
    pub fn hashes(&self, nodes: &HashMap<NodeId, Hash>) -> Option<Vec<Hash>> {
        self.spans.iter().map(|s| s.hash(|id| nodes.get(&id).copied())).collect()
    }
}

/// The nodes appending leaf number `size` (0-based) needs: the left siblings of the subtrees it
/// completes, lowest first.
pub fn append_needs(size: u64) -> Vec<NodeId> {
    let mut needs = Vec::new();
    let (mut index, mut level) = (size, 0u8);
    while index & 1 == 1 {
        needs.push(NodeId { level, index: index - 1 });
        index >>= 1;
        level += 1;
    }
    needs
}

/// The nodes that become complete when leaf number `size` is appended: the leaf itself and the
/// parents it completes. `siblings` are the hashes of [`append_needs`]`(size)`, in that order.
pub fn append(size: u64, leaf: Hash, siblings: &[Hash]) -> Vec<(NodeId, Hash)> {
    let mut out = vec![(NodeId::leaf(size), leaf)];
    let (mut index, mut level, mut hash) = (size, 0u8, leaf);
    for sibling in siblings {
        if index & 1 == 0 {
            break;
        }
        hash = node_hash(sibling, &hash);
        index >>= 1;
        level += 1;
        out.push((NodeId { level, index }, hash));
    }
    out
}
