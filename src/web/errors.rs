//! Error pages: turns an [`AppError`] answer into the error page, or the error fragment for
//! htmx, here where the request is known.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use askama::Template;

use crate::AppState;
use crate::error::AppError;
use crate::web::api::error::ApiError;
use crate::web::chrome::Chrome;
use crate::web::render::Htmx;

#[derive(Template)]
#[template(path = "pages/error.html", blocks = ["content"])]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    message: String,
    retry: bool,
    sign_in: Option<String>,
}

/// Middleware: replaces the plain-text body of an `AppError` answer with HTML.
pub async fn render_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let htmx = Htmx::from_headers(req.headers());
    let api = req.path().starts_with("/api/");
    let wants_json = api || prefers_json(req.headers());
    let wants_html = !wants_json && req.path() != "/live";
    let res = next.call(req).await?.map_into_boxed_body();
    note_outage(&res);
    let Some(error) = res.response().error().and_then(|e| e.as_error::<AppError>()) else {
        return Ok(res.map_into_left_body());
    };
    if wants_json {
        // An API caller whose request failed before the API's own handler ran (the session
        // lookup, say): the same JSON shape as the API's errors.
        let body = serde_json::json!({ "error": json_code(error), "message": error.public_message() }).to_string();
        let (req, mut response) = res.into_parts();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let response = response.set_body(body).map_into_boxed_body();
        return Ok(ServiceResponse::new(req, response).map_into_right_body());
    }
    if !wants_html {
        return Ok(res.map_into_left_body());
    }
    let status = res.status();
    let sign_in = matches!(error, AppError::Unauthorized)
        .then(|| format!("/login?next={}", crate::web::format::urlencode(res.request().uri().path())));
    let page = ErrorPage {
        chrome: Chrome::from_request_parts(res.request()).titled(error.title()),
        status: status.as_u16(),
        message: error.public_message(),
        retry: error.retry_after().is_some(),
        sign_in: sign_in.clone(),
    };
    let body = if htmx.partial { page.as_content().render() } else { page.render() };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "rendering the error page");
            return Ok(res.map_into_left_body());
        }
    };
    let (req, mut response) = res.into_parts();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::VARY, HeaderValue::from_static("HX-Request"));
    if htmx.partial {
        if let Some(target) = &sign_in {
            // htmx follows HX-Redirect on any status; a 3xx would be followed by the XHR itself.
            if let Ok(value) = HeaderValue::from_str(target) {
                headers.insert(header::HeaderName::from_static("hx-redirect"), value);
            }
        }
        // Show the error where the user is looking instead of swapping it into the target.
        headers.insert(header::HeaderName::from_static("hx-retarget"), HeaderValue::from_static("#flash"));
        headers.insert(header::HeaderName::from_static("hx-reswap"), HeaderValue::from_static("innerHTML"));
    }
    let response = response.set_body(body).map_into_boxed_body();
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}

/// Whether the caller asked for JSON rather than HTML (`Accept: application/json` without
/// `text/html`).
fn prefers_json(headers: &header::HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.contains("application/json") && !accept.contains("text/html")
}

/// The API's machine-readable code for an [`AppError`] (by its status, as the API's own
/// errors are coded).
fn json_code(error: &AppError) -> &'static str {
    match actix_web::ResponseError::status_code(error).as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        413 => "payload_too_large",
        422 => "invalid",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "internal",
    }
}

/// Remembers a database outage an answer reports, for `/readyz`.
fn note_outage(res: &ServiceResponse<BoxBody>) {
    let Some(error) = res.response().error() else { return };
    let outage = match (error.as_error::<AppError>(), error.as_error::<ApiError>()) {
        (Some(AppError::Unavailable(e)), _) | (_, Some(ApiError::Unavailable(e))) => e.outage(),
        _ => None,
    };
    if let (Some(outage), Some(state)) = (outage, res.request().app_data::<actix_web::web::Data<AppState>>()) {
        state.db.record_outage(outage);
    }
}

/// The answer for routes that do not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound("page"))
}
