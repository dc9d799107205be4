//! Annotations of a widget: list (filters, order, cursor pagination), create, read, update (the
//! author's body; triage fields for staff) and delete (the author's own).

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};

use super::body::Json;
use super::caller::{Caller, Credential};
use super::error::ApiError;
use super::json::{AnnotationJson, Talk};
use super::paths::{parse_cursor, parse_limit, path_widget, readable_widget};
use crate::AppState;
use crate::access as policy;
use crate::db::annotations::{self, AnnotationBody, Cursor, NewAnnotation, STATUSES};
use crate::db::api::{self, Changes, Filter, Order};
use crate::db::widgets::Widget;
use crate::db::{StoreError, categories, now_ms};

/// Checks a body by the one set of rules ([`AnnotationBody`]); the message says what is wrong.
fn check_body(raw: &str) -> Result<String, ApiError> {
    AnnotationBody::parse(raw).map(|body| body.as_str().to_owned()).map_err(|e| ApiError::Invalid(e.to_string()))
}

/// The id of the hub's live category `slug` (the hub's default when `None`).
pub async fn category_id(
    state: &AppState,
    hub_id: i64,
    slug: Option<&str>,
) -> Result<Option<(i64, String)>, StoreError> {
    let all = categories::list(&state.db, hub_id, false).await?;
    let wanted = slug.unwrap_or(categories::DEFAULT_SLUG);
    let found = all.iter().find(|c| c.slug == wanted).or(if slug.is_none() { all.first() } else { None });
    Ok(found.map(|c| (c.id, c.slug.clone())))
}

/// Filters, order and page of a listing (and of a subscription, which also takes `access_token`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub category: Option<String>,
    pub status: Option<String>,
    /// `me`: only the caller's own.
    pub author: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    /// `newest` (the default) or `oldest`.
    pub order: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Streams only: the bearer token, for EventSource, which cannot send headers.
    pub access_token: Option<String>,
}

impl ListQuery {
    /// The filter the query asks for, for `caller`.
    pub fn filter(&self, caller: &Caller) -> Result<Filter, ApiError> {
        if let Some(status) = &self.status
            && !STATUSES.contains(&status.as_str())
        {
            return Err(ApiError::BadRequest(format!("status must be one of {}", STATUSES.join(", "))));
        }
        let author_id = match self.author.as_deref() {
            None => None,
            // An actor-less caller (an anonymous visitor who wrote nothing yet) has nothing of their own.
            Some("me") => Some(caller.actor_id().unwrap_or(-1)),
            Some(_) => return Err(ApiError::BadRequest("author can only be `me`".into())),
        };
        Ok(Filter {
            category: self.category.clone(),
            status: self.status.clone(),
            author_id,
            created_after: self.created_after,
            created_before: self.created_before,
        })
    }

    fn order(&self) -> Result<Order, ApiError> {
        match self.order.as_deref() {
            None | Some("newest") => Ok(Order::Newest),
            Some("oldest") => Ok(Order::Oldest),
            Some(_) => Err(ApiError::BadRequest("order must be `newest` or `oldest`".into())),
        }
    }
}

/// A category filter names a category of the widget's hub (archived ones too); another is a 400
/// rather than an empty page, as the OpenAPI document's enum says.
pub async fn check_category_filter(state: &AppState, hub_id: i64, query: &ListQuery) -> Result<(), ApiError> {
    let Some(slug) = &query.category else { return Ok(()) };
    if categories::list(&state.db, hub_id, true).await?.iter().any(|c| &c.slug == slug) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!("no category {slug:?} in this widget's hub")))
    }
}

