//! The governance ledger: requirement candidates, their evidence, the decisions about them and
//! the hash-chained history, with exports an auditor can verify elsewhere.
//!
//! Live regions: the candidate list of a hub (per status filter) and, on a candidate's page,
//! its head, its evidence and its history. A search narrows the list to a snapshot that is not
//! live (the stream is keyed by the status filter only); clearing the search brings the live
//! list back.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, post, web};
use askama::Template;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::HubAccess;
use crate::db::StoreError;
use crate::db::annotations::AnnotationRow;
use crate::db::candidates::{self, Candidate, CandidateRow, Decision, Draft, Edit, EvidenceList, HistoryEntry, Status};
use crate::db::hubs::Hub;
use crate::db::ledger::{self, LedgerEntry};
use crate::db::ledger_tree::{self, HeadVerdict};
use crate::error::AppError;
use crate::live::{self, Region};
use crate::web::chrome::Chrome;
use crate::web::input;
use crate::web::login::redirect;
use crate::web::render::{self, Htmx};
use crate::web::{access, region};

/// Most candidates the list shows at once (newest changes first).
pub const LIST_LIMIT: i64 = 200;
/// Most annotations the evidence picker offers.
const PICKER_LIMIT: i64 = 10;
/// Ledger entries read per database round trip while exporting.
const EXPORT_PAGE: i64 = 500;
/// Longest rationale or reason accepted (characters).
const REASON_MAX: usize = 4000;

/// The first `max` characters of `text`, with an ellipsis when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

// ---- the ledger list ------------------------------------------------------------------------

/// One status tab of the list, with its count.
pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub count: i64,
    pub current: bool,
}

/// The candidate list with its counts per status and the chain verdict.
#[derive(Template)]
#[template(path = "fragments/ledger_list.html")]
pub struct LedgerList {
    pub hub_slug: String,
    pub status: Option<Status>,
    pub query: String,
    pub tabs: Vec<Tab>,
    pub items: Vec<CandidateRow>,
    pub truncated: bool,
    pub verdict: HeadVerdict,
    /// The hub's witnesses and the newest checkpoint each cosigned.
    pub cosigners: Vec<crate::db::witnesses::Cosigner>,
}

impl LedgerList {
    fn short_root(&self) -> &str {
        self.verdict.root.get(..12).unwrap_or(&self.verdict.root)
    }
}

/// Loads the list region of a hub as `viewer`.
pub async fn load_list(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
    status: Option<Status>,
    query: &str,
) -> Result<LedgerList, AppError> {
    let filter = candidates::ListFilter { status, query: query.to_owned() };
    let (mut items, counts, (verdict, cosigners)) = tokio::try_join!(
        candidates::list(&state.db, viewer, hub.id, &filter, LIST_LIMIT + 1),
        candidates::status_counts(&state.db, viewer, hub.id, query),
        verify(state, hub, viewer),
    )?;
    let truncated = items.len() as i64 > LIST_LIMIT;
    items.truncate(LIST_LIMIT as usize);
    let href = |s: Option<Status>| {
        let mut params = Vec::new();
        if let Some(s) = s {
            params.push(format!("status={}", s.as_str()));
        }
        if !query.is_empty() {
            params.push(format!("q={}", crate::web::format::urlencode(query)));
        }
        let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
        format!("/hubs/{}/ledger{query}", hub.slug)
    };
    let mut tabs = vec![Tab {
        label: "all",
        href: href(None),
        count: counts.iter().map(|(_, n)| n).sum(),
        current: status.is_none(),
    }];
    tabs.extend(counts.into_iter().map(|(s, count)| Tab {
        label: s.as_str(),
        href: href(Some(s)),
        count,
        current: status == Some(s),
    }));
    Ok(LedgerList {
        hub_slug: hub.slug.clone(),
        status,
        query: query.to_owned(),
        tabs,
        items,
        truncated,
        verdict,
        cosigners,
    })
}

