//! Replies inside the embed: the visitor who gave feedback on a third-party page reads the
//! replies to it there, answers them and edits their own answers, with the embed's credential
//! (the visitor token the iframe carries, or its partitioned cookie) and its `Origin` check.
//!
//! A visitor holds no hub role, so they reply only under their own annotations and never
//! internally; they read no internal reply. Their writes run confined to the widget (on
//! PostgreSQL by Row Level Security as well), like everything else of the embed. The thread's
//! live stream (`thread.rs`) renders these same fragments, so a staff reply shows up live.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::response::{frame_ancestors, origin_ok, respond};
use super::thread::{Thread, load_thread};
use super::visitor::{live_widget, request_visitor, rls_only};
use crate::AppState;
use crate::auth::embed::Visitor;
use crate::db::annotations::AnnotationBody;
use crate::db::api::{self, ApiAnnotation};
use crate::db::replies::{self, NewReply, Reply};
use crate::db::widgets::Widget;
use crate::db::{Db, StoreError};
use crate::error::AppError;

/// The replies under one annotation of the embed thread, with the reply form when the visitor
/// wrote the annotation.
#[derive(Template)]
#[template(path = "fragments/embed_replies.html")]
pub struct EmbedReplies {
    pub annotation_id: i64,
    pub replies: Vec<Reply>,
    /// The visitor's actor.
    pub me: Option<i64>,
    /// `/embed/{key}`, and the visitor token every form carries in its URL.
    pub base: String,
    pub vt: String,
    pub can_reply: bool,
    /// Why the last reply was refused; `typed` is what was typed.
    pub error: Option<String>,
    pub typed: String,
}

/// One reply of the embed thread (answered alone after an edit or a cancelled edit).
#[derive(Template)]
#[template(path = "fragments/embed_reply_item.html")]
pub struct EmbedReplyItem {
    pub reply: Reply,
    pub me: Option<i64>,
    pub base: String,
    pub vt: String,
}

/// The visitor's inline edit form of their reply.
#[derive(Template)]
#[template(path = "fragments/embed_reply_edit.html")]
struct EmbedReplyEdit {
    reply: Reply,
    base: String,
    vt: String,
    body: String,
    error: Option<String>,
}

impl Thread {
    /// The replies under `annotation`, and the form when the visitor may answer (their own).
    pub fn replies(&self, annotation: &ApiAnnotation) -> EmbedReplies {
        EmbedReplies {
            annotation_id: annotation.id,
            replies: self.talk.replies_of(annotation.id).to_vec(),
            me: self.me,
            base: format!("/embed/{}", self.key),
            vt: self.vt.clone(),
            can_reply: self.mine(annotation),
            error: None,
            typed: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    vt: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BodyForm {
    #[serde(default)]
    body: String,
}

/// A write of the embed: the live widget, a post from IHF's own origin or an allowed one, and
/// a known visitor.
async fn writer(
    state: &AppState,
    req: &HttpRequest,
    key: &str,
    vt: Option<&str>,
) -> Result<(Widget, String, Visitor), AppError> {
    let Some(widget) = live_widget(state, key).await? else { return Err(AppError::NotFound("widget")) };
    if !origin_ok(req, &widget) {
        tracing::info!(widget = widget.id, "refused an embed reply from a foreign origin");
        return Err(AppError::Forbidden);
    }
    let Some(visitor) = request_visitor(state, req, &widget, vt).await? else {
        return Err(AppError::Unauthorized);
    };
    let ancestors = frame_ancestors(&widget);
    Ok((widget, ancestors, visitor))
}

/// The annotation `id` of the widget, as the visitor reads it (404 when they do not).
async fn readable(state: &AppState, widget: &Widget, visitor: &Visitor, id: i64) -> Result<ApiAnnotation, AppError> {
    let visible = (!rls_only(state)).then(|| visitor.viewer());
    let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
    let annotation = api::get_annotation(&mut tx, widget.id, id, visible.as_ref()).await?;
    Db::end_read(tx);
    annotation.ok_or(AppError::NotFound("annotation"))
}

/// The replies under `annotation` as the visitor reads them now.
async fn replies_now(
    state: &AppState,
    widget: &Widget,
    visitor: &Visitor,
    annotation: &ApiAnnotation,
) -> Result<EmbedReplies, AppError> {
    let thread = load_thread(state, widget, visitor).await?;
    let mut view = thread.replies(annotation);
    // The thread shows the newest annotations only; an older one's replies are loaded alone.
    if !thread.items.iter().any(|a| a.id == annotation.id) {
        let visible = (!rls_only(state)).then(|| visitor.viewer());
        let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
        let mut all = replies::for_annotations_in(&mut tx, visible.as_ref(), &[annotation.id]).await?;
        Db::end_read(tx);
        view.replies = all.remove(&annotation.id).unwrap_or_default();
    }
    Ok(view)
}

/// Reply `reply_id` of the widget as the visitor reads it, in their confinement.
async fn visitor_reply(state: &AppState, widget: &Widget, visitor: &Visitor, reply_id: i64) -> Result<Reply, AppError> {
    let visible = (!rls_only(state)).then(|| visitor.viewer());
    let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
    let found = replies::visible_in(&mut tx, visible.as_ref(), reply_id).await;
    Db::end_read(tx);
    match found {
        Ok(reply) if reply.widget_id == widget.id => Ok(reply),
        Ok(_) | Err(StoreError::NotFound) => Err(AppError::NotFound("reply")),
        Err(e) => Err(e.into()),
    }
}

/// Back to the embed page after a plain-form post (no JavaScript), at the annotation.
fn back_to_page(widget: &Widget, visitor: &Visitor, annotation_id: i64) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("/embed/{}?vt={}#embed-annotation-{annotation_id}", widget.embed_key, visitor.token),
        ))
        .finish()
}

