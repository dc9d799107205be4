//! Sign-in and sign-out.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::auth::middleware::{IDLE_MS, removal_cookie, session_cookie};
use crate::auth::{Session, password};
use crate::crypto;
use crate::db::{StoreError, actors, now_ms, sessions};
use crate::error::AppError;
use crate::web::chrome::Chrome;
use crate::web::client_addr::ClientAddr;
use crate::web::render::{self, Htmx};

#[derive(Template)]
#[template(path = "pages/login.html", blocks = ["content"])]
struct LoginPage {
    chrome: Chrome,
    handle: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only local paths are followed after sign-in (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path.to_owned(),
        _ => "/".to_owned(),
    }
}

#[get("/login")]
async fn login_form(query: web::Query<NextQuery>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let page = LoginPage {
        chrome: chrome.titled("Sign in"),
        handle: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
    };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[derive(Deserialize)]
struct LoginForm {
    handle: String,
    password: String,
    next: Option<String>,
}

#[post("/login")]
async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
    chrome: Chrome,
    htmx: Htmx,
    client: ClientAddr,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let handle = form.handle.trim().to_owned();
    let next = safe_next(form.next.as_deref());
    let ip = client.key();
    let refuse = |status: StatusCode, message: String| {
        let page = LoginPage {
            chrome: chrome.clone().titled("Sign in"),
            handle: handle.clone(),
            next: next.clone(),
            error: Some(message),
        };
        render::page_with_status(htmx, status, &page, |p| p.as_content().render())
    };
    if let Some(wait) = state.login_throttle.retry_after(&handle, &ip) {
        let minutes = wait.div_ceil(60);
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins. Try again in {minutes} {}.",
                crate::web::format::plural(minutes as i64, "minute")
            ),
        )?;
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(response);
    }
    if handle.is_empty() || form.password.is_empty() {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Enter your handle and your password.".into());
    }
    let credentials = match actors::credentials(&state.db, &handle).await {
        Ok(c) => Some(c),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    // Verify against a dummy hash when the account is unknown, so timing tells nothing.
    let password = form.password;
    let phc =
        credentials.as_ref().and_then(|c| c.password_hash.clone()).unwrap_or_else(|| password::dummy_hash().to_owned());
    let verified = web::block(move || password::verify(&password, &phc))
        .await
        .map_err(|e| AppError::Unexpected(anyhow::anyhow!("password check: {e}")))?;
    let actor_id = match credentials {
        Some(c) if verified && c.password_hash.is_some() => c.id,
        _ => {
            state.login_throttle.fail(&handle, &ip);
            return refuse(StatusCode::UNPROCESSABLE_ENTITY, "That handle and password do not match.".into());
        }
    };
    state.login_throttle.succeed(&handle);

    // Rotate: the session the browser had before (if any) ends here.
    let previous = req.extensions().get::<Session>().map(|s| s.token_hash.clone());
    let now = now_ms();
    if let Some(old) = previous {
        sessions::revoke(&state.db, &old, now).await?;
        state.live.end_session(&old);
    }
    let token = crypto::random_token(32);
    sessions::create(
        &state.db,
        &crypto::sha256_hex(token.as_bytes()),
        actor_id,
        &crypto::random_token(24),
        now,
        now + IDLE_MS,
    )
    .await?;
    tracing::info!(actor_id, "signed in");
    let cookie = session_cookie(token, state.config.secure_cookies);
    Ok(redirect(htmx, &next).cookie(cookie).finish())
}

#[post("/logout")]
async fn logout(req: HttpRequest, state: web::Data<AppState>, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let session = req.extensions().get::<Session>().cloned();
    if let Some(session) = session {
        sessions::revoke(&state.db, &session.token_hash, now_ms()).await?;
        // This instance's streams of the session end now; other instances' within
        // `live::hub::SESSION_CHECK`.
        state.live.end_session(&session.token_hash);
    }
    Ok(redirect(htmx, "/").cookie(removal_cookie(state.config.secure_cookies)).finish())
}

/// A redirect that htmx follows too (it does not see 3xx answers).
pub fn redirect(htmx: Htmx, to: &str) -> actix_web::HttpResponseBuilder {
    if htmx.partial {
        let mut builder = HttpResponse::Ok();
        builder.insert_header(("HX-Redirect", to.to_owned()));
        builder
    } else {
        let mut builder = HttpResponse::SeeOther();
        builder.insert_header((header::LOCATION, to.to_owned()));
        builder
    }
}

/// Mounts sign-in and sign-out.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(login_form).service(login).service(logout);
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_local() {
        assert_eq!(safe_next(Some("/hubs/x")), "/hubs/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
