//! `GET /api/v1/widgets` and `GET /api/v1/widgets/{embed_key}`: the widgets a caller may read,
//! with the counts they may see.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;

use super::caller::{Caller, Credential};
use super::error::ApiError;
use super::paths::{path_widget, readable_widget};
use crate::AppState;
use crate::clock::DAY_MS;
use crate::db::api::{self, WidgetCounts, WidgetInfo};

/// A widget as the API returns it (never its embed secret).
#[derive(Debug, Serialize)]
pub struct WidgetJson {
    pub key: String,
    pub hub: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub scope: String,
    pub archived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountsJson>,
}

/// What the caller may count of a widget.
#[derive(Debug, Serialize)]
pub struct CountsJson {
    pub annotations: i64,
    pub annotations_new: i64,
    /// Events of the last 24 hours; `null` when the caller may not read events.
    pub events_24h: Option<i64>,
}

impl WidgetJson {
    fn new(w: WidgetInfo, counts: Option<WidgetCounts>) -> Self {
        Self {
            key: w.embed_key,
            hub: w.hub_slug,
            slug: w.slug,
            name: w.name,
            description: w.description,
            scope: w.policy_scope.to_string(),
            archived: w.archived_at.is_some(),
            counts: counts.map(|c| CountsJson {
                annotations: c.annotations,
                annotations_new: c.annotations_new,
                events_24h: c.events,
            }),
        }
    }
}

#[derive(Serialize)]
struct WidgetList {
    items: Vec<WidgetJson>,
}

#[get("/widgets")]
async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let credential = caller.require()?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    let widgets = match credential {
        Credential::Visitor(visitor) if !caller.rls_only => {
            api::widget_by_key(&mut tx, &visitor.widget.embed_key, None).await?.into_iter().collect()
        }
        Credential::ApiKey { key, .. } if !caller.rls_only => {
            api::list_widgets(&mut tx, Some(key.hub_id), caller.widget_filter().as_ref()).await?
        }
        _ => api::list_widgets(&mut tx, None, caller.widget_filter().as_ref()).await?,
    };
    tx.commit().await?;
    let items = widgets.into_iter().map(|w| WidgetJson::new(w, None)).collect();
    Ok(HttpResponse::Ok().json(WidgetList { items }))
}

#[get("/widgets/{embed_key}")]
async fn show(state: web::Data<AppState>, path: web::Path<String>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require()?;
    let widget = path_widget(&state, &caller, &path).await?;
    let mut tx = api::begin(&state.db, caller.scope(), false).await?;
    let info = readable_widget(&mut tx, &caller, &widget.embed_key).await?;
    let access = caller.access(&state, info.hub_id).await?;
    let events_since = (caller.rls_only || access.can_read_events()).then(|| crate::db::now_ms() - DAY_MS);
    let counts = api::widget_counts(&mut tx, info.id, caller.annotation_filter().as_ref(), events_since).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(WidgetJson::new(info, Some(counts))))
}

/// Mounts the widget routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(show);
}
