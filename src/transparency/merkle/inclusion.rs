//! Inclusion proofs (RFC 9162, 2.1.3): the spans of `PATH`, and their verification.

use super::error::ProofError;
use super::hash::{Hash, node_hash, split_point};
use super::nodes::Span;

/// The spans of the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162, 2.1.3.1 `PATH`), from the leaf upwards. Empty when `index >= size`.
pub fn inclusion_spans(index: u64, size: u64) -> Vec<Span> {
    fn path(m: u64, start: u64, end: u64, out: &mut Vec<Span>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            path(m, start, start + k, out);
            out.push(Span { start: start + k, end });
        } else {
            path(m - k, start + k, end, out);
            out.push(Span { start, end: start + k });
        }
    }
    let mut out = Vec::new();
    if index < size {
        path(index, 0, size, &mut out);
    }
    out
}

/// Verifies an inclusion proof (RFC 9162, 2.1.3.2): leaf `index` with hash `leaf` is in the
/// tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root { Err(ProofError::RootMismatch) } else { Ok(()) }
}
