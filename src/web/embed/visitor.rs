//! Who asks the embed: the live widget of an embed key, the visitor a request's token or
//! partitioned cookie proves, and the query parameters that carry them.

use actix_web::HttpRequest;
use serde::Deserialize;

use crate::AppState;
use crate::auth::embed::{Refusal, Visitor};
use crate::db::widgets::{self, Widget};
use crate::db::{Backend, StoreError};
use crate::error::AppError;
use crate::web::replies::SupportSlot;

/// The visitor cookie (one per widget: its path is the widget's embed path).
const COOKIE: &str = "ihf_visitor";

/// The query of the embed page and of its composer's and opt-in's posts.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EmbedQuery {
    /// The host site's sign-in token for its user.
    pub(super) token: Option<String>,
    /// Set by the redirect after a plain-form submit: show the "thanks" note.
    pub(super) thanks: Option<String>,
    /// IHF's visitor token, where the iframe carries it (third-party cookies blocked).
    pub(super) vt: Option<String>,
    pub(super) theme: Option<String>,
    /// The host page's origin, for `postMessage`; used only when it is an allowed origin.
    pub(super) parent: Option<String>,
}

/// The query of the thread, its stream and the support toggles: the carried visitor token.
#[derive(Debug, Deserialize)]
pub(super) struct TokenQuery {
    pub(super) vt: Option<String>,
    /// Where a support toggle sits (`similar` beside the composer).
    pub(super) slot: Option<SupportSlot>,
}

/// `SameSite=None; Secure; Partitioned`: sent to the iframe on the host's site only (CHIPS),
/// where the browser keeps third-party cookies at all; elsewhere the iframe carries the token.
pub(super) fn visitor_cookie(visitor: &Visitor) -> String {
    let max_age = (visitor.expires_at - crate::auth::tokens::now_s()).max(0);
    format!(
        "{COOKIE}={}; Path=/embed/{}; Max-Age={max_age}; HttpOnly; Secure; SameSite=None; Partitioned",
        visitor.token, visitor.widget.embed_key
    )
}

/// The test hook `TestHooks::rls_only`: tokens are taken for the widget they name and
/// the thread leaves out the policy's predicate, so only Row Level Security confines the reads.
pub(super) fn rls_only(state: &AppState) -> bool {
    state.test_hooks.rls_only && state.db.backend() == Backend::Postgres
}

/// The live widget of an embed key.
pub(super) async fn live_widget(state: &AppState, key: &str) -> Result<Option<Widget>, AppError> {
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
pub(super) async fn request_visitor(
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

/// The visitor of a read: who the token or cookie proves, else an anonymous visitor (public
/// annotations only; nothing is written or set).
pub(super) async fn reader(
    state: &AppState,
    req: &HttpRequest,
    widget: &Widget,
    vt: Option<&str>,
) -> Result<Visitor, AppError> {
    Ok(match request_visitor(state, req, widget, vt).await? {
        Some(visitor) => visitor,
        None => Visitor::anonymous(state, widget.clone()),
    })
}
