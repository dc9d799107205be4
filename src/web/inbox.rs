//! The widget feedback inbox: every annotation on one widget for its owner and the hub's
//! triagers and operators, filterable by category and status, with unread markers per viewer
//! and counts per category. The list is a region on its own URL so the live stream can push it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::annotations::{self, AnnotationRow, CategoryCount, Cursor, InboxFilter, STATUSES};
use crate::db::categories;
use crate::db::hubs::Hub;
use crate::db::widgets::Widget;
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::replies::Conversations;
use crate::web::widgets::{hub_widget, widget_by_ids, widget_path};
use crate::web::{access, region};

/// Annotations per page of the inbox.
pub const INBOX_PAGE: i64 = 30;

/// The filters as the URL carries them (`?category=bug&status=new`); empty means any.
#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    pub category: Option<String>,
    pub status: Option<String>,
    pub before: Option<String>,
}

impl InboxQuery {
    /// The filter, refusing statuses that do not exist.
    pub fn filter(&self) -> Result<InboxFilter, AppError> {
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let status = given(&self.status);
        if let Some(status) = &status
            && !STATUSES.contains(&status.as_str())
        {
            return Err(AppError::BadRequest(format!("unknown status {status:?}")));
        }
        Ok(InboxFilter { category: given(&self.category), status })
    }
}