#[derive(Serialize)]
struct Page {
    items: Vec<AnnotationJson>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

#[get("/widgets/{embed_key}/annotations")]
async fn list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let widget = path_widget(&state, &caller, &path).await?;
    let filter = query.filter(&caller)?;
    let order = query.order()?;
    let limit = parse_limit(query.limit)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    readable_widget(&mut tx, &caller, &widget.embed_key).await?;
    check_category_filter(&state, widget.hub_id, &query).await?;
    let visible = caller.annotation_filter();
    let mut rows =
        api::list_annotations(&mut tx, widget.id, &filter, order, cursor, limit + 1, visible.as_ref()).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| Cursor { created_at: r.created_at, id: r.id }.to_param())
    } else {
        None
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let talk = Talk::load(&mut tx, &caller, &ids).await?;
    tx.commit().await?;
    let me = caller.actor_id();
    Ok(HttpResponse::Ok().json(Page { items: rows.iter().map(|r| talk.json(r, me)).collect(), next_cursor }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBody {
    body: String,
    category: Option<String>,
    /// A retry with the same key returns the annotation made the first time.
    idempotency_key: Option<String>,
}

#[post("/widgets/{embed_key}/annotations")]
async fn create(
    state: web::Data<AppState>,
    path: web::Path<String>,
    caller: Caller,
    input: Json<NewBody>,
) -> Result<HttpResponse, ApiError> {
    let mut caller = caller;
    caller.require()?;
    let widget = path_widget(&state, &caller, &path).await?;
    let body = check_body(&input.body)?;
    if input.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.chars().count() > 100) {
        return Err(ApiError::Invalid("idempotency_key must be 1 to 100 characters".into()));
    }
    let (category_id, _) = category_id(&state, widget.hub_id, input.category.as_deref())
        .await?
        .ok_or_else(|| ApiError::Invalid("unknown category".into()))?;
    may_annotate(&state, &caller, &widget).await?;
    if let Some(Credential::Visitor(visitor)) = &mut caller.credential {
        visitor.ensure_actor(&state).await?;
    }
    let actor_id = caller.actor_id().ok_or_else(ApiError::unauthenticated)?;
    let new = NewAnnotation {
        hub_id: widget.hub_id,
        widget_id: widget.id,
        actor_id,
        body: &body,
        category_id,
        status: annotations::AnnotationStatus::New,
        created_at: now_ms(),
        idempotency_key: input.idempotency_key.as_deref(),
    };
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let (id, status) = match annotations::insert(&mut tx, &new).await {
        Ok(id) => (id, actix_web::http::StatusCode::CREATED),
        Err(e)
            if e.is_conflict_on(
                "annotations_actor_id_idempotency_key_key",
                "annotations.actor_id, annotations.idempotency_key",
            ) =>
        {
            tx.rollback().await?;
            tx = api::begin(&state.db, caller.scope(), true).await?;
            let key = input.idempotency_key.as_deref().unwrap_or_default();
            let id = api::by_idempotency_key(&mut tx, actor_id, key).await?.ok_or(ApiError::NotFound("annotation"))?;
            (id, actix_web::http::StatusCode::OK)
        }
        Err(e) => return Err(e.into()),
    };
    let row = api::get_annotation(&mut tx, widget.id, id, None).await?.ok_or(ApiError::NotFound("annotation"))?;
    let talk = Talk::load(&mut tx, &caller, &[row.id]).await?;
    tx.commit().await?;
    Ok(HttpResponse::build(status)
        .insert_header((header::LOCATION, format!("/api/v1/widgets/{}/annotations/{id}", widget.embed_key)))
        .json(talk.json(&row, Some(actor_id))))
}

/// People (and API keys, as their operator) annotate widgets they may read; an embed visitor
/// the widget of their embed.
async fn may_annotate(state: &AppState, caller: &Caller, widget: &Widget) -> Result<(), ApiError> {
    if caller.rls_only {
        return Ok(());
    }
    let allowed = match &caller.credential {
        Some(Credential::Visitor(_)) => policy::embed_visitor_can_annotate(widget),
        _ => caller.access(state, widget.hub_id).await?.can_annotate(widget),
    };
    if allowed { Ok(()) } else { Err(ApiError::Forbidden("you may not annotate this widget".into())) }
}

#[get("/widgets/{embed_key}/annotations/{id}")]
async fn show(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    let row = api::get_annotation(&mut tx, widget.id, id, caller.annotation_filter().as_ref())
        .await?
        .ok_or(ApiError::NotFound("annotation"))?;
    let talk = Talk::load(&mut tx, &caller, &[row.id]).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(talk.json(&row, caller.actor_id())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    /// The author's own text.
    body: Option<String>,
    /// Triage: a category slug of the hub.
    category: Option<String>,
    /// Triage: one of the statuses.
    status: Option<String>,
    /// The version the change is based on; a newer stored version answers 409.
    #[serde(default, deserialize_with = "super::body::optional_integer")]
    version: Option<i64>,
}

#[patch("/widgets/{embed_key}/annotations/{id}")]
async fn update(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
    input: Json<Patch>,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let current = api::get_annotation(&mut tx, widget.id, id, caller.annotation_filter().as_ref())
        .await?
        .ok_or(ApiError::NotFound("annotation"))?;
    if !caller.rls_only {
        let access = caller.access(&state, widget.hub_id).await?;
        if input.body.is_some() && !access.can_edit_annotation(current.actor_id) {
            return Err(ApiError::Forbidden("only the author edits an annotation's body".into()));
        }
        if (input.category.is_some() || input.status.is_some()) && !access.can_triage() {
            return Err(ApiError::Forbidden("changing category or status needs the triager or operator role".into()));
        }
    }
    let mut changes = Changes::default();
    if let Some(body) = &input.body {
        changes.body = Some(check_body(body)?);
    }
    if let Some(status) = &input.status {
        let parsed = annotations::AnnotationStatus::parse(status);
        changes.status =
            Some(parsed.ok_or_else(|| ApiError::Invalid(format!("status must be one of {}", STATUSES.join(", "))))?);
    }
    if let Some(slug) = &input.category {
        changes.category = Some(
            category_id(&state, widget.hub_id, Some(slug))
                .await?
                .ok_or_else(|| ApiError::Invalid("unknown category".into()))?,
        );
    }
    if input.version.is_some_and(|v| v != current.version) {
        return Err(StoreError::Stale.into());
    }
    // Nothing to change (`{}`, or only `version`) is a no-op that answers the current state.
    if changes.body.is_some() || changes.status.is_some() || changes.category.is_some() {
        api::update_annotation(&mut tx, &current, &changes, caller.actor_id()).await?;
    }
    let row = api::get_annotation(&mut tx, widget.id, id, None).await?.ok_or(ApiError::NotFound("annotation"))?;
    let talk = Talk::load(&mut tx, &caller, &[row.id]).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(talk.json(&row, caller.actor_id())))
}

#[delete("/widgets/{embed_key}/annotations/{id}")]
async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let (key, id) = path.into_inner();
    let widget = path_widget(&state, &caller, &key).await?;
    let mut tx = api::begin(&state.db, caller.scope(), true).await?;
    let current = api::get_annotation(&mut tx, widget.id, id, caller.annotation_filter().as_ref())
        .await?
        .ok_or(ApiError::NotFound("annotation"))?;
    if !caller.rls_only && !caller.access(&state, widget.hub_id).await?.can_edit_annotation(current.actor_id) {
        return Err(ApiError::Forbidden("only the author deletes an annotation".into()));
    }
    api::delete_annotation(&mut tx, &current).await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mounts the annotation routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(show).service(update).service(remove);
}
