//! The board's dialogs (dismiss with a reason, the duplicate picker, promotion) and an
//! annotation's history page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use super::actions::{Answer, actor};
use super::undo::UndoToken;
use super::{Filter, FilterParams, excerpt};
use crate::AppState;
use crate::access as policy;
use crate::db::hubs::Hub;
use crate::db::triage::{self, HistoryEntry, OpenCandidate, TriageRow};
use crate::db::{StoreError, now_ms, widgets};
use crate::error::AppError;
use crate::triage::{Promotion, Target, TriageError};
use crate::web::access::{InHub, Triage};
use crate::web::chrome::Chrome;
use crate::web::input;
use crate::web::render::{self, Htmx};

/// Rows the duplicate picker offers.
const PICKER_ROWS: i64 = 10;

#[derive(Deserialize)]
struct DialogQuery {
    version: i64,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "fragments/triage_dismiss.html")]
struct DismissDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/dismiss")]
async fn dismiss_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    InHub { hub, access, .. }: InHub<Triage>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let row = triage::row(&state.db, &access, hub.id, id).await?;
    render::fragment(&DismissDialog { hub_slug: hub.slug, row, version: query.version })
}

#[derive(Template)]
#[template(path = "fragments/triage_duplicate.html")]
struct DuplicateDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
    q: String,
    results: Vec<TriageRow>,
    now: i64,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/duplicate")]
async fn duplicate_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    InHub { hub, access, .. }: InHub<Triage>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let q = input::search(query.q.as_deref())?;
    let (row, results) = tokio::try_join!(
        triage::row(&state.db, &access, hub.id, id),
        triage::search(&state.db, &access, hub.id, &q, id, PICKER_ROWS),
    )?;
    let dialog = DuplicateDialog { hub_slug: hub.slug, row, version: query.version, q, results, now: now_ms() };
    render::fragment(&dialog)
}

#[derive(Template)]
#[template(path = "fragments/triage_promote.html")]
struct PromoteDialog {
    hub_slug: String,
    row: TriageRow,
    version: i64,
    target: String,
    title: String,
    statement: String,
    candidate_id: Option<i64>,
    candidates: Vec<OpenCandidate>,
    title_error: Option<String>,
    candidate_error: Option<String>,
    error: Option<String>,
    /// The annotation is not read by every member of the hub (a `private` widget): its text is
    /// not offered as the candidate's, which every member reads.
    private: bool,
}

impl PromoteDialog {
    fn selected(&self, id: &i64) -> bool {
        self.candidate_id == Some(*id)
    }
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}/promote")]
async fn promote_dialog(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<DialogQuery>,
    InHub { hub, access, .. }: InHub<Triage>,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let (row, candidates) =
        tokio::try_join!(triage::row(&state.db, &access, hub.id, id), triage::open_candidates(&state.db, hub.id))?;
    let private = is_private(&state, &row).await?;
    // Every member reads a candidate: only text every member may read is offered as its own.
    let (title, statement) = if private { Default::default() } else { (excerpt(&row.body, 80), row.body.clone()) };
    let dialog = PromoteDialog {
        hub_slug: hub.slug,
        version: query.version,
        target: "new".into(),
        title,
        statement,
        row,
        candidate_id: None,
        candidates,
        title_error: None,
        candidate_error: None,
        error: None,
        private,
    };
    render::fragment(&dialog)
}

#[derive(Deserialize)]
struct PromoteForm {
    version: i64,
    target: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
    candidate_id: Option<String>,
    #[serde(flatten)]
    filter: FilterParams,
}

/// The longest candidate title (the schema's limit).
const TITLE_MAX: usize = 200;

/// Whether the annotation of `row` is one that not every member of the hub reads.
async fn is_private(state: &AppState, row: &TriageRow) -> Result<bool, AppError> {
    Ok(!policy::every_member_reads(&widgets::by_id(&state.db, row.widget_id).await?))
}

/// Whether `text` carries the annotation's own words: all of it, or the excerpt the dialog
/// used to offer as a title.
fn quotes(body: &str, text: &str) -> bool {
    let body = body.trim();
    let text = text.trim();
    !body.is_empty() && !text.is_empty() && (text.contains(body) || text == excerpt(body, 80))
}

const PRIVATE_TEXT: &str = "This annotation is on a private widget, and every member of the hub reads candidates \
     and the ledger: write the title and statement in your own words, without its text.";

