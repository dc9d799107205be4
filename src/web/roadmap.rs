//! A hub's public roadmap (opt-in by its operators): a page (live), an Atom feed, and an
//! embeddable "what's new" view for the host page. What it may show is decided by
//! `db::roadmap` once for all three.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::hubs::Hub;
use crate::db::roadmap::{self, RoadmapItem};
use crate::db::widgets;
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::access::{self, InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::markup::escape;
use crate::web::render::{self, Htmx};
use crate::web::security::CSP;

/// The roadmap region: planned and shipped.
#[derive(Template)]
#[template(path = "fragments/roadmap_list.html")]
pub struct RoadmapList {
    pub planned: Vec<RoadmapItem>,
    pub shipped: Vec<RoadmapItem>,
}

impl RoadmapList {
    fn split(items: Vec<RoadmapItem>) -> Self {
        let (shipped, planned) = items.into_iter().partition(RoadmapItem::is_shipped);
        Self { planned, shipped }
    }
}

#[derive(Template)]
#[template(path = "pages/roadmap.html", blocks = ["content"])]
struct RoadmapPage {
    chrome: Chrome,
    hub: Hub,
    public: bool,
    can_manage: bool,
    list: RoadmapList,
}

/// The "what's new" view a host page frames: what shipped, newest first.
#[derive(Template)]
#[template(path = "pages/whats_new.html")]
struct WhatsNew {
    hub: Hub,
    asset_v: String,
    shipped: Vec<RoadmapItem>,
}

/// The hub and whether the viewer may see its roadmap: anyone when it is public, its members
/// (who see that it is not) otherwise; 404 for everyone else, so a private roadmap's hub is
/// not even confirmed to exist.
async fn roadmap_hub(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess, bool), AppError> {
    let (hub, access) = access::hub(state, slug, viewer).await?;
    let public = roadmap::is_public(&state.db, hub.id).await?;
    if !public && !access.can_view_hub() {
        return Err(AppError::NotFound("roadmap"));
    }
    Ok((hub, access, public))
}

/// Loads the roadmap region.
pub async fn load_list(state: &AppState, hub_id: i64) -> Result<RoadmapList, AppError> {
    Ok(RoadmapList::split(roadmap::items(&state.db, hub_id).await?))
}

/// Renders the roadmap region for the live stream.
pub async fn render_live(state: &AppState, hub_id: i64, viewer: &Viewer) -> Result<String, AppError> {
    let (hub, _) = access::hub_by_id(state, hub_id, viewer).await?;
    roadmap_hub(state, &hub.slug, viewer).await?;
    Ok(load_list(state, hub.id).await?.render()?)
}

#[get("/hubs/{hub_slug}/roadmap")]
async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let since = state.feed.current_seq();
    let (hub, access, public) = roadmap_hub(&state, &path, &chrome.viewer).await?;
    let list = load_list(&state, hub.id).await?;
    let region = Region::Roadmap { hub_id: hub.id };
    let chrome = chrome
        .titled(format!("{} · roadmap", hub.name))
        .live(live::region::stream_url(&[region], since))
        .in_hub(&access);
    let page = RoadmapPage { chrome, hub, public, can_manage: access.can_manage(), list };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[derive(Deserialize)]
struct VisibilityForm {
    /// `1` publishes, anything else takes it down.
    public: Option<String>,
}

#[post("/hubs/{hub_slug}/roadmap/visibility")]
async fn set_visibility(
    state: web::Data<AppState>,
    form: web::Form<VisibilityForm>,
    InHub { hub, .. }: InHub<Manage>,
) -> Result<HttpResponse, AppError> {
    roadmap::set_public(&state.db, hub.id, form.public.as_deref() == Some("1")).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/hubs/{}/roadmap", hub.slug))).finish())
}

/// The public hub of a feed or embed: 404 unless its roadmap is public.
async fn public_hub(state: &AppState, slug: &str) -> Result<Hub, AppError> {
    let (hub, _) = access::hub(state, slug, &Viewer::default()).await?;
    if !roadmap::is_public(&state.db, hub.id).await? {
        return Err(AppError::NotFound("roadmap"));
    }
    Ok(hub)
}

/// `GET /hubs/{hub}/roadmap.atom`: planned and shipped items as an Atom 1.0 feed.
#[get("/hubs/{hub_slug}/roadmap.atom")]
async fn atom(req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let hub = public_hub(&state, &path).await?;
    let items = roadmap::items(&state.db, hub.id).await?;
    let info = req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/atom+xml; charset=utf-8")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60")))
        .body(atom_feed(&base, &hub, &items)))
}

/// The feed's XML (text escaped as for HTML, which is valid XML text and attribute content).
pub fn atom_feed(base: &str, hub: &Hub, items: &[RoadmapItem]) -> String {
    let page = format!("{base}/hubs/{}/roadmap", hub.slug);
    let updated = items.iter().map(RoadmapItem::changed_at).max().unwrap_or(hub.created_at);
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{} roadmap</title>\n<id>{page}</id>\n<link rel=\"alternate\" href=\"{page}\"/>\n\
         <link rel=\"self\" href=\"{page}.atom\"/>\n<updated>{}</updated>\n",
        escape(&hub.name),
        crate::web::format::iso(updated)
    );
    for item in items {
        let state = if item.is_shipped() { "Shipped" } else { "Planned" };
        xml.push_str(&format!(
            "<entry>\n<title>{state}: {}</title>\n<id>{page}#candidate-{}</id>\n<link href=\"{page}#candidate-{}\"/>\n\
             <updated>{}</updated>\n<category term=\"{}\"/>\n<summary>{} ({} annotations, {} people)</summary>\n</entry>\n",
            escape(&item.title),
            item.id,
            item.id,
            crate::web::format::iso(item.changed_at()),
            if item.is_shipped() { "shipped" } else { "planned" },
            escape(&item.statement),
            item.annotations,
            item.people,
        ));
    }
    xml.push_str("</feed>\n");
    xml
}

/// `GET /hubs/{hub}/roadmap/whats-new`: the shipped list for a host page's iframe, framable by
/// the origins the hub's widgets allow.
#[get("/hubs/{hub_slug}/roadmap/whats-new")]
async fn whats_new(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let hub = public_hub(&state, &path).await?;
    let shipped: Vec<RoadmapItem> =
        roadmap::items(&state.db, hub.id).await?.into_iter().filter(RoadmapItem::is_shipped).collect();
    let mut origins: Vec<String> = Vec::new();
    for widget in widgets::list_for_hub(&state.db, hub.id).await? {
        for origin in crate::web::embed::frame_ancestors(&widget).split_whitespace() {
            if origin != "'none'" && !origins.iter().any(|o| o == origin) {
                origins.push(origin.to_owned());
            }
        }
    }
    let ancestors = if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") };
    let body = WhatsNew { hub, asset_v: state.assets.version.clone(), shipped }.render()?;
    let csp = CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {ancestors}"));
    let mut response = render::html(StatusCode::OK, body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).map_err(|e| AppError::Unexpected(e.into()))?,
    );
    Ok(response)
}

/// Mounts the roadmap, its feed, its embed and the operators' switch.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(atom).service(whats_new).service(show).service(set_visibility);
}
