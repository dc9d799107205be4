//! A candidate's page: its head, evidence and history (each a live region), the evidence
//! picker, and the page re-rendered with a form's mistakes (`answer`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::StoreError;
use crate::db::annotations::AnnotationRow;
use crate::db::candidates::{self, Candidate, EvidenceList, HistoryEntry};
use crate::db::hubs::Hub;
use crate::error::AppError;
use crate::governance::{DraftErrors, Status};
use crate::live::{self, Region};
use crate::web::access::{InHub, Propose, View};
use crate::web::chrome::Chrome;
use crate::web::input;
use crate::web::login::redirect;
use crate::web::region;
use crate::web::render::{self, Htmx};

/// Most annotations the evidence picker offers.
const PICKER_LIMIT: i64 = 10;

/// A candidate's title, status and statement.
#[derive(Template)]
#[template(path = "fragments/candidate_head.html")]
pub struct CandidateHead {
    pub candidate: Candidate,
}

/// A candidate's evidence.
#[derive(Template)]
#[template(path = "fragments/candidate_evidence.html")]
pub struct EvidencePanel {
    pub hub_slug: String,
    pub candidate_id: i64,
    pub evidence: EvidenceList,
    pub can_remove: bool,
}

/// A candidate's history, from the ledger.
#[derive(Template)]
#[template(path = "fragments/candidate_history.html")]
pub struct HistoryPanel {
    pub entries: Vec<HistoryEntry>,
}

/// The evidence picker's results: annotations of the hub that could become evidence.
#[derive(Template)]
#[template(path = "fragments/evidence_picker.html")]
pub struct PickerResults {
    pub hub_slug: String,
    pub candidate_id: i64,
    pub csrf_token: String,
    pub query: String,
    pub results: Vec<AnnotationRow>,
}

pub(super) async fn candidate_in(state: &AppState, hub: &Hub, viewer: &Viewer, id: i64) -> Result<Candidate, AppError> {
    match candidates::get(&state.db, viewer, hub.id, id).await {
        Ok(candidate) => Ok(candidate),
        Err(StoreError::NotFound) => Err(AppError::NotFound("candidate")),
        Err(e) => Err(e.into()),
    }
}

/// Loads a candidate's head region.
pub async fn load_head(state: &AppState, hub: &Hub, viewer: &Viewer, id: i64) -> Result<CandidateHead, AppError> {
    Ok(CandidateHead { candidate: candidate_in(state, hub, viewer, id).await? })
}

/// Loads a candidate's evidence region (the candidate must be in `hub`).
pub async fn load_evidence(
    state: &AppState,
    hub: &Hub,
    hub_access: &HubAccess,
    viewer: &Viewer,
    id: i64,
) -> Result<EvidencePanel, AppError> {
    let evidence = candidates::evidence(&state.db, viewer, id).await?;
    Ok(EvidencePanel { hub_slug: hub.slug.clone(), candidate_id: id, evidence, can_remove: hub_access.can_propose() })
}

/// Loads a candidate's history region.
pub async fn load_history(state: &AppState, hub: &Hub, viewer: &Viewer, id: i64) -> Result<HistoryPanel, AppError> {
    Ok(HistoryPanel { entries: candidates::history(&state.db, viewer, hub.id, id).await? })
}

/// Which region of a candidate's page the live stream renders.
#[derive(Debug, Clone, Copy)]
pub enum CandidatePart {
    Head,
    Evidence,
    History,
}

/// Renders a candidate region for the live stream, as `viewer` (who may see `hub`).
pub async fn render_candidate_part(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    id: i64,
    part: CandidatePart,
) -> Result<String, AppError> {
    // The candidate must belong to the hub the region was opened for.
    let candidate = candidate_in(state, hub, viewer, id).await?;
    Ok(match part {
        CandidatePart::Head => CandidateHead { candidate }.render()?,
        CandidatePart::Evidence => {
            let hub_access = HubAccess::load(&state.db, viewer, hub.id).await?;
            load_evidence(state, hub, &hub_access, viewer, id).await?.render()?
        }
        CandidatePart::History => load_history(state, hub, viewer, id).await?.render()?,
    })
}

/// The decision form: the rationale typed and what is wrong.
#[derive(Default)]
pub(super) struct DecideForm {
    pub(super) rationale: String,
    pub(super) error: Option<String>,
}

/// The edit form: what was typed and what is wrong.
#[derive(Default)]
pub(super) struct EditForm {
    pub(super) title: String,
    pub(super) statement: String,
    pub(super) reason: String,
    pub(super) errors: DraftErrors,
    /// A mistake of the whole form (nothing changed, a final candidate, an overlong reason).
    pub(super) error: Option<String>,
    pub(super) open: bool,
}

/// The remove-evidence form for one annotation.
pub(super) struct RemoveForm {
    pub(super) annotation_id: i64,
    pub(super) reason: String,
    pub(super) error: Option<String>,
}

/// The state of the page's forms when it is (re-)rendered.
#[derive(Default)]
pub(super) struct Forms {
    pub(super) decide: DecideForm,
    pub(super) edit: Option<EditForm>,
    pub(super) picker_query: String,
    pub(super) picker_error: Option<String>,
    pub(super) remove: Option<RemoveForm>,
}

