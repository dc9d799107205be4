//! The loader script a host page includes: it inserts the embed's iframe.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

use crate::AppState;
use crate::error::AppError;

/// `GET /embed.js`: the loader, cached briefly so a fix reaches host pages soon.
#[get("/embed.js")]
pub(super) async fn loader(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let script = state
        .assets
        .content("embed.js")
        .await
        .ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("static/embed.js is missing")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        // Host pages with Cross-Origin-Embedder-Policy may load it.
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
        .body(script))
}
