//! An identified visitor's mail in the embed: the address their host site gave, and their
//! opt-in to mail about their feedback.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use askama::Template;
use serde::Deserialize;

use super::response::{frame_ancestors, origin_ok, respond};
use super::visitor::{EmbedQuery, live_widget, request_visitor};
use crate::AppState;
use crate::auth::embed::Visitor;
use crate::db::StoreError;
use crate::error::AppError;

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
pub(super) async fn visitor_email(state: &AppState, visitor: &Visitor) -> Result<Option<(String, bool)>, AppError> {
    let Some(actor_id) = visitor.actor_id.filter(|_| visitor.identified) else { return Ok(None) };
    let settings = crate::db::notifications::email_settings(&state.db, actor_id).await?;
    Ok(settings.email.filter(|e| !e.is_empty()).map(|e| (e, settings.email_mode != "off")))
}

/// `POST /embed/{embed_key}/email`: an identified visitor opts in to (or out of) mail about
/// their feedback, at the address their host site gave.
#[post("/embed/{embed_key}/email")]
pub(super) async fn opt_in(
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
