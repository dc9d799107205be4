//! A widget's thread: its pages of annotations with their replies and support, the thread
//! region on its own URL (so the live stream can push it), and the live renders of the thread
//! and of the widget's charts.

use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use super::lookup::{readable_widget, widget_by_ids, widget_path};
use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::annotations::{self, Cursor, ThreadItem};
use crate::db::now_ms;
use crate::db::widgets::Widget;
use crate::error::AppError;
use crate::web::charts;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::replies::Conversations;
use crate::web::{access, region};

/// Annotations per page of the thread.
pub const THREAD_PAGE: i64 = 20;

/// Whether `viewer` may read the thread of widget `widget_id` of hub `hub_id` (else the error):
/// `true` when they also read its internal replies (the hub's staff).
pub async fn may_read_thread(state: &AppState, hub_id: i64, widget_id: i64, viewer: &Viewer) -> Result<bool, AppError> {
    let (_, access, widget) = widget_by_ids(state, hub_id, widget_id, viewer).await?;
    access::require(access.can_read_widget(&widget), viewer)?;
    Ok(access.can_reply_internally())
}

/// Renders the thread region for the live stream, as `viewer` may read it now. `shared`: the
/// render every reader of the widget is sent (they all read all of its annotations): nobody's
/// own deleted rows, and every row's edit and delete buttons hidden (`static/live.js` shows
/// them on the viewer's own rows, marked `data-author`).
pub async fn render_live_thread(
    state: &AppState,
    hub_id: i64,
    widget_id: i64,
    viewer: &Viewer,
    shared: bool,
) -> Result<String, AppError> {
    let (hub, access, widget) = widget_by_ids(state, hub_id, widget_id, viewer).await?;
    access::require(access.can_read_widget(&widget), viewer)?;
    let base = widget_path(&hub.slug, &widget.slug);
    let page = load_thread_page_as(state, &base, &access, &widget, viewer, None, shared).await?;
    Ok(ThreadPanel { first: page }.render()?)
}

/// Renders a widget page's charts for the live stream, as `viewer` may read them now (the hub's
/// members who read the widget's events; the figures are the same for all of them).
pub async fn render_live_charts(
    state: &AppState,
    hub_id: i64,
    widget_id: i64,
    viewer: &Viewer,
) -> Result<String, AppError> {
    let (_, access, widget) = widget_by_ids(state, hub_id, widget_id, viewer).await?;
    access::require(access.can_read_widget(&widget) && access.can_read_events(), viewer)?;
    Ok(charts::load_widget(state, &widget).await?.render()?)
}

/// One annotation of the thread (also answered alone after an edit, delete or undo).
#[derive(Template)]
#[template(path = "fragments/thread_item.html")]
pub struct ThreadItemView {
    pub base: String,
    pub item: ThreadItem,
    pub viewer_id: Option<i64>,
    pub now: i64,
    /// Its replies and support.
    pub talk: Conversations,
}

/// One page of the thread, with the "load more" link to the next.
#[derive(Template)]
#[template(path = "fragments/thread_page.html")]
pub struct ThreadPage {
    pub base: String,
    pub items: Vec<ThreadItem>,
    pub next: Option<String>,
    pub first: bool,
    pub viewer_id: Option<i64>,
    pub now: i64,
    /// The replies and support of the page's annotations.
    pub talk: Conversations,
}

/// The thread region: its first page.
#[derive(Template)]
#[template(path = "fragments/thread.html")]
pub struct ThreadPanel {
    pub first: ThreadPage,
}

/// Loads one page of a widget's thread as `viewer` may read it.
pub async fn load_thread_page(
    state: &AppState,
    base: &str,
    access: &HubAccess,
    widget: &Widget,
    viewer: &Viewer,
    before: Option<Cursor>,
) -> Result<ThreadPage, AppError> {
    load_thread_page_as(state, base, access, widget, viewer, before, false).await
}

/// [`load_thread_page`], or (`shared`) the page every reader of the widget is sent live.
pub(super) async fn load_thread_page_as(
    state: &AppState,
    base: &str,
    access: &HubAccess,
    widget: &Widget,
    viewer: &Viewer,
    before: Option<Cursor>,
    shared: bool,
) -> Result<ThreadPage, AppError> {
    let now = now_ms();
    let undo_since = if shared { i64::MAX } else { now - annotations::UNDO_MS };
    let mut items =
        annotations::thread_for_widget(&state.db, viewer, widget.id, undo_since, before, THREAD_PAGE + 1).await?;
    let next = if items.len() as i64 > THREAD_PAGE {
        items.truncate(THREAD_PAGE as usize);
        items.last().map(|last| Cursor { created_at: last.row.created_at, id: last.row.id }.to_param())
    } else {
        None
    };
    let ids: Vec<i64> = items.iter().filter(|i| i.deleted_at.is_none()).map(|i| i.row.id).collect();
    // The shared render carries nothing personal: nobody's own support, no reply or support
    // controls (the page adds the viewer's); internal replies only in the staff's render.
    let talk = if shared {
        Conversations::load_shared(state, viewer, &ids, access.can_reply_internally()).await?
    } else {
        Conversations::load(state, viewer, access, Some(widget), &ids).await?
    };
    let viewer_id = if shared { None } else { viewer.actor_id };
    Ok(ThreadPage { base: base.to_owned(), items, next, first: before.is_none(), viewer_id, now, talk })
}

/// Loads the thread region of a widget.
pub async fn load_thread(
    state: &AppState,
    base: &str,
    access: &HubAccess,
    widget: &Widget,
    viewer: &Viewer,
) -> Result<ThreadPanel, AppError> {
    Ok(ThreadPanel { first: load_thread_page(state, base, access, widget, viewer, None).await? })
}

#[derive(Deserialize)]
struct ThreadQuery {
    before: Option<String>,
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/thread")]
pub(super) async fn thread_region(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ThreadQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, access, widget) = readable_widget(&state, &path.0, &path.1, &chrome.viewer).await?;
    let base = widget_path(&hub.slug, &widget.slug);
    let before = match query.before.as_deref() {
        Some(param) => Some(Cursor::parse(param).ok_or_else(|| AppError::BadRequest("invalid thread cursor".into()))?),
        None => None,
    };
    let page = load_thread_page(&state, &base, &access, &widget, &chrome.viewer, before).await?;
    let chrome = chrome.titled(format!("{} · feedback", widget.name));
    if before.is_some() && htmx.partial {
        return render::fragment(&page);
    }
    region::respond(htmx, chrome, &ThreadPanel { first: page })
}
