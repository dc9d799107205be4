//! The embed composer's posts: a live update of the form, or the visitor's new annotation,
//! written confined to the widget of their credential.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, post, web};
use askama::Template;

use super::email::visitor_email;
use super::page::{composer_url, composer_view, embed_page};
use super::response::{frame_ancestors, origin_ok, parent, refused, respond, theme};
use super::thread::{Thread, load_thread};
use super::visitor::{EmbedQuery, live_widget, request_visitor, visitor_cookie};
use crate::AppState;
use crate::auth::embed::Visitor;
use crate::auth::policy;
use crate::components::composer::{Action, Composer, ComposerView, Draft, Effect, Failure, Field};
use crate::components::{self, Component};
use crate::db::annotations::{self, NewAnnotation};
use crate::db::api;
use crate::db::categories::{self, Category};
use crate::db::widgets::Widget;
use crate::db::{StoreError, now_ms};
use crate::error::AppError;
use crate::web::composer_form::ComposerForm;
use crate::web::render::Htmx;

#[derive(Template)]
#[template(path = "fragments/embed_submitted.html")]
struct Submitted<'a> {
    composer: &'a ComposerView,
    thread: &'a Thread,
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
            status: annotations::AnnotationStatus::New,
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
pub(super) async fn submit(
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
