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

use crate::db::hubs::Hub;
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};

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
    /// The confirmation after creating the hub (`?created=1` on the redirect here).
    notice: Option<&'static str>,
}

#[derive(Debug, serde::Deserialize)]
struct CreatedQuery {
    created: Option<String>,
}

#[get("/hubs/{hub_slug}/settings")]
async fn index(
    query: web::Query<CreatedQuery>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let notice = query.created.as_ref().map(|_| "Hub created. Next: add its widgets and members.");
    let page = IndexPage { chrome: chrome.titled(format!("{} · settings", hub.name)), hub, notice };
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
