//! `/settings/hubs`: site administrators create, archive and restore hubs.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::forms::{self, FieldErrors};
use crate::AppState;
use crate::access as policy;
use crate::db::hubs::{self, Hub};
use crate::db::{StoreError, settings};
use crate::error::AppError;
use crate::web::access::require;
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};

/// What the create form holds (kept as typed when it comes back with mistakes).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HubForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Template)]
#[template(path = "pages/settings/hubs.html", blocks = ["content"])]
struct HubsPage {
    chrome: Chrome,
    hubs: Vec<Hub>,
    form: HubForm,
    errors: FieldErrors,
}

async fn render(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    form: HubForm,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let hubs = settings::all_hubs(&state.db).await?;
    let page = HubsPage { chrome: chrome.titled("Hubs · settings"), hubs, form, errors };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[get("/settings/hubs")]
async fn list(state: web::Data<AppState>, chrome: Chrome, htmx: Htmx) -> Result<HttpResponse, AppError> {
    require(policy::can_manage_hubs(&chrome.viewer), &chrome.viewer)?;
    render(&state, chrome, htmx, StatusCode::OK, HubForm::default(), FieldErrors::default()).await
}

#[post("/settings/hubs")]
async fn create(
    state: web::Data<AppState>,
    form: web::Form<HubForm>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    require(policy::can_manage_hubs(&chrome.viewer), &chrome.viewer)?;
    let form = form.into_inner();
    let mut errors = FieldErrors::default();
    let slug = errors.check("slug", forms::slug(&form.slug));
    let name = errors.check("name", forms::name(&form.name, 100));
    let description = errors.check("description", forms::description(&form.description, 2000));
    let (Some(slug), Some(name), Some(description)) = (slug, name, description) else {
        return render(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await;
    };
    match hubs::create(&state.db, &slug, &name, &description).await {
        Ok(hub) => {
            tracing::info!(hub = hub.slug, actor = chrome.viewer.actor_id, "hub created");
            Ok(redirect(htmx, &format!("/hubs/{}/settings?created=1", hub.slug)).finish())
        }
        Err(StoreError::SlugTaken) => {
            errors.add("slug", format!("A hub with the slug {slug} exists already (perhaps archived)."));
            render(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, form, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

#[post("/settings/hubs/{hub_slug}/{action:archive|restore}")]
async fn archive(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    require(policy::can_manage_hubs(&chrome.viewer), &chrome.viewer)?;
    let (slug, action) = path.into_inner();
    let hub = match hubs::by_slug(&state.db, &slug).await {
        Ok(hub) => hub,
        Err(StoreError::NotFound) => return Err(AppError::NotFound("hub")),
        Err(e) => return Err(e.into()),
    };
    settings::set_hub_archived(&state.db, hub.id, action == "archive").await?;
    tracing::info!(hub = hub.slug, action, actor = chrome.viewer.actor_id, "hub archive state changed");
    Ok(redirect(htmx, "/settings/hubs").finish())
}

/// Mounts the hub settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(archive);
}