/// `POST /embed/{embed_key}/annotations/{id}/replies`: the visitor answers the replies to their
/// own annotation. A refused body comes back as 422 with what was typed.
#[post("/embed/{embed_key}/annotations/{id}/replies")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<TokenQuery>,
    form: web::Form<BodyForm>,
    htmx: crate::web::render::Htmx,
) -> Result<HttpResponse, AppError> {
    let (key, id) = path.into_inner();
    let (widget, ancestors, visitor) = writer(&state, &req, &key, query.vt.as_deref()).await?;
    let annotation = readable(&state, &widget, &visitor, id).await?;
    let Some(actor_id) = visitor.actor_id.filter(|me| *me == annotation.actor_id) else {
        // Only the annotation's author answers from the embed (the hub's staff reply in IHF).
        return Err(AppError::Forbidden);
    };
    let form = form.into_inner();
    let body = match AnnotationBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => {
            let mut view = replies_now(&state, &widget, &visitor, &annotation).await?;
            view.error = Some(e.to_string().replace("feedback", "a reply"));
            view.typed = form.body;
            return Ok(respond(StatusCode::UNPROCESSABLE_ENTITY, &ancestors, view.render()?, Some(&visitor)));
        }
    };
    let new = NewReply { annotation_id: annotation.id, actor_id, body: &body, internal: false };
    match replies::create_confined(&state.db, &new, Some(widget.id)).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("annotation")),
        Err(e) if api::is_policy_refusal(&e) => return Err(AppError::Forbidden),
        Err(e) => return Err(e.into()),
    }
    if !htmx.partial {
        return Ok(back_to_page(&widget, &visitor, annotation.id));
    }
    let view = replies_now(&state, &widget, &visitor, &annotation).await?;
    Ok(respond(StatusCode::OK, &ancestors, view.render()?, Some(&visitor)))
}

/// The visitor's own reply `reply_id` on the widget (404 when they do not read it, 403 when
/// someone else wrote it).
async fn own_reply(state: &AppState, widget: &Widget, visitor: &Visitor, reply_id: i64) -> Result<Reply, AppError> {
    let reply = visitor_reply(state, widget, visitor, reply_id).await?;
    if visitor.actor_id != Some(reply.actor_id) {
        return Err(AppError::Forbidden);
    }
    Ok(reply)
}

/// `GET /embed/{embed_key}/replies/{id}`: one reply as the thread shows it (an edit cancelled).
#[get("/embed/{embed_key}/replies/{id}")]
async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let (key, id) = path.into_inner();
    let Some(widget) = live_widget(&state, &key).await? else { return Err(AppError::NotFound("widget")) };
    let Some(visitor) = request_visitor(&state, &req, &widget, query.vt.as_deref()).await? else {
        return Err(AppError::Unauthorized);
    };
    let reply = visitor_reply(&state, &widget, &visitor, id).await?;
    let view = EmbedReplyItem { reply, me: visitor.actor_id, base: format!("/embed/{key}"), vt: visitor.token.clone() };
    Ok(respond(StatusCode::OK, &frame_ancestors(&widget), view.render()?, None))
}

/// `GET /embed/{embed_key}/replies/{id}/edit`: the visitor's edit form of their own reply.
#[get("/embed/{embed_key}/replies/{id}/edit")]
async fn edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let (key, id) = path.into_inner();
    let Some(widget) = live_widget(&state, &key).await? else { return Err(AppError::NotFound("widget")) };
    let Some(visitor) = request_visitor(&state, &req, &widget, query.vt.as_deref()).await? else {
        return Err(AppError::Unauthorized);
    };
    let reply = own_reply(&state, &widget, &visitor, id).await?;
    let body = reply.body.clone();
    let view = EmbedReplyEdit { reply, base: format!("/embed/{key}"), vt: visitor.token.clone(), body, error: None };
    Ok(respond(StatusCode::OK, &frame_ancestors(&widget), view.render()?, None))
}

/// `POST /embed/{embed_key}/replies/{id}`: the visitor saves their edited reply.
#[post("/embed/{embed_key}/replies/{id}")]
async fn save(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<TokenQuery>,
    form: web::Form<BodyForm>,
    htmx: crate::web::render::Htmx,
) -> Result<HttpResponse, AppError> {
    let (key, id) = path.into_inner();
    let (widget, ancestors, visitor) = writer(&state, &req, &key, query.vt.as_deref()).await?;
    let reply = own_reply(&state, &widget, &visitor, id).await?;
    let base = format!("/embed/{key}");
    let body = match AnnotationBody::parse(&form.body) {
        Ok(body) => body,
        Err(e) => {
            let error = Some(e.to_string().replace("feedback", "a reply"));
            let view = EmbedReplyEdit { reply, base, vt: visitor.token.clone(), body: form.into_inner().body, error };
            return Ok(respond(StatusCode::UNPROCESSABLE_ENTITY, &ancestors, view.render()?, Some(&visitor)));
        }
    };
    match replies::update_body(&state.db, reply.actor_id, Some(widget.id), reply.id, &body).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("reply")),
        Err(e) => return Err(e.into()),
    }
    if !htmx.partial {
        return Ok(back_to_page(&widget, &visitor, reply.annotation_id));
    }
    let reply = visitor_reply(&state, &widget, &visitor, reply.id).await?;
    let view = EmbedReplyItem { reply, me: visitor.actor_id, base, vt: visitor.token.clone() };
    Ok(respond(StatusCode::OK, &ancestors, view.render()?, Some(&visitor)))
}

/// Mounts the embed's reply routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create).service(show).service(edit).service(save);
}
