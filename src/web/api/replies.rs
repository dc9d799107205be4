//! Replies and "me too" support of an annotation: list and write replies (the hub's staff and the
//! annotation's author; staff may mark one internal), edit one's own reply, and give or take back
//! one's support. The same rules as the web pages (`web::replies`) and the embed, by the one
//! access policy; every query runs as the caller (Row Level Security on PostgreSQL).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};

use super::body::Json;
use super::caller::{Caller, Credential};
use super::error::ApiError;
use super::json::{AuthorJson, SupportJson};
use super::paths::path_widget;
use crate::AppState;
use crate::auth::policy;
use crate::db::annotations::AnnotationBody;
use crate::db::api::{self, ApiAnnotation, Tx};
use crate::db::replies::{self, NewReply, Reply};
use crate::db::supports;
use crate::db::widgets::Widget;
use crate::db::{Db, StoreError};

/// A reply as the API returns it (times in epoch milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct ReplyJson {
    pub id: i64,
    /// The annotation replied to.
    pub annotation: i64,
    pub author: AuthorJson,
    /// Whether the caller wrote it.
    pub mine: bool,
    pub body: String,
    /// For the hub's staff only.
    pub internal: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

impl ReplyJson {
    fn new(reply: &Reply, me: Option<i64>) -> Self {
        Self {
            id: reply.id,
            annotation: reply.annotation_id,
            author: AuthorJson { id: reply.actor_id, name: reply.author_name.clone() },
            mine: reply.is_by(me),
            body: reply.body.clone(),
            internal: reply.is_internal(),
            created_at: reply.created_at,
            updated_at: reply.updated_at,
            version: reply.version,
        }
    }
}

#[derive(Serialize)]
struct ReplyList {
    items: Vec<ReplyJson>,
}

/// The annotation `id` of the widget in the caller's transaction, as they read it (404 when they
/// do not).
async fn annotation(tx: &mut Tx, caller: &Caller, widget: &Widget, id: i64) -> Result<ApiAnnotation, ApiError> {
    api::get_annotation(tx, widget.id, id, caller.annotation_filter().as_ref())
        .await?
        .ok_or(ApiError::NotFound("annotation"))
}

/// The replies of one annotation the caller reads, oldest first.
async fn thread(tx: &mut Tx, caller: &Caller, annotation_id: i64) -> Result<Vec<Reply>, StoreError> {
    let mut all = replies::for_annotations_in(tx, caller.annotation_filter().as_ref(), &[annotation_id]).await?;
    Ok(all.remove(&annotation_id).unwrap_or_default())
}

