//! Notifications: the bell in the layout (a live region), the notifications page, mark read,
//! the mail settings and the one-click unsubscribe link of every mail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::db::StoreError;
use crate::db::notifications::{self, Notification};
use crate::error::AppError;
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};
use crate::web::settings::forms::FieldErrors;

/// How many notifications the page lists.
const PAGE: i64 = 100;

#[derive(Template)]
#[template(path = "fragments/bell.html")]
struct Bell {
    unread: i64,
}

/// The bell of `actor_id` as its live region sends it.
pub async fn render_bell(state: &AppState, actor_id: i64) -> Result<String, AppError> {
    let unread = notifications::unread_count(&state.db, actor_id).await?;
    Ok(Bell { unread }.render()?)
}

#[derive(Template)]
#[template(path = "pages/notifications.html", blocks = ["content"])]
struct NotificationsPage {
    chrome: Chrome,
    items: Vec<Notification>,
    unread: i64,
}

fn signed_in(chrome: &Chrome) -> Result<i64, AppError> {
    chrome.viewer.actor_id.ok_or(AppError::Unauthorized)
}

#[get("/notifications")]
async fn list(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let actor_id = signed_in(&chrome)?;
    let items = notifications::list(&state.db, actor_id, PAGE).await?;
    let unread = notifications::unread_count(&state.db, actor_id).await?;
    // The page is live only for its bell (the list itself is read on each visit).
    let url = crate::live::region::stream_url(&[], state.feed.current_seq());
    let chrome = chrome.titled("Notifications").live(url);
    let page = NotificationsPage { chrome, items, unread };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[post("/notifications/{id}/read")]
async fn read_one(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let actor_id = signed_in(&chrome)?;
    match notifications::mark_read(&state.db, actor_id, path.into_inner()).await {
        Ok(()) => Ok(redirect(htmx, "/notifications").finish()),
        Err(StoreError::NotFound) => Err(AppError::NotFound("notification")),
        Err(e) => Err(e.into()),
    }
}

#[post("/notifications/read-all")]
async fn read_all(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let actor_id = signed_in(&chrome)?;
    notifications::mark_all_read(&state.db, actor_id).await?;
    Ok(redirect(htmx, "/notifications").finish())
}

/// The mail settings form (kept as typed when it comes back with mistakes).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_mode: String,
}

#[derive(Template)]
#[template(path = "pages/notification_settings.html", blocks = ["content"])]
struct SettingsPage {
    chrome: Chrome,
    form: EmailForm,
    errors: FieldErrors,
    modes: [(&'static str, &'static str); 3],
    smtp: bool,
    saved: bool,
}

const MODES: [(&str, &str); 3] =
    [("immediate", "Each notification as it happens"), ("daily", "One digest a day"), ("off", "No mail")];

fn settings_page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    form: EmailForm,
    errors: FieldErrors,
    saved: bool,
) -> Result<HttpResponse, AppError> {
    let page = SettingsPage {
        chrome: chrome.titled("Email notifications"),
        form,
        errors,
        modes: MODES,
        smtp: state.config.smtp_url.is_some(),
        saved,
    };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[get("/settings/notifications")]
async fn settings(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let actor_id = signed_in(&chrome)?;
    let current = notifications::email_settings(&state.db, actor_id).await?;
    let form = EmailForm { email: current.email.unwrap_or_default(), email_mode: current.email_mode };
    settings_page(&state, chrome, htmx, StatusCode::OK, form, FieldErrors::default(), false)
}

#[post("/settings/notifications")]
async fn save_settings(
    state: web::Data<AppState>,
    form: web::Form<EmailForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let actor_id = signed_in(&chrome)?;
    let form = form.into_inner();
    let mut errors = FieldErrors::default();
    let email = notifications::parse_email(&form.email).map_err(|e| errors.add("email", e.to_string())).ok();
    let mode = notifications::parse_mode(&form.email_mode).map_err(|e| errors.add("email_mode", e.to_string())).ok();
    let (Some(email), Some(mode)) = (email, mode) else {
        return settings_page(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, form, errors, false);
    };
    notifications::set_email(&state.db, actor_id, email.as_deref(), mode).await?;
    let form = EmailForm { email: email.unwrap_or_default(), email_mode: mode.to_owned() };
    settings_page(&state, chrome, htmx, StatusCode::OK, form, FieldErrors::default(), true)
}

/// The token of an unsubscribe link.
#[derive(Debug, Deserialize)]
struct UnsubscribeQuery {
    #[serde(default)]
    t: String,
}

#[derive(Template)]
#[template(path = "pages/unsubscribe.html")]
struct UnsubscribePage {
    chrome: Chrome,
    token: String,
    done: bool,
}

fn unsubscribe_target(state: &AppState, token: &str) -> Result<i64, AppError> {
    crate::notifications::verify_unsubscribe(&state.secret, token)
        .ok_or_else(|| AppError::BadRequest("this unsubscribe link is not valid".into()))
}

/// The link opened in a browser: asks first (mail scanners open links; only a POST unsubscribes).
#[get("/unsubscribe")]
async fn unsubscribe_form(
    state: web::Data<AppState>,
    query: web::Query<UnsubscribeQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    unsubscribe_target(&state, &query.t)?;
    let page = UnsubscribePage { chrome: chrome.titled("Unsubscribe"), token: query.into_inner().t, done: false };
    Ok(render::html(StatusCode::OK, page.render()?))
}

/// RFC 8058 one-click (`List-Unsubscribe=One-Click` from the mail client) and the form above:
/// no sign-in; the signed token says whose mail stops, and only theirs.
#[post("/unsubscribe")]
async fn unsubscribe(
    state: web::Data<AppState>,
    query: web::Query<UnsubscribeQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let actor_id = unsubscribe_target(&state, &query.t)?;
    match notifications::unsubscribe(&state.db, actor_id).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(actor = actor_id, "unsubscribed from notification mail");
    let page = UnsubscribePage { chrome: chrome.titled("Unsubscribed"), token: String::new(), done: true };
    Ok(render::html(StatusCode::OK, page.render()?))
}

/// Mounts the notification pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(read_all)
        .service(read_one)
        .service(settings)
        .service(save_settings)
        .service(unsubscribe_form)
        .service(unsubscribe);
}