/// The verdict from the newest checkpoint, in `O(log n)` (the full walk is `ihf ledger verify`),
/// and who cosigned what.
async fn verify(
    state: &AppState,
    hub: &Hub,
    viewer: &Viewer,
) -> Result<(HeadVerdict, Vec<crate::db::witnesses::Cosigner>), StoreError> {
    let identity = ledger_tree::identity(&state.db).await?;
    let mut tx = state.db.begin_as(viewer.actor_id).await?;
    let verdict = ledger_tree::head_verdict(&mut tx, &identity, hub.id, &hub.slug).await?;
    let cosigners = crate::db::witnesses::cosigners(&mut *tx, hub.id).await?;
    tx.commit().await?;
    Ok((verdict, cosigners))
}

/// The propose form: what was typed and what is wrong with it.
#[derive(Default)]
struct ProposeForm {
    title: String,
    statement: String,
    errors: candidates::DraftErrors,
    open: bool,
}

#[derive(Template)]
#[template(path = "pages/ledger.html", blocks = ["content"])]
struct LedgerPage {
    chrome: Chrome,
    hub: Hub,
    list: LedgerList,
    can_propose: bool,
    propose: ProposeForm,
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
}

impl ListQuery {
    fn parse(&self) -> Result<(Option<Status>, String), AppError> {
        let status = match self.status.as_deref() {
            None | Some("") | Some("all") => None,
            Some(name) => Some(Status::parse(name).ok_or_else(|| AppError::BadRequest("unknown status".into()))?),
        };
        Ok((status, input::search(self.q.as_deref())?))
    }
}

async fn ledger_page(
    state: &AppState,
    chrome: Chrome,
    hub: Hub,
    hub_access: &HubAccess,
    status: Option<Status>,
    query: &str,
    propose: ProposeForm,
) -> Result<LedgerPage, AppError> {
    let since = state.feed.current_seq();
    let list = load_list(state, &hub, &chrome.viewer, status, query).await?;
    let regions = [Region::Ledger { hub_id: hub.id, status }];
    let chrome =
        chrome.titled(format!("{} · governance ledger", hub.name)).live(live::region::stream_url(&regions, since));
    Ok(LedgerPage { chrome, hub, list, can_propose: hub_access.can_propose(), propose })
}

#[get("/hubs/{hub_slug}/ledger")]
async fn ledger_index(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, hub_access) = access::member_hub(&state, &path, &chrome.viewer).await?;
    let (status, q) = query.parse()?;
    let page = ledger_page(&state, chrome, hub, &hub_access, status, &q, ProposeForm::default()).await?;
    render::page(htmx, &page, |p| p.as_content().render())
}

#[get("/hubs/{hub_slug}/ledger/list")]
async fn list_region(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, _) = access::member_hub(&state, &path, &chrome.viewer).await?;
    let (status, q) = query.parse()?;
    let list = load_list(&state, &hub, &chrome.viewer, status, &q).await?;
    region::respond(htmx, chrome.titled(format!("{} · candidates", hub.name)), &list)
}

#[derive(Deserialize)]
struct ProposeInput {
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
}

#[post("/hubs/{hub_slug}/candidates")]
async fn post_propose(
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<ProposeInput>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (hub, hub_access) = access::member_hub(&state, &path, &chrome.viewer).await?;
    access::require(hub_access.can_propose(), &chrome.viewer)?;
    let actor = hub_access.actor_id.ok_or(AppError::Unauthorized)?;
    let draft = match Draft::parse(&form.title, &form.statement) {
        Ok(draft) => draft,
        Err(errors) => {
            let ProposeInput { title, statement } = form.into_inner();
            let propose = ProposeForm { title, statement, errors, open: true };
            let page = ledger_page(&state, chrome, hub, &hub_access, None, "", propose).await?;
            return render::page_with_status(htmx, StatusCode::UNPROCESSABLE_ENTITY, &page, |p| {
                p.as_content().render()
            });
        }
    };
    let mut tx = state.db.writer().begin().await.map_err(StoreError::from)?;
    let id =
        candidates::propose(&mut tx, state.db.backend(), hub.id, actor, &draft.title, &draft.statement, &[]).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(redirect(htmx, &format!("/hubs/{}/candidates/{id}", hub.slug)).finish())
}