#[get("/widgets/{embed_key}/annotations/{id}/replies")]
async fn list(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    let annotation = annotation(&mut tx, &caller, &widget, id).await?;
    let rows = thread(&mut tx, &caller, annotation.id).await?;
    Db::end_read(tx);
    let me = caller.actor_id();
    Ok(HttpResponse::Ok().json(ReplyList { items: rows.iter().map(|r| ReplyJson::new(r, me)).collect() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    body: String,
    /// Staff only: for the hub's staff alone.
    #[serde(default)]
    internal: Option<bool>,
}

/// Checks a body by the annotations' rules ([`AnnotationBody`]).
fn check_body(raw: &str) -> Result<AnnotationBody, ApiError> {
    AnnotationBody::parse(raw).map_err(|e| ApiError::Invalid(e.to_string().replace("feedback", "a reply")))
}

#[post("/widgets/{embed_key}/annotations/{id}/replies")]
async fn create(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
    input: Json<NewBody>,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let body = check_body(&input.body)?;
    let internal = input.internal.unwrap_or(false);
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let annotation = annotation(&mut tx, &caller, &widget, id).await?;
    if !caller.rls_only {
        let access = caller.access(&state, widget.hub_id).await?;
        if !access.can_reply(annotation.actor_id) {
            return Err(ApiError::Forbidden(
                "replies are written by the hub's triagers and operators and by the annotation's author".into(),
            ));
        }
        if internal && !access.can_reply_internally() {
            return Err(ApiError::Forbidden("only triagers and operators mark a reply internal".into()));
        }
    }
    let actor_id = caller.actor_id().ok_or_else(ApiError::unauthenticated)?;
    let new = NewReply { annotation_id: annotation.id, actor_id, body: &body, internal };
    let created = match replies::create_in(&mut tx, &new).await {
        Ok(created) => created,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("annotation")),
        Err(e) => return Err(e.into()),
    };
    tx.commit().await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/widgets/{}/annotations/{}/replies/{}", widget.embed_key, annotation.id, created.reply.id),
        ))
        .json(ReplyJson::new(&created.reply, Some(actor_id))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    body: String,
    /// The version the edit is based on; a newer stored version answers 409.
    #[serde(default, deserialize_with = "super::body::optional_integer")]
    version: Option<i64>,
}

#[patch("/widgets/{embed_key}/annotations/{id}/replies/{reply_id}")]
async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
    caller: Caller,
    input: Json<Patch>,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id, reply_id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let annotation = annotation(&mut tx, &caller, &widget, id).await?;
    let reply = thread(&mut tx, &caller, annotation.id)
        .await?
        .into_iter()
        .find(|r| r.id == reply_id)
        .ok_or(ApiError::NotFound("reply"))?;
    let actor_id = caller.actor_id().ok_or_else(ApiError::unauthenticated)?;
    if !caller.rls_only && reply.actor_id != actor_id {
        return Err(ApiError::Forbidden("only its author edits a reply".into()));
    }
    let body = check_body(&input.body)?;
    if input.version.is_some_and(|v| v != reply.version) {
        return Err(StoreError::Stale.into());
    }
    replies::update_body_in(&mut tx, actor_id, reply.id, &body, input.version).await?;
    let reply = thread(&mut tx, &caller, annotation.id)
        .await?
        .into_iter()
        .find(|r| r.id == reply_id)
        .ok_or(ApiError::NotFound("reply"))?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(ReplyJson::new(&reply, Some(actor_id))))
}

/// Gives (`true`) or takes back the caller's support and answers the support as it is now.
async fn set_support(
    state: &AppState,
    caller: &Caller,
    key: &str,
    id: i64,
    supports_it: bool,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let mut caller = caller.clone();
    let widget = path_widget(state, &caller, key).await?;
    // A visitor who wrote nothing yet gets their actor with their first support.
    if supports_it && let Some(Credential::Visitor(visitor)) = &mut caller.credential {
        visitor.ensure_actor(state).await?;
    }
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let annotation = annotation(&mut tx, &caller, &widget, id).await?;
    let me = caller.actor_id();
    if me == Some(annotation.actor_id) {
        return Err(ApiError::Conflict("this is the caller's own annotation: it counts already".into()));
    }
    if !caller.rls_only {
        let allowed = match &caller.credential {
            Some(Credential::Visitor(visitor)) => {
                policy::embed_visitor_can_support(&widget, visitor.actor_id, annotation.actor_id)
            }
            _ => caller.access(state, widget.hub_id).await?.can_support(&widget, annotation.actor_id),
        };
        if !allowed {
            return Err(ApiError::Forbidden("support is given on live public and members widgets only".into()));
        }
    }
    // Without an actor (a visitor taking back what they never gave) there is nothing to change.
    if let Some(actor_id) = me {
        match supports::set_in(&mut tx, actor_id, annotation.id, supports_it).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::Forbidden("support is given on live public and members widgets only".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let support = supports::counts_in(&mut tx, me, &[annotation.id]).await?;
    tx.commit().await?;
    let now = support.get(&annotation.id).copied().unwrap_or_default();
    Ok(HttpResponse::build(StatusCode::OK).json(SupportJson::from(now)))
}

#[put("/widgets/{embed_key}/annotations/{id}/support")]
async fn give_support(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (key, id) = path.into_inner();
    set_support(&state, &caller, &key, id, true).await
}

#[delete("/widgets/{embed_key}/annotations/{id}/support")]
async fn take_back_support(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let (key, id) = path.into_inner();
    set_support(&state, &caller, &key, id, false).await
}

/// Mounts the reply and support routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(update).service(give_support).service(take_back_support);
}
