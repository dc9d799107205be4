//! The author's own annotation on the widget page: the row alone, the inline edit form and its
//! save, delete, and its undo.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::lookup::annotation;
use super::thread::ThreadItemView;
use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::annotations::{self, AnnotationBody, ThreadItem};
use crate::db::widgets::{self, Widget};
use crate::db::{StoreError, now_ms};
use crate::error::AppError;
use crate::web::access;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::replies::Conversations;

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
pub(super) async fn show_annotation(
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
pub(super) async fn edit_annotation(
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
pub(super) async fn save_annotation(
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
pub(super) async fn delete_annotation(
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
pub(super) async fn restore_annotation(
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
