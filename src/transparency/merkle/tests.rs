//! Tests of the tree hashing and proofs: reference vectors, corrupted proofs, and every proof
//! of every tree up to 70 leaves.
//!
//! The vectors are the reference implementation's (transparency-dev/merkle,
//! `proof/verify_test.go` and `testonly/constants.go`, from the C++ Certificate Transparency
//! tests of RFC 6962): eight leaves, the root of every prefix, and known inclusion and
//! consistency proofs.

use std::collections::HashMap;

use super::*;

const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// (leaf number counting from 1, tree size, proof)
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];
/// (old size, new size, proof)
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(hex: &str) -> Hash {
    let bytes = hex::decode(hex).expect("hex");
    bytes.try_into().expect("32 bytes")
}

fn leaves() -> Vec<Hash> {
    LEAVES.iter().map(|l| leaf_hash(&hex::decode(l).expect("hex"))).collect()
}

/// A store of every complete subtree of `leaves`, built by [`append`] as the database does.
fn store(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut nodes = HashMap::new();
    for (size, leaf) in leaves.iter().enumerate() {
        let siblings: Vec<Hash> = append_needs(size as u64).into_iter().map(|id| nodes[&id]).collect();
        nodes.extend(append(size as u64, *leaf, &siblings));
    }
    nodes
}

fn proof(spans: Vec<Span>, nodes: &HashMap<NodeId, Hash>) -> Vec<Hash> {
    Plan { spans }.hashes(nodes).expect("every node stored")
}

#[test]
fn roots_match_the_reference_vectors() {
    let leaves = leaves();
    let nodes = store(&leaves);
    let mut frontier = Frontier::default();
    for (i, expected) in ROOTS.iter().enumerate() {
        frontier.push(leaves[i]);
        let size = i as u64 + 1;
        assert_eq!(root_of(&leaves[..=i]), h(expected), "MTH of {size}");
        assert_eq!(frontier.root(), h(expected), "frontier root of {size}");
        let stored = Span { start: 0, end: size }.hash(|id| nodes.get(&id).copied());
        assert_eq!(stored, Some(h(expected)), "root of {size} from stored nodes");
    }
    assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(Frontier::default().root(), empty_root());
}

#[test]
fn inclusion_proofs_match_the_reference_vectors() {
    let leaves = leaves();
    let nodes = store(&leaves);
    for (leaf, size, expected) in INCLUSION {
        let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
        let got = proof(inclusion_spans(leaf - 1, size), &nodes);
        assert_eq!(got, expected, "PATH({}, D[{size}])", leaf - 1);
        let root = h(ROOTS[size as usize - 1]);
        verify_inclusion(leaf - 1, size, &leaves[leaf as usize - 1], &got, &root).expect("verifies");
    }
}

#[test]
fn consistency_proofs_match_the_reference_vectors() {
    let leaves = leaves();
    let nodes = store(&leaves);
    for (old, new, expected) in CONSISTENCY {
        let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
        let got = proof(consistency_spans(old, new), &nodes);
        assert_eq!(got, expected, "PROOF({old}, D[{new}])");
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        verify_consistency(old, new, &got, &r1, &r2).expect("verifies");
    }
}

/// The reference implementation's corruptions (`corruptInclusionProof`): each must fail.
#[test]
fn corrupted_inclusion_proofs_fail() {
    let leaves = leaves();
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (leaf, size, proof) in INCLUSION {
        let proof: Vec<Hash> = proof.iter().map(|e| h(e)).collect();
        let (index, root, leaf) = (leaf - 1, h(ROOTS[size as usize - 1]), leaves[leaf as usize - 1]);
        let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
            (index.wrapping_sub(1), size, leaf, proof.clone(), root),
            (index + 1, size, leaf, proof.clone(), root),
            (index ^ 2, size, leaf, proof.clone(), root),
            (index, size * 2, leaf, proof.clone(), root),
            (index, size / 2, leaf, proof.clone(), root),
            (index, size, leaf_hash(b"WrongLeaf"), proof.clone(), root),
            (index, size, leaf, proof.clone(), empty_root()),
            (index, size, leaf, proof.clone(), some),
            (index, size, leaf, [proof.clone(), vec![root]].concat(), root),
            (index, size, leaf, [vec![root], proof.clone()].concat(), root),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 8;
            probes.push((index, size, leaf, wrong, root));
        }
        if !proof.is_empty() {
            probes.push((index, size, leaf, proof[..proof.len() - 1].to_vec(), root));
        }
        if proof.len() > 1 {
            probes.push((index, size, leaf, [vec![proof[0], some], proof[1..].to_vec()].concat(), root));
        }
        for (n, (index, size, leaf, proof, root)) in probes.into_iter().enumerate() {
            assert!(verify_inclusion(index, size, &leaf, &proof, &root).is_err(), "probe {n} verified");
        }
    }
}

