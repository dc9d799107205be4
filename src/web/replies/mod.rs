//! What a thread shows under each annotation besides its body: the replies and the "me too"
//! support, with their actions (reply, edit one's reply, support and take it back).
//!
//! Every surface that lists annotations (the widget page, the inbox, the triage board, the
//! embed) loads a [`Conversations`] for the annotations of its page and includes
//! `fragments/replies.html` and `fragments/support.html` through it, so a live re-render of the
//! list shows them as they are now.

use std::borrow::Borrow;
use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::{self, HubAccess};
use crate::db::StoreError;
use crate::db::annotations::AnnotationBody;
use crate::db::replies::{self, NewReply, Reply};
use crate::db::supports::{self, Support};
use crate::db::widgets::Widget;
use crate::error::AppError;
use crate::web::access;
use crate::web::chrome::Chrome;
use crate::web::render::{self, Htmx};
use crate::web::widgets;

/// The replies and support of one page of annotations, as one viewer sees them.
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    replies: HashMap<i64, Vec<Reply>>,
    support: HashMap<i64, Support>,
    viewer_id: Option<i64>,
    /// The viewer is staff of the hub: replies on anything, internally too.
    staff: bool,
    /// Where the support buttons post, when the viewer may give support on this page at all
    /// (`None`: counts only).
    support_base: Option<String>,
}

impl Conversations {
    /// Loads the replies and support of the annotations `ids` for `viewer`. `widget`: the one
    /// widget the page lists, when the viewer may give support there.
    /// What every reader of a shared live render may see of annotations `ids` (`viewer` is one
    /// of them): replies (internal ones only for `staff`, the hub's triagers and operators, who
    /// read them all), support counts without anyone's own mark, and no controls.
    pub async fn load_shared(state: &AppState, viewer: &Viewer, ids: &[i64], staff: bool) -> Result<Self, AppError> {
        let mut replies = replies::for_annotations(&state.db, viewer, ids).await?;
        if !staff {
            for thread in replies.values_mut() {
                thread.retain(|reply| reply.internal == 0);
            }
        }
        let support = supports::counts(&state.db, None, ids).await?;
        Ok(Self { replies, support, viewer_id: None, staff: false, support_base: None })
    }

    pub async fn load(
        state: &AppState,
        viewer: &Viewer,
        access: &HubAccess,
        widget: Option<&Widget>,
        ids: &[i64],
    ) -> Result<Self, AppError> {
        let replies = replies::for_annotations(&state.db, viewer, ids).await?;
        let support = supports::counts(&state.db, viewer.actor_id, ids).await?;
        let supportable = viewer.is_signed_in() && widget.is_some_and(policy::supportable);
        Ok(Self {
            replies,
            support,
            viewer_id: viewer.actor_id,
            staff: access.can_reply_internally(),
            support_base: supportable.then(String::new),
        })
    }

    /// The embed's: replies and support counts as the visitor `me` sees them, no staff
    /// controls (the embed renders its own reply forms and toggles, `web::embed_replies`).
    pub fn embed(replies: HashMap<i64, Vec<Reply>>, support: HashMap<i64, Support>, me: Option<i64>) -> Self {
        Self { replies, support, viewer_id: me, staff: false, support_base: None }
    }

    /// The support of one annotation.
    pub fn support_of(&self, annotation_id: impl Borrow<i64>) -> Support {
        self.support.get(annotation_id.borrow()).copied().unwrap_or_default()
    }

    /// The replies of one annotation.
    pub fn replies_of(&self, annotation_id: impl Borrow<i64>) -> &[Reply] {
        self.replies.get(annotation_id.borrow()).map_or(&[], Vec::as_slice)
    }

    /// The thread under annotation `annotation_id` (written by `author_id`) on the widget at
    /// `base`.
    pub fn replies(&self, base: &str, annotation_id: impl Borrow<i64>, author_id: impl Borrow<i64>) -> RepliesView {
        let (annotation_id, author_id) = (*annotation_id.borrow(), *author_id.borrow());
        RepliesView {
            base: base.to_owned(),
            annotation_id,
            replies: self.replies_of(annotation_id).to_vec(),
            viewer_id: self.viewer_id,
            can_reply: self.viewer_id.is_some() && (self.staff || self.viewer_id == Some(author_id)),
            can_internal: self.staff,
            error: None,
            typed: String::new(),
        }
    }