// ---- a candidate's page ---------------------------------------------------------------------

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

async fn candidate_in(state: &AppState, hub: &Hub, viewer: &Viewer, id: i64) -> Result<Candidate, AppError> {
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
struct DecideForm {
    rationale: String,
    error: Option<String>,
}

/// The edit form: what was typed and what is wrong.
#[derive(Default)]
struct EditForm {
    title: String,
    statement: String,
    reason: String,
    errors: candidates::DraftErrors,
    /// A mistake of the whole form (nothing changed, a final candidate, an overlong reason).
    error: Option<String>,
    open: bool,
}

/// The remove-evidence form for one annotation.
struct RemoveForm {
    annotation_id: i64,
    reason: String,
    error: Option<String>,
}

/// The state of the page's forms when it is (re-)rendered.
#[derive(Default)]
struct Forms {
    decide: DecideForm,
    edit: Option<EditForm>,
    picker_query: String,
    picker_error: Option<String>,
    remove: Option<RemoveForm>,
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
    let chrome = chrome.titled(candidate.title.clone()).live(live::region::stream_url(&regions, since));
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
async fn answer(
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
struct CandidateQuery {
    q: Option<String>,
    remove: Option<i64>,
}

#[get("/hubs/{hub_slug}/candidates/{id}")]
async fn show_candidate(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<CandidateQuery>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, hub_access) = access::member_hub(&state, &slug, &chrome.viewer).await?;
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
async fn head_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = access::member_hub(&state, &slug, &chrome.viewer).await?;
    let head = load_head(&state, &hub, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(head.candidate.title.clone()), &head)
}

#[get("/hubs/{hub_slug}/candidates/{id}/evidence")]
async fn evidence_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, hub_access) = access::member_hub(&state, &slug, &chrome.viewer).await?;
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let panel = load_evidence(&state, &hub, &hub_access, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(format!("{} · evidence", candidate.title)), &panel)
}

#[get("/hubs/{hub_slug}/candidates/{id}/history")]
async fn history_region(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _) = access::member_hub(&state, &slug, &chrome.viewer).await?;
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let panel = load_history(&state, &hub, &chrome.viewer, id).await?;
    region::respond(htmx, chrome.titled(format!("{} · history", candidate.title)), &panel)
}

#[derive(Deserialize)]
struct PickerQuery {
    #[serde(default)]
    q: String,
}

#[get("/hubs/{hub_slug}/candidates/{id}/evidence/search")]
async fn evidence_search(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    query: web::Query<PickerQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, _, _) = proposer(&state, &slug, &chrome.viewer).await?;
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

/// The hub and the viewer's access, for a form only triagers and operators may send.
async fn proposer(state: &AppState, slug: &str, viewer: &Viewer) -> Result<(Hub, HubAccess, i64), AppError> {
    let (hub, hub_access) = access::member_hub(state, slug, viewer).await?;
    access::require(hub_access.can_propose(), viewer)?;
    let actor = hub_access.actor_id.ok_or(AppError::Unauthorized)?;
    Ok((hub, hub_access, actor))
}

