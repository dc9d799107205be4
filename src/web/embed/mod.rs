//! Embeds: the loader script, and a widget's composer and thread inside an iframe on a
//! third-party page.
//!
//! `<script src="…/embed.js" data-ihf-widget="EMBED_KEY" async></script>` inserts an iframe of
//! `/embed/{embed_key}`. That page answers with `frame-ancestors` listing the widget's allowed
//! origins (every other page says `'none'`), knows its visitor by a partitioned cookie or by the
//! token the iframe carries (`auth::embed`), and reads and writes as that visitor only, confined
//! to the widget (on PostgreSQL by Row Level Security as well). Its form posts are exempt from
//! the session CSRF check: the visitor token and an `Origin` check protect them instead.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Responder, get, post, web};
use actix_web_lab::sse;
use askama::Template;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::embed::{Refusal, Visitor};
use crate::auth::policy;
use crate::components::composer::{Action, Composer, ComposerView, Draft, Effect, Failure, Field};
use crate::components::{self, Component};
use crate::db::annotations::{self, NewAnnotation};
use crate::db::api::{self, ApiAnnotation, Filter, Order};
use crate::db::categories::{self, Category};
use crate::db::visitors;
use crate::db::widgets::{self, Widget};
use crate::db::{Backend, Db, StoreError, now_ms};
use crate::db::{replies, supports};
use crate::error::AppError;
use crate::live::Region;
use crate::live::hub::Woken;
use crate::live::hub::html_hash;
use crate::web::api::cors::origin_listed;
use crate::web::render::Htmx;
use crate::web::replies::{Conversations, SimilarView, SupportSlot, SupportView};
use crate::web::security::CSP;

/// Annotations the embed thread shows.
pub const THREAD_SIZE: i64 = 50;
/// The visitor cookie (one per widget: its path is the widget's embed path).
const COOKIE: &str = "ihf_visitor";

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
    /// (`web::embed_replies`).
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

#[derive(Template)]
#[template(path = "pages/embed.html")]
struct EmbedPage {
    key: String,
    widget_name: String,
    theme: String,
    parent: String,
    visitor_token: String,
    visitor_name: String,
    identified: bool,
    fresh: bool,
    asset_v: String,
    live_url: String,
    composer: ComposerView,
    thread: Thread,
    /// An identified visitor's address (from the host's `email` claim) and whether they opted in.
    email: Option<(String, bool)>,
}

/// The opt-in form of an identified visitor with an address.
#[derive(Template)]
#[template(path = "fragments/embed_email.html")]
struct EmbedEmail {
    key: String,
    visitor_token: String,
    email: Option<(String, bool)>,
}

/// The opt-in form's field.
#[derive(Debug, Default, Deserialize)]
struct OptInForm {
    #[serde(default)]
    notify: Option<String>,
}

/// What the embed shows of an identified visitor's mail: their address and opt-in.
async fn visitor_email(state: &AppState, visitor: &Visitor) -> Result<Option<(String, bool)>, AppError> {
    let Some(actor_id) = visitor.actor_id.filter(|_| visitor.identified) else { return Ok(None) };
    let settings = crate::db::notifications::email_settings(&state.db, actor_id).await?;
    Ok(settings.email.filter(|e| !e.is_empty()).map(|e| (e, settings.email_mode != "off")))
}

/// `POST /embed/{embed_key}/email`: an identified visitor opts in to (or out of) mail about
/// their feedback, at the address their host site gave.
#[post("/embed/{embed_key}/email")]
async fn opt_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EmbedQuery>,
    form: web::Form<OptInForm>,
) -> Result<HttpResponse, AppError> {
    let Some(widget) = live_widget(&state, &path).await? else { return Err(AppError::NotFound("widget")) };
    let ancestors = frame_ancestors(&widget);
    if !origin_ok(&req, &widget) {
        return Err(AppError::Forbidden);
    }
    let visitor = request_visitor(&state, &req, &widget, query.vt.as_deref()).await?;
    let Some((visitor, actor_id)) = visitor.and_then(|v| v.actor_id.filter(|_| v.identified).map(|id| (v, id))) else {
        return Err(AppError::Forbidden);
    };
    let opt_in = form.notify.as_deref().is_some_and(|v| !v.is_empty());
    match crate::db::notifications::set_visitor_opt_in(&state.db, actor_id, opt_in).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(AppError::BadRequest("your site gave no email address".into())),
        Err(e) => return Err(e.into()),
    }
    let email = visitor_email(&state, &visitor).await?;
    let body = EmbedEmail { key: widget.embed_key.clone(), visitor_token: visitor.token.clone(), email }.render()?;
    Ok(respond(StatusCode::OK, &ancestors, body, Some(&visitor)))
}

