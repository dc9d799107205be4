//! Settings: site administrators manage hubs; a hub's operators manage its widgets, members,
//! webhooks and ledger witnesses (categories and API keys have their own modules, linked from the index).
//! Not live: these pages change rarely and are read by the person changing them.
//!
//! Forms work without JavaScript (plain POST, 303 on success) and with htmx (`hx-post` into
//! `#main`; success answers with `HX-Redirect`). A form with mistakes comes back as 422 with
//! the message next to each field and what was typed kept.

pub mod forms;
pub mod hubs;
pub mod members;
pub mod webhooks;
pub mod widgets;
pub mod witnesses;

use actix_web::{HttpResponse, get, web};
use askama::Template;

use crate::AppState;
use crate::db::hubs::Hub;
use crate::error::AppError;
use crate::web::access;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};

/// The hub `slug` for viewers who may manage it (operators and administrators), with the
/// chrome showing their role in it.
pub async fn managed_hub(state: &AppState, slug: &str, chrome: Chrome) -> Result<(Hub, Chrome), AppError> {
    let (hub, access) = access::hub(state, slug, &chrome.viewer).await?;
    access::require(access.can_manage(), &chrome.viewer)?;
    Ok((hub, chrome.in_hub(&access)))
}

/// Tells htmx to show `url` in the address bar: a create form answers with the new thing's
/// page (its secret shown once), which lives at another URL than the one posted to.
pub fn push_url(response: &mut HttpResponse, url: &str) {
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(url) {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static("hx-push-url"), value);
    }
}

#[derive(Template)]
#[template(path = "pages/settings/index.html", blocks = ["content"])]
struct IndexPage {
    chrome: Chrome,
    hub: Hub,
}

#[get("/hubs/{hub_slug}/settings")]
async fn index(
    state: web::Data<AppState>,
    path: web::Path<String>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, chrome) = managed_hub(&state, &path, chrome).await?;
    let page = IndexPage { chrome: chrome.titled(format!("{} · settings", hub.name)), hub };
    render::page(htmx, &page, |p| p.as_content().render())
}

/// Mounts every settings page.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index);
    hubs::configure(cfg);
    widgets::configure(cfg);
    members::configure(cfg);
    webhooks::configure(cfg);
    witnesses::configure(cfg);
}
