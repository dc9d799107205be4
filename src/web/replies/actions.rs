//! The reply and support actions of the widget page: list and write replies, show and edit
//! one's own reply, give or take back one's support, and the suggestions like a draft.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::conversations::Conversations;
use super::views::{RepliesView, ReplyItemView, SIMILAR_LIMIT, SimilarView, SupportSlot};
use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::StoreError;
use crate::db::annotations::AnnotationBody;
use crate::db::replies::{self, NewReply, Reply};
use crate::db::supports;
use crate::error::AppError;
use crate::web::access;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::widgets::lookup::{annotation, readable_widget, widget_path};

/// The author's inline edit form of their reply.
#[derive(Template)]
#[template(path = "fragments/reply_edit.html")]
struct ReplyEdit {
    base: String,
    reply: Reply,
    body: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct SlotQuery {
    slot: Option<SupportSlot>,
}

#[derive(Deserialize)]
struct DraftForm {
    body: Option<String>,
}

#[derive(Deserialize)]
struct ReplyForm {
    body: String,
    /// Present (any value) when staff tick "internal".
    internal: Option<String>,
}

type AnnotationPath = web::Path<(String, String, i64)>;

/// The thread under the annotation as the viewer sees it now.
async fn replies_view(
    state: &AppState,
    viewer: &Viewer,
    access: &HubAccess,
    base: &str,
    annotation_id: i64,
    author_id: i64,
) -> Result<RepliesView, AppError> {
    let talk = Conversations::load(state, viewer, access, None, &[annotation_id]).await?;
    Ok(talk.replies(base, annotation_id, author_id))
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies")]
pub(super) async fn show_replies(
    state: web::Data<AppState>,
    path: AnnotationPath,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (base, access, _, item) = annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    render::fragment(&replies_view(&state, &chrome.viewer, &access, &base, item.row.id, item.row.actor_id).await?)
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies")]
pub(super) async fn create_reply(
    state: web::Data<AppState>,
    path: AnnotationPath,
    form: web::Form<ReplyForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    access::require(chrome.viewer.is_signed_in(), &chrome.viewer)?;
    let (base, access, _, item) = annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    if item.deleted_at.is_some() {
        return Err(AppError::NotFound("annotation"));
    }
    access::require(access.can_reply(item.row.actor_id), &chrome.viewer)?;
    let form = form.into_inner();
    let internal = form.internal.is_some();
    access::require(!internal || access.can_reply_internally(), &chrome.viewer)?;
    let (annotation_id, author_id) = (item.row.id, item.row.actor_id);
    let body = match AnnotationBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => {
            let mut view = replies_view(&state, &chrome.viewer, &access, &base, annotation_id, author_id).await?;
            view.error = Some(e.to_string().replace("feedback", "a reply"));
            view.typed = form.body;
            return Ok(render::html(StatusCode::UNPROCESSABLE_ENTITY, view.render()?));
        }
    };
    let actor_id = chrome.viewer.actor_id.ok_or(AppError::Unauthorized)?;
    let new = NewReply { annotation_id, actor_id, body: &body, internal };
    match replies::create(&state.db, &new).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("annotation")),
        Err(e) => return Err(e.into()),
    }
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#annotation-{annotation_id}")))
            .finish());
    }
    render::fragment(&replies_view(&state, &chrome.viewer, &access, &base, annotation_id, author_id).await?)
}