#[derive(Template)]
#[template(path = "pages/embed_refused.html")]
struct RefusedPage {
    theme: String,
    asset_v: String,
    message: String,
}

#[derive(Template)]
#[template(path = "fragments/embed_submitted.html")]
struct Submitted<'a> {
    composer: &'a ComposerView,
    thread: &'a Thread,
}

#[derive(Debug, Default, Deserialize)]
struct EmbedQuery {
    /// The host site's sign-in token for its user.
    token: Option<String>,
    /// Set by the redirect after a plain-form submit: show the "thanks" note.
    thanks: Option<String>,
    /// IHF's visitor token, where the iframe carries it (third-party cookies blocked).
    vt: Option<String>,
    theme: Option<String>,
    /// The host page's origin, for `postMessage`; used only when it is an allowed origin.
    parent: Option<String>,
}

/// `dark` or `auto` (the visitor's system preference) when the host page asks, else `light`:
/// a host that asked for nothing is not turned dark inside a light page.
fn theme(raw: Option<&str>) -> String {
    match raw {
        Some(t @ ("dark" | "auto")) => t.to_owned(),
        _ => "light".to_owned(),
    }
}

/// The host page's origin when the widget allows it, else empty (no messages are sent).
fn parent(widget: &Widget, raw: Option<&str>) -> String {
    raw.filter(|origin| origin_listed(&widget.allowed_origins, origin)).map(str::to_owned).unwrap_or_default()
}

/// `http(s)://host[:port]` and nothing else, so an origin cannot smuggle directives into the CSP.
fn is_origin(candidate: &str) -> bool {
    let Some(rest) = candidate.strip_prefix("https://").or_else(|| candidate.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// The `frame-ancestors` sources of a widget: its allowed origins, or `'none'`.
pub fn frame_ancestors(widget: &Widget) -> String {
    let origins: Vec<&str> =
        widget.allowed_origins.split_whitespace().map(|o| o.trim_end_matches('/')).filter(|o| is_origin(o)).collect();
    if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") }
}

/// An HTML answer of the embed: the widget's `frame-ancestors` (the default `'none'` for no
/// widget), no caching, no referrer (tokens travel in its URLs), and the visitor's cookie.
pub(crate) fn respond(status: StatusCode, ancestors: &str, body: String, visitor: Option<&Visitor>) -> HttpResponse {
    let csp = CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {ancestors}"));
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::VARY, "HX-Request"));
    if let Some(visitor) = visitor {
        response.append_header((header::SET_COOKIE, visitor_cookie(visitor)));
    }
    response.body(body)
}

/// `SameSite=None; Secure; Partitioned`: sent to the iframe on the host's site only (CHIPS),
/// where the browser keeps third-party cookies at all; elsewhere the iframe carries the token.
fn visitor_cookie(visitor: &Visitor) -> String {
    let max_age = (visitor.expires_at - crate::auth::tokens::now_s()).max(0);
    format!(
        "{COOKIE}={}; Path=/embed/{}; Max-Age={max_age}; HttpOnly; Secure; SameSite=None; Partitioned",
        visitor.token, visitor.widget.embed_key
    )
}

fn refused(state: &AppState, status: StatusCode, ancestors: &str, theme: String, message: String) -> HttpResponse {
    let page = RefusedPage { theme, asset_v: state.assets.version.clone(), message };
    match page.render() {
        Ok(body) => respond(status, ancestors, body, None),
        Err(e) => actix_web::ResponseError::error_response(&AppError::from(e)),
    }
}

/// The test hook `TestHooks::rls_only`: tokens are taken for the widget they name and
/// the thread leaves out the policy's predicate, so only Row Level Security confines the reads.
pub(crate) fn rls_only(state: &AppState) -> bool {
    state.test_hooks.rls_only && state.db.backend() == Backend::Postgres
}

