//! The visitor's "me too" in the embed: the toggle under an annotation they read, and the
//! suggestions like their draft beside the composer.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use askama::Template;
use serde::Deserialize;

use super::response::{frame_ancestors, origin_ok, respond};
use super::thread::load_thread;
use super::visitor::{TokenQuery, live_widget, reader, request_visitor, rls_only};
use crate::AppState;
use crate::auth::policy;
use crate::db::api;
use crate::db::supports;
use crate::db::{Db, StoreError};
use crate::error::AppError;
use crate::web::replies::{SIMILAR_LIMIT, SimilarView, SupportSlot, SupportView};

/// `POST /embed/{embed_key}/annotations/{id}/support`: the visitor's "me too" on an annotation
/// they read (given, or taken back); answers the count and toggle as they are now.
#[post("/embed/{embed_key}/annotations/{id}/support")]
pub(super) async fn toggle_support(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(widget) = live_widget(&state, &path.0).await? else { return Err(AppError::NotFound("widget")) };
    let ancestors = frame_ancestors(&widget);
    if !origin_ok(&req, &widget) {
        return Err(AppError::Forbidden);
    }
    let Some(mut visitor) = request_visitor(&state, &req, &widget, query.vt.as_deref()).await? else {
        return Err(AppError::Unauthorized);
    };
    let visible = (!rls_only(&state)).then(|| visitor.viewer());
    let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
    let annotation = api::get_annotation(&mut tx, widget.id, path.1, visible.as_ref()).await?;
    Db::end_read(tx);
    let annotation = annotation.ok_or(AppError::NotFound("annotation"))?;
    if !policy::embed_visitor_can_support(&widget, visitor.actor_id, annotation.actor_id) {
        return Err(AppError::Forbidden);
    }
    let actor_id = visitor.ensure_actor(&state).await?;
    match supports::toggle(&state.db, actor_id, Some(widget.id), annotation.id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(AppError::NotFound("annotation")),
        Err(e) if api::is_policy_refusal(&e) => return Err(AppError::Forbidden),
        Err(e) => return Err(e.into()),
    }
    let thread = load_thread(&state, &widget, &visitor).await?;
    let mut view = thread.support(&annotation);
    view.slot = query.slot.unwrap_or(SupportSlot::Thread);
    Ok(respond(StatusCode::OK, &ancestors, view.render()?, Some(&visitor)))
}

#[derive(Debug, Deserialize)]
struct DraftForm {
    body: Option<String>,
}

/// `POST /embed/{embed_key}/similar`: up to three annotations of the widget like the visitor's
/// draft that the visitor reads, with their support toggles.
#[post("/embed/{embed_key}/similar")]
pub(super) async fn similar(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenQuery>,
    form: web::Form<DraftForm>,
) -> Result<HttpResponse, AppError> {
    let Some(widget) = live_widget(&state, &path).await? else { return Err(AppError::NotFound("widget")) };
    if !origin_ok(&req, &widget) {
        return Err(AppError::Forbidden);
    }
    let visitor = reader(&state, &req, &widget, query.vt.as_deref()).await?;
    let draft = form.body.as_deref().unwrap_or_default();
    let rows = crate::db::similar::on_widget(&state.db, &visitor.viewer(), widget.id, draft, SIMILAR_LIMIT).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
    let support = supports::counts_in(&mut tx, visitor.actor_id, &ids).await?;
    Db::end_read(tx);
    let url = policy::supportable(&widget)
        .then(|| format!("/embed/{}/annotations/{{id}}/support?vt={}", widget.embed_key, visitor.token));
    let items = rows
        .into_iter()
        .map(|row| {
            let s = support.get(&row.id).copied().unwrap_or_default();
            let url = url.as_ref().filter(|_| visitor.actor_id != Some(row.actor_id));
            let view = SupportView {
                annotation_id: row.id,
                count: s.count,
                mine: s.mine,
                url: url.map(|u| u.replacen("{id}", &row.id.to_string(), 1)),
                slot: SupportSlot::Similar,
            };
            (row.body, view)
        })
        .collect();
    Ok(respond(StatusCode::OK, &frame_ancestors(&widget), SimilarView { items }.render()?, None))
}
