//! Hub settings: the hub's API keys for the data API. Operators make a key (shown once, stored
//! hashed), see when each was last used, and revoke it (refused from that moment on).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::db::StoreError;
use crate::db::api_keys::{self, ApiKey};
use crate::db::hubs::Hub;
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};

/// The longest key name.
const NAME_MAX: usize = 80;

#[derive(Template)]
#[template(path = "pages/api_keys.html", blocks = ["content"])]
struct ApiKeysPage {
    chrome: Chrome,
    hub: Hub,
    keys: Vec<ApiKey>,
    name: String,
    error: Option<String>,
    /// A key just made: shown this once.
    created: Option<String>,
}

async fn show(
    state: &AppState,
    hub: Hub,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    form: (String, Option<String>, Option<String>),
) -> Result<HttpResponse, AppError> {
    let keys = api_keys::list(&state.db, hub.id).await?;
    let (name, error, created) = form;
    let chrome = chrome.titled(format!("{} · API keys", hub.name));
    let page = ApiKeysPage { chrome, hub, keys, name, error, created };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/settings/api-keys")]
async fn index(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    show(&state, hub, chrome, htmx, StatusCode::OK, (String::new(), None, None)).await
}

#[derive(Deserialize)]
struct NewKeyForm {
    #[serde(default)]
    name: String,
}

#[post("/hubs/{hub_slug}/settings/api-keys")]
async fn create(
    state: web::Data<AppState>,
    form: web::Form<NewKeyForm>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let name = form.name.trim().to_owned();
    let problem = if name.is_empty() {
        Some("Give the key a name, e.g. where it is used.".to_owned())
    } else if name.chars().count() > NAME_MAX {
        Some(format!("Keep the name under {NAME_MAX} characters."))
    } else {
        None
    };
    if let Some(message) = problem {
        let typed = form.name.clone();
        return show(&state, hub, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, (typed, Some(message), None)).await;
    }
    let actor_id = chrome.viewer.actor_id.ok_or(AppError::Unauthorized)?;
    let (id, key) = api_keys::create(&state.db, hub.id, &name, actor_id).await?;
    tracing::info!(hub = hub.id, key_id = id, actor_id, "API key created");
    show(&state, hub, chrome, htmx, StatusCode::CREATED, (String::new(), None, Some(key))).await
}

#[post("/hubs/{hub_slug}/settings/api-keys/{id}/revoke")]
async fn revoke(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    match api_keys::revoke(&state.db, hub.id, id).await {
        Ok(()) => tracing::info!(hub = hub.id, key_id = id, actor_id = chrome.viewer.actor_id, "API key revoked"),
        Err(StoreError::NotFound) => return Err(AppError::NotFound("API key")),
        Err(e) => return Err(e.into()),
    }
    if htmx.partial {
        return show(&state, hub, chrome, htmx, StatusCode::OK, (String::new(), None, None)).await;
    }
    Ok(crate::web::login::redirect(htmx, &format!("/hubs/{}/settings/api-keys", hub.slug)).finish())
}

/// Mounts the API key settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index).service(create).service(revoke);
}
