//! `/hubs/{hub}/settings/witnesses`: operators list the witnesses that cosign the hub's
//! checkpoints (C2SP `tlog-witness` URL and cosigning key), see what each last cosigned and
//! why it failed, add and remove them. The sending is [`crate::witness`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use askama::Template;

use super::forms::FieldErrors;
use crate::AppState;
use crate::db::hubs::Hub;
use crate::db::witnesses::{self, Witness};
use crate::db::{StoreError, ledger_tree};
use crate::error::AppError;
use crate::transparency::note::{TYPE_COSIGNATURE, VerifierKey};
use crate::web::access::{InHub, Manage};
use crate::web::chrome::Chrome;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};
use crate::webhooks::guard;

/// The add form as typed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct WitnessForm {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub vkey: String,
}

#[derive(Template)]
#[template(path = "pages/settings/witnesses.html", blocks = ["content"])]
struct ListPage {
    chrome: Chrome,
    hub: Hub,
    witnesses: Vec<Witness>,
    /// The hub's signed tree size (what a witness is behind of).
    signed: i64,
    /// The log key a witness must be configured with.
    log_key: String,
    form: WitnessForm,
    errors: FieldErrors,
}

async fn list_page(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    status: StatusCode,
    hub: Hub,
    form: WitnessForm,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let witnesses = witnesses::for_hub(state.db.reader(), hub.id).await?;
    let signed = ledger_tree::signed_size(state.db.reader(), hub.id).await? as i64;
    let log_key = ledger_tree::identity(&state.db).await?.signer(&hub.slug)?.vkey();
    let chrome = chrome.titled(format!("Witnesses · {} · settings", hub.name));
    let page = ListPage { chrome, hub, witnesses, signed, log_key, form, errors };
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

/// A witness's cosigning key as typed: `<name>+<key id>+<base64 of 0x04 || public key>`.
fn parse_witness_key(raw: &str) -> Result<VerifierKey, String> {
    let key: VerifierKey = raw.trim().parse().map_err(|e| {
        format!("Enter the witness's key as name+keyid+key (e.g. witness.example/w1+1a2b3c4d+BA…): {e}.")
    })?;
    if key.kind != TYPE_COSIGNATURE {
        return Err("That is a log signing key; a witness cosigns with a timestamped key (type 0x04).".into());
    }
    Ok(key)
}

#[get("/hubs/{hub_slug}/settings/witnesses")]
async fn list(
    state: web::Data<AppState>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    list_page(&state, chrome, htmx, StatusCode::OK, hub, WitnessForm::default(), FieldErrors::default()).await
}

#[post("/hubs/{hub_slug}/settings/witnesses")]
async fn add(
    state: web::Data<AppState>,
    form: web::Form<WitnessForm>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let chrome = chrome.in_hub(&access);
    let form = form.into_inner();
    let mut errors = FieldErrors::default();
    let url = errors.check("url", guard::check_url(&form.url, state.config.webhook_allow_private).await);
    let key = errors.check("vkey", parse_witness_key(&form.vkey));
    let (Some(url), Some(key)) = (url, key) else {
        return list_page(&state, chrome, htmx, StatusCode::UNPROCESSABLE_ENTITY, hub, form, errors).await;
    };
    let url = url.as_str().trim_end_matches('/').to_owned();
    match witnesses::add(&state.db, hub.id, &url, &key.encode(), &key.name).await {
        Ok(id) => {
            tracing::info!(hub = hub.slug, witness = id, actor = chrome.viewer.actor_id, "witness added");
            Ok(redirect(htmx, &format!("/hubs/{}/settings/witnesses", hub.slug)).finish())
        }
        Err(StoreError::Conflict { .. }) => {
            errors.add("url", "This hub has a witness at this URL already.");
            list_page(&state, chrome, htmx, StatusCode::CONFLICT, hub, form, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

#[post("/hubs/{hub_slug}/settings/witnesses/{id}/remove")]
async fn remove(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, access, .. }: InHub<Manage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let chrome = chrome.in_hub(&access);
    match witnesses::archive(&state.db, hub.id, id).await {
        Ok(()) => {
            tracing::info!(hub = hub.slug, witness = id, actor = chrome.viewer.actor_id, "witness removed");
            Ok(redirect(htmx, &format!("/hubs/{}/settings/witnesses", hub.slug)).finish())
        }
        Err(StoreError::NotFound) => Err(AppError::NotFound("witness")),
        Err(e) => Err(e.into()),
    }
}

/// Mounts the witness settings.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(add).service(remove);
}