    /// The support count (and button, where the viewer may give support) of an annotation.
    pub fn support(&self, base: &str, annotation_id: impl Borrow<i64>, author_id: impl Borrow<i64>) -> SupportView {
        let (annotation_id, author_id) = (*annotation_id.borrow(), *author_id.borrow());
        let support = self.support_of(annotation_id);
        let url = self
            .support_base
            .as_ref()
            .filter(|_| self.viewer_id.is_some_and(|me| me != author_id))
            .map(|_| format!("{base}/annotations/{annotation_id}/support"));
        SupportView { annotation_id, count: support.count, mine: support.mine, url, slot: SupportSlot::Thread }
    }
}

/// The viewer's own controls of a shared thread render (which has none), as templates the page
/// carries for static/live.js to fill into rows that arrive live: the "me too" toggle (when the
/// viewer may give support on the widget) and the reply form (on their own annotations, or on
/// every one for staff). Rendered from the same fragments as a personal render, with `__ID__`
/// for the annotation and a count of 0 the page replaces.
pub struct PersonalControls {
    /// `fragments/support.html` with its toggle.
    pub support: Option<String>,
    /// `fragments/replies.html` with its form and no replies.
    pub reply: Option<String>,
    /// The reply form goes under every annotation (staff), not only the viewer's own.
    pub reply_all: bool,
}

impl PersonalControls {
    /// The controls `viewer` has on the thread of `widget` at `base`.
    pub fn for_thread(base: &str, viewer: &Viewer, access: &HubAccess, widget: &Widget) -> Result<Self, AppError> {
        if !viewer.is_signed_in() {
            return Ok(Self { support: None, reply: None, reply_all: false });
        }
        let support = match policy::supportable(widget) {
            true => Some(
                SupportTemplate {
                    url: Some(format!("{base}/annotations/{PLACEHOLDER}/support")),
                    count: 0,
                    mine: false,
                }
                .render()?,
            ),
            false => None,
        };
        let staff = access.can_reply_internally();
        let reply = RepliesTemplate {
            base: base.to_owned(),
            annotation_id: PLACEHOLDER,
            replies: Vec::new(),
            viewer_id: viewer.actor_id,
            can_reply: true,
            can_internal: staff,
            error: None,
            typed: String::new(),
        }
        .render()?;
        Ok(Self { support, reply: Some(reply), reply_all: staff })
    }
}

/// Where a template of [`PersonalControls`] names its annotation.
const PLACEHOLDER: &str = "__ID__";

/// [`SupportView`] of annotation [`PLACEHOLDER`] (in the thread).
#[derive(Template)]
#[template(path = "fragments/support.html")]
struct SupportTemplate {
    count: i64,
    mine: bool,
    url: Option<String>,
}

impl SupportTemplate {
    fn element_id(&self) -> String {
        format!("support-{PLACEHOLDER}")
    }

    fn post_url(&self) -> String {
        self.url.clone().unwrap_or_default()
    }
}

/// [`RepliesView`] of annotation [`PLACEHOLDER`].
#[derive(Template)]
#[template(path = "fragments/replies.html")]
struct RepliesTemplate {
    base: String,
    annotation_id: &'static str,
    replies: Vec<Reply>,
    viewer_id: Option<i64>,
    can_reply: bool,
    can_internal: bool,
    error: Option<String>,
    typed: String,
}

/// The replies under one annotation, with the reply form for those who may reply.
#[derive(Template)]
#[template(path = "fragments/replies.html")]
pub struct RepliesView {
    pub base: String,
    pub annotation_id: i64,
    pub replies: Vec<Reply>,
    pub viewer_id: Option<i64>,
    pub can_reply: bool,
    pub can_internal: bool,
    /// Why the last reply was refused; `typed` is what was typed.
    pub error: Option<String>,
    pub typed: String,
}

/// One reply (answered alone after an edit or a cancelled edit).
#[derive(Template)]
#[template(path = "fragments/reply_item.html")]
pub struct ReplyItemView {
    pub base: String,
    pub reply: Reply,
    pub viewer_id: Option<i64>,
}

/// The author's inline edit form of their reply.
#[derive(Template)]
#[template(path = "fragments/reply_edit.html")]
struct ReplyEdit {
    base: String,
    reply: Reply,
    body: String,
    error: Option<String>,
}

