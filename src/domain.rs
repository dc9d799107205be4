//! What the domain layers (`governance`, `triage`) answer when they do not do what was asked.
//! The web maps it to HTTP in one place (`impl From<DomainError> for AppError`, `error.rs`):
//! `Invalid` 422, `NotAllowed` 403 (401 when nobody is signed in), `Stale` 409, `NotFound` 404.

use crate::db::StoreError;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The command makes no sense as given (words for the person who sent it).
    #[error("{0}")]
    Invalid(String),
    /// The person may not do this; `signed_in` tells "sign in first" from "not yours".
    #[error("not allowed")]
    NotAllowed { signed_in: bool },
    /// Someone else changed the thing meanwhile (words that say what to do).
    #[error("{0}")]
    Stale(String),
    /// The thing (named) does not exist or is not the person's to see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<sqlx::Error> for DomainError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// `Ok` when `allowed`, otherwise [`DomainError::NotAllowed`] for the actor (if any).
pub fn allow(allowed: bool, actor_id: Option<i64>) -> Result<(), DomainError> {
    if allowed { Ok(()) } else { Err(DomainError::NotAllowed { signed_in: actor_id.is_some() }) }
}