/// The reference implementation's corruptions (`corruptConsistencyProof`): each must fail.
#[test]
fn corrupted_consistency_proofs_fail() {
    for (old, new, proof) in CONSISTENCY {
        if proof.is_empty() {
            continue;
        }
        let proof: Vec<Hash> = proof.iter().map(|e| h(e)).collect();
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        let wrong_root = leaf_hash(b"WrongRoot");
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (old - 1, new, r1, r2, proof.clone()),
            (old + 1, new, r1, r2, proof.clone()),
            (old ^ 2, new, r1, r2, proof.clone()),
            (old, new * 2, r1, r2, proof.clone()),
            (old, new / 2, r1, r2, proof.clone()),
            (old, new, wrong_root, r2, proof.clone()),
            (old, new, r1, wrong_root, proof.clone()),
            (old, new, r2, r1, proof.clone()),
            (old, new, r1, r2, Vec::new()),
            (old, new, r1, r2, [proof.clone(), vec![r1]].concat()),
            (old, new, r1, r2, [proof.clone(), vec![r2]].concat()),
            (old, new, r1, r2, [vec![r1], proof.clone()].concat()),
            (old, new, r1, r2, [vec![r2], proof.clone()].concat()),
            (old, new, r1, r2, [vec![proof[0]], proof.clone()].concat()),
            (old, new, r1, r2, proof[..proof.len() - 1].to_vec()),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 16;
            probes.push((old, new, r1, r2, wrong));
        }
        for (n, (old, new, r1, r2, proof)) in probes.into_iter().enumerate() {
            assert!(verify_consistency(old, new, &proof, &r1, &r2).is_err(), "probe {n} ({old}, {new}) verified");
        }
    }
}

#[test]
fn trivial_consistency_cases() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert!(verify_consistency(0, 0, &[], &a, &a).is_ok());
    assert!(verify_consistency(0, 1, &[], &a, &b).is_ok());
    assert!(verify_consistency(1, 1, &[], &b, &b).is_ok());
    assert!(verify_consistency(1, 1, &[], &a, &b).is_err());
    assert_eq!(verify_consistency(2, 1, &[], &a, &b), Err(ProofError::Shrunk { old: 2, new: 1 }));
    assert!(verify_consistency(1, 2, &[], &a, &b).is_err());
    assert!(verify_consistency(1, 1, &[empty_root()], &b, &b).is_err());
}

/// Every proof of every size up to 70, from stored nodes, verifies against roots computed
/// from the definition, and reads only about 2 log2(n) nodes.
#[test]
fn all_proofs_up_to_70_leaves_verify() {
    let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let nodes = store(&leaves);
    let roots: Vec<Hash> = (0..=leaves.len()).map(|n| root_of(&leaves[..n])).collect();
    for size in 1..=leaves.len() as u64 {
        let budget = 2 * (64 - size.leading_zeros()) as usize + 1;
        for index in 0..size {
            let spans = inclusion_spans(index, size);
            assert!(Plan { spans: spans.clone() }.nodes().len() <= budget, "inclusion({index}, {size})");
            let p = proof(spans, &nodes);
            verify_inclusion(index, size, &leaves[index as usize], &p, &roots[size as usize]).expect("inclusion");
        }
        for old in 1..=size {
            let spans = consistency_spans(old, size);
            assert!(Plan { spans: spans.clone() }.nodes().len() <= budget, "consistency({old}, {size})");
            let p = proof(spans, &nodes);
            verify_consistency(old, size, &p, &roots[old as usize], &roots[size as usize]).expect("consistency");
        }
    }
}
