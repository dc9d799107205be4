//! The ledger as a transparency log, over HTTP (hub members only, like the exports, except the
//! public key, which anyone may fetch): the hub's verifier key, its newest checkpoint, inclusion and consistency proofs, and the audit
//! bundle that `ihf ledger verify-bundle` checks offline.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;

use crate::AppState;
use crate::audit::{BUNDLE_FORMAT, BundleHeader};
use crate::db::{StoreError, ledger, ledger_tree};
use crate::error::AppError;
use crate::web::access::{self, InHub, View};
use crate::web::chrome::Chrome;

/// Ledger entries read per database round trip while writing a bundle.
const BUNDLE_PAGE: i64 = 500;

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(body)
}

fn json<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(value)
}

/// The verifier key of the hub's checkpoints, `<origin>+<key id>+<key>`: pin it. Public, with
/// no sign-in: auditors and witnesses who are not members need it, and a public key reveals
/// nothing but the hub's slug, which its 401/403 answers reveal anyway.
#[get("/hubs/{hub_slug}/ledger/key")]
async fn key(state: web::Data<AppState>, path: web::Path<String>, chrome: Chrome) -> Result<HttpResponse, AppError> {
    let (hub, _) = access::hub(&state, &path, &chrome.viewer).await?;
    let identity = ledger_tree::identity(&state.db).await?;
    let mut response = text(format!("{}\n", identity.signer(&hub.slug)?.vkey()));
    // The key never changes: let anyone cache it for a day.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    Ok(response)
}

/// The newest signed checkpoint, with the cosignatures witnesses returned for it.
#[get("/hubs/{hub_slug}/ledger/checkpoint")]
async fn checkpoint(
    state: web::Data<AppState>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let mut tx = state.db.begin_as(chrome.viewer.actor_id).await?;
    let size = ledger_tree::signed_size(&mut *tx, hub.id).await?;
    let note = ledger_tree::checkpoint_note(&mut tx, hub.id, size).await?;
    tx.commit().await.map_err(StoreError::from)?;
    note.map(text).ok_or(AppError::NotFound("checkpoint"))
}

#[derive(Deserialize)]
struct InclusionQuery {
    seq: u64,
    size: Option<u64>,
}

/// `{origin, seq, leaf_index, tree_size, leaf_hash, root_hash, proof: [...], checkpoint, entry}`:
/// that entry `seq` is in the tree of `size` entries (the newest checkpoint's when omitted).
#[get("/hubs/{hub_slug}/ledger/proof/inclusion")]
async fn inclusion(
    state: web::Data<AppState>,
    query: web::Query<InclusionQuery>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let identity = ledger_tree::identity(&state.db).await?;
    let mut tx = state.db.begin_as(chrome.viewer.actor_id).await?;
    let answer = ledger_tree::prove_inclusion(&mut tx, &identity, hub.id, &hub.slug, query.seq, query.size).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(json(&answer.map_err(AppError::BadRequest)?))
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `{origin, from, to, old_root, new_root, proof: [...], old_checkpoint, new_checkpoint}`: that
/// the tree of `from` entries is a prefix of the tree of `to` (the newest when omitted).
#[get("/hubs/{hub_slug}/ledger/proof/consistency")]
async fn consistency(
    state: web::Data<AppState>,
    query: web::Query<ConsistencyQuery>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let identity = ledger_tree::identity(&state.db).await?;
    let mut tx = state.db.begin_as(chrome.viewer.actor_id).await?;
    let answer = ledger_tree::prove_consistency(&mut tx, &identity, hub.id, &hub.slug, query.from, query.to).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(json(&answer.map_err(AppError::BadRequest)?))
}

/// The audit bundle: a header with the newest checkpoint and the key, then the entries it
/// covers, streamed page by page (see [`crate::audit`]).
#[get("/hubs/{hub_slug}/ledger/bundle")]
async fn bundle(
    state: web::Data<AppState>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let identity = ledger_tree::identity(&state.db).await?;
    let actor = chrome.viewer.actor_id;
    let mut tx = state.db.begin_as(actor).await?;
    let size = ledger_tree::signed_size(&mut *tx, hub.id).await?;
    let note = ledger_tree::checkpoint_note(&mut tx, hub.id, size).await?;
    let witnesses = crate::db::witnesses::keys(&mut *tx, hub.id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let Some(note) = note else { return Err(AppError::NotFound("checkpoint")) };
    let header = BundleHeader {
        format: BUNDLE_FORMAT.into(),
        hub: hub.slug.clone(),
        origin: identity.origin(&hub.slug),
        key: identity.signer(&hub.slug)?.vkey(),
        checkpoint: note,
        witnesses,
    };
    let first = serde_json::to_string(&header).map_err(|e| AppError::Unexpected(e.into()))? + "\n";
    let (db, hub_id, size) = (state.db.clone(), hub.id, size as i64);
    // Entries are append-only: those up to the checkpoint's size are the ones it signed.
    let pages = futures_util::stream::try_unfold(Some(0_i64), move |after| {
        let db = db.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let limit = BUNDLE_PAGE.min(size - after);
            if limit <= 0 {
                return Ok(None);
            }
            let mut tx = db.begin_as(actor).await?;
            let page = ledger::page_after(&mut *tx, hub_id, after, limit).await?;
            tx.commit().await?;
            let mut out = String::new();
            for entry in &page {
                // A struct of integers and strings always serializes.
                out.push_str(&serde_json::to_string(entry).unwrap_or_default());
                out.push('\n');
            }
            let next = (page.len() as i64 == limit).then(|| page.last().map_or(after, |e| e.seq));
            Ok::<_, StoreError>(Some((web::Bytes::from(out), next)))
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(std::future::ready(Ok(web::Bytes::from(first)))),
        futures_util::StreamExt::map(pages, |page| {
            page.inspect_err(|e| tracing::error!(error = %e, "ledger bundle cut short"))
        }),
    );
    let disposition = format!("attachment; filename=\"{}-ledger-bundle.jsonl\"", hub.slug);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/jsonl; charset=utf-8")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(body))
}

/// Mounts the key, checkpoint, proof and bundle routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(key).service(checkpoint).service(inclusion).service(consistency).service(bundle);
}
