//! The widget page: its description, the annotation composer and the thread, with the
//! author's inline edit and delete (with undo). The thread is a fragment on its own URL so the
//! live stream can push it.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::components::composer::{self, Action, Composer, ComposerView, Context, Effect};
use crate::components::{self, Component};
use crate::db::annotations::{self, AnnotationBody, Cursor, ThreadItem};
use crate::db::categories::{self, Category};
use crate::db::hubs::{self, Hub};
use crate::db::widgets::{self, Widget};
use crate::db::{StoreError, now_ms};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::charts;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::replies::{Conversations, PersonalControls};
use crate::web::{access, region};

/// Annotations per page of the thread.
pub const THREAD_PAGE: i64 = 20;

/// The path of a widget's page; its other URLs hang below it.
pub fn widget_path(hub_slug: &str, widget_slug: &str) -> String {
    format!("/hubs/{hub_slug}/widgets/{widget_slug}")
}

/// The hub and widget of a URL with the viewer's access to the hub: 404 for an unknown hub or
/// widget.
pub async fn hub_widget(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Option<Widget>), AppError> {
    let (hub, access) = access::hub(state, hub_slug, viewer).await?;
    let widget = match widgets::by_slug(&state.db, hub.id, widget_slug).await {
        Ok(widget) => Some(widget),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((hub, access, widget))
}

/// [`hub_widget`] for viewers who may read the widget: 404 when it does not exist, 401 for
/// anonymous visitors and 403 for others who may not read it.
pub async fn readable_widget(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Widget), AppError> {
    let (hub, access, widget) = hub_widget(state, hub_slug, widget_slug, viewer).await?;
    let widget = widget.ok_or(AppError::NotFound("widget"))?;
    access::require(access.can_read_widget(&widget), viewer)?;
    Ok((hub, access, widget))
}

/// The hub and widget of a live region, with the viewer's access: 404 when either is gone or
/// they do not belong together.
pub async fn widget_by_ids(
    state: &AppState,
    hub_id: i64,
    widget_id: i64,
    viewer: &Viewer,
) -> Result<(Hub, HubAccess, Widget), AppError> {
    let hub = hubs::by_id(&state.db, hub_id).await?;
    let (hub, access) = access::hub(state, &hub.slug, viewer).await?;
    let widget = widgets::by_id(&state.db, widget_id).await?;
    if widget.hub_id != hub.id {
        return Err(AppError::NotFound("widget"));
    }
    Ok((hub, access, widget))
}

/// Checks that `viewer` may read the thread of widget `widget_id` of hub `hub_id`.
/// Whether `viewer` may read the widget's thread (else the error): `true` when they also read
/// its internal replies (the hub's staff).
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

/// The author's inline edit form of one annotation.
#[derive(Template)]
#[template(path = "fragments/annotation_edit.html")]
struct EditForm {
    base: String,
    id: i64,
    body: String,
    error: Option<String>,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "pages/annotation_edit.html", blocks = ["content"])]
struct EditPage {
    chrome: Chrome,
    widget: Widget,
    form: EditForm,
}