/// The live widget of an embed key.
pub(crate) async fn live_widget(state: &AppState, key: &str) -> Result<Option<Widget>, AppError> {
    match widgets::by_embed_key(&state.db, key).await {
        Ok(widget) if widget.archived_at.is_none() => Ok(Some(widget)),
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The visitor that `token` proves, if it does (any refusal is `None`: start afresh).
async fn known_visitor(state: &AppState, widget: &Widget, token: Option<&str>) -> Result<Option<Visitor>, AppError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
    let expected = (!rls_only(state)).then_some(widget.embed_key.as_str());
    match Visitor::from_token(state, token, expected).await {
        Ok(visitor) => Ok(Some(visitor)),
        Err(Refusal::Store(e)) => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// The visitor of a request: the token the iframe carries, else the cookie.
pub(crate) async fn request_visitor(
    state: &AppState,
    req: &HttpRequest,
    widget: &Widget,
    carried: Option<&str>,
) -> Result<Option<Visitor>, AppError> {
    if let Some(visitor) = known_visitor(state, widget, carried).await? {
        return Ok(Some(visitor));
    }
    let cookie = req.cookie(COOKIE).map(|c| c.value().to_owned());
    known_visitor(state, widget, cookie.as_deref()).await
}

pub(crate) async fn load_thread(state: &AppState, widget: &Widget, visitor: &Visitor) -> Result<Thread, AppError> {
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
        public: widget.policy_scope == "public",
        talk: Conversations::embed(replies, support, visitor.actor_id),
        support_url,
        key: widget.embed_key.clone(),
        vt: visitor.token.clone(),
    })
}

/// Where the composer posts: the visitor token rides in the URL, so the form works where
/// neither cookies nor JavaScript do; theme and parent come back after a plain-form submit.
fn composer_url(widget: &Widget, visitor: &Visitor, theme: &str, parent: &str) -> String {
    format!(
        "/embed/{}/annotations?vt={}&theme={theme}&parent={}",
        widget.embed_key,
        visitor.token,
        crate::web::format::urlencode(parent)
    )
}

/// The shared composer component (`components::composer`), posting to the embed.
fn composer_view(
    state: &AppState,
    url: String,
    composer: Composer,
    categories: Vec<Category>,
) -> Result<ComposerView, AppError> {
    // The embed's posts are exempt from the session CSRF check (see `origin_ok`).
    Ok(ComposerView {
        token: components::seal(&state.secret, &composer)?,
        state: composer,
        action_url: url,
        categories,
        csrf_token: String::new(),
    })
}

/// `GET /embed.js`: the loader, cached briefly so a fix reaches host pages soon.
#[get("/embed.js")]
async fn loader(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let script = state
        .assets
        .content("embed.js")
        .await
        .ok_or_else(|| AppError::Unexpected(anyhow::anyhow!("static/embed.js is missing")))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        // Host pages with Cross-Origin-Embedder-Policy may load it.
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"))
        .body(script))
}

#[get("/embed/{embed_key}")]
async fn show_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EmbedQuery>,
) -> Result<HttpResponse, AppError> {
    let theme = theme(query.theme.as_deref());
    let Some(widget) = live_widget(&state, &path).await? else {
        // Nothing of any tenant is on this page, so any site may frame the message.
        return Ok(refused(
            &state,
            StatusCode::NOT_FOUND,
            "*",
            theme,
            "This feedback widget does not exist (any more).".into(),
        ));
    };
    let ancestors = frame_ancestors(&widget);
    let (visitor, fresh) = match query.token.as_deref() {
        Some(host_token) => {
            let expected = (!rls_only(&state)).then_some(widget.embed_key.as_str());
            match Visitor::from_token(&state, host_token, expected).await {
                Ok(visitor) => (visitor, false),
                Err(Refusal::Store(e)) => return Err(e.into()),
                Err(refusal) => {
                    tracing::info!(widget = widget.id, %refusal, "refused an embed sign-in token");
                    let message = format!("We could not sign you in to this feedback widget: {refusal}.");
                    return Ok(refused(&state, StatusCode::UNAUTHORIZED, &ancestors, theme, message));
                }
            }
        }
        None => match request_visitor(&state, &req, &widget, query.vt.as_deref()).await? {
            Some(visitor) => (visitor, false),
            None => (Visitor::anonymous(&state, widget.clone()), true),
        },
    };
    let parent = parent(&widget, query.parent.as_deref());
    let categories = categories::list(&state.db, widget.hub_id, false).await?;
    let thread = load_thread(&state, &widget, &visitor).await?;
    let mut composer = Composer::new(widget.id);
    if query.thanks.is_some() {
        composer = composer.update(Action::Created).0;
    }
    let url = composer_url(&widget, &visitor, &theme, &parent);
    let composer = composer_view(&state, url, composer, categories)?;
    let email = visitor_email(&state, &visitor).await?;
    let page = embed_page(&state, &widget, &visitor, fresh, (theme, parent), composer, thread).with_email(email);
    Ok(respond(StatusCode::OK, &ancestors, page.render()?, Some(&visitor)))
}

