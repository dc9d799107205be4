//! A candidate's lifecycle and what a person may write into it, as plain rules (no database,
//! no web): the statuses and the steps between them, a draft's limits, a reason's limits.
//!
//! The lifecycle ([`Status::next`]): `proposed` → `accepted` | `rejected` | `deferred`;
//! `accepted` → `implemented`; `accepted`, `rejected` and `deferred` can be reopened (back to
//! `proposed`) when new evidence or circumstances call for another decision. `implemented` is
//! final: a change to shipped behaviour is a new candidate, with its own history. A deferred or
//! rejected candidate is reopened before it is decided again, so every reconsideration shows in
//! the ledger as its own step with its own rationale.

/// The statuses of a candidate.
pub const STATUSES: [&str; 5] = ["proposed", "accepted", "rejected", "deferred", "implemented"];

/// The longest title the schema accepts (characters).
pub const TITLE_MAX: usize = 200;
/// The longest statement we accept (characters).
pub const STATEMENT_MAX: usize = 4000;

/// A candidate's status in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Proposed,
    Accepted,
    Rejected,
    Deferred,
    Implemented,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [Self::Proposed, Self::Accepted, Self::Rejected, Self::Deferred, Self::Implemented];

    /// Parses a stored status name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Deferred => "deferred",
            Self::Implemented => "implemented",
        }
    }

    /// The statuses a decision may move a candidate in this status to.
    pub fn next(self) -> &'static [Status] {
        match self {
            Self::Proposed => &[Self::Accepted, Self::Rejected, Self::Deferred],
            Self::Accepted => &[Self::Implemented, Self::Proposed],
            Self::Rejected | Self::Deferred => &[Self::Proposed],
            Self::Implemented => &[],
        }
    }

    /// `Ok` when a decision may move a candidate from `self` to `to`; otherwise why not, in
    /// words for the person who asked.
    pub fn check(self, to: Status) -> Result<(), String> {
        if self.next().contains(&to) {
            return Ok(());
        }
        let (from, name) = (self.as_str(), to.as_str());
        Err(match (self, to) {
            _ if self == to => format!("The candidate is already {from}."),
            (Self::Implemented, _) => FINAL.into(),
            (_, Self::Implemented) => "Only an accepted candidate can be marked implemented.".into(),
            (Self::Rejected | Self::Deferred, _) => {
                format!("A {from} candidate must be reopened before it can be {name}.")
            }
            (Self::Accepted, _) => "An accepted candidate can only be marked implemented or reopened.".into(),
            _ => format!("A {from} candidate cannot become {name}."),
        })
    }

    /// Whether the title and statement may still change: an implemented candidate is final.
    pub fn editable(self) -> bool {
        self != Self::Implemented
    }
}

/// A candidate's title and statement, checked once for every way in (propose, edit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub title: String,
    pub statement: String,
}

/// What is wrong with a [`Draft`], per field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftErrors {
    pub title: Option<String>,
    pub statement: Option<String>,
}

impl Draft {
    /// Trims both fields and checks them: a title of 1 to 200 characters, a statement of 1 to
    /// 4,000 (what is required and why cannot be empty).
    pub fn parse(title: &str, statement: &str) -> Result<Self, DraftErrors> {
        let (title, statement) = (title.trim(), statement.trim());
        let mut errors = DraftErrors::default();
        if title.is_empty() {
            errors.title = Some("Give the candidate a title.".into());
        } else if title.chars().count() > TITLE_MAX {
            errors.title = Some(format!("Keep the title under {TITLE_MAX} characters."));
        }
        if statement.is_empty() {
            errors.statement = Some("Say what is required and why.".into());
        } else if statement.chars().count() > STATEMENT_MAX {
            errors.statement = Some(format!("Keep the statement under {STATEMENT_MAX} characters."));
        }
        if errors == DraftErrors::default() {
            Ok(Self { title: title.to_owned(), statement: statement.to_owned() })
        } else {
            Err(errors)
        }
    }
}

/// Longest rationale or reason accepted (characters).
pub const REASON_MAX: usize = 4000;

/// Why something was done: trimmed, at most [`REASON_MAX`] characters; [`Reason::required`]
/// when it may not be empty (a decision, a removal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// A reason that may be empty (an edit's); `Err` says what is wrong, calling the reason
    /// `noun` ("reason", "rationale").
    pub fn optional(text: &str, noun: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.chars().count() > REASON_MAX {
            return Err(format!("Keep the {noun} under {REASON_MAX} characters."));
        }
        Ok(Self(text.to_owned()))
    }

    /// A reason that must be given: `missing` is what to say when it is empty.
    pub fn required(text: &str, noun: &str, missing: &str) -> Result<Self, String> {
        let reason = Self::optional(text, noun)?;
        if reason.0.is_empty() { Err(missing.to_owned()) } else { Ok(reason) }
    }

    /// The reason as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an implemented candidate is not edited or decided on any more.
pub const FINAL: &str = "An implemented candidate is final; propose a new candidate for further changes.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_exactly_these_steps() {
        use Status::*;
        let allowed = [
            (Proposed, Accepted),
            (Proposed, Rejected),
            (Proposed, Deferred),
            (Accepted, Implemented),
            (Accepted, Proposed),
            (Rejected, Proposed),
            (Deferred, Proposed),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.check(to).is_ok(), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
        assert!(Implemented.next().is_empty());
    }

    #[test]
    fn refusals_say_why() {
        use Status::*;
        assert_eq!(Proposed.check(Proposed).unwrap_err(), "The candidate is already proposed.");
        assert!(Proposed.check(Implemented).unwrap_err().contains("Only an accepted candidate"));
        assert!(Rejected.check(Accepted).unwrap_err().contains("must be reopened"));
        assert!(Accepted.check(Rejected).unwrap_err().contains("implemented or reopened"));
        assert!(Implemented.check(Proposed).unwrap_err().contains("final"));
    }

    #[test]
    fn statuses_round_trip() {
        for (status, name) in Status::ALL.into_iter().zip(STATUSES) {
            assert_eq!(status.as_str(), name);
            assert_eq!(Status::parse(name), Some(status));
        }
        assert_eq!(Status::parse("done"), None);
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(Reason::optional("  ", "reason").map(|r| r.as_str().to_owned()), Ok(String::new()));
        assert_eq!(Reason::required(" x ", "reason", "say why").map(|r| r.as_str().to_owned()), Ok("x".into()));
        assert_eq!(Reason::required("", "reason", "say why"), Err("say why".into()));
        let long = "x".repeat(REASON_MAX + 1);
        assert_eq!(
            Reason::required(&long, "rationale", "-"),
            Err(format!("Keep the rationale under {REASON_MAX} characters."))
        );
    }

    #[test]
    fn drafts_are_trimmed_and_bounded() {
        assert_eq!(Draft::parse(" T ", " S ").expect("valid").title, "T");
        let errors = Draft::parse(" ", &"x".repeat(STATEMENT_MAX + 1)).unwrap_err();
        assert!(errors.title.is_some() && errors.statement.is_some());
        assert!(Draft::parse(&"é".repeat(TITLE_MAX), "s").is_ok());
    }
}
