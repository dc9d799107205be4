//! Consistency proofs (RFC 9162, 2.1.4): the spans of `PROOF`, and their verification.

use super::error::ProofError;
use super::hash::{Hash, node_hash, split_point};
use super::nodes::Span;

/// The spans of the consistency proof from the tree of `old` leaves to the tree of `new`
/// leaves (RFC 9162, 2.1.4.1 `PROOF`). Empty when there is nothing to prove
/// (`old == 0`, `old >= new`).
pub fn consistency_spans(old: u64, new: u64) -> Vec<Span> {
    fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<Span>) {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(Span { start, end });
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            subproof(m, start, start + k, whole, out);
            out.push(Span { start: start + k, end });
        } else {
            subproof(m - k, start + k, end, false, out);
            out.push(Span { start, end: start + k });
        }
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(old, 0, new, true, &mut out);
    }
    out
}

/// Verifies a consistency proof (RFC 9162, 2.1.4.2): the tree of `old` leaves with root
/// `old_root` is a prefix of the tree of `new` leaves with root `new_root`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::Shrunk { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old == 0 {
        // The empty tree is a prefix of every tree.
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root { Err(ProofError::RootMismatch) } else { Ok(()) }
}
