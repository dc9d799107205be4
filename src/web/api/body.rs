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
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};

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

/// An optional integer as JSON Schema reads one: `3` and also `3.0` (a number with a zero
/// fractional part is an integer there), within the range of `i64`.
pub fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        // The bounds are exact in f64: -2^63 and 2^63.
        Some(f) if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) => {
            Ok(Some(f as i64))
        }
        _ => Err(D::Error::custom(format!("expected an integer, got {number}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Versioned {
        #[serde(default, deserialize_with = "optional_integer")]
        version: Option<i64>,
    }

    fn version(json: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<Versioned>(json).map(|v| v.version).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_are_read_as_json_schema_reads_them() {
        assert_eq!(version(r#"{"version": 3}"#), Ok(Some(3)));
        assert_eq!(version(r#"{"version": -221.0}"#), Ok(Some(-221)));
        assert_eq!(version(r#"{"version": null}"#), Ok(None));
        assert_eq!(version("{}"), Ok(None));
        assert!(version(r#"{"version": 1.5}"#).is_err());
        assert!(version(r#"{"version": 1e300}"#).is_err());
        assert!(version(r#"{"version": "3"}"#).is_err());
    }
}
