//! `/hubs/{hub}/settings/webhooks`: operators add webhooks (URL, events, secret), read the
//! delivery log, replay a delivery, archive and restore.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;

use super::forms::FieldErrors;
use crate::AppState;
use crate::db::StoreError;
use crate::db::hubs::Hub;
use crate::db::webhooks::{self, Delivery, EVENTS, Webhook, WebhookSummary};
use crate::error::AppError;
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};
use crate::webhooks::guard;

/// Entries of the delivery log shown.
const LOG_SIZE: i64 = 50;

/// The create form as typed.
#[derive(Debug, Clone, Default)]
pub struct WebhookForm {
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
}

impl WebhookForm {
    /// Reads the urlencoded pairs (`events` repeats, which `serde_urlencoded` structs cannot take).
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "url" => form.url = value,
                "secret" => form.secret = value,
                "events" => form.events.push(value),
                _ => {}
            }
        }
        form
    }

    /// Whether the form ticks `event`.
    pub fn has_event(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

#[derive(Template)]
#[template(path = "pages/settings/webhooks.html", blocks = ["content"])]
struct ListPage {
    chrome: Chrome,
    hub: Hub,
    webhooks: Vec<WebhookSummary>,
    events: [&'static str; 6],
    form: WebhookForm,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "pages/settings/webhook.html", blocks = ["content"])]
struct DetailPage {
    chrome: Chrome,
    hub: Hub,
    webhook: Webhook,
    deliveries: Vec<Delivery>,
    /// The secret, only right after creation.
    revealed_secret: Option<String>,
}

async fn list_page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    hub: Hub,
    form: WebhookForm,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let webhooks = webhooks::list_for_hub(&state.db, hub.id).await?;
    let chrome = chrome.titled(format!("Webhooks · {} · settings", hub.name));
    let page = ListPage { chrome, hub, webhooks, events: EVENTS, form, errors };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

async fn detail_page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    hub: Hub,
    webhook: Webhook,
    revealed_secret: Option<String>,
) -> Result<HttpResponse, AppError> {
    let deliveries = webhooks::deliveries(&state.db, webhook.id, LOG_SIZE).await?;
    let chrome = chrome.titled(format!("Webhook · {} · settings", hub.name));
    let page = DetailPage { chrome, hub, webhook, deliveries, revealed_secret };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

async fn webhook_of(state: &AppState, hub: &Hub, id: i64) -> Result<Webhook, AppError> {
    match webhooks::by_id(&state.db, hub.id, id).await {
        Ok(webhook) => Ok(webhook),
        Err(StoreError::NotFound) => Err(AppError::NotFound("webhook")),
        Err(e) => Err(e.into()),
    }
}

#[get("/hubs/{hub_slug}/settings/webhooks")]
async fn list(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    list_page(&state, chrome, htmx, StatusCode::OK, hub, WebhookForm::default(), FieldErrors::default()).await
}

#[post("/hubs/{hub_slug}/settings/webhooks")]
async fn create(
    state: web::Data<AppState>,
    pairs: web::Form<Vec<(String, String)>>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let form = WebhookForm::from_pairs(pairs.into_inner());
    let mut errors = FieldErrors::default();
    let url = errors.check("url", guard::check_url(&form.url, state.config.webhook_allow_private).await);
    if form.events.is_empty() {
        errors.add("events", "Choose at least one event.");
    } else if let Some(unknown) = form.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        errors.add("events", format!("{unknown} is not an event IHF sends."));
    }
    let secret = match form.secret.trim() {
        "" => Some(crate::crypto::random_token(32)),
        s if s.len() >= 16 && s.len() <= 200 && !s.contains(char::is_whitespace) => Some(s.to_owned()),
        _ => {
            errors.add("secret", "Leave it empty for a generated one, or use 16–200 characters without spaces.");
            None
        }
    };
    let (Some(url), Some(secret), true) = (url, secret, errors.is_empty()) else {
        return list_page(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, hub, form, errors).await;
    };
    // Keep the order of EVENTS, whatever order the form sent.
    let events: Vec<&str> = EVENTS.iter().copied().filter(|e| form.has_event(e)).collect();
    let webhook = webhooks::create(&state.db, hub.id, url.as_str(), &events.join(" "), &secret).await?;
    tracing::info!(hub = hub.slug, webhook = webhook.id, actor = chrome.viewer.actor_id, "webhook created");
    let mut response =
        detail_page(&state, chrome, htmx, StatusCode::CREATED, hub.clone(), webhook.clone(), Some(secret)).await?;
    let url = format!("/hubs/{}/settings/webhooks/{}", hub.slug, webhook.id);
    super::push_url(&mut response, &url);
    Ok(response)
}

#[get("/hubs/{hub_slug}/settings/webhooks/{id}")]
async fn detail(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let webhook = webhook_of(&state, &hub, id).await?;
    detail_page(&state, chrome, htmx, StatusCode::OK, hub, webhook, None).await
}

#[post("/hubs/{hub_slug}/settings/webhooks/{id}/{action:archive|restore}")]
async fn archive(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, String)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id, action) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let webhook = webhook_of(&state, &hub, id).await?;
    webhooks::set_archived(&state.db, hub.id, webhook.id, action == "archive").await?;
    tracing::info!(
        hub = hub.slug,
        webhook = webhook.id,
        action,
        actor = chrome.viewer.actor_id,
        "webhook archive state changed"
    );
    Ok(redirect(htmx, &format!("/hubs/{}/settings/webhooks/{}", hub.slug, webhook.id)).finish())
}

#[post("/hubs/{hub_slug}/settings/webhooks/{id}/deliveries/{delivery_id}/replay")]
async fn replay(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id, delivery_id) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    let webhook = webhook_of(&state, &hub, id).await?;
    match webhooks::replay(&state.db, hub.id, webhook.id, delivery_id).await {
        Ok(new_id) => {
            state.webhook_wake.notify();
            tracing::info!(
                hub = hub.slug,
                webhook = webhook.id,
                delivery_id,
                new_id,
                actor = chrome.viewer.actor_id,
                "webhook delivery replayed"
            );
            Ok(redirect(htmx, &format!("/hubs/{}/settings/webhooks/{}", hub.slug, webhook.id)).finish())
        }
        Err(StoreError::NotFound) => Err(AppError::NotFound("delivery")),
        Err(e) => Err(e.into()),
    }
}

/// Mounts the webhook settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(detail).service(archive).service(replay);
}
