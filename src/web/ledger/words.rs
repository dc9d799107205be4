//! The words the ledger pages use: what a decision is called (a button, the history), what a
//! ledger entry did. Presentation, so here and not in the store or the governance rules.

use crate::db::candidates::{CandidateRow, HistoryEntry};
use crate::governance::Status;

impl Status {
    /// What the decision to move *to* this status is called (a button label).
    pub fn verb(self) -> &'static str {
        match self {
            Self::Proposed => "Reopen",
            Self::Accepted => "Accept",
            Self::Rejected => "Reject",
            Self::Deferred => "Defer",
            Self::Implemented => "Mark implemented",
        }
    }

    /// The same decision in the past tense, for the history.
    pub fn past(self) -> &'static str {
        match self {
            Self::Proposed => "Reopened",
            Self::Accepted => "Accepted",
            Self::Rejected => "Rejected",
            Self::Deferred => "Deferred",
            Self::Implemented => "Marked implemented",
        }
    }
}

impl CandidateRow {
    /// The last decision in words ("Accepted"), when there was one.
    pub fn decision(&self) -> Option<&'static str> {
        self.decision_detail.as_deref().and_then(|detail| status_change(detail).map(|(_, to)| to.past()))
    }
}

impl HistoryEntry {
    /// What happened, in words.
    pub fn headline(&self) -> String {
        let detail: serde_json::Value = serde_json::from_str(&self.detail).unwrap_or_default();
        let annotation = || detail.get("annotation_id").and_then(serde_json::Value::as_i64).unwrap_or_default();
        match self.action.as_str() {
            "proposed" => "Proposed".into(),
            "edited" => {
                let fields: Vec<&str> =
                    ["title", "statement"].into_iter().filter(|f| detail.get(*f).is_some()).collect();
                format!("Edited the {}", if fields.is_empty() { "candidate".into() } else { fields.join(" and ") })
            }
            "evidence_added" => format!("Added evidence #{}", annotation()),
            "evidence_removed" => format!("Removed evidence #{}", annotation()),
            "status_changed" => match status_change(&self.detail) {
                Some((from, to)) => format!("{} ({} → {})", to.past(), from.as_str(), to.as_str()),
                None => "Changed the status".into(),
            },
            other => other.replace('_', " "),
        }
    }

    /// The first characters of the hash, enough to compare with an export by eye.
    pub fn short_hash(&self) -> &str {
        self.hash.get(..12).unwrap_or(&self.hash)
    }
}

/// `(from, to)` of a `status_changed` entry's detail.
fn status_change(detail: &str) -> Option<(Status, Status)> {
    let value: serde_json::Value = serde_json::from_str(detail).ok()?;
    let get = |key: &str| value.get(key).and_then(serde_json::Value::as_str).and_then(Status::parse);
    Some((get("from")?, get("to")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_headlines() {
        let entry = |action: &str, detail: &str| HistoryEntry {
            seq: 1,
            action: action.into(),
            rationale: String::new(),
            detail: detail.into(),
            created_at: 0,
            hash: "abcdef0123456789".into(),
            actor_name: "Olga".into(),
        };
        assert_eq!(
            entry("status_changed", r#"{"from":"rejected","to":"proposed"}"#).headline(),
            "Reopened (rejected → proposed)"
        );
        assert_eq!(entry("evidence_removed", r#"{"annotation_id":7}"#).headline(), "Removed evidence #7");
        assert_eq!(entry("edited", r#"{"title":{"from":"a","to":"b"}}"#).headline(), "Edited the title");
        assert_eq!(entry("proposed", "{}").short_hash(), "abcdef012345");
    }
}