#[derive(Template)]
#[template(path = "pages/widget.html", blocks = ["content"])]
struct WidgetPage {
    chrome: Chrome,
    hub: Hub,
    widget: Widget,
    base: String,
    composer: Option<ComposerView>,
    can_read_inbox: bool,
    thread: ThreadPanel,
    /// The widget's charts (their HTML, a live region of their own), for hub members who read events.
    charts: Option<String>,
    /// The viewer's own controls, for static/live.js to add to the shared live thread's rows.
    personal: PersonalControls,
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
async fn load_thread_page_as(
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

fn composer_view(
    state: &AppState,
    base: &str,
    composer: Composer,
    categories: Vec<Category>,
    csrf_token: &str,
) -> Result<ComposerView, AppError> {
    Ok(ComposerView {
        token: components::seal(&state.secret, &composer)?,
        state: composer,
        action_url: format!("{base}/composer"),
        categories,
        csrf_token: csrf_token.to_owned(),
    })
}

/// Renders the widget page with `composer` (or a fresh one) for those who may annotate.
async fn render_widget_page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    (hub, access, widget): (Hub, HubAccess, Widget),
    composer: Option<Composer>,
) -> Result<HttpResponse, AppError> {
    let since = state.feed.current_seq();
    let base = widget_path(&hub.slug, &widget.slug);
    let composer = match access.can_annotate(&widget) {
        true => {
            let categories = categories::list(&state.db, hub.id, false).await?;
            let composer = composer.unwrap_or_else(|| Composer::new(widget.id));
            Some(composer_view(state, &base, composer, categories, &chrome.csrf_token)?)
        }
        false => None,
    };
    let thread = load_thread(state, &base, &access, &widget, &chrome.viewer).await?;
    // The charts are a live region of their own, outside the thread (one render of it serves
    // every reader; only hub members who read events see the charts).
    let charts = match access.can_read_widget(&widget) && access.can_read_events() {
        true => Some(charts::load_widget(state, &widget).await?.render()?),
        false => None,
    };
    let region = Region::Thread { hub_id: hub.id, widget_id: widget.id };
    // The stream sends every reader the shared render (the viewer's own buttons shown by the
    // page): the page says which of those it shows, so the first update can be the new rows.
    let live_url = if access.can_read_widget(&widget) {
        let shared = load_thread_page_as(state, &base, &access, &widget, &chrome.viewer, None, true).await?;
        let shared = ThreadPanel { first: shared }.render()?;
        let mut regions = vec![(region, shared.as_str())];
        if let Some(charts) = &charts {
            regions.push((Region::WidgetCharts { hub_id: hub.id, widget_id: widget.id }, charts.as_str()));
        }
        live::region::stream_url_with(&regions, since)
    } else {
        live::region::stream_url(&[region], since)
    };
    let chrome = chrome.titled(widget.name.clone()).live(live_url).in_hub(&access);
    let can_read_inbox = access.can_read_inbox(&widget);
    let personal = PersonalControls::for_thread(&base, &chrome.viewer, &access, &widget)?;
    let page = WidgetPage { chrome, hub, widget, base, composer, can_read_inbox, thread, charts, personal };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[derive(Deserialize)]
struct PageQuery {
    /// Set by the redirect after a plain-form submit: show the "thanks" note.
    thanks: Option<String>,
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}")]
async fn show_widget(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let found = readable_widget(&state, &path.0, &path.1, &chrome.viewer).await?;
    let composer = query.thanks.as_ref().map(|_| Composer::new(found.2.id).update(Action::Created).0);
    render_widget_page(&state, chrome, htmx, StatusCode::OK, found, composer).await
}

#[derive(Deserialize)]
struct ThreadQuery {
    before: Option<String>,
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/thread")]
async fn thread_region(
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

/// The composer's form: the sealed state, the fields, and which action was asked for.
#[derive(Deserialize)]
struct ComposerForm {
    token: String,
    body: Option<String>,
    category: Option<String>,
    /// `body`, `category` or `submit` (the default: a plain form post is a submit).
    action: Option<String>,
}

impl ComposerForm {
    /// The fields as they are now, then the action asked for.
    fn actions(self) -> Result<Vec<Action>, AppError> {
        let mut actions = Vec::with_capacity(3);
        actions.extend(self.body.map(Action::UpdateBody));
        actions.extend(self.category.map(Action::ChooseCategory));
        match self.action.as_deref() {
            None | Some("submit") => actions.push(Action::Submit),
            Some("body" | "category") => {}
            Some(other) => return Err(AppError::BadRequest(format!("unknown composer action {other:?}"))),
        }
        Ok(actions)
    }
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/composer")]
async fn compose(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<ComposerForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    // A token that does not verify is refused before anything is read or written.
    let composer: Composer = components::open(&state.secret, &form.token)?;
    let (hub, access, widget) = hub_widget(&state, &path.0, &path.1, &chrome.viewer).await?;
    access::require(chrome.viewer.is_signed_in(), &chrome.viewer)?;
    if widget.as_ref().is_some_and(|w| w.id != composer.widget_id) {
        return Err(AppError::BadRequest("this form belongs to another widget".into()));
    }
    let categories = categories::list(&state.db, hub.id, false).await?;
    let (mut composer, effect) = composer.apply(form.actions()?);
    let mut created = false;
    if let Effect::Create(draft) = effect {
        let ctx = Context { db: &state.db, access: &access, widget: widget.as_ref(), categories: &categories };
        let outcome = composer::perform(&ctx, draft).await;
        created = outcome == Action::Created;
        composer = composer.update(outcome).0;
    }
    let base = widget_path(&hub.slug, &path.1);
    let status = composer.status();
    let retry_after = composer.retry_after().map(header::HeaderValue::from);
    if htmx.partial {
        let view = composer_view(&state, &base, composer, categories, &chrome.csrf_token)?;
        let mut response = render::html(status, view.render()?);
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        if created {
            // The author's own thread refreshes at once, whatever the live stream is doing.
            response.headers_mut().insert(
                header::HeaderName::from_static("hx-trigger"),
                header::HeaderValue::from_static("annotation-created"),
            );
        }
        return Ok(response);
    }
    // Without JavaScript: back to the page after a submit, or the page with the composer as it is.
    let mut response = match widget.filter(|w| access.can_read_widget(w)) {
        Some(_) if created => {
            return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("{base}?thanks=1"))).finish());
        }
        Some(widget) => render_widget_page(&state, chrome, htmx, status, (hub, access, widget), Some(composer)).await?,
        None => {
            let view = composer_view(&state, &base, composer, categories, &chrome.csrf_token)?;
            let mut response = region::respond(htmx, chrome.titled("Leave feedback"), &view)?;
            *response.status_mut() = status;
            response
        }
    };
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    Ok(response)
}

/// The annotation `id` of the URL's widget, if the viewer may read it (404 otherwise).
pub(crate) async fn annotation(
    state: &AppState,
    hub_slug: &str,
    widget_slug: &str,
    id: i64,
    viewer: &Viewer,
) -> Result<(String, HubAccess, Widget, ThreadItem), AppError> {
    let (hub, access, widget) = hub_widget(state, hub_slug, widget_slug, viewer).await?;
    let widget = widget.ok_or(AppError::NotFound("widget"))?;
    let item = match annotations::visible_on_widget(&state.db, viewer, widget.id, id).await {
        Ok(item) => item,
        Err(StoreError::NotFound) => {
            // Like the widget page: 401/403 for those who may not read the widget at all.
            access::require(access.can_read_widget(&widget), viewer)?;
            return Err(AppError::NotFound("annotation"));
        }
        Err(e) => return Err(e.into()),
    };
    Ok((widget_path(&hub.slug, &widget.slug), access, widget, item))
}

/// [`annotation`] for its author only: 401 for anonymous visitors, 403 for everyone else.
async fn own_annotation(
    state: &AppState,
    path: &(String, String, i64),
    viewer: &Viewer,
) -> Result<(String, Widget, ThreadItem), AppError> {
    access::require(viewer.is_signed_in(), viewer)?;
    let (base, access, widget, item) = annotation(state, &path.0, &path.1, path.2, viewer).await?;
    access::require(access.can_edit_annotation(item.row.actor_id), viewer)?;
    Ok((base, widget, item))
}

/// The thread item as it is now: the row, the undo note, or nothing once it is gone.
async fn item_response(
    state: &AppState,
    base: String,
    widget_id: i64,
    id: i64,
    viewer: &Viewer,
) -> Result<HttpResponse, AppError> {
    let item = annotations::visible_on_widget(&state.db, viewer, widget_id, id).await?;
    render_item(state, base, item, viewer).await
}

async fn render_item(
    state: &AppState,
    base: String,
    item: ThreadItem,
    viewer: &Viewer,
) -> Result<HttpResponse, AppError> {
    let now = now_ms();
    let gone =
        item.deleted_at.is_some_and(|at| Some(item.row.actor_id) != viewer.actor_id || at < now - annotations::UNDO_MS);
    if gone {
        return Ok(render::html(StatusCode::OK, String::new()));
    }
    let access = HubAccess::load(&state.db, viewer, item.row.hub_id).await?;
    let widget = widgets::by_id(&state.db, item.row.widget_id).await?;
    let talk = Conversations::load(state, viewer, &access, Some(&widget), &[item.row.id]).await?;
    render::fragment(&ThreadItemView { base, item, viewer_id: viewer.actor_id, now, talk })
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}")]
async fn show_annotation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, _, _, item) = annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#annotation-{}", path.2)))
            .finish());
    }
    render_item(&state, base, item, &chrome.viewer).await
}

