//! CORS for the data API: a widget's routes answer cross-origin requests from that widget's
//! allowed origins only, preflights included. Nothing is shared with credentials (cookies): a
//! cross-origin caller authenticates with a bearer token.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use super::error::ApiError;
use crate::AppState;
use crate::db::{StoreError, widgets};

const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";
const EXPOSE_HEADERS: &str = "Retry-After, Location";

/// Middleware of the `/api/v1` scope.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(origin) = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if is_same_origin(&req, &origin) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let allowed = match allowed(&req, &origin).await {
        Ok(allowed) => allowed,
        Err(e) => return Ok(req.error_response(ApiError::from(e)).map_into_right_body()),
    };
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !allowed {
        tracing::info!(origin, path = req.path(), "refused a cross-origin API request");
        let refusal = ApiError::Forbidden(format!("the origin {origin} is not allowed for this resource"));
        return Ok(req.into_response(refusal.error_response()).map_into_right_body());
    }
    let mut res = if preflight {
        let response = HttpResponse::build(StatusCode::NO_CONTENT)
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish();
        req.into_response(response).map_into_right_body()
    } else {
        let mut res = next.call(req).await?.map_into_left_body();
        res.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        res
    };
    if let Ok(value) = HeaderValue::from_str(&origin) {
        res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    res.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    Ok(res)
}

/// A request from IHF's own pages (or the embed iframe, which IHF serves) is not cross-origin.
fn is_same_origin(req: &ServiceRequest, origin: &str) -> bool {
    let host = req.connection_info().host().to_owned();
    origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host))
}

/// Whether `origin` may call this path: the widget's allowed origins for its routes; anyone
/// for the OpenAPI document; nobody for the rest.
async fn allowed(req: &ServiceRequest, origin: &str) -> Result<bool, StoreError> {
    let path = req.path();
    if path == "/api/v1/openapi.json" {
        return Ok(true);
    }
    let Some(key) = path.strip_prefix("/api/v1/widgets/").and_then(|rest| rest.split('/').next()) else {
        return Ok(false);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>() else { return Ok(false) };
    match widgets::by_embed_key(&state.db, key).await {
        Ok(widget) => Ok(origin_listed(&widget.allowed_origins, origin)),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `origin` is one of the space-separated `allowed` origins (exact match, ignoring a
/// trailing slash and letter case).
pub fn origin_listed(allowed: &str, origin: &str) -> bool {
    allowed.split_whitespace().any(|listed| listed.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::origin_listed;

    #[test]
    fn matches_origins_exactly() {
        let allowed = "http://127.0.0.1:8081 https://shop.example/";
        assert!(origin_listed(allowed, "http://127.0.0.1:8081"));
        assert!(origin_listed(allowed, "https://shop.example"));
        assert!(!origin_listed(allowed, "https://shop.example.evil"));
        assert!(!origin_listed(allowed, "http://127.0.0.1:8082"));
        assert!(!origin_listed("", "null"));
    }
}