/// The composer's form: the sealed state, the fields, and which action was asked for.
#[derive(Debug, Deserialize)]
struct ComposerForm {
    token: String,
    body: Option<String>,
    category: Option<String>,
    /// `body`, `category` or `submit` (the default: a plain form post is a submit).
    action: Option<String>,
}

impl ComposerForm {
    /// The fields as they are now, then the action asked for.
    fn actions(self) -> Result<Vec<Action>, AppError> {
        let mut actions = Vec::with_capacity(3);
        actions.extend(self.body.map(Action::UpdateBody));
        actions.extend(self.category.map(Action::ChooseCategory));
        match self.action.as_deref() {
            None | Some("submit") => actions.push(Action::Submit),
            Some("body" | "category") => {}
            Some(other) => return Err(AppError::BadRequest(format!("unknown composer action {other:?}"))),
        }
        Ok(actions)
    }
}

/// A post from the iframe comes from IHF's own origin; a host page may post from one of the
/// widget's allowed origins; anything else is a cross-site forgery.
pub(crate) fn origin_ok(req: &HttpRequest, widget: &Widget) -> bool {
    let headers = req.headers();
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => {
            let host = req.connection_info().host().to_owned();
            let same = origin.split_once("://").is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host));
            same || origin_listed(&widget.allowed_origins, origin)
        }
        None => headers.get("Sec-Fetch-Site").is_none_or(|v| v.as_bytes() != b"cross-site"),
    }
}