/// The query string of a filter (with a leading `?`, or empty).
pub fn filter_query(category: Option<&str>, status: Option<&str>) -> String {
    let parts: Vec<String> = [("category", category), ("status", status)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={}", crate::web::format::urlencode(v))))
        .collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// One page of the inbox list.
#[derive(Template)]
#[template(path = "fragments/inbox_page.html")]
pub struct InboxPage {
    pub base: String,
    pub items: Vec<AnnotationRow>,
    /// The query string of the next page (filters and cursor).
    pub next: Option<String>,
    pub first: bool,
    pub viewer_id: Option<i64>,
    pub read_up_to: i64,
    /// The replies and support of the page's annotations.
    pub talk: Conversations,
}

impl InboxPage {
    /// Unread: written by someone else after the viewer's read marker.
    pub fn is_unread(&self, a: &AnnotationRow) -> bool {
        a.created_at > self.read_up_to && Some(a.actor_id) != self.viewer_id
    }
}

/// The inbox region: filters with counts, unread total and the first page.
#[derive(Template)]
#[template(path = "fragments/inbox.html")]
pub struct InboxPanel {
    pub base: String,
    pub filter: InboxFilter,
    pub counts: Vec<CategoryCount>,
    /// When the newest annotation on the widget was written: "mark all read" reads up to it.
    pub newest: i64,
    pub first: InboxPage,
}

impl InboxPanel {
    /// Annotations under the status filter, all categories.
    pub fn total(&self) -> i64 {
        self.counts.iter().map(|c| c.count).sum()
    }

    /// Unread annotations under the status filter, all categories.
    pub fn unread(&self) -> i64 {
        self.counts.iter().map(|c| c.unread).sum()
    }

    /// The query string with the category filter set to `category`, keeping the status.
    pub fn with_category(&self, category: Option<&str>) -> String {
        filter_query(category, self.filter.status.as_deref())
    }

    /// The query string with the status filter set to `status`, keeping the category.
    pub fn with_status(&self, status: Option<&str>) -> String {
        filter_query(self.filter.category.as_deref(), status)
    }

    /// The query string of the current filters.
    pub fn current(&self) -> String {
        filter_query(self.filter.category.as_deref(), self.filter.status.as_deref())
    }

    /// The statuses to filter by.
    pub fn statuses(&self) -> &'static [&'static str] {
        &STATUSES
    }

    /// Whether the category filter is `slug` (`None`: no category filter).
    pub fn category_is(&self, slug: Option<&str>) -> bool {
        self.filter.category.as_deref() == slug
    }

    /// Whether the status filter is `status` (`None`: no status filter).
    pub fn status_is(&self, status: Option<&str>) -> bool {
        self.filter.status.as_deref() == status
    }
}

#[derive(Template)]
#[template(path = "pages/inbox.html", blocks = ["content"])]
struct InboxPageView {
    chrome: Chrome,
    hub: Hub,
    widget: Widget,
    base: String,
    inbox: InboxPanel,
}

/// The hub and widget for viewers who may read the widget's inbox (404, 401, 403 otherwise).
async fn inbox_widget(
    state: &AppState,
    path: &(String, String),
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Widget), AppError> {
    let (hub, access, widget) = hub_widget(state, &path.0, &path.1, viewer).await?;
    let widget = widget.ok_or(AppError::NotFound("widget"))?;
    access::require(access.can_read_inbox(&widget), viewer)?;
    Ok((hub, access, widget))
}

async fn read_up_to(state: &AppState, viewer: &Viewer, widget: &Widget) -> Result<i64, AppError> {
    Ok(match viewer.actor_id {
        Some(actor_id) => annotations::inbox_read_up_to(&state.db, actor_id, widget.id).await?,
        None => 0,
    })
}

/// Loads one page of the inbox list; `read_up_to` decides the unread markers.
pub async fn load_inbox_page(
    state: &AppState,
    base: &str,
    widget: &Widget,
    viewer: &Viewer,
    filter: &InboxFilter,
    read_up_to: i64,
    before: Option<Cursor>,
) -> Result<InboxPage, AppError> {
    let mut items = annotations::inbox_for_widget(&state.db, viewer, widget.id, filter, before, INBOX_PAGE + 1).await?;
    let next = if items.len() as i64 > INBOX_PAGE {
        items.truncate(INBOX_PAGE as usize);
        items.last().map(|last| {
            let cursor = Cursor { created_at: last.created_at, id: last.id }.to_param();
            let filters = filter_query(filter.category.as_deref(), filter.status.as_deref());
            if filters.is_empty() { format!("?before={cursor}") } else { format!("{filters}&before={cursor}") }
        })
    } else {
        None
    };
    let base = base.to_owned();
    let access = HubAccess::load(&state.db, viewer, widget.hub_id).await?;
    let ids: Vec<i64> = items.iter().map(|a| a.id).collect();
    let talk = Conversations::load(state, viewer, &access, Some(widget), &ids).await?;
    Ok(InboxPage { base, items, next, first: before.is_none(), viewer_id: viewer.actor_id, read_up_to, talk })
}

/// Loads the inbox region of a widget under `filter`.
pub async fn load_inbox(
    state: &AppState,
    base: &str,
    widget: &Widget,
    viewer: &Viewer,
    filter: InboxFilter,
) -> Result<InboxPanel, AppError> {
    let read_up_to = read_up_to(state, viewer, widget).await?;
    let status = filter.status.as_deref();
    let (counts, newest, first) = tokio::try_join!(
        async {
            Ok::<_, AppError>(
                annotations::inbox_counts(&state.db, viewer, widget.hub_id, widget.id, status, read_up_to).await?,
            )
        },
        async { Ok::<_, AppError>(annotations::newest_on_widget(&state.db, viewer, widget.id).await?) },
        load_inbox_page(state, base, widget, viewer, &filter, read_up_to, None),
    )?;
    Ok(InboxPanel { base: base.to_owned(), filter, counts, newest, first })
}

/// The live region of the inbox under `filter`: 400 for a category the hub does not have.
async fn inbox_region_of(
    state: &AppState,
    hub: &Hub,
    widget: &Widget,
    filter: &InboxFilter,
) -> Result<Region, AppError> {
    let category_id = match &filter.category {
        None => None,
        Some(slug) => {
            let categories = categories::list(&state.db, hub.id, true).await?;
            let category = categories.iter().find(|c| &c.slug == slug);
            Some(category.ok_or_else(|| AppError::BadRequest(format!("unknown category {slug:?}")))?.id)
        }
    };
    let status = filter.status.as_deref().and_then(|name| STATUSES.iter().find(|s| **s == name).copied());
    Ok(Region::Inbox { hub_id: hub.id, widget_id: widget.id, category_id, status })
}

/// Renders the inbox region for the live stream, as `viewer` may read it now.
pub async fn render_live_inbox(
    state: &AppState,
    hub_id: i64,
    widget_id: i64,
    category_id: Option<i64>,
    status: Option<&'static str>,
    viewer: &Viewer,
) -> Result<String, AppError> {
    let (hub, access, widget) = widget_by_ids(state, hub_id, widget_id, viewer).await?;
    access::require(access.can_read_inbox(&widget), viewer)?;
    let category = match category_id {
        None => None,
        Some(id) => {
            let categories = categories::list(&state.db, hub.id, true).await?;
            Some(categories.into_iter().find(|c| c.id == id).ok_or(AppError::NotFound("category"))?.slug)
        }
    };
    let filter = InboxFilter { category, status: status.map(str::to_owned) };
    let base = widget_path(&hub.slug, &widget.slug);
    Ok(load_inbox(state, &base, &widget, viewer, filter).await?.render()?)
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/inbox")]
async fn inbox(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<InboxQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, access, widget) = inbox_widget(&state, &path, &chrome.viewer).await?;
    let filter = query.filter()?;
    let region = inbox_region_of(&state, &hub, &widget, &filter).await?;
    let since = state.feed.current_seq();
    let base = widget_path(&hub.slug, &widget.slug);
    let inbox = load_inbox(&state, &base, &widget, &chrome.viewer, filter).await?;
    let stream = live::region::stream_url(&[region], since);
    let chrome = chrome.titled(format!("{} · inbox", widget.name)).live(stream).in_hub(&access);
    let page = InboxPageView { chrome, hub, widget, base, inbox };
    // The filter links are boosted: they load the whole page (and with it a stream for the
    // new filters), so a boosted request gets the whole page although it says HX-Request.
    let boosted = req.headers().get("HX-Boosted").is_some_and(|v| v.as_bytes() == b"true");
    let htmx = if boosted { Htmx { partial: false } } else { htmx };
    let mut response = render::page(htmx, &page, |p| p.as_content().render())?;
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("HX-Request, HX-Boosted"));
    Ok(response)
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/inbox/list")]
async fn inbox_region(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<InboxQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, _, widget) = inbox_widget(&state, &path, &chrome.viewer).await?;
    let base = widget_path(&hub.slug, &widget.slug);
    let filter = query.filter()?;
    let chrome = chrome.titled(format!("{} · inbox", widget.name));
    match query.before.as_deref() {
        Some(param) if htmx.partial => {
            let cursor = Cursor::parse(param).ok_or_else(|| AppError::BadRequest("invalid inbox cursor".into()))?;
            let read_up_to = read_up_to(&state, &chrome.viewer, &widget).await?;
            let page =
                load_inbox_page(&state, &base, &widget, &chrome.viewer, &filter, read_up_to, Some(cursor)).await?;
            render::fragment(&page)
        }
        _ => {
            let panel = load_inbox(&state, &base, &widget, &chrome.viewer, filter).await?;
            region::respond(htmx, chrome, &panel)
        }
    }
}

#[derive(Deserialize)]
struct ReadForm {
    up_to: i64,
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/inbox/read")]
async fn mark_read(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<InboxQuery>,
    form: web::Form<ReadForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, _, widget) = inbox_widget(&state, &path, &chrome.viewer).await?;
    let base = widget_path(&hub.slug, &widget.slug);
    let filter = query.filter()?;
    if let Some(actor_id) = chrome.viewer.actor_id {
        annotations::mark_inbox_read(&state.db, actor_id, widget.id, form.up_to.min(crate::db::now_ms())).await?;
    }
    let panel = load_inbox(&state, &base, &widget, &chrome.viewer, filter).await?;
    if !htmx.partial {
        let location = format!("{}/inbox{}", panel.base, panel.current());
        return Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, location)).finish());
    }
    render::fragment(&panel)
}

/// Mounts the inbox and its region.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(inbox).service(inbox_region).service(mark_read);
}