#[derive(Deserialize)]
struct EditInput {
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
    #[serde(default)]
    reason: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/edit")]
async fn post_edit(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<EditInput>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, hub_access, actor) = proposer(&state, &slug, &chrome.viewer).await?;
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let EditInput { title, statement, reason } = form.into_inner();
    let reason = reason.trim().to_owned();
    let refuse = |errors: candidates::DraftErrors, error: Option<&str>| Forms {
        edit: Some(EditForm {
            title: title.clone(),
            statement: statement.clone(),
            reason: reason.clone(),
            errors,
            error: error.map(str::to_owned),
            open: true,
        }),
        ..Forms::default()
    };
    let problem = if !candidate.lifecycle().editable() {
        Some("An implemented candidate is final; propose a new candidate for further changes.".to_owned())
    } else if reason.chars().count() > REASON_MAX {
        Some(format!("Keep the reason under {REASON_MAX} characters."))
    } else {
        None
    };
    let draft = match (problem, Draft::parse(&title, &statement)) {
        (None, Ok(draft)) => draft,
        (problem, parsed) => {
            let forms = refuse(parsed.err().unwrap_or_default(), problem.as_deref());
            return answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await;
        }
    };
    let mut tx = state.db.writer().begin().await.map_err(StoreError::from)?;
    let change = Edit {
        hub_id: hub.id,
        candidate_id: id,
        actor_id: actor,
        title: &draft.title,
        statement: &draft.statement,
        reason: &reason,
    };
    if !candidates::edit(&mut tx, state.db.backend(), &change).await? {
        let forms = refuse(candidates::DraftErrors::default(), Some("Nothing changed."));
        return answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await;
    }
    tx.commit().await.map_err(StoreError::from)?;
    answer(&state, chrome, htmx, (hub, hub_access), id, None).await
}

#[derive(Deserialize)]
struct DecideInput {
    /// The status the person saw when deciding: a decision made meanwhile is a 409.
    from: Option<String>,
    #[serde(default)]
    to: String,
    #[serde(default)]
    rationale: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/decide")]
async fn post_decide(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<DecideInput>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, hub_access) = access::member_hub(&state, &slug, &chrome.viewer).await?;
    access::require(hub_access.can_decide(), &chrome.viewer)?;
    let actor = hub_access.actor_id.ok_or(AppError::Unauthorized)?;
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let current = candidate.lifecycle();
    let DecideInput { from, to, rationale } = form.into_inner();
    if from.as_deref().is_some_and(|seen| seen != current.as_str()) {
        return Err(stale(current));
    }
    let rationale = rationale.trim().to_owned();
    let problem = match Status::parse(&to) {
        None => Some("Choose a decision.".to_owned()),
        Some(to) => match current.check(to) {
            Err(refused) => Some(refused),
            Ok(()) if rationale.is_empty() => {
                Some("Give a rationale: every decision is recorded in the ledger with its reason.".into())
            }
            Ok(()) if rationale.chars().count() > REASON_MAX => {
                Some(format!("Keep the rationale under {REASON_MAX} characters."))
            }
            Ok(()) => None,
        },
    };
    if let Some(error) = problem {
        let forms = Forms { decide: DecideForm { rationale, error: Some(error) }, ..Forms::default() };
        return answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await;
    }
    let decision = Decision {
        hub_id: hub.id,
        candidate_id: id,
        actor_id: actor,
        from: current.as_str(),
        to: &to,
        rationale: &rationale,
    };
    let mut tx = state.db.writer().begin().await.map_err(StoreError::from)?;
    match candidates::decide(&mut tx, state.db.backend(), &decision).await {
        Ok(()) => tx.commit().await.map_err(StoreError::from)?,
        Err(StoreError::Stale) => return Err(stale(current)),
        Err(e) => return Err(e.into()),
    }
    answer(&state, chrome, htmx, (hub, hub_access), id, None).await
}

fn stale(seen: Status) -> AppError {
    AppError::Conflict(format!(
        "someone decided on this candidate meanwhile (it was {} when you looked); reload to see the decision",
        seen.as_str()
    ))
}

