//! The rows the candidate queries return, and the list's filter.

use crate::governance::lifecycle::Status;
use crate::triage::status::AnnotationStatus;

/// A candidate as its page shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub hub_id: i64,
    pub title: String,
    pub statement: String,
    pub status: String,
    pub created_by: i64,
    pub creator_name: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

impl Candidate {
    /// The parsed status (`Proposed` for a value the schema would not allow anyway).
    pub fn lifecycle(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Proposed)
    }
}

/// A candidate in the ledger list, with its evidence count and its last decision.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub updated_at: i64,
    pub evidence_count: i64,
    /// "Me too"s summed over the live evidence on widgets every member reads.
    pub support_count: i64,
    pub decision_detail: Option<String>,
    pub decision_rationale: Option<String>,
    pub decision_at: Option<i64>,
    pub decision_by: Option<String>,
}

/// An evidence link with the annotation it points to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Evidence {
    pub annotation_id: i64,
    pub body: String,
    #[sqlx(try_from = "String")]
    pub annotation_status: AnnotationStatus,
    pub deleted: i64,
    pub created_at: i64,
    pub widget_slug: String,
    pub widget_name: String,
    pub author_name: String,
    pub category_label: String,
    pub category_colour: String,
    pub added_by_name: String,
    pub added_at: i64,
    pub removed_at: Option<i64>,
    pub removed_reason: Option<String>,
}

/// A candidate's evidence that the viewer may read, and how many active links they may not.
#[derive(Debug, Clone)]
pub struct EvidenceList {
    pub items: Vec<Evidence>,
    pub hidden: i64,
}

/// A ledger entry about a candidate, as its history shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryEntry {
    pub seq: i64,
    pub action: String,
    pub rationale: String,
    pub detail: String,
    pub created_at: i64,
    pub hash: String,
    pub actor_name: String,
}

/// Which candidates the ledger list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    /// Words to find in the title or statement (case-insensitive).
    pub query: String,
}
