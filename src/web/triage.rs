//! The triage board: the hub's annotation queue, worked with one click or one key per decision.
//!
//! Regions (each a fragment on its own URL, for the live stream): the queue
//! (`/hubs/{hub}/triage/queue`) and the counts panel (`/hubs/{hub}/triage/counts`), both taking
//! the board's filters from the query string. A page's live stream carries the regions of its
//! filters; changing the filters swaps the whole live frame, so the stream reconnects with the
//! new ones. Actions ([`actions`]) answer out of band: the changed rows inside `<template>`,
//! the counts and a toast whose Undo carries a signed token of the previous state ([`undo`]).
//! Dismissing, marking a duplicate and promoting open a dialog ([`dialogs`]).

mod actions;
mod dialogs;
mod filter;
mod undo;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

pub use filter::{Filter, FilterParams};
pub use undo::{UNDO_MS, UndoError, UndoToken};

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::annotations::{Cursor, STATUSES};
use crate::db::categories::{self, Category};
use crate::db::hubs::Hub;
use crate::db::now_ms;
use crate::db::triage::{self, TriageRow};
use crate::db::widgets::{self, Widget};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::access::{InHub, Triage};
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::{access, region};

/// Rows per page of the queue.
pub const QUEUE_PAGE: i64 = 50;

/// A category as a one-click pill; the first nine live ones have a number key.
#[derive(Debug, Clone)]
pub struct Pill {
    pub id: i64,
    pub slug: String,
    pub label: String,
    pub colour: String,
    pub key: Option<usize>,
    pub archived: bool,
}

fn pills(categories: &[Category]) -> Vec<Pill> {
    let mut key = 0;
    categories
        .iter()
        .map(|c| {
            let archived = c.archived_at.is_some();
            let key = (!archived && key < 9).then(|| {
                key += 1;
                key
            });
            Pill { id: c.id, slug: c.slug.clone(), label: c.label.clone(), colour: c.colour.clone(), key, archived }
        })
        .collect()
}

/// One queue row, with a note (why a change was refused) and whether it goes out of band.
#[derive(Debug, Clone)]
pub struct RowView {
    pub row: TriageRow,
    pub note: Option<String>,
    pub oob: bool,
}

impl RowView {
    fn plain(row: TriageRow) -> Self {
        Self { row, note: None, oob: false }
    }
}

/// A short age: `just now`, `12 min`, `5 h`, `3 d`.
pub fn age(now: &i64, then: &i64) -> String {
    let minutes = (now - then).max(0) / 60_000;
    match minutes {
        0 => "just now".into(),
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h", m / 60),
        m => format!("{} d", m / (24 * 60)),
    }
}

/// Templates say `crate::web::triage::excerpt`.
pub use crate::web::format::excerpt;

/// `1 duplicate`, `3 duplicates`.
pub fn duplicates_label(n: &i64) -> String {
    format!("{n} {}", crate::web::format::plural(*n, "duplicate"))
}

/// The label of a dismiss reason.
pub fn reason_label(slug: &str) -> &str {
    crate::triage::reason_label(slug)
}

/// One page of queue rows, and the "load more" row to the next.
#[derive(Template)]
#[template(path = "fragments/triage_page.html")]
pub struct QueuePage {
    pub hub_slug: String,
    pub rows: Vec<RowView>,
    pub pills: Vec<Pill>,
    pub now: i64,
    /// The query string of the next page.
    pub next: Option<String>,
    pub first: bool,
}

/// The queue region: the table and its first page.
#[derive(Template)]
#[template(path = "fragments/triage_queue.html")]
pub struct TriageQueue {
    pub hub_slug: String,
    pub page: QueuePage,
}

/// A count that filters the board when chosen.
#[derive(Debug, Clone)]
pub struct CountLink {
    pub label: String,
    pub count: i64,
    pub query: String,
    pub current: bool,
    pub colour: Option<String>,
}