#[derive(Deserialize)]
struct AttachInput {
    annotation_id: Option<i64>,
    #[serde(default)]
    q: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/evidence")]
async fn post_attach(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<AttachInput>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id) = path.into_inner();
    let (hub, hub_access, actor) = proposer(&state, &slug, &chrome.viewer).await?;
    candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let AttachInput { annotation_id, q } = form.into_inner();
    let refuse =
        |message: &str| Forms { picker_query: q.clone(), picker_error: Some(message.into()), ..Forms::default() };
    let Some(annotation_id) = annotation_id else {
        return answer(&state, chrome, htmx, (hub, hub_access), id, Some(refuse("Choose an annotation to attach.")))
            .await;
    };
    let mut tx = state.db.writer().begin().await.map_err(StoreError::from)?;
    let attached = candidates::attach_evidence(
        &mut tx,
        state.db.backend(),
        hub.id,
        id,
        annotation_id,
        actor,
        "attached on the candidate page",
    )
    .await;
    let message = match attached {
        Ok(()) => {
            tx.commit().await.map_err(StoreError::from)?;
            return answer(&state, chrome, htmx, (hub, hub_access), id, None).await;
        }
        Err(StoreError::NotFound) => "That annotation is not feedback of this hub.",
        Err(StoreError::Conflict { .. }) => "That annotation is evidence of this candidate already.",
        Err(e) => return Err(e.into()),
    };
    drop(tx);
    answer(&state, chrome, htmx, (hub, hub_access), id, Some(refuse(message))).await
}

#[derive(Deserialize)]
struct RemoveInput {
    #[serde(default)]
    reason: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/evidence/{annotation_id}/remove")]
async fn post_remove(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
    form: web::Form<RemoveInput>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (slug, id, annotation_id) = path.into_inner();
    let (hub, hub_access, actor) = proposer(&state, &slug, &chrome.viewer).await?;
    candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let reason = form.into_inner().reason.trim().to_owned();
    let refuse = |reason: String, error: &str| Forms {
        remove: Some(RemoveForm { annotation_id, reason, error: Some(error.into()) }),
        ..Forms::default()
    };
    if reason.is_empty() || reason.chars().count() > REASON_MAX {
        let error = if reason.is_empty() {
            "Say why this is no longer evidence: the reason is kept in the ledger.".to_owned()
        } else {
            format!("Keep the reason under {REASON_MAX} characters.")
        };
        return answer(&state, chrome, htmx, (hub, hub_access), id, Some(refuse(reason, &error))).await;
    }
    let mut tx = state.db.writer().begin().await.map_err(StoreError::from)?;
    match candidates::remove_evidence(&mut tx, state.db.backend(), hub.id, id, annotation_id, actor, &reason).await {
        Ok(()) => tx.commit().await.map_err(StoreError::from)?,
        Err(StoreError::NotFound) => {
            drop(tx);
            let forms = refuse(reason, "That annotation is not evidence of this candidate (any more).");
            return answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await;
        }
        Err(e) => return Err(e.into()),
    }
    answer(&state, chrome, htmx, (hub, hub_access), id, None).await
}

// ---- exports ----------------------------------------------------------------------------------

/// The columns of the exports, in the order of [`LedgerEntry`]'s fields.
pub const EXPORT_COLUMNS: [&str; 11] = [
    "id",
    "hub_id",
    "seq",
    "candidate_id",
    "actor_id",
    "action",
    "rationale",
    "detail",
    "created_at",
    "prev_hash",
    "hash",
];

#[derive(Debug, Clone, Copy)]
enum Format {
    JsonLines,
    /// `exact`: every field as stored, for re-verifying the chain; otherwise a field a
    /// spreadsheet would run as a formula is prefixed with `'`.
    Csv {
        exact: bool,
    },
}

impl Format {
    fn write(self, out: &mut String, entry: &LedgerEntry) {
        match self {
            Self::JsonLines => {
                // A struct of integers and strings always serializes.
                out.push_str(&serde_json::to_string(entry).unwrap_or_default());
                out.push('\n');
            }
            Self::Csv { exact } => {
                let csv_field = |value: &str| if exact { csv_field(value) } else { spreadsheet_field(value) };
                let fields = [
                    entry.id.to_string(),
                    entry.hub_id.to_string(),
                    entry.seq.to_string(),
                    entry.candidate_id.map(|id| id.to_string()).unwrap_or_default(),
                    entry.actor_id.to_string(),
                    csv_field(&entry.action),
                    csv_field(&entry.rationale),
                    csv_field(&entry.detail),
                    entry.created_at.to_string(),
                    entry.prev_hash.clone(),
                    entry.hash.clone(),
                ];
                out.push_str(&fields.join(","));
                out.push_str("\r\n");
            }
        }
    }
}

/// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// [`csv_field`], and a field that starts with `=`, `+`, `-`, `@`, a tab or a carriage return
/// is prefixed with `'` (and quoted) so a spreadsheet shows the text instead of running it, as
/// in the annotations export. Such a field no longer hashes as stored: re-verify with
/// `?exact=1` or the JSON Lines export.
fn spreadsheet_field(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", value.replace('"', "\"\""))
    } else {
        csv_field(value)
    }
}

