//! The data API's errors: JSON `{"error": code, "message": text}` with the status that fits.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::{Outage, StoreError};

/// Everything an API handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The methods the path allows, for `Allow`.
    #[error("this path allows {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Invalid(String),
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    #[error("too many open streams; retry in {0} s")]
    Overloaded(u64),
    #[error("{}", .0.outage().unwrap_or(Outage::Unreachable).message())]
    Unavailable(#[source] StoreError),
    #[error("unexpected error; it has been logged")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Invalid(_) => "invalid",
            Self::RateLimited(_) => "rate_limited",
            Self::Overloaded(_) | Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// 401 with the usual hint.
    pub fn unauthenticated() -> Self {
        Self::Unauthorized(
            "authenticate with `Authorization: Bearer <API key or embed token>` or a signed-in session".into(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Stale => Self::Conflict("it was changed by someone else; fetch it again".into()),
            StoreError::Unavailable(_) | StoreError::Outage(_) => Self::Unavailable(error),
            ref e if crate::db::api::is_policy_refusal(e) => {
                Self::Forbidden("the access policy refused this write".into())
            }
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "unexpected API error"),
            Self::Unavailable(e) => tracing::warn!(error = %e, "database unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::RateLimited(seconds) | Self::Overloaded(seconds) => {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            Self::Unavailable(e) => {
                let wait = e.outage().unwrap_or(Outage::Unreachable).retry_after();
                response.insert_header(("Retry-After", wait.as_secs().to_string()));
            }
            Self::Unauthorized(_) => {
                response.insert_header(("WWW-Authenticate", "Bearer realm=\"ihf\""));
            }
            Self::MethodNotAllowed(allowed) => {
                response.insert_header(("Allow", allowed.clone()));
            }
            _ => {}
        }
        response
            .insert_header(("Cache-Control", "no-store"))
            .json(Body { error: self.code(), message: self.to_string() })
    }
}
