//! Request bodies of the data API: read with a limit, checked by the input layer
//! ([`crate::web::input::check_json`]: no NUL, no lone surrogate, in any string or key), then
//! deserialized.
//!
//! `Content-Type` may be `application/json` (or `…+json`) or absent (then the body is read as
//! JSON); any other type is a 415. Too large is a 413, not JSON a 400, JSON of the wrong shape a
//! 422.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::web::input;

/// Largest JSON body of the annotation routes.
pub const MAX_JSON: usize = 32 * 1024;

/// Reads a body of at most `limit` bytes.
pub async fn read_body(req: &HttpRequest, mut payload: Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let too_large = || ApiError::TooLarge(format!("the body is larger than {limit} bytes"));
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Refuses a `Content-Type` that is neither JSON nor absent.
pub fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType("send a JSON body with Content-Type: application/json".into()))
    }
}

/// Deserializes a checked JSON body.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    input::check_json(body)?;
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::Invalid(format!("the body does not fit: {e}"))
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
    })
}

/// A JSON body of at most [`MAX_JSON`] bytes, checked by the input layer.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let payload = payload.take();
        Box::pin(async move {
            check_content_type(&req)?;
            let body = read_body(&req, payload, MAX_JSON).await?;
            Ok(Self(parse(&body)?))
        })
    }
}
