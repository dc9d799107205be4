//! The JSON data API under `/api/v1`: the seed's DataSync, as plain HTTP.
//!
//! Callers authenticate with a hub API key (`Authorization: Bearer ihf_…`), an embed token
//! (`Authorization: Bearer <visitor or host token>`), or a signed-in session (writes then need
//! `X-CSRF-Token`). Every query runs as the caller (`db::api::begin`), so on PostgreSQL Row Level
//! Security confines it a second time: to one widget for an embed token, to one hub for an API
//! key. Errors are `{"error", "message"}` JSON. `openapi.json` documents every route.

pub mod annotations;
pub mod body;
pub mod caller;
pub mod cors;
pub mod error;
pub mod events;
pub mod limits;
pub mod openapi;
pub mod replies;
pub mod stream;
pub mod widgets;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use std::collections::HashMap;

use serde::Serialize;

use crate::AppState;
use crate::db::api::{self, ApiAnnotation, Tx, WidgetInfo};
use crate::db::widgets::{self as widget_store, Widget};
use crate::db::{StoreError, annotations::Cursor, replies as reply_store, supports};
use caller::Caller;
use error::ApiError;
use replies::SupportJson;

/// Mounts `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(from_fn(cors::cors))
            .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
            .configure(openapi::configure)
            .configure(widgets::configure)
            // The stream before `annotations/{id}`, which would take "stream" for an id.
            .configure(stream::configure)
            .configure(annotations::configure)
            .configure(replies::configure)
            .configure(events::configure)
            .default_service(web::to(unrouted)),
    );
}

/// A request no route took: 405 with `Allow` when the path is one of the document's with other
/// methods (so the document and the answer cannot disagree), else 404.
pub async fn unrouted(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path().strip_prefix("/api/v1").unwrap_or(req.path());
    match openapi::allowed_methods(path) {
        Some(allowed) => Err(ApiError::MethodNotAllowed(allowed)),
        None => Err(ApiError::NotFound("route")),
    }
}

/// The widget the embed key in the path names, if the caller's credential may address it.
/// Looked up as the server: this decides authentication and CORS, not what is read.
pub async fn path_widget(state: &AppState, caller: &Caller, embed_key: &str) -> Result<Widget, ApiError> {
    let widget = match widget_store::by_embed_key(&state.db, embed_key).await {
        Ok(widget) => widget,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("widget")),
        Err(e) => return Err(e.into()),
    };
    caller.confine(&widget)?;
    Ok(widget)
}

/// The widget as the caller may read it, inside the caller's transaction; 404 when they may not.
pub async fn readable_widget(tx: &mut Tx, caller: &Caller, embed_key: &str) -> Result<WidgetInfo, ApiError> {
    api::widget_by_key(tx, embed_key, caller.widget_filter().as_ref()).await?.ok_or(ApiError::NotFound("widget"))
}

/// Parses a pagination cursor (`<ms>-<id>`).
pub fn parse_cursor(param: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    // An empty cursor is the first page (as a client that sends back a null `next_cursor` does).
    param
        .filter(|p| !p.is_empty())
        .map(|p| Cursor::parse(p).ok_or_else(|| ApiError::BadRequest("invalid cursor".into())))
        .transpose()
}

/// A page size: 1 to 200, 50 when not given.
pub fn parse_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("limit must be between 1 and 200".into())),
    }
}

/// An annotation's author.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorJson {
    pub id: i64,
    pub name: String,
}

/// An annotation as the API returns it (times in epoch milliseconds).
#[derive(Debug, Clone, Serialize)]
pub struct AnnotationJson {
    pub id: i64,
    /// The widget's embed key.
    pub widget: String,
    pub author: AuthorJson,
    /// Whether the caller wrote it.
    pub mine: bool,
    pub body: String,
    pub category: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    /// Its "me too" support, and how many replies the caller reads under it. Left out of stream
    /// events: they change without a new version of the annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub support: Option<SupportJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replies: Option<i64>,
}

/// The support and reply counts of a page of annotations, read in the caller's transaction
/// (as the caller: on PostgreSQL Row Level Security applies).
#[derive(Debug, Default)]
pub struct Talk {
    support: HashMap<i64, supports::Support>,
    replies: HashMap<i64, i64>,
}

impl Talk {
    /// Loads them for the annotations `ids`.
    pub async fn load(tx: &mut Tx, caller: &Caller, ids: &[i64]) -> Result<Self, StoreError> {
        let support = supports::counts_in(tx, caller.actor_id(), ids).await?;
        let replies = reply_store::for_annotations_in(tx, caller.annotation_filter().as_ref(), ids)
            .await?
            .into_iter()
            .map(|(id, thread)| (id, thread.len() as i64))
            .collect();
        Ok(Self { support, replies })
    }

    /// The JSON of a row with its counts, as seen by `me`.
    pub fn json(&self, row: &ApiAnnotation, me: Option<i64>) -> AnnotationJson {
        let mut json = AnnotationJson::new(row, me);
        json.support = Some(self.support.get(&row.id).copied().unwrap_or_default().into());
        json.replies = Some(self.replies.get(&row.id).copied().unwrap_or_default());
        json
    }
}

impl AnnotationJson {
    /// The JSON of a row, as seen by `me`, without its counts (see [`Talk::json`]).
    pub fn new(row: &ApiAnnotation, me: Option<i64>) -> Self {
        Self {
            id: row.id,
            widget: row.widget_key.clone(),
            author: AuthorJson { id: row.actor_id, name: row.author_name.clone() },
            mine: me == Some(row.actor_id),
            body: row.body.clone(),
            category: row.category.clone(),
            status: row.status.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: row.version,
            support: None,
            replies: None,
        }
    }
}
