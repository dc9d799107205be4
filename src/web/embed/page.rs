//! The embed page: the composer and the thread inside the iframe, for the visitor a host's
//! sign-in token, the carried visitor token or the cookie names (or a new anonymous one).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use askama::Template;

use super::email::visitor_email;
use super::response::{frame_ancestors, parent, refused, respond, theme};
use super::thread::{Thread, load_thread};
use super::visitor::{EmbedQuery, live_widget, request_visitor, rls_only};
use crate::AppState;
use crate::auth::embed::{Refusal, Visitor};
use crate::components::composer::{Action, Composer, ComposerView};
use crate::components::{self, Component};
use crate::db::categories::{self, Category};
use crate::db::widgets::Widget;
use crate::error::AppError;

#[derive(Template)]
#[template(path = "pages/embed.html")]
pub(super) struct EmbedPage {
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

/// Where the composer posts: the visitor token rides in the URL, so the form works where
/// neither cookies nor JavaScript do; theme and parent come back after a plain-form submit.
pub(super) fn composer_url(widget: &Widget, visitor: &Visitor, theme: &str, parent: &str) -> String {
    format!(
        "/embed/{}/annotations?vt={}&theme={theme}&parent={}",
        widget.embed_key,
        visitor.token,
        crate::web::format::urlencode(parent)
    )
}

/// The shared composer component (`components::composer`), posting to the embed.
pub(super) fn composer_view(
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

#[get("/embed/{embed_key}")]
pub(super) async fn show_page(
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

pub(super) fn embed_page(
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
    pub(super) fn with_email(mut self, email: Option<(String, bool)>) -> Self {
        self.email = email;
        self
    }
}