/// Performs the composer's [`Effect::Create`] for an embed visitor: confined to the widget of
/// their credential (on PostgreSQL by RLS as well), written once per idempotency key.
async fn perform(
    state: &AppState,
    visitor: &mut Visitor,
    widget: &Widget,
    categories: &[Category],
    draft: Draft,
) -> Action {
    if draft.widget_id != widget.id || !policy::embed_visitor_can_annotate(widget) {
        return Action::Refused(Field::Widget, "This widget no longer accepts feedback.".into());
    }
    let Some(category) = categories.iter().find(|c| c.slug == draft.category) else {
        return Action::Refused(Field::Category, "Choose one of these categories.".into());
    };
    let outcome = async {
        let actor_id = visitor.ensure_actor(state).await?;
        let new = NewAnnotation {
            hub_id: widget.hub_id,
            widget_id: widget.id,
            actor_id,
            body: draft.body.as_str(),
            category_id: category.id,
            status: "new",
            created_at: now_ms(),
            idempotency_key: Some(&draft.idempotency_key),
        };
        let mut tx = api::begin(&state.db, visitor.scope(), true).await?;
        match annotations::insert(&mut tx, &new).await {
            Ok(_) => tx.commit().await.map_err(StoreError::from),
            // The same composer state sent twice (a double click, a retry): it is in already.
            Err(e)
                if e.is_conflict_on(
                    "annotations_actor_id_idempotency_key_key",
                    "annotations.actor_id, annotations.idempotency_key",
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    match outcome.await {
        Ok(()) => Action::Created,
        Err(e) if api::is_policy_refusal(&e) => {
            Action::Refused(Field::Widget, "This widget does not take your feedback.".into())
        }
        Err(e) => match e.outage() {
            Some(outage) => {
                tracing::warn!(error = %e, "embed composer: {}", outage.reason());
                state.db.record_outage(outage);
                Action::Failed(Failure::Unavailable(outage))
            }
            None => {
                tracing::error!(
                    error = format!("{:#}", anyhow::Error::new(e)),
                    "embed composer: creating an annotation"
                );
                Action::Failed(Failure::Unexpected)
            }
        },
    }
}

#[post("/embed/{embed_key}/annotations")]
async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<EmbedQuery>,
    form: web::Form<ComposerForm>,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let theme = theme(query.theme.as_deref());
    let Some(widget) = live_widget(&state, &path).await? else {
        let message = "This feedback widget does not exist (any more).".into();
        return Ok(refused(&state, StatusCode::NOT_FOUND, "*", theme, message));
    };
    let ancestors = frame_ancestors(&widget);
    if !origin_ok(&req, &widget) {
        tracing::info!(widget = widget.id, "refused an embed post from a foreign origin");
        let message = "This page may not post to this widget.".into();
        return Ok(refused(&state, StatusCode::FORBIDDEN, &ancestors, theme, message));
    }
    let form = form.into_inner();
    // A token that does not verify is refused before anything is read or written.
    let composer: Composer = components::open(&state.secret, &form.token)?;
    if composer.widget_id != widget.id {
        return Err(AppError::BadRequest("this form belongs to another widget".into()));
    }
    let Some(mut visitor) = request_visitor(&state, &req, &widget, query.vt.as_deref()).await? else {
        let message = "Your visit expired. Reload the page and send your feedback again.".to_owned();
        return Ok(refused(&state, StatusCode::UNAUTHORIZED, &ancestors, theme, message));
    };
    let parent = parent(&widget, query.parent.as_deref());
    let categories = categories::list(&state.db, widget.hub_id, false).await?;
    let (mut composer, effect) = composer.apply(form.actions()?);
    let mut created = false;
    if let Effect::Create(draft) = effect {
        let outcome = perform(&state, &mut visitor, &widget, &categories, draft).await;
        created = outcome == Action::Created;
        composer = composer.update(outcome).0;
    }
    let url = composer_url(&widget, &visitor, &theme, &parent);
    if !htmx.partial && created {
        // Without JavaScript: back to the page, which says thanks.
        let location = format!("{}&thanks=1", url.replacen("/annotations?", "?", 1));
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .append_header((header::SET_COOKIE, visitor_cookie(&visitor)))
            .finish());
    }
    let status = composer.status();
    let retry_after = composer.retry_after();
    let view = composer_view(&state, url, composer, categories)?;
    let body = if !htmx.partial {
        let thread = load_thread(&state, &widget, &visitor).await?;
        let email = visitor_email(&state, &visitor).await?;
        embed_page(&state, &widget, &visitor, false, (theme, parent), view, thread).with_email(email).render()?
    } else if created {
        // The visitor's thread shows it at once, whatever the live stream is doing.
        let thread = load_thread(&state, &widget, &visitor).await?;
        Submitted { composer: &view, thread: &thread }.render()?
    } else {
        view.render()?
    };
    let mut response = respond(status, &ancestors, body, Some(&visitor));
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

fn embed_page(
    state: &AppState,
    widget: &Widget,
    visitor: &Visitor,
    fresh: bool,
    (theme, parent): (String, String),
    composer: ComposerView,
    thread: Thread,
) -> EmbedPage {
    EmbedPage {
        key: widget.embed_key.clone(),
        widget_name: widget.name.clone(),
        theme,
        parent,
        visitor_token: visitor.token.clone(),
        visitor_name: visitor.name.clone(),
        identified: visitor.identified,
        fresh,
        asset_v: state.assets.version.clone(),
        live_url: format!("/embed/{}/live?vt={}", widget.embed_key, visitor.token),
        composer,
        thread,
        email: None,
    }
}

impl EmbedPage {
    fn with_email(mut self, email: Option<(String, bool)>) -> Self {
        self.email = email;
        self
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    vt: Option<String>,
    /// Where a support toggle sits (`similar` beside the composer).
    slot: Option<SupportSlot>,
}

/// The visitor of a read: who the token or cookie proves, else an anonymous visitor (public
/// annotations only; nothing is written or set).
async fn reader(state: &AppState, req: &HttpRequest, widget: &Widget, vt: Option<&str>) -> Result<Visitor, AppError> {
    Ok(match request_visitor(state, req, widget, vt).await? {
        Some(visitor) => visitor,
        None => Visitor::anonymous(state, widget.clone()),
    })
}

/// `GET /embed/{embed_key}/thread`: the thread region on its own.
#[get("/embed/{embed_key}/thread")]
async fn thread_region(
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
async fn live_thread(
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

/// `POST /embed/{embed_key}/annotations/{id}/support`: the visitor's "me too" on an annotation
/// they read (given, or taken back); answers the count and toggle as they are now.
#[post("/embed/{embed_key}/annotations/{id}/support")]
async fn toggle_support(
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
async fn similar(
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
    let rows = crate::db::similar::on_widget(
        &state.db,
        &visitor.viewer(),
        widget.id,
        draft,
        crate::web::replies::SIMILAR_LIMIT,
    )
    .await?;
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

/// Mounts the loader and the embed routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(loader)
        .service(show_page)
        .service(submit)
        .service(opt_in)
        .service(thread_region)
        .service(live_thread)
        .service(toggle_support)
        .service(similar);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_origins_reach_the_csp() {
        assert!(is_origin("http://127.0.0.1:8081"));
        assert!(is_origin("https://shop.example"));
        assert!(!is_origin("https://shop.example; script-src *"));
        assert!(!is_origin("*"));
        assert!(!is_origin("'self'"));
        assert!(!is_origin("https://"));
    }
}
