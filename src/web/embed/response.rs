//! How the embed answers: its HTML with the widget's `frame-ancestors`, no caching and the
//! visitor's cookie; the refusal page; the host page's theme and origin; and the `Origin` check of
//! its posts.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::visitor::visitor_cookie;
use crate::AppState;
use crate::auth::embed::Visitor;
use crate::db::widgets::Widget;
use crate::error::AppError;
use crate::web::api::cors::origin_listed;
use crate::web::security::CSP;

#[derive(Template)]
#[template(path = "pages/embed_refused.html")]
struct RefusedPage {
    theme: String,
    asset_v: String,
    message: String,
}

/// `dark` or `auto` (the visitor's system preference) when the host page asks, else `light`:
/// a host that asked for nothing is not turned dark inside a light page.
pub(super) fn theme(raw: Option<&str>) -> String {
    match raw {
        Some(t @ ("dark" | "auto")) => t.to_owned(),
        _ => "light".to_owned(),
    }
}

/// The host page's origin when the widget allows it, else empty (no messages are sent).
pub(super) fn parent(widget: &Widget, raw: Option<&str>) -> String {
    raw.filter(|origin| origin_listed(&widget.allowed_origins, origin)).map(str::to_owned).unwrap_or_default()
}

/// `http(s)://host[:port]` and nothing else, so an origin cannot smuggle directives into the CSP.
fn is_origin(candidate: &str) -> bool {
    let Some(rest) = candidate.strip_prefix("https://").or_else(|| candidate.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// The `frame-ancestors` sources of a widget: its allowed origins, or `'none'`.
pub fn frame_ancestors(widget: &Widget) -> String {
    let origins: Vec<&str> =
        widget.allowed_origins.split_whitespace().map(|o| o.trim_end_matches('/')).filter(|o| is_origin(o)).collect();
    if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") }
}

/// An HTML answer of the embed: the widget's `frame-ancestors` (the default `'none'` for no
/// widget), no caching, no referrer (tokens travel in its URLs), and the visitor's cookie.
pub(super) fn respond(status: StatusCode, ancestors: &str, body: String, visitor: Option<&Visitor>) -> HttpResponse {
    let csp = CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {ancestors}"));
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::VARY, "HX-Request"));
    if let Some(visitor) = visitor {
        response.append_header((header::SET_COOKIE, visitor_cookie(visitor)));
    }
    response.body(body)
}

pub(super) fn refused(
    state: &AppState,
    status: StatusCode,
    ancestors: &str,
    theme: String,
    message: String,
) -> HttpResponse {
    let page = RefusedPage { theme, asset_v: state.assets.version.clone(), message };
    match page.render() {
        Ok(body) => respond(status, ancestors, body, None),
        Err(e) => actix_web::ResponseError::error_response(&AppError::from(e)),
    }
}

/// A post from the iframe comes from IHF's own origin; a host page may post from one of the
/// widget's allowed origins; anything else is a cross-site forgery.
pub(super) fn origin_ok(req: &HttpRequest, widget: &Widget) -> bool {
    let headers = req.headers();
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => {
            let host = req.connection_info().host().to_owned();
            let same = origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host));
            same || origin_listed(&widget.allowed_origins, origin)
        }
        None => headers.get("Sec-Fetch-Site").is_none_or(|v| v.as_bytes() != b"cross-site"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_origins_reach_the_csp() {
        assert!(is_origin("http://127.0.0.1:8081"));
        assert!(is_origin("https://shop.example"));
        assert!(!is_origin("https://shop.example; script-src *"));
        assert!(!is_origin("*"));
        assert!(!is_origin("'self'"));
        assert!(!is_origin("https://"));
    }
}