/// The counts panel region: per status and per category, for the current filters.
#[derive(Template)]
#[template(path = "fragments/triage_counts.html")]
pub struct TriageCounts {
    pub hub_slug: String,
    pub statuses: Vec<CountLink>,
    pub categories: Vec<CountLink>,
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "pages/triage.html", blocks = ["content"])]
struct TriagePage {
    chrome: Chrome,
    hub: Hub,
    filter: Filter,
    widgets: Vec<Widget>,
    pills: Vec<Pill>,
    queue: TriageQueue,
    counts: TriageCounts,
    can_manage: bool,
}

/// The hub and filters of a live triage region, for viewers who may still triage it.
pub async fn live_scope(
    state: &AppState,
    hub_id: i64,
    query: &str,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Filter), AppError> {
    let (hub, access) = access::hub_by_id(state, hub_id, viewer).await?;
    access::require(access.can_triage(), viewer)?;
    let params = web::Query::<FilterParams>::from_query(query)
        .map_err(|e| AppError::BadRequest(format!("live triage filter: {e}")))?;
    Ok((hub, access, Filter::parse(params.into_inner())?))
}

/// The live regions of a board showing `filter`.
pub fn live_regions(hub: &Hub, filter: &Filter) -> [Region; 2] {
    [
        Region::TriageQueue { hub_id: hub.id, filter: filter.query() },
        Region::TriageCounts { hub_id: hub.id, filter: filter.query() },
    ]
}

/// Loads one page of the queue.
pub async fn load_queue_page(
    state: &AppState,
    hub: &Hub,
    access: &HubAccess,
    filter: &Filter,
    after: Option<Cursor>,
) -> Result<QueuePage, AppError> {
    let (rows, categories) = tokio::try_join!(
        triage::queue(&state.db, access, hub.id, &filter.store, after, QUEUE_PAGE + 1),
        categories::list(&state.db, hub.id, true),
    )?;
    Ok(queue_page(hub, rows, &categories, filter, after))
}

/// A page of the queue from its rows (one more than a page when there is a next one).
fn queue_page(
    hub: &Hub,
    rows: Vec<TriageRow>,
    categories: &[Category],
    filter: &Filter,
    after: Option<Cursor>,
) -> QueuePage {
    let mut rows: Vec<RowView> = rows.into_iter().map(RowView::plain).collect();
    let next = if rows.len() as i64 > QUEUE_PAGE {
        rows.truncate(QUEUE_PAGE as usize);
        rows.last().map(|last| {
            let cursor = Cursor { created_at: last.row.created_at, id: last.row.id };
            format!("{}&after={}", filter.query(), cursor.to_param())
        })
    } else {
        None
    };
    QueuePage {
        hub_slug: hub.slug.clone(),
        rows,
        pills: pills(categories),
        now: now_ms(),
        next,
        first: after.is_none(),
    }
}

/// Loads the queue region (its first page).
pub async fn load_queue(
    state: &AppState,
    hub: &Hub,
    access: &HubAccess,
    filter: &Filter,
) -> Result<TriageQueue, AppError> {
    Ok(TriageQueue { hub_slug: hub.slug.clone(), page: load_queue_page(state, hub, access, filter, None).await? })
}

/// Loads the counts region.
pub async fn load_counts(
    state: &AppState,
    hub: &Hub,
    access: &HubAccess,
    filter: &Filter,
) -> Result<TriageCounts, AppError> {
    let (counts, categories) = tokio::try_join!(
        triage::counts(&state.db, access, hub.id, &filter.store),
        categories::list(&state.db, hub.id, true),
    )?;
    Ok(counts_panel(hub, &counts, &categories, filter))
}

/// The counts region from the counts and the hub's categories.
fn counts_panel(hub: &Hub, counts: &triage::QueueCounts, categories: &[Category], filter: &Filter) -> TriageCounts {
    let total = counts.by_status.iter().map(|(_, n)| n).sum();
    let mut statuses = vec![CountLink {
        label: "All".into(),
        count: total,
        query: filter.query_with("all", &filter.category),
        current: filter.status == "all",
        colour: None,
    }];
    statuses.extend(STATUSES.iter().map(|s| CountLink {
        label: (*s).to_owned(),
        count: counts.status(s),
        query: filter.query_with(s, &filter.category),
        current: filter.status == *s,
        colour: None,
    }));
    let categories = categories
        .iter()
        // Archived categories are listed only while annotations still carry them.
        .filter(|c| c.archived_at.is_none() || counts.category(c.id) > 0)
        .map(|c| CountLink {
            label: c.label.clone(),
            count: counts.category(c.id),
            query: filter.query_with(&filter.status, if filter.category == c.slug { "" } else { &c.slug }),
            current: filter.category == c.slug,
            colour: Some(c.colour.clone()),
        })
        .collect();
    TriageCounts { hub_slug: hub.slug.clone(), statuses, categories, oob: false }
}

