//! The web layer's error type and its one mapping to HTTP responses.
//!
//! Handlers return `Result<_, AppError>`. [`AppError`] decides the status; the
//! `render_errors` middleware in `web::errors` turns it into the error page, or into the error
//! fragment when htmx asked, so the user always sees a clear message and never a blank swap.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::db::{Outage, StoreError};
use crate::domain::DomainError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The thing asked for does not exist, or the viewer may not know it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request needs a signed-in person.
    #[error("please sign in to continue")]
    Unauthorized,
    /// Signed in, but not allowed.
    #[error("you do not have access to this")]
    Forbidden,
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but what it carries cannot be accepted (e.g. a NUL character
    /// in a form field); the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// Someone changed it first, or it clashes with something that exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests; retry after the given seconds.
    #[error("too many requests, try again in {0} s")]
    TooManyRequests(u64),
    /// Too many open streams; retry after the given seconds.
    #[error("the server is busy, try again in {0} s")]
    Overloaded(u64),
    /// The database cannot take the request (disk full, locked, unreachable); it can be
    /// retried, and the message says what happened.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    /// A bug or a broken dependency: logged with its cause chain, shown as a clean 500.
    #[error("unexpected error")]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("page"),
            StoreError::Unavailable(_) | StoreError::Outage(_) => Self::Unavailable(error),
            StoreError::Stale => {
                Self::Conflict("this was changed by someone else; reload to see the current state".into())
            }
            StoreError::SlugTaken => Self::Conflict("that slug is taken; choose another".into()),
            // A unique constraint no caller expected still means "it exists already", never a 500.
            StoreError::Conflict { .. } => Self::Conflict("that clashes with something that exists already".into()),
            other => Self::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// The one mapping of the domain layers' refusals: 422, 403 (401 for nobody), 409, 404.
impl From<DomainError> for AppError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid(message) => Self::Invalid(message),
            DomainError::NotAllowed { signed_in: true } => Self::Forbidden,
            DomainError::NotAllowed { signed_in: false } => Self::Unauthorized,
            DomainError::Stale(message) => Self::Conflict(message),
            DomainError::NotFound(what) => Self::NotFound(what),
            DomainError::Store(error) => error.into(),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        Self::Unexpected(anyhow::Error::new(error).context("rendering a template"))
    }
}

impl AppError {
    /// The page title shown for this error.
    pub fn title(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "Not found",
            Self::Unauthorized => "Sign in required",
            Self::Forbidden => "No access",
            Self::BadRequest(_) => "Bad request",
            Self::Invalid(_) => "Check what you sent",
            Self::Conflict(_) => "Changed by someone else",
            Self::TooManyRequests(_) => "Slow down",
            Self::Overloaded(_) => "Busy",
            Self::Unavailable(_) => "Temporarily unavailable",
            Self::Unexpected(_) => "Something went wrong",
        }
    }

    /// The message shown to the user: never internal details.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unavailable(e) => e.outage().unwrap_or(Outage::Unreachable).message().into(),
            Self::Unexpected(_) => "An unexpected error happened. It has been logged; please try again.".into(),
            other => {
                let message = other.to_string();
                let mut chars = message.chars();
                chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
            }
        }
    }

    /// Seconds after which a retry may work, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Unavailable(e) => Some(e.outage().unwrap_or(Outage::Unreachable).retry_after().as_secs()),
            Self::TooManyRequests(seconds) | Self::Overloaded(seconds) => Some(*seconds),
            _ => None,
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A plain-text answer; `web::errors::render_errors` replaces it with the HTML page or
    /// fragment (it can see the request, this cannot).
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Unexpected(e) => tracing::error!(error = format!("{e:#}"), "unexpected error"),
            Self::Unavailable(e) => tracing::warn!(error = %ShowChain(e), "database unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after() {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response.content_type("text/plain; charset=utf-8").body(self.public_message())
    }
}

/// Formats a store error with its whole cause chain.
struct ShowChain<'a>(&'a StoreError);

impl std::fmt::Display for ShowChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(self.0);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
