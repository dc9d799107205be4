//! Request middleware: loads the session from its cookie, and refuses state-changing requests
//! without the CSRF token or from a foreign origin.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

use super::{Session, Viewer};
use crate::AppState;
use crate::crypto;
use crate::db::{now_ms, sessions};
use crate::error::AppError;

/// The anonymous CSRF token (double-submit cookie) for forms shown before sign-in.
#[derive(Debug, Clone)]
pub struct AnonCsrf(pub String);

/// How long a session lives without activity.
pub const IDLE_MS: i64 = 7 * crate::clock::DAY_MS;
/// Activity is written at most this often per session.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// The session cookie's name: `__Host-` needs `Secure`, which browsers only keep over HTTPS.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-ihf_session" } else { "ihf_session" }
}

/// The anonymous CSRF cookie's name.
pub fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-ihf_csrf" } else { "ihf_csrf" }
}

/// Builds the session cookie.
pub fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build(session_cookie_name(secure), token)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::milliseconds(IDLE_MS))
        .finish()
}

/// A cookie that removes the session cookie.
pub fn removal_cookie(secure: bool) -> Cookie<'static> {
    let mut cookie = Cookie::build(session_cookie_name(secure), "").path("/").http_only(true).secure(secure).finish();
    cookie.make_removal();
    cookie
}

/// Paths whose state-changing requests authenticate otherwise (API keys and embed tokens
/// with CORS), so the cookie CSRF check does not apply.
fn csrf_exempt(path: &str) -> bool {
    // `/unsubscribe`: RFC 8058's one-click POST comes from a mail client, without cookies; its
    // signed token is what authorizes it.
    path.starts_with("/api/") || path.starts_with("/embed/") || path == "/unsubscribe"
}

/// Paths that never act for a person: static assets (CSS, scripts; the same for everyone and
/// cached), read without a session, so they cost no database read.
fn needs_no_session(req: &ServiceRequest) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD) && req.path().starts_with("/static/")
}

/// Middleware: session loading and CSRF enforcement.
pub async fn sessions_and_csrf(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = match req.app_data::<web::Data<AppState>>().cloned() {
        Some(state) if !needs_no_session(&req) => state,
        _ => return Ok(next.call(req).await?.map_into_left_body()),
    };
    let secure = state.config.secure_cookies;
    if let Some(cookie) = req.cookie(session_cookie_name(secure)) {
        let token_hash = crypto::sha256_hex(cookie.value().as_bytes());
        let now = now_ms();
        match sessions::find_live(&state.db, &token_hash, now).await {
            Ok(Some(row)) => {
                if now - row.last_seen_at > TOUCH_EVERY_MS
                    && let Err(e) = sessions::touch(&state.db, &token_hash, now, now + IDLE_MS).await
                {
                    tracing::warn!(error = %e, "could not record session activity");
                }
                req.extensions_mut().insert(Session {
                    viewer: Viewer {
                        actor_id: Some(row.actor_id),
                        handle: row.handle,
                        display_name: row.display_name,
                        is_admin: row.is_admin == 1,
                    },
                    csrf_token: row.csrf_token,
                    token_hash,
                    unread: row.unread,
                });
            }
            Ok(None) => {}
            Err(e) => return Ok(req.error_response(AppError::from(e)).map_into_right_body()),
        }
    }
    let has_session = req.extensions().get::<Session>().is_some();
    let anon_cookie = req.cookie(csrf_cookie_name(secure)).map(|c| c.value().to_owned());
    let set_anon_cookie = !has_session && anon_cookie.is_none();
    if !has_session {
        let token = anon_cookie.clone().unwrap_or_else(|| crypto::random_token(24));
        req.extensions_mut().insert(AnonCsrf(token));
    }

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !csrf_exempt(req.path()) {
        if let Err(refused) = check_origin(&req) {
            return Ok(req.error_response(refused).map_into_right_body());
        }
        let expected = match req.extensions().get::<Session>() {
            Some(session) => Some(session.csrf_token.clone()),
            None => anon_cookie.clone(),
        };
        let mut provided = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        if provided.is_none() && is_form(&req) {
            let body = req.extract::<web::Bytes>().await?;
            provided = form_field(&body, "csrf_token");
            req.set_payload(actix_web::dev::Payload::from(body));
        }
        let ok = matches!((&expected, &provided), (Some(e), Some(p)) if !e.is_empty() && crypto::constant_time_eq(e.as_bytes(), p.as_bytes()));
        if !ok {
            tracing::info!(path = req.path(), "refused a request without a valid CSRF token");
            return Ok(req.error_response(AppError::Forbidden).map_into_right_body());
        }
    }

    let mut res = next.call(req).await?;
    if set_anon_cookie {
        let token = res.request().extensions().get::<AnonCsrf>().map(|t| t.0.clone());
        if let Some(token) = token {
            let cookie = Cookie::build(csrf_cookie_name(secure), token)
                .path("/")
                .http_only(true)
                .secure(secure)
                .same_site(SameSite::Lax)
                .finish();
            if let Err(e) = res.response_mut().add_cookie(&cookie) {
                tracing::warn!(error = %e, "could not set the CSRF cookie");
            }
        }
    }
    Ok(res.map_into_left_body())
}

fn is_form(req: &ServiceRequest) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

/// Refuses cross-site requests: `Sec-Fetch-Site: cross-site`, or an `Origin` of another host.
fn check_origin(req: &ServiceRequest) -> Result<(), AppError> {
    let headers = req.headers();
    if headers.get("Sec-Fetch-Site").is_some_and(|v| v.as_bytes() == b"cross-site") {
        return Err(AppError::Forbidden);
    }
    if let Some(origin) = headers.get("Origin").and_then(|v| v.to_str().ok()) {
        let host = req.connection_info().host().to_owned();
        let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if origin == "null" || !origin_host.eq_ignore_ascii_case(&host) {
            tracing::info!(origin, host, "refused a cross-origin request");
            return Err(AppError::Forbidden);
        }
    }
    Ok(())
}

/// The first value of `name` in a urlencoded body (`None` when absent or undecodable).
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_form_fields() {
        assert_eq!(form_field(b"a=1&csrf_token=x%2By+z", "csrf_token").as_deref(), Some("x+y z"));
        assert_eq!(form_field(b"a=1", "csrf_token"), None);
        // Malformed escapes stay literal, as in the `web::Form` extractor the handlers use.
        assert_eq!(form_field(b"csrf_token=%zz", "csrf_token").as_deref(), Some("%zz"));
    }
}