#[post("/hubs/{hub_slug}/triage/annotations/{id}/promote")]
async fn promote(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<PromoteForm>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let title = form.title.trim().to_owned();
    let candidate_id = form.candidate_id.as_deref().filter(|v| !v.is_empty()).and_then(|v| v.parse::<i64>().ok());
    let mut title_error = None;
    let mut candidate_error = None;
    let current = triage::row(&state.db, &access, hub.id, id).await?;
    let private = is_private(&state, &current).await?;
    let statement = form.statement.trim();
    let promotion = match form.target.as_str() {
        // A crafted form (or an old dialog) cannot copy private text into a hub-wide record.
        "new" if private && (quotes(&current.body, &title) || quotes(&current.body, statement)) => {
            title_error = Some(PRIVATE_TEXT.to_owned());
            None
        }
        "new" if title.is_empty() => {
            title_error = Some("Give the candidate a title.".to_owned());
            None
        }
        "new" if title.chars().count() > TITLE_MAX => {
            title_error = Some(format!("Keep the title under {TITLE_MAX} characters."));
            None
        }
        "new" => Some(Promotion::New { title: &title, statement }),
        "existing" => match candidate_id {
            Some(candidate_id) => Some(Promotion::Existing { candidate_id }),
            None => {
                candidate_error = Some("Choose a candidate.".to_owned());
                None
            }
        },
        _ => return Err(AppError::BadRequest("promote to a new or an existing candidate".into())),
    };
    let target = Target { id, version: form.version };
    let outcome = match &promotion {
        Some(promotion) => {
            Some(crate::triage::promote(&state.db, hub.id, actor(&chrome.viewer)?, &target, promotion).await)
        }
        None => None,
    };
    let error = match outcome {
        Some(Ok(applied)) => {
            let undo = UndoToken::new(hub.id, actor(&chrome.viewer)?, now_ms(), vec![applied.clone()]);
            let answer = Answer { state: &state, hub: &hub, access: &access, filter: &filter, primary: Some(id) };
            let candidate = applied.candidate.unwrap_or_default();
            let mut response = answer
                .render(
                    StatusCode::OK,
                    &[id],
                    Vec::new(),
                    format!("#{id} promoted to candidate #{candidate}."),
                    Some(undo.sign(&state.secret)),
                )
                .await?;
            // The form lives in the dialog, which keeps it on a 422; the answer goes out of band.
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("hx-reswap"), header::HeaderValue::from_static("none"));
            return Ok(response);
        }
        Some(Err(TriageError::Refused(reason))) => Some(reason),
        Some(Err(TriageError::Store(StoreError::Stale))) => {
            Some("Someone changed this annotation meanwhile: close this and look again.".to_owned())
        }
        Some(Err(TriageError::Store(e))) => return Err(e.into()),
        None => None,
    };
    let (row, candidates) =
        tokio::try_join!(triage::row(&state.db, &access, hub.id, id), triage::open_candidates(&state.db, hub.id))?;
    let dialog = PromoteDialog {
        hub_slug: hub.slug,
        row,
        version: form.version,
        target: form.target,
        title,
        statement: form.statement,
        candidate_id,
        candidates,
        title_error,
        candidate_error,
        error,
        private,
    };
    Ok(render::html(StatusCode::UNPROCESSABLE_ENTITY, dialog.render()?))
}

#[derive(Template)]
#[template(path = "pages/triage_history.html", blocks = ["content"])]
struct HistoryPage {
    chrome: Chrome,
    hub: Hub,
    row: TriageRow,
    entries: Vec<HistoryEntry>,
    duplicates: Vec<TriageRow>,
}

#[get("/hubs/{hub_slug}/triage/annotations/{id}")]
async fn history(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let (row, entries, duplicates) = tokio::try_join!(
        triage::row(&state.db, &access, hub.id, id),
        triage::history(&state.db, hub.id, id),
        triage::duplicates(&state.db, &access, hub.id, id),
    )?;
    let chrome = chrome.titled(format!("Annotation #{id} · {}", hub.name)).in_hub(&access);
    let page = HistoryPage { chrome, hub, row, entries, duplicates };
    render::page(htmx, &page, |p| p.as_content().render())
}

/// Mounts the dialogs and the history page.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(dismiss_dialog).service(duplicate_dialog).service(promote_dialog).service(promote).service(history);
}
