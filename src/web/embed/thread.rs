//! The embed's thread: the annotations the visitor reads with their replies and support, as a
//! region on its own URL and over SSE whenever it changes, rendered as the visitor each time.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, Responder, get, web};
use actix_web_lab::sse;
use askama::Template;
use tokio::sync::mpsc;

use super::response::{frame_ancestors, respond};
use super::visitor::{TokenQuery, live_widget, reader, rls_only};
use crate::AppState;
use crate::auth::embed::Visitor;
use crate::auth::policy;
use crate::db::api::{self, ApiAnnotation, Filter, Order};
use crate::db::widgets::Widget;
use crate::db::{StoreError, now_ms};
use crate::db::{replies, supports, visitors};
use crate::error::AppError;
use crate::live::Region;
use crate::live::hub::{Woken, html_hash};
use crate::web::replies::{Conversations, SupportSlot, SupportView};

/// Annotations the embed thread shows.
pub const THREAD_SIZE: i64 = 50;

/// The annotations the visitor may read: all of a public widget's, else their own.
#[derive(Template)]
#[template(path = "fragments/embed_thread.html")]
pub struct Thread {
    pub items: Vec<ApiAnnotation>,
    pub me: Option<i64>,
    pub public: bool,
    /// The replies the visitor reads (never internal ones) and the support of each annotation.
    pub talk: Conversations,
    /// `/embed/{key}/annotations/{id}/support?vt=…` with `{id}` to fill in, when the widget
    /// takes support.
    pub support_url: Option<String>,
    /// The widget's embed key and the visitor's token, for the reply forms
    /// (`replies.rs`).
    pub key: String,
    pub vt: String,
}

impl Thread {
    /// Whether the visitor wrote `annotation`.
    pub fn mine(&self, annotation: &ApiAnnotation) -> bool {
        self.me == Some(annotation.actor_id)
    }

    /// The "me too" count and toggle of `annotation`.
    pub fn support(&self, annotation: &ApiAnnotation) -> SupportView {
        let support = self.talk.support_of(annotation.id);
        let url = self
            .support_url
            .as_ref()
            .filter(|_| !self.mine(annotation))
            .map(|url| url.replacen("{id}", &annotation.id.to_string(), 1));
        SupportView {
            annotation_id: annotation.id,
            count: support.count,
            mine: support.mine,
            url,
            slot: SupportSlot::Thread,
        }
    }
}

pub(super) async fn load_thread(state: &AppState, widget: &Widget, visitor: &Visitor) -> Result<Thread, AppError> {
    let visible = (!rls_only(state)).then(|| visitor.viewer());
    let mut tx = api::begin(&state.db, visitor.scope(), false).await?;
    let items = api::list_annotations(
        &mut tx,
        widget.id,
        &Filter::default(),
        Order::Newest,
        None,
        THREAD_SIZE,
        visible.as_ref(),
    )
    .await?;
    let ids: Vec<i64> = items.iter().map(|a| a.id).collect();
    let support = supports::counts_in(&mut tx, visitor.actor_id, &ids).await?;
    // In the visitor's confinement: on PostgreSQL it is what lets them read their widget.
    let replies = replies::for_annotations_in(&mut tx, visible.as_ref(), &ids).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let support_url = policy::supportable(widget)
        .then(|| format!("/embed/{}/annotations/{{id}}/support?vt={}", widget.embed_key, visitor.token));
    Ok(Thread {
        items,
        me: visitor.actor_id,
        public: widget.policy_scope == crate::access::WidgetScope::Public,
        talk: Conversations::embed(replies, support, visitor.actor_id),
        support_url,
        key: widget.embed_key.clone(),
        vt: visitor.token.clone(),
    })
}

/// `GET /embed/{embed_key}/thread`: the thread region on its own.
#[get("/embed/{embed_key}/thread")]
pub(super) async fn thread_region(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, AppError> {
    let Some(widget) = live_widget(&state, &path).await? else { return Err(AppError::NotFound("widget")) };
    let visitor = reader(&state, &req, &widget, query.vt.as_deref()).await?;
    let thread = load_thread(&state, &widget, &visitor).await?;
    Ok(respond(StatusCode::OK, &frame_ancestors(&widget), thread.render()?, None))
}

/// `GET /embed/{embed_key}/live`: the thread's HTML over SSE whenever it changes (event
/// `thread`), rendered as the visitor each time.
#[get("/embed/{embed_key}/live")]
pub(super) async fn live_thread(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> Result<impl Responder, AppError> {
    let Some(mut widget) = live_widget(&state, &path).await? else { return Err(AppError::NotFound("widget")) };
    let mut visitor = reader(&state, &req, &widget, query.vt.as_deref()).await?;
    let admitted =
        state.live.admit(crate::web::client_addr::client_ip(&req), None).map_err(|_| AppError::Overloaded(10))?;
    // The live dispatcher wakes it (the same feed, coalescing and bounded queue as page
    // regions); the thread is rendered as the visitor, so it shows only what they may read.
    let region = Region::Follow { hub_id: widget.hub_id, widget_id: widget.id };
    let mut follower = state.live.follow(admitted, &visitor.viewer(), region, Duration::from_secs(4));
    let (sender, receiver) = mpsc::channel(8);
    actix_web::rt::spawn(async move {
        let mut last = None;
        let mut dirty = true;
        while !sender.is_closed() && visitor.is_live() {
            if dirty {
                // An anonymous visitor gets their actor with their first post, after this stream
                // opened: look it up, so their own annotations are marked (and, on a members
                // widget, shown) in the updates that follow.
                if visitor.actor_id.is_none() {
                    match visitors::find(&state.db, &visitor.external_ref).await {
                        Ok(found) => visitor.actor_id = found,
                        Err(e) => tracing::warn!(error = %e, "embed visitor could not be looked up"),
                    }
                }
                match load_thread(&state, &widget, &visitor).await.and_then(|t| Ok(t.render()?)) {
                    Ok(html) => {
                        dirty = false;
                        let hash = html_hash(&html);
                        if last != Some(hash) {
                            last = Some(hash);
                            let event = sse::Data::new(html).event("thread").id(now_ms().to_string());
                            if sender.send(event.into()).await.is_err() {
                                return;
                            }
                        }
                    }
                    // A database hiccup: render again at the next wake-up.
                    Err(e) => tracing::warn!(error = %e, "embed thread could not be rendered"),
                }
            }
            match follower.wait().await {
                Woken::Ended => return,
                Woken::Changed => dirty = true,
                // The widget changed (archived, its scope): read it again, then the thread.
                Woken::Recheck => match live_widget(&state, &widget.embed_key).await {
                    Ok(Some(now)) => {
                        widget = now;
                        dirty = true;
                    }
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "embed widget could not be read again");
                        dirty = true;
                    }
                },
                Woken::Quiet => {}
            }
        }
    });
    Ok(sse::Sse::from_infallible_receiver(receiver)
        .with_keep_alive(Duration::from_secs(15))
        .with_retry_duration(Duration::from_secs(3))
        .customize()
        .insert_header(("X-Accel-Buffering", "no"))
        .insert_header(("Cache-Control", "no-store")))
}
