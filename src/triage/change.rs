//! What a triage change is, as plain data (no database, no web): the triage fields of an
//! annotation, the changes, what a change did (for undo), where a promotion goes, why a change
//! was refused, and the reasons a dismissal can give.

use serde::{Deserialize, Serialize};

use crate::db::StoreError;
use crate::triage::status::AnnotationStatus;

/// Why an annotation was dismissed: stored slug and label.
pub const DISMISS_REASONS: [(&str, &str); 5] = [
    ("not-actionable", "Not actionable"),
    ("out-of-scope", "Out of scope"),
    ("cannot-reproduce", "Cannot reproduce"),
    ("wont-fix", "Won't fix"),
    ("spam", "Spam"),
];

/// The label of a dismiss reason slug (the slug itself when unknown).
pub fn reason_label(slug: &str) -> &str {
    DISMISS_REASONS.iter().find(|(s, _)| *s == slug).map_or(slug, |(_, label)| label)
}

/// The triage fields of an annotation: what a change sets and what undo restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct TriageState {
    pub category_id: i64,
    #[sqlx(try_from = "String")]
    pub status: AnnotationStatus,
    pub dismiss_reason: Option<String>,
    pub duplicate_of: Option<i64>,
}

impl TriageState {
    pub(crate) fn with_status(&self, status: AnnotationStatus) -> Self {
        Self { category_id: self.category_id, status, dismiss_reason: None, duplicate_of: None }
    }
}

/// A triage decision about one annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Recategorize {
        category_id: i64,
    },
    Triage,
    Dismiss {
        reason: String,
    },
    Duplicate {
        of: i64,
    },
    Reopen,
    /// Undo: put the fields back as they were; `unlink` is the candidate a promotion linked.
    Restore {
        to: TriageState,
        unlink: Option<i64>,
    },
}

/// A change to apply to the annotation `id`, as of the version the client saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: i64,
    pub version: i64,
}

/// What a change did: the state before (for undo) and the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub id: i64,
    pub before: TriageState,
    pub after: TriageState,
    pub version: i64,
    /// The candidate a promotion linked (undo unlinks it).
    pub candidate: Option<i64>,
}

/// Why a triage change was not made.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The database refused, the row is gone ([`StoreError::NotFound`]) or changed meanwhile
    /// ([`StoreError::Stale`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change makes no sense for this annotation (shown to the person as is).
    #[error("{0}")]
    Refused(String),
}

impl From<sqlx::Error> for TriageError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Where a promotion goes.
#[derive(Debug, Clone)]
pub enum Promotion<'a> {
    /// A new candidate with this title and statement.
    New { title: &'a str, statement: &'a str },
    /// An existing candidate of the hub.
    Existing { candidate_id: i64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_labels() {
        assert_eq!(reason_label("spam"), "Spam");
        assert_eq!(reason_label("other"), "other");
    }
}
