//! Full page or fragment: the one place that decides, and the `Vary` header that goes with it.

use std::future::{Ready, ready};

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, http::StatusCode};
use askama::Template;

use crate::error::AppError;

/// What kind of answer the request wants, read from htmx's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Htmx {
    /// `HX-Request` without `HX-History-Restore-Request`: answer with the fragment only.
    pub partial: bool,
}

impl Htmx {
    /// Reads the headers: history restores need the full page even though they say `HX-Request`.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let is = |name: &str| headers.get(name).is_some_and(|v| v.as_bytes() == b"true");
        Self { partial: is("HX-Request") && !is("HX-History-Restore-Request") }
    }
}

impl FromRequest for Htmx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::from_headers(req.headers())))
    }
}

/// An HTML answer with `Vary: HX-Request`, so caches keep the page and the fragment apart.
pub fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
        .insert_header((header::VARY, HeaderValue::from_static("HX-Request")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .body(body)
}

/// Renders `page` whole, or only the fragment that `fragment` picks out of it for htmx.
pub fn page<T: Template>(
    htmx: Htmx,
    page: &T,
    fragment: impl FnOnce(&T) -> askama::Result<String>,
) -> Result<HttpResponse, AppError> {
    page_with_status(htmx, StatusCode::OK, page, fragment)
}

/// [`page`] with another status (422 for a form with mistakes, 409 for a stale change…).
pub fn page_with_status<T: Template>(
    htmx: Htmx,
    status: StatusCode,
    page: &T,
    fragment: impl FnOnce(&T) -> askama::Result<String>,
) -> Result<HttpResponse, AppError> {
    let body = if htmx.partial { fragment(page)? } else { page.render()? };
    Ok(html(status, body))
}

/// Renders a fragment that has no page of its own.
pub fn fragment<T: Template>(fragment: &T) -> Result<HttpResponse, AppError> {
    Ok(html(StatusCode::OK, fragment.render()?))
}
