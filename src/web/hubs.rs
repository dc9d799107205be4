//! The hubs index: every hub the viewer may see, with its counts.

use actix_web::{HttpResponse, get, web};
use askama::Template;

use crate::AppState;
use crate::clock::DAY_MS;
use crate::db::hubs::{self, HubScope, HubSummary};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};

/// The list of hubs with counts: a live region of the index.
#[derive(Template)]
#[template(path = "fragments/hub_list.html")]
pub struct HubList {
    pub hubs: Vec<HubSummary>,
    pub signed_in: bool,
}

#[derive(Template)]
#[template(path = "pages/hubs.html", blocks = ["content"])]
struct HubsPage {
    chrome: Chrome,
    list: HubList,
    /// The viewer's own widgets: a direct link to each one's feedback inbox.
    owned: Vec<crate::db::widgets::OwnedWidget>,
}

/// Loads the hub list as `viewer` may see it.
pub async fn load_list(state: &AppState, viewer: &crate::auth::Viewer) -> Result<HubList, AppError> {
    let scope = match viewer.actor_id {
        _ if viewer.is_admin => HubScope::All,
        Some(id) => HubScope::MemberOf(id),
        None => HubScope::None,
    };
    let hubs = hubs::summaries(&state.db, scope, crate::db::now_ms() - DAY_MS).await?;
    Ok(HubList { hubs, signed_in: viewer.is_signed_in() })
}

#[get("/")]
async fn index(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let since = state.feed.current_seq();
    let list = load_list(&state, &chrome.viewer).await?;
    let chrome = chrome.titled("Hubs").live(live::region::stream_url(&[Region::Hubs], since));
    let owned = match chrome.viewer.actor_id {
        Some(id) => crate::db::widgets::owned_by(&state.db, id).await?,
        None => Vec::new(),
    };
    let page = HubsPage { chrome, list, owned };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs")]
async fn hubs_region(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    let list = load_list(&state, &chrome.viewer).await?;
    crate::web::region::respond(htmx, chrome.titled("Hubs"), &list)
}

/// Mounts the hubs index.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index).service(hubs_region);
}
