//! The middleware that checks every request's address, query string and urlencoded form with
//! the text checks (`text.rs`) before a handler sees them.

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::refusal::{Place, shorten};
use super::text::{MAX_QUERY_VALUE, check_path, check_urlencoded};
use crate::error::AppError;
use crate::web::api::error::ApiError;

/// Largest form body the guard reads (the `web::Form` limit; beyond it the extractor refuses).
pub const MAX_FORM: usize = 64 * 1024;

fn is_form(req: &ServiceRequest) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

/// Reads the body up to `limit` bytes. A longer body is put back whole (the part read, then the
/// rest), for the handler's extractor to refuse with its own limit.
async fn read_up_to(req: &mut ServiceRequest, limit: usize) -> Result<Option<Bytes>, actix_web::Error> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            let read = futures_util::stream::once(futures_util::future::ready(Ok(body.freeze())));
            req.set_payload(Payload::Stream { payload: Box::pin(read.chain(payload)) });
            return Ok(None);
        }
    }
    Ok(Some(body.freeze()))
}

/// Middleware: refuses a request whose address, query string or form carries text that cannot
/// be stored (see the module's documentation).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let mut checked = check_path(req.uri().path())
        .and_then(|()| check_urlencoded(Place::Query, req.query_string().as_bytes(), MAX_QUERY_VALUE));
    if checked.is_ok()
        && is_form(&req)
        && let Some(body) = read_up_to(&mut req, MAX_FORM).await?
    {
        checked = check_urlencoded(Place::Form, &body, usize::MAX);
        req.set_payload(Payload::from(body));
    }
    match checked {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            tracing::info!(path = %shorten(req.path()), refused = %refusal, "refused input");
            let response = if req.path().starts_with("/api/") {
                req.error_response(ApiError::from(refusal))
            } else {
                req.error_response(AppError::from(refusal))
            };
            Ok(response.map_into_right_body())
        }
    }
}