fn edit_response(
    htmx: Htmx,
    chrome: Chrome,
    status: StatusCode,
    widget: Widget,
    form: EditForm,
) -> Result<HttpResponse, AppError> {
    if htmx.partial {
        return Ok(render::html(status, form.render()?));
    }
    let page = EditPage { chrome: chrome.titled(format!("{} · edit feedback", widget.name)), widget, form };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/edit")]
async fn edit_annotation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, widget, item) = own_annotation(&state, &path, &chrome.viewer).await?;
    if item.deleted_at.is_some() {
        return Err(AppError::NotFound("annotation"));
    }
    let form =
        EditForm { base, id: item.row.id, body: item.row.body, error: None, csrf_token: chrome.csrf_token.clone() };
    edit_response(htmx, chrome, StatusCode::OK, widget, form)
}

#[derive(Deserialize)]
struct EditBody {
    body: String,
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}")]
async fn save_annotation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64)>,
    form: web::Form<EditBody>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, widget, item) = own_annotation(&state, &path, &chrome.viewer).await?;
    let actor_id = item.row.actor_id;
    let body = match AnnotationBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => {
            let form = EditForm {
                base,
                id: item.row.id,
                body: form.into_inner().body,
                error: Some(e.to_string()),
                csrf_token: chrome.csrf_token.clone(),
            };
            return edit_response(htmx, chrome, StatusCode::UNPROCESSABLE_ENTITY, widget, form);
        }
    };
    annotations::update_body(&state.db, actor_id, item.row.id, &body).await?;
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#annotation-{}", item.row.id)))
            .finish());
    }
    item_response(&state, base, widget.id, item.row.id, &chrome.viewer).await
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/delete")]
async fn delete_annotation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, widget, item) = own_annotation(&state, &path, &chrome.viewer).await?;
    annotations::soft_delete(&state.db, item.row.actor_id, item.row.id).await?;
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, base)).finish());
    }
    item_response(&state, base, widget.id, item.row.id, &chrome.viewer).await
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/restore")]
async fn restore_annotation(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, widget, item) = own_annotation(&state, &path, &chrome.viewer).await?;
    match annotations::restore(&state.db, item.row.actor_id, item.row.id).await {
        Ok(()) => {}
        Err(StoreError::Stale) => return Err(AppError::Conflict("too late to undo: the annotation is deleted".into())),
        Err(e) => return Err(e.into()),
    }
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#annotation-{}", item.row.id)))
            .finish());
    }
    item_response(&state, base, widget.id, item.row.id, &chrome.viewer).await
}

/// Mounts the widget page, its thread and the author's actions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(show_widget)
        .service(thread_region)
        .service(compose)
        .service(show_annotation)
        .service(edit_annotation)
        .service(save_annotation)
        .service(delete_annotation)
        .service(restore_annotation);
}