/// Reply `reply_id` under the URL's annotation, for its author only (401/403 for others, 404
/// when the viewer cannot read it).
async fn own_reply(
    state: &AppState,
    path: &(String, String, i64, i64),
    viewer: &Viewer,
) -> Result<(String, Reply), AppError> {
    access::require(viewer.is_signed_in(), viewer)?;
    let (base, _, _, item) = annotation(state, &path.0, &path.1, path.2, viewer).await?;
    let reply = match replies::visible(&state.db, viewer, path.3).await {
        Ok(reply) if reply.annotation_id == item.row.id => reply,
        Ok(_) | Err(StoreError::NotFound) => return Err(AppError::NotFound("reply")),
        Err(e) => return Err(e.into()),
    };
    access::require(viewer.actor_id == Some(reply.actor_id), viewer)?;
    Ok((base, reply))
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies/{reply_id}")]
pub(super) async fn show_reply(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64, i64)>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (base, _, _, item) = annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    let reply = match replies::visible(&state.db, &chrome.viewer, path.3).await {
        Ok(reply) if reply.annotation_id == item.row.id => reply,
        Ok(_) | Err(StoreError::NotFound) => return Err(AppError::NotFound("reply")),
        Err(e) => return Err(e.into()),
    };
    render::fragment(&ReplyItemView { base, reply, viewer_id: chrome.viewer.actor_id })
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies/{reply_id}/edit")]
pub(super) async fn edit_reply(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64, i64)>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (base, reply) = own_reply(&state, &path, &chrome.viewer).await?;
    let body = reply.body.clone();
    render::fragment(&ReplyEdit { base, reply, body, error: None })
}

#[derive(Deserialize)]
struct EditForm {
    body: String,
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies/{reply_id}")]
pub(super) async fn save_reply(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64, i64)>,
    form: web::Form<EditForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (base, reply) = own_reply(&state, &path, &chrome.viewer).await?;
    let body = match AnnotationBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => {
            let error = Some(e.to_string().replace("feedback", "a reply"));
            let view = ReplyEdit { base, reply, body: form.into_inner().body, error };
            return Ok(render::html(StatusCode::UNPROCESSABLE_ENTITY, view.render()?));
        }
    };
    replies::update_body(&state.db, reply.actor_id, None, reply.id, &body).await?;
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#reply-{}", reply.id)))
            .finish());
    }
    let reply = replies::visible(&state.db, &chrome.viewer, reply.id).await?;
    render::fragment(&ReplyItemView { base, reply, viewer_id: chrome.viewer.actor_id })
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/support")]
pub(super) async fn toggle_support(
    state: web::Data<AppState>,
    path: AnnotationPath,
    query: web::Query<SlotQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    access::require(chrome.viewer.is_signed_in(), &chrome.viewer)?;
    let (base, access, widget, item) = annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    if item.deleted_at.is_some() {
        return Err(AppError::NotFound("annotation"));
    }
    if item.is_by(chrome.viewer.actor_id) {
        return Err(AppError::Conflict("this is your own feedback: it counts already".into()));
    }
    access::require(access.can_support(&widget, item.row.actor_id), &chrome.viewer)?;
    let actor_id = chrome.viewer.actor_id.ok_or(AppError::Unauthorized)?;
    match supports::toggle(&state.db, actor_id, None, item.row.id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("annotation")),
        Err(e) => return Err(e.into()),
    }
    if !htmx.partial {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("{base}#annotation-{}", item.row.id)))
            .finish());
    }
    let talk = Conversations::load(&state, &chrome.viewer, &access, Some(&widget), &[item.row.id]).await?;
    let mut view = talk.support(&base, item.row.id, item.row.actor_id);
    view.slot = query.slot.unwrap_or(SupportSlot::Thread);
    render::fragment(&view)
}

/// `POST …/widgets/{widget}/similar`: up to three annotations on the widget like the draft in
/// `body`, each with its support toggle (a POST: a draft can be longer than a query string).
#[post("/hubs/{hub_slug}/widgets/{widget_slug}/similar")]
pub(super) async fn similar(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<DraftForm>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (hub, access, widget) = readable_widget(&state, &path.0, &path.1, &chrome.viewer).await?;
    let base = widget_path(&hub.slug, &widget.slug);
    let draft = form.body.as_deref().unwrap_or_default();
    let rows = crate::db::similar::on_widget(&state.db, &chrome.viewer, widget.id, draft, SIMILAR_LIMIT).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let talk = Conversations::load(&state, &chrome.viewer, &access, Some(&widget), &ids).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let mut view = talk.support(&base, row.id, row.actor_id);
            view.slot = SupportSlot::Similar;
            (row.body, view)
        })
        .collect();
    render::fragment(&SimilarView { items })
}
