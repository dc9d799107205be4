//! The audit bundle: a hub's ledger with its signed checkpoint, checked with no database.
//!
//! A bundle is JSON Lines. The first line is the header,
//! `{"format":"ihf-ledger-bundle/v1","hub":…,"origin":…,"key":<vkey>,"checkpoint":<signed note>,"witnesses":[<vkey>…]}`,
//! where the checkpoint covers exactly the entries that follow; then one entry per line, as
//! the JSON Lines export writes them. [`verify_bundle`] checks the chain, recomputes the
//! Merkle tree, checks the checkpoint's signature (with the key the auditor pinned, or the one
//! in the bundle), and, given a checkpoint the auditor kept from earlier, whether the bundle's
//! history extends it or contradicts it.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::db::ledger::{ChainVerifier, LedgerEntry};
use crate::transparency::merkle::{Frontier, Hash};
use crate::transparency::note::{Checkpoint, Note, VerifierKey, verify_cosignature};

/// The `format` of the bundles this version writes and reads.
pub const BUNDLE_FORMAT: &str = "ihf-ledger-bundle/v1";

/// The first line of a bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleHeader {
    pub format: String,
    pub hub: String,
    pub origin: String,
    /// The log's verifier key (pin it: a bundle cannot vouch for its own key).
    pub key: String,
    /// The signed checkpoint, with the witnesses' cosignatures as further signature lines.
    pub checkpoint: String,
    /// The cosigning keys of the hub's witnesses.
    #[serde(default)]
    pub witnesses: Vec<String>,
}

/// A bundle that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot read the bundle: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {problem}")]
    Malformed { line: usize, problem: String },
}

/// The outcome of checking a bundle: what was checked, line by line, and whether all of it held.
#[derive(Debug, Clone, Default)]
pub struct BundleReport {
    pub ok: bool,
    pub lines: Vec<String>,
    /// Entries read and checked.
    pub entries: u64,
}

impl BundleReport {
    fn fail(&mut self, line: String) {
        self.ok = false;
        self.lines.push(line);
    }
}

fn short(hash: &Hash) -> String {
    hex::encode(&hash[..6])
}

