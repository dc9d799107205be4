//! The hub operator dashboard: widget counts, recent signals, the annotation feed.
//! Each region is a fragment on its own URL so the live stream can push it.

use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::clock::DAY_MS;
use crate::db::annotations::{self, AnnotationRow, Cursor};
use crate::db::events::{self, RecentEvent};
use crate::db::hubs::Hub;
use crate::db::widgets::{self, WidgetStats};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::access::{InHub, View};
use crate::web::charts::{self, HubCharts, Sparkline};
use crate::web::chrome::Chrome;
use crate::web::region;
use crate::web::render::{self, Htmx};
/// How many interaction signals the dashboard shows.
pub const SIGNALS: i64 = 20;
/// Annotations per page of the feed.
pub const FEED_PAGE: i64 = 20;

/// The widgets with their live counts.
#[derive(Template)]
#[template(path = "fragments/widgets_panel.html")]
pub struct WidgetsPanel {
    pub hub_slug: String,
    pub widgets: Vec<WidgetRow>,
    /// The hub's charts over the widgets above (the ones the viewer sees).
    pub charts: HubCharts,
}

/// One widget of the panel: its counts and its sparklines of the last days.
pub struct WidgetRow {
    pub stats: WidgetStats,
    pub events: Sparkline,
    pub annotations: Sparkline,
    pub daily: crate::db::charts::WidgetActivity,
}

/// The most recent interaction signals.
#[derive(Template)]
#[template(path = "fragments/signals.html")]
pub struct SignalsPanel {
    pub hub_slug: String,
    pub events: Vec<RecentEvent>,
}

/// One page of the annotation feed, with the "load more" link to the next.
#[derive(Template)]
#[template(path = "fragments/feed_page.html")]
pub struct FeedPage {
    pub hub_slug: String,
    pub items: Vec<AnnotationRow>,
    pub next: Option<String>,
}

/// The annotation feed: its first page inside the feed's frame.
#[derive(Template)]
#[template(path = "fragments/feed.html")]
pub struct FeedPanel {
    pub hub_slug: String,
    pub first: FeedPage,
}

#[derive(Template)]
#[template(path = "pages/dashboard.html", blocks = ["content"])]
struct DashboardPage {
    chrome: Chrome,
    hub: Hub,
    can_triage: bool,
    can_manage: bool,
    widgets: String,
    signals: String,
    feed: String,
}

/// Loads the widgets region of a hub.
pub async fn load_widgets(state: &AppState, hub: &Hub, viewer: &Viewer) -> Result<WidgetsPanel, AppError> {
    let widgets = widgets::stats_for_hub(&state.db, hub.id, crate::db::now_ms() - DAY_MS, viewer).await?;
    let ids: Vec<i64> = widgets.iter().map(|w| w.id).collect();
    let charts = charts::load(state, hub.id, &ids).await?;
    let widgets = widgets
        .into_iter()
        .map(|stats| WidgetRow {
            events: charts.sparkline(stats.id, &stats.name, "events"),
            annotations: charts.sparkline(stats.id, &stats.name, "annotations"),
            daily: charts.daily(stats.id),
            stats,
        })
        .collect();
    Ok(WidgetsPanel { hub_slug: hub.slug.clone(), widgets, charts })
}

/// Loads the signals region of a hub.
pub async fn load_signals(state: &AppState, hub: &Hub) -> Result<SignalsPanel, AppError> {
    let events = events::recent_for_hub(&state.db, hub.id, SIGNALS).await?;
    Ok(SignalsPanel { hub_slug: hub.slug.clone(), events })
}

/// Loads one page of the feed of a hub.
pub async fn load_feed_page(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    before: Option<Cursor>,
) -> Result<FeedPage, AppError> {
    let mut items = annotations::feed_for_hub(&state.db, viewer, hub.id, before, FEED_PAGE + 1).await?;
    let next = if items.len() as i64 > FEED_PAGE {
        items.truncate(FEED_PAGE as usize);
        items.last().map(|last| Cursor { created_at: last.created_at, id: last.id }.to_param())
    } else {
        None
    };
    Ok(FeedPage { hub_slug: hub.slug.clone(), items, next })
}

/// Loads the feed region (its first page) of a hub.
pub async fn load_feed(state: &AppState, hub: &Hub, viewer: &Viewer) -> Result<FeedPanel, AppError> {
    Ok(FeedPanel { hub_slug: hub.slug.clone(), first: load_feed_page(state, hub, viewer, None).await? })
}

#[get("/hubs/{hub_slug}")]
async fn dashboard(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let since = state.feed.current_seq();
    let (widgets, signals, feed) = tokio::try_join!(
        load_widgets(&state, &hub, &chrome.viewer),
        load_signals(&state, &hub),
        load_feed(&state, &hub, &chrome.viewer)
    )?;
    // Rendered before the page so that its stream knows the HTML the page shows of each.
    let (widgets, signals, feed) = (widgets.render()?, signals.render()?, feed.render()?);
    let regions = [
        (Region::Widgets { hub_id: hub.id }, widgets.as_str()),
        (Region::Signals { hub_id: hub.id }, signals.as_str()),
        (Region::Feed { hub_id: hub.id }, feed.as_str()),
    ];
    let chrome = chrome.titled(hub.name.clone()).live(live::region::stream_url_with(&regions, since));
    let page = DashboardPage {
        chrome,
        hub,
        can_triage: access.can_triage(),
        can_manage: access.can_manage(),
        widgets,
        signals,
        feed,
    };
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/widgets-panel")]
async fn widgets_region(
    state: web::Data<AppState>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let panel = load_widgets(&state, &hub, &chrome.viewer).await?;
    region::respond(htmx, chrome.titled(format!("{} · widgets", hub.name)), &panel)
}

#[get("/hubs/{hub_slug}/signals")]
async fn signals_region(
    state: web::Data<AppState>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let panel = load_signals(&state, &hub).await?;
    region::respond(htmx, chrome.titled(format!("{} · signals", hub.name)), &panel)
}

#[derive(Deserialize)]
struct FeedQuery {
    before: Option<String>,
}

#[get("/hubs/{hub_slug}/feed")]
async fn feed_region(
    state: web::Data<AppState>,
    query: web::Query<FeedQuery>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.titled(format!("{} · feedback", hub.name));
    match query.before.as_deref() {
        None => {
            let panel = load_feed(&state, &hub, &chrome.viewer).await?;
            region::respond(htmx, chrome, &panel)
        }
        Some(param) => {
            let cursor = Cursor::parse(param).ok_or_else(|| AppError::BadRequest("invalid feed cursor".into()))?;
            let page = load_feed_page(&state, &hub, &chrome.viewer, Some(cursor)).await?;
            if htmx.partial {
                render::fragment(&page)
            } else {
                let panel = FeedPanel { hub_slug: hub.slug.clone(), first: page };
                region::respond(htmx, chrome, &panel)
            }
        }
    }
}

/// Mounts the dashboard and its regions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(dashboard).service(widgets_region).service(signals_region).service(feed_region);
}
