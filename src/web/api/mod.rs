//! The JSON data API under `/api/v1`: the seed's DataSync, as plain HTTP.
//!
//! Callers authenticate with a hub API key (`Authorization: Bearer ihf_…`), an embed token
//! (`Authorization: Bearer <visitor or host token>`), or a signed-in session (writes then need
//! `X-CSRF-Token`). Every query runs as the caller (`db::api::begin`), so on PostgreSQL Row Level
//! Security confines it a second time: to one widget for an embed token, to one hub for an API
//! key. Errors are `{"error", "message"}` JSON. `openapi.json` documents every route.

pub mod annotations;
pub mod body;
pub mod caller;
pub mod cors;
pub mod error;
pub mod events;
pub mod json;
pub mod limits;
pub mod openapi;
pub mod paths;
pub mod replies;
pub mod stream;
pub mod widgets;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};

use error::ApiError;

/// Mounts `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(cors::cors))
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .configure(openapi::configure)
            .configure(widgets::configure)
            // The stream before `annotations/{id}`, which would take "stream" for an id.
            .configure(stream::configure)
            .configure(annotations::configure)
            .configure(replies::configure)
            .configure(events::configure)
            .default_service(web::to(unrouted)),
    );
}

/// A request no route took: 405 with `Allow` when the path is one of the document's with other
/// methods (so the document and the answer cannot disagree), else 404.
pub async fn unrouted(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path().strip_prefix("/api/v1").unwrap_or(req.path());
    match openapi::allowed_methods(path) {
        Some(allowed) => Err(ApiError::MethodNotAllowed(allowed)),
        None => Err(ApiError::NotFound("route")),
    }
}
