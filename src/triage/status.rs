//! An annotation's triage status, as plain data (no database, no web): the five names the
//! schema's CHECK admits, parsed once where a row is read and written back by [`as_str`].
//! Every way out (templates, JSON, CSV, the data API) shows the stored lowercase name.
//!
//! [`as_str`]: AnnotationStatus::as_str

use std::fmt;

use serde::{Deserialize, Serialize};

/// The statuses an annotation moves through in triage, in the order forms and filters list them.
pub const STATUSES: [&str; 5] = ["new", "triaged", "promoted", "dismissed", "duplicate"];

/// Where an annotation is in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationStatus {
    /// Awaiting triage.
    New,
    /// Looked at and kept.
    Triaged,
    /// Evidence of a requirement candidate.
    Promoted,
    /// Set aside, with a reason.
    Dismissed,
    /// The same as another annotation (its `duplicate_of`).
    Duplicate,
}

impl AnnotationStatus {
    /// Every status, in the order of [`STATUSES`].
    pub const ALL: [AnnotationStatus; 5] = [Self::New, Self::Triaged, Self::Promoted, Self::Dismissed, Self::Duplicate];

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Triaged => "triaged",
            Self::Promoted => "promoted",
            Self::Dismissed => "dismissed",
            Self::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for AnnotationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a stored name (`status == "new"`).
impl PartialEq<&str> for AnnotationStatus {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

impl PartialEq<str> for AnnotationStatus {
    fn eq(&self, name: &str) -> bool {
        self.as_str() == name
    }
}

impl TryFrom<String> for AnnotationStatus {
    type Error = String;

    /// For decoding the stored column (`#[sqlx(try_from = "String")]`): a name the schema
    /// would not admit is a decode error of the row, never a panic.
    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or_else(|| format!("unknown annotation status {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_order() {
        assert_eq!(AnnotationStatus::ALL.map(AnnotationStatus::as_str), STATUSES);
        for status in AnnotationStatus::ALL {
            assert_eq!(AnnotationStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<AnnotationStatus>(&format!("\"{status}\"")).unwrap(), status);
        }
        assert_eq!(AnnotationStatus::parse("New"), None);
        assert!(AnnotationStatus::try_from("closed".to_owned()).is_err());
    }
}