/// Streams a hub's chain page by page, so memory stays flat however long the chain is.
async fn export(state: &AppState, slug: &str, viewer: &Viewer, format: Format) -> Result<HttpResponse, AppError> {
    let (hub, _) = access::member_hub(state, slug, viewer).await?;
    let (db, hub_id, actor) = (state.db.clone(), hub.id, viewer.actor_id);
    let header = match format {
        Format::JsonLines => String::new(),
        Format::Csv { .. } => format!("{}\r\n", EXPORT_COLUMNS.join(",")),
    };
    let pages = futures_util::stream::try_unfold(Some(0_i64), move |after| {
        let db = db.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let mut tx = db.begin_as(actor).await?;
            let page = ledger::page_after(&mut *tx, hub_id, after, EXPORT_PAGE).await?;
            tx.commit().await?;
            let mut out = String::new();
            for entry in &page {
                format.write(&mut out, entry);
            }
            let next = (page.len() as i64 == EXPORT_PAGE).then(|| page.last().map_or(after, |e| e.seq));
            Ok::<_, StoreError>(Some((web::Bytes::from(out), next)))
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(std::future::ready(Ok(web::Bytes::from(header)))),
        futures_util::StreamExt::map(pages, |page| {
            page.inspect_err(|e| tracing::error!(error = %e, "ledger export cut short"))
        }),
    );
    let (content_type, extension) = match format {
        Format::JsonLines => ("application/jsonl; charset=utf-8", "jsonl"),
        Format::Csv { .. } => ("text/csv; charset=utf-8", "csv"),
    };
    let disposition = format!("attachment; filename=\"{}-ledger.{extension}\"", hub.slug);
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(body))
}

#[get("/hubs/{hub_slug}/ledger.jsonl")]
async fn export_jsonl(
    state: web::Data<AppState>,
    path: web::Path<String>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    export(&state, &path, &chrome.viewer, Format::JsonLines).await
}

#[derive(Deserialize)]
struct CsvQuery {
    /// `1` (or `true`): the fields exactly as stored, without the spreadsheet guard.
    exact: Option<String>,
}

#[get("/hubs/{hub_slug}/ledger.csv")]
async fn export_csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<CsvQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let exact = match query.exact.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return Err(AppError::BadRequest("exact is 1 or 0".into())),
    };
    export(&state, &path, &chrome.viewer, Format::Csv { exact }).await
}

/// Mounts the ledger pages, their regions, forms and exports.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::web::ledger_proofs::configure(cfg);
    // The exports first: `/hubs/{slug}/ledger.csv` must not be read as a page.
    cfg.service(export_jsonl)
        .service(export_csv)
        .service(ledger_index)
        .service(list_region)
        .service(post_propose)
        .service(show_candidate)
        .service(head_region)
        .service(evidence_region)
        .service(history_region)
        .service(evidence_search)
        .service(post_edit)
        .service(post_decide)
        .service(post_attach)
        .service(post_remove);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nthere"), "\"say \"\"hi\"\"\nthere\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"=HYPERLINK(\"\"x\"\")\"");
    }

    #[test]
    fn spreadsheet_fields_do_not_run_as_formulas() {
        assert_eq!(spreadsheet_field("plain"), "plain");
        assert_eq!(spreadsheet_field("a,b"), "\"a,b\"");
        assert_eq!(spreadsheet_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for start in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_field(start).starts_with("\"'"), "{start:?}");
        }
    }

    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(excerpt("héllo world", 5), "héllo…");
        assert_eq!(excerpt("short", 10), "short");
    }
}