#[get("/hubs/{hub_slug}/triage")]
async fn board(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<FilterParams>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    // Filter changes target the whole live frame (`#live`, in the layout) so that its stream
    // reconnects with the regions of the new filters: they need the full page.
    let htmx = if req.headers().get("HX-Target").is_some_and(|t| t.as_bytes() == b"live") {
        Htmx { partial: false }
    } else {
        htmx
    };
    let filter = Filter::parse(query.into_inner())?;
    // Before loading: a change made while the page renders is then sent when the stream opens.
    let since = state.feed.current_seq();
    // One read of each: the queue and the counts share the categories.
    let ((rows, counts), widgets, categories) = tokio::try_join!(
        triage::board(&state.db, &access, hub.id, &filter.store, QUEUE_PAGE + 1),
        widgets::list_for_hub(&state.db, hub.id),
        categories::list(&state.db, hub.id, true),
    )?;
    let queue = TriageQueue { hub_slug: hub.slug.clone(), page: queue_page(&hub, rows, &categories, &filter, None) };
    let counts = counts_panel(&hub, &counts, &categories, &filter);
    let live_url = live::region::stream_url(&live_regions(&hub, &filter), since);
    let chrome = chrome.titled(format!("Triage · {}", hub.name)).live(live_url).in_hub(&access);
    let page = TriagePage {
        chrome,
        can_manage: access.can_manage(),
        hub,
        filter,
        widgets,
        pills: pills(&categories),
        queue,
        counts,
    };
    let mut response = render::page(htmx, &page, |p| p.as_content().render())?;
    response.headers_mut().insert(header::VARY, header::HeaderValue::from_static("HX-Request, HX-Target"));
    Ok(response)
}

#[derive(Deserialize)]
struct QueueQuery {
    after: Option<String>,
    #[serde(flatten)]
    filter: FilterParams,
}

#[get("/hubs/{hub_slug}/triage/queue")]
async fn queue_region(
    state: web::Data<AppState>,
    query: web::Query<QueueQuery>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let filter = Filter::parse(query.filter)?;
    let chrome = chrome.titled(format!("{} · triage queue", hub.name));
    match query.after.as_deref() {
        None => {
            let queue = load_queue(&state, &hub, &access, &filter).await?;
            region::respond(htmx, chrome, &queue)
        }
        Some(param) => {
            let cursor = Cursor::parse(param).ok_or_else(|| AppError::BadRequest("invalid queue cursor".into()))?;
            let page = load_queue_page(&state, &hub, &access, &filter, Some(cursor)).await?;
            if htmx.partial {
                render::fragment(&page)
            } else {
                region::respond(htmx, chrome, &TriageQueue { hub_slug: hub.slug.clone(), page })
            }
        }
    }
}

#[get("/hubs/{hub_slug}/triage/counts")]
async fn counts_region(
    state: web::Data<AppState>,
    query: web::Query<FilterParams>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let filter = Filter::parse(query.into_inner())?;
    let counts = load_counts(&state, &hub, &access, &filter).await?;
    region::respond(htmx, chrome.titled(format!("{} · triage counts", hub.name)), &counts)
}

/// Mounts the board, its regions, its actions and its dialogs.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(board).service(queue_region).service(counts_region);
    actions::configure(cfg);
    dialogs::configure(cfg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;

    #[test]
    fn ages() {
        assert_eq!(age(&120_000, &0), "2 min");
        assert_eq!(age(&(3 * 3_600_000), &0), "3 h");
        assert_eq!(age(&(3 * DAY_MS), &0), "3 d");
    }
}
