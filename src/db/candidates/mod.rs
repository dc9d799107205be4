//! Requirement candidates, their evidence and their lifecycle, as stored: reading them
//! (`read.rs`), proposing, editing and deciding (`write.rs`), linking and unlinking evidence
//! (`evidence.rs`). The lifecycle's rules are in `crate::governance::lifecycle`; the
//! governance layer (`crate::governance`) owns the transactions these functions run in.
//!
//! Every write here appends to the hub's ledger in the same transaction as the change it
//! records, so a candidate, its evidence and its history cannot disagree.

mod evidence;
mod read;
mod rows;
mod write;

pub use evidence::{add_evidence, attach_evidence, remove_evidence, unlink_evidence};
pub use read::{evidence, evidence_candidates, get, history, list, status_counts};
pub use rows::{Candidate, CandidateRow, Evidence, EvidenceList, HistoryEntry, ListFilter};
pub use write::{Decision, Edit, decide, edit, propose};

pub use crate::governance::lifecycle::{Draft, DraftErrors, STATEMENT_MAX, STATUSES, Status, TITLE_MAX};