/// An annotation's "me too" count, and its toggle when `url` is set.
#[derive(Template)]
#[template(path = "fragments/support.html")]
pub struct SupportView {
    pub annotation_id: i64,
    pub count: i64,
    pub mine: bool,
    pub url: Option<String>,
    /// Where on the page it sits (its element id's prefix).
    pub slot: SupportSlot,
}

/// Where a support toggle sits: under an annotation of a list, or among the suggestions
/// beside the composer (the same annotation may be in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupportSlot {
    Thread,
    Similar,
}

impl SupportView {
    /// The element id.
    pub fn element_id(&self) -> String {
        match self.slot {
            SupportSlot::Thread => format!("support-{}", self.annotation_id),
            SupportSlot::Similar => format!("similar-support-{}", self.annotation_id),
        }
    }

    /// The toggle's URL with the slot, so the answer replaces the same element.
    pub fn post_url(&self) -> String {
        let url = self.url.clone().unwrap_or_default();
        match self.slot {
            SupportSlot::Thread => url,
            SupportSlot::Similar if url.contains('?') => format!("{url}&slot=similar"),
            SupportSlot::Similar => format!("{url}?slot=similar"),
        }
    }
}

/// Suggestions beside the composer: annotations like the draft, to support instead.
#[derive(Template)]
#[template(path = "fragments/similar.html")]
pub struct SimilarView {
    pub items: Vec<(String, SupportView)>,
}

#[derive(Deserialize)]
struct SlotQuery {
    slot: Option<SupportSlot>,
}

#[derive(Deserialize)]
struct DraftForm {
    body: Option<String>,
}

/// How many suggestions the composer shows.
pub const SIMILAR_LIMIT: i64 = 3;

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
async fn show_replies(
    state: web::Data<AppState>,
    path: AnnotationPath,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (base, access, _, item) = widgets::annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    render::fragment(&replies_view(&state, &chrome.viewer, &access, &base, item.row.id, item.row.actor_id).await?)
}

#[post("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies")]
async fn create_reply(
    state: web::Data<AppState>,
    path: AnnotationPath,
    form: web::Form<ReplyForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    access::require(chrome.viewer.is_signed_in(), &chrome.viewer)?;
    let (base, access, _, item) = widgets::annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
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
    let (base, _, _, item) = widgets::annotation(state, &path.0, &path.1, path.2, viewer).await?;
    let reply = match replies::visible(&state.db, viewer, path.3).await {
        Ok(reply) if reply.annotation_id == item.row.id => reply,
        Ok(_) | Err(StoreError::NotFound) => return Err(AppError::NotFound("reply")),
        Err(e) => return Err(e.into()),
    };
    access::require(viewer.actor_id == Some(reply.actor_id), viewer)?;
    Ok((base, reply))
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies/{reply_id}")]
async fn show_reply(
    state: web::Data<AppState>,
    path: web::Path<(String, String, i64, i64)>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (base, _, _, item) = widgets::annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
    let reply = match replies::visible(&state.db, &chrome.viewer, path.3).await {
        Ok(reply) if reply.annotation_id == item.row.id => reply,
        Ok(_) | Err(StoreError::NotFound) => return Err(AppError::NotFound("reply")),
        Err(e) => return Err(e.into()),
    };
    render::fragment(&ReplyItemView { base, reply, viewer_id: chrome.viewer.actor_id })
}

#[get("/hubs/{hub_slug}/widgets/{widget_slug}/annotations/{id}/replies/{reply_id}/edit")]
async fn edit_reply(
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
async fn save_reply(
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
async fn toggle_support(
    state: web::Data<AppState>,
    path: AnnotationPath,
    query: web::Query<SlotQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    access::require(chrome.viewer.is_signed_in(), &chrome.viewer)?;
    let (base, access, widget, item) = widgets::annotation(&state, &path.0, &path.1, path.2, &chrome.viewer).await?;
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
async fn similar(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<DraftForm>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (hub, access, widget) = widgets::readable_widget(&state, &path.0, &path.1, &chrome.viewer).await?;
    let base = widgets::widget_path(&hub.slug, &widget.slug);
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

/// Mounts the reply and support actions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(show_replies)
        .service(create_reply)
        .service(show_reply)
        .service(edit_reply)
        .service(save_reply)
        .service(toggle_support)
        .service(similar);
}
