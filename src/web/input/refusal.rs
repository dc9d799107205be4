//! What the input layer says of a refused value: where it came from, which field, what is wrong
//! with it, and the answer that makes (400 for the address and the query, 422 for a body).

use std::fmt;

use actix_web::http::StatusCode;

use crate::error::AppError;
use crate::web::api::error::ApiError;

/// What is wrong with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// U+0000.
    Nul,
    /// Bytes that are not UTF-8.
    NotUtf8,
    /// A UTF-16 surrogate escape without its pair.
    LoneSurrogate,
    /// Longer than the given bound.
    TooLong(usize),
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Path,
    Query,
    Form,
    Json,
    /// A key of the JSON object at the field's path.
    JsonKey,
}

/// A refused value: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub place: Place,
    pub field: String,
    pub problem: Problem,
}

impl Refusal {
    pub(super) fn new(place: Place, field: impl Into<String>, problem: Problem) -> Self {
        Self { place, field: field.into(), problem }
    }

    /// 400 for the address and the query string, 422 for a body.
    pub fn status(&self) -> StatusCode {
        match self.place {
            Place::Path | Place::Query => StatusCode::BAD_REQUEST,
            Place::Form | Place::Json | Place::JsonKey => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = shorten(&self.field);
        match self.place {
            Place::Path => write!(f, "the address ({field})")?,
            Place::Query => write!(f, "the query parameter `{field}`")?,
            Place::Form => write!(f, "the field `{field}`")?,
            Place::Json => write!(f, "`{field}`")?,
            Place::JsonKey if field.is_empty() => write!(f, "a key of the body")?,
            Place::JsonKey => write!(f, "a key of `{field}`")?,
        }
        match self.problem {
            Problem::Nul => write!(f, " contains a NUL character (U+0000), which is not accepted"),
            Problem::NotUtf8 => write!(f, " is not valid UTF-8"),
            Problem::LoneSurrogate => {
                write!(f, " contains a lone UTF-16 surrogate escape (e.g. \\udc00), which is not a character")
            }
            Problem::TooLong(max) => write!(f, " is longer than {max} characters"),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        match refusal.place {
            Place::Path | Place::Query => AppError::BadRequest(refusal.to_string()),
            Place::Form | Place::Json | Place::JsonKey => AppError::Invalid(refusal.to_string()),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal.place {
            Place::Path | Place::Query => ApiError::BadRequest(refusal.to_string()),
            Place::Form | Place::Json | Place::JsonKey => ApiError::Invalid(refusal.to_string()),
        }
    }
}

/// A field name fit for a message: at most 60 characters, NUL and control characters shown as `�`.
pub(super) fn shorten(field: &str) -> String {
    let mut out: String = field.chars().take(60).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if field.chars().count() > 60 {
        out.push('…');
    }
    out
}
