//! The widget page: its description, the composer for those who may annotate, the thread and
//! the charts; and the composer's posts (a live update of the form, or the new annotation).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::lookup::{hub_widget, readable_widget, widget_path};
use super::thread::{ThreadPanel, load_thread, load_thread_page_as};
use crate::AppState;
use crate::auth::policy::HubAccess;
use crate::components::composer::{self, Action, Composer, ComposerView, Context, Effect};
use crate::components::{self, Component};
use crate::db::categories::{self, Category};
use crate::db::hubs::Hub;
use crate::db::widgets::Widget;
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::charts;
use crate::web::chrome::Chrome;
use crate::web::composer_form::ComposerForm;
use crate::web::render::{self, Htmx};
use crate::web::replies::PersonalControls;
use crate::web::{access, region};

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
pub(super) async fn show_widget(
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

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/composer")]
pub(super) async fn compose(
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