#[derive(Template)]
#[template(path = "pages/candidate.html", blocks = ["content"])]
struct CandidatePage {
    chrome: Chrome,
    hub: Hub,
    candidate: Candidate,
    head: CandidateHead,
    evidence: EvidencePanel,
    history: HistoryPanel,
    picker: PickerResults,
    next: &'static [Status],
    can_decide: bool,
    can_propose: bool,
    decide: DecideForm,
    edit: EditForm,
    picker_error: Option<String>,
    remove: Option<RemoveForm>,
}

async fn candidate_page(
    state: &AppState,
    chrome: Chrome,
    hub: Hub,
    hub_access: &HubAccess,
    id: i64,
    forms: Forms,
) -> Result<CandidatePage, AppError> {
    let since = state.feed.current_seq();
    let viewer = &chrome.viewer;
    let candidate = candidate_in(state, &hub, viewer, id).await?;
    let (evidence, history, results) = tokio::try_join!(
        load_evidence(state, &hub, hub_access, viewer, id),
        load_history(state, &hub, viewer, id),
        async {
            if !hub_access.can_propose() {
                return Ok(Vec::new());
            }
            candidates::evidence_candidates(&state.db, viewer, hub.id, id, &forms.picker_query, PICKER_LIMIT)
                .await
                .map_err(AppError::from)
        },
    )?;
    let regions = [
        Region::CandidateHead { hub_id: hub.id, candidate_id: id },
        Region::CandidateEvidence { hub_id: hub.id, candidate_id: id },
        Region::CandidateHistory { hub_id: hub.id, candidate_id: id },
    ];
    // Offer the remove form only for active evidence, unless it comes back with a mistake.
    let remove = forms.remove.filter(|r| {
        r.error.is_some()
            || evidence.evidence.items.iter().any(|e| e.annotation_id == r.annotation_id && e.removed_at.is_none())
    });
    let edit = forms.edit.unwrap_or_else(|| EditForm {
        title: candidate.title.clone(),
        statement: candidate.statement.clone(),
        ..EditForm::default()
    });
    let picker = PickerResults {
        hub_slug: hub.slug.clone(),
        candidate_id: id,
        csrf_token: chrome.csrf_token.clone(),
        query: forms.picker_query,
        results,
    };
    let chrome =
        chrome.titled(candidate.title.clone()).live(live::region::stream_url(&regions, since)).in_hub(hub_access);
    Ok(CandidatePage {
        chrome,
        hub,
        head: CandidateHead { candidate: candidate.clone() },
        next: candidate.lifecycle().next(),
        candidate,
        evidence,
        history,
        picker,
        can_decide: hub_access.can_decide(),
        can_propose: hub_access.can_propose(),
        decide: forms.decide,
        edit,
        picker_error: forms.picker_error,
        remove,
    })
}

/// Answers a candidate-page form: on success the fresh content for htmx, or a redirect back
/// to the page (post/redirect/get) for a plain form; with mistakes, 422 and the page with the
/// form as typed.
pub(super) async fn answer(
    state: &AppState,
    chrome: Chrome,
    htmx: Htmx,
    (hub, hub_access): (Hub, HubAccess),
    id: i64,
    forms: Option<Forms>,
) -> Result<HttpResponse, AppError> {
    let status = if forms.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    if forms.is_none() && !htmx.partial {
        return Ok(redirect(htmx, &format!("/hubs/{}/candidates/{id}", hub.slug)).finish());
    }
    let page = candidate_page(state, chrome, hub, &hub_access, id, forms.unwrap_or_default()).await?;
    render::page_with_status(htmx, status, &page, |p| p.as_content().render())
}

#[derive(Deserialize)]
pub(super) struct CandidateQuery {
    q: Option<String>,
    remove: Option<i64>,
}

#[get("/hubs/{hub_slug}/candidates/{id}")]
pub(super) async fn show_candidate(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<CandidateQuery>,
    InHub { hub, access: hub_access, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let CandidateQuery { q, remove } = query.into_inner();
    let forms = Forms {
        picker_query: input::search(q.as_deref())?,
        remove: remove.filter(|_| hub_access.can_propose()).map(|annotation_id| RemoveForm {
            annotation_id,
            reason: String::new(),
            error: None,
        }),
        ..Forms::default()
    };
    let page = candidate_page(&state, chrome, hub, &hub_access, id, forms).await?;
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/candidates/{id}/head")]
pub(super) async fn head_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let head = load_head(&state, &hub, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(head.candidate.title.clone()), &head)
}

#[get("/hubs/{hub_slug}/candidates/{id}/evidence")]
pub(super) async fn evidence_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, access: hub_access, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let panel = load_evidence(&state, &hub, &hub_access, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(format!("{} · evidence", candidate.title)), &panel)
}

#[get("/hubs/{hub_slug}/candidates/{id}/history")]
pub(super) async fn history_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    InHub { hub, .. }: InHub<View>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let panel = load_history(&state, &hub, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(format!("{} · history", candidate.title)), &panel)
}

#[derive(Deserialize)]
pub(super) struct PickerQuery {
    #[serde(default)]
    q: String,
}

#[get("/hubs/{hub_slug}/candidates/{id}/evidence/search")]
pub(super) async fn evidence_search(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<PickerQuery>,
    InHub { hub, .. }: InHub<Propose>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let q = input::search(Some(&query.q))?;
    let results = candidates::evidence_candidates(&state.db, &chrome.viewer, hub.id, id, &q, PICKER_LIMIT).await?;
    render::fragment(&PickerResults {
        hub_slug: hub.slug,
        candidate_id: id,
        csrf_token: chrome.csrf_token,
        query: q,
        results,
    })
}