/// Checks a bundle (see the module documentation). `pinned` is the log key the auditor trusts;
/// without it the key in the bundle is used, and the report says it proves only that the
/// bundle is self-consistent. `kept` is a signed checkpoint the auditor kept from earlier.
pub fn verify_bundle(
    input: impl BufRead,
    pinned: Option<&VerifierKey>,
    kept: Option<&str>,
) -> Result<BundleReport, AuditError> {
    let mut lines = input.lines();
    let first = lines.next().ok_or(AuditError::Malformed { line: 1, problem: "the bundle is empty".into() })??;
    let header: BundleHeader = serde_json::from_str(&first)
        .map_err(|e| AuditError::Malformed { line: 1, problem: format!("not a bundle header ({e})") })?;
    if header.format != BUNDLE_FORMAT {
        return Err(AuditError::Malformed { line: 1, problem: format!("unknown bundle format {:?}", header.format) });
    }
    let mut report = BundleReport { ok: true, ..BundleReport::default() };
    let bundled: VerifierKey =
        header.key.parse().map_err(|e| AuditError::Malformed { line: 1, problem: format!("the bundle's key: {e}") })?;
    let key = match pinned {
        Some(pinned) => {
            if pinned != &bundled {
                report.lines.push(format!(
                    "key: the bundle names {}, you pinned {}: checking with yours",
                    bundled.encode(),
                    pinned.encode()
                ));
            }
            pinned.clone()
        }
        None => bundled,
    };
    let checkpoint = match Checkpoint::open(&header.checkpoint, &key) {
        Ok(checkpoint) => {
            let whose =
                if pinned.is_some() { "the key you pinned" } else { "the key in the bundle (pass --key to pin yours)" };
            report.lines.push(format!(
                "checkpoint: {} entries, root {}, signature by {} verifies with {whose}",
                checkpoint.size,
                checkpoint.root_base64(),
                key.name
            ));
            checkpoint
        }
        Err(e) => {
            report.fail(format!("checkpoint: REFUSED, {e}"));
            return Ok(report);
        }
    };
    if checkpoint.origin != header.origin {
        report.fail(format!("checkpoint: its origin {:?} is not the bundle's {:?}", checkpoint.origin, header.origin));
    }
    report_cosignatures(&header, &mut report);
    let kept = match kept.map(|note| Checkpoint::open(note, &key)) {
        None => None,
        Some(Ok(kept)) if kept.origin != checkpoint.origin => {
            report.fail(format!("kept checkpoint: it is of another log ({:?})", kept.origin));
            None
        }
        Some(Ok(kept)) => Some(kept),
        Some(Err(e)) => {
            report.fail(format!("kept checkpoint: REFUSED, {e}"));
            None
        }
    };

    let mut chain = ChainVerifier::default();
    let mut tree = Frontier::default();
    let mut kept_root = (kept.as_ref().map(|k| k.size) == Some(0)).then(|| tree.root());
    for (n, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: LedgerEntry = serde_json::from_str(&line)
            .map_err(|e| AuditError::Malformed { line: n + 2, problem: format!("not a ledger entry ({e})") })?;
        if let Err(broken) = chain.push(&entry) {
            report.fail(format!("chain: broken at entry #{}: {}", broken.seq, broken.reason));
            report.entries = tree.size();
            return Ok(report);
        }
        tree.push(entry.leaf_hash());
        if kept.as_ref().is_some_and(|k| k.size == tree.size()) {
            kept_root = Some(tree.root());
        }
    }
    report.entries = tree.size();
    report.lines.push(format!("chain: {} entries checked, ok, head {}", chain.checked(), chain.head()));
    if tree.size() != checkpoint.size {
        report.fail(format!(
            "tree: the bundle has {} entries but its checkpoint covers {}",
            tree.size(),
            checkpoint.size
        ));
    } else if tree.root() != checkpoint.root {
        report.fail(format!(
            "tree: the entries' Merkle root {} is not the signed root {}",
            short(&tree.root()),
            short(&checkpoint.root)
        ));
    } else {
        report.lines.push("tree: the entries' Merkle root is the signed root".into());
    }
    if let Some(kept) = kept {
        match kept_root {
            None => report.fail(format!(
                "kept checkpoint: INCONSISTENT, it covers {} entries but the bundle has only {}: entries were removed",
                kept.size,
                tree.size()
            )),
            Some(root) if root != kept.root => report.fail(format!(
                "kept checkpoint: INCONSISTENT, the bundle's first {} entries are not those your checkpoint signed (root {} instead of {}): the history was rewritten",
                kept.size,
                short(&root),
                short(&kept.root)
            )),
            Some(_) => report.lines.push(format!(
                "kept checkpoint: consistent, the bundle's first {} entries are those it signed",
                kept.size
            )),
        }
    }
    report.lines.push(if report.ok { "ok".into() } else { "FAILED".into() });
    Ok(report)
}

/// Lists the witnesses' cosignatures on the bundle's checkpoint (for the record: a pinned
/// witness key is what would make them count).
fn report_cosignatures(header: &BundleHeader, report: &mut BundleReport) {
    let Ok(note) = Note::parse(&header.checkpoint) else { return };
    for vkey in &header.witnesses {
        let Ok(key) = vkey.parse::<VerifierKey>() else { continue };
        let line = note.signatures.iter().find(|(name, blob)| name == &key.name && blob[..4] == key.id);
        let verdict = match line {
            None => "no cosignature yet".to_owned(),
            Some((name, blob)) => {
                use base64::Engine;
                let line = format!("— {name} {}\n", base64::engine::general_purpose::STANDARD.encode(blob));
                match verify_cosignature(&note.text, &line, &key) {
                    Ok(c) => format!("cosigned at {} (Unix time)", c.timestamp),
                    Err(e) => format!("cosignature does not verify ({e})"),
                }
            }
        };
        report.lines.push(format!("witness {}: {verdict}", key.name));
    }
}
