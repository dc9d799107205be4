//! The board's actions: one annotation, a selection in one transaction, and undo. Every
//! answer is out of band: the changed rows, the counts and the toast.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};
use askama::Template;
use serde::Deserialize;

use super::undo::{UndoError, UndoToken};
use super::{Filter, FilterParams, Pill, RowView, TriageCounts, age, load_counts, pills, reason_label};
use crate::AppState;
use crate::access::HubAccess;
use crate::auth::Viewer;
use crate::db::categories;
use crate::db::hubs::Hub;
use crate::db::triage::{self, TriageRow};
use crate::db::{StoreError, now_ms};
use crate::error::AppError;
use crate::triage::{Applied, Change, Target, TriageError};
use crate::web::access::{InHub, Triage};
use crate::web::chrome::Chrome;
use crate::web::render;

/// The toast after an action, with Undo while the token lasts.
#[derive(Template)]
#[template(path = "fragments/triage_toast.html")]
pub struct Toast {
    pub hub_slug: String,
    pub message: String,
    pub undo: Option<String>,
}

/// What an action answers, all out of band (a `<tr>` at the top of a response would make the
/// parser drop the toast's form): the rows it changed, the counts and the toast.
#[derive(Template)]
#[template(path = "fragments/triage_result.html")]
struct ActionResult {
    hub_slug: String,
    pills: Vec<Pill>,
    now: i64,
    rows: Vec<RowView>,
    counts: TriageCounts,
    toast: Toast,
}

/// What the person asked for, for the toast.
fn describe(change: &Change, count: usize, id: i64, pills: &[Pill]) -> String {
    let what = if count == 1 { format!("#{id}") } else { format!("{count} annotations") };
    match change {
        Change::Recategorize { category_id } => {
            let label = pills.iter().find(|p| p.id == *category_id).map_or("another category", |p| p.label.as_str());
            format!("{what}: category {label}.")
        }
        Change::Triage => format!("{what} marked triaged."),
        Change::Dismiss { reason } => format!("{what} dismissed ({}).", reason_label(reason).to_lowercase()),
        Change::Duplicate { of } => format!("{what} marked duplicate of #{of}."),
        Change::Reopen => format!("{what} reopened."),
        Change::Restore { .. } => format!("Undone: {what} restored."),
    }
}

/// Why the change was refused, shown on the row: who changed it last.
async fn stale_note(state: &AppState, row: &TriageRow) -> Result<String, AppError> {
    let last = triage::last_change(&state.db, row.id).await?;
    let now = now_ms();
    Ok(match last {
        // The last audited change is the one that moved the version on.
        Some((who, at)) if at + 1_000 >= row.updated_at => {
            format!(
                "{who} changed this {} ago; your change was not applied.",
                age(&now, &at).replace("just now", "a moment")
            )
        }
        _ => "Someone changed this meanwhile; your change was not applied.".into(),
    })
}

/// Everything an action answers with, for any outcome.
pub(super) struct Answer<'a> {
    pub state: &'a AppState,
    pub hub: &'a Hub,
    pub access: &'a HubAccess,
    pub filter: &'a Filter,
    /// The row the request came from (a refusal is noted on it); `None` for bulk and undo.
    pub primary: Option<i64>,
}

impl Answer<'_> {
    pub(super) async fn render(
        &self,
        status: StatusCode,
        ids: &[i64],
        notes: Vec<(i64, String)>,
        message: String,
        undo: Option<String>,
    ) -> Result<HttpResponse, AppError> {
        let (rows, counts, categories) = tokio::try_join!(
            async { Ok::<_, AppError>(triage::rows(&self.state.db, self.access, self.hub.id, ids).await?) },
            load_counts(self.state, self.hub, self.access, self.filter),
            async { Ok::<_, AppError>(categories::list(&self.state.db, self.hub.id, true).await?) },
        )?;
        let rows = rows
            .into_iter()
            .map(|row| {
                let note = notes.iter().find(|(id, _)| *id == row.id).map(|(_, n)| n.clone());
                RowView { row, note, oob: true }
            })
            .collect();
        let result = ActionResult {
            hub_slug: self.hub.slug.clone(),
            pills: pills(&categories),
            now: now_ms(),
            rows,
            counts: TriageCounts { oob: true, ..counts },
            toast: Toast { hub_slug: self.hub.slug.clone(), message, undo },
        };
        Ok(render::html(status, result.render()?))
    }

    /// Answers the outcome of `changes` (`undoing`: an undo, which offers no further undo).
    async fn outcome(
        &self,
        changes: &[(Target, Change)],
        outcome: Result<Vec<Applied>, TriageError>,
        undoing: bool,
    ) -> Result<HttpResponse, AppError> {
        let Some((first, change)) = changes.first() else {
            return Err(AppError::BadRequest("select at least one annotation".into()));
        };
        match outcome {
            Ok(applied) => {
                let mut ids: Vec<i64> = Vec::new();
                for a in &applied {
                    ids.extend([Some(a.id), a.before.duplicate_of, a.after.duplicate_of].into_iter().flatten());
                }
                ids.sort_unstable();
                ids.dedup();
                let categories = categories::list(&self.state.db, self.hub.id, true).await?;
                let message = describe(change, changes.len(), first.id, &pills(&categories));
                let undo = match (undoing, self.access.actor_id) {
                    (false, Some(actor)) => {
                        Some(UndoToken::new(self.hub.id, actor, now_ms(), applied).sign(&self.state.secret))
                    }
                    _ => None,
                };
                self.render(StatusCode::OK, &ids, Vec::new(), message, undo).await
            }
            Err(TriageError::Store(StoreError::Stale)) => {
                let ids: Vec<i64> = changes.iter().map(|(t, _)| t.id).collect();
                let current = triage::rows(&self.state.db, self.access, self.hub.id, &ids).await?;
                let mut notes = Vec::new();
                for row in &current {
                    if changes.iter().any(|(t, _)| t.id == row.id && t.version != row.version) {
                        notes.push((row.id, stale_note(self.state, row).await?));
                    }
                }
                let message = if undoing {
                    "Nothing was undone: it has changed since.".to_owned()
                } else {
                    "Nothing changed: someone else changed it first. Check and try again.".to_owned()
                };
                self.render(StatusCode::CONFLICT, &ids, notes, message, None).await
            }
            Err(TriageError::Store(StoreError::NotFound)) => Err(AppError::NotFound("annotation")),
            Err(TriageError::Store(e)) => Err(e.into()),
            Err(TriageError::Refused(reason)) => {
                let ids: Vec<i64> = changes.iter().map(|(t, _)| t.id).collect();
                let notes = self.primary.map(|id| (id, reason.clone())).into_iter().collect();
                self.render(StatusCode::UNPROCESSABLE_ENTITY, &ids, notes, format!("Nothing changed: {reason}."), None)
                    .await
            }
        }
    }
}

/// Parses an action name and its arguments into a change.
fn parse_change(
    action: &str,
    category_id: Option<i64>,
    reason: Option<&str>,
    of: Option<i64>,
) -> Result<Change, AppError> {
    let missing = |what: &str| AppError::BadRequest(format!("{what} is missing"));
    Ok(match action {
        "category" => Change::Recategorize { category_id: category_id.ok_or_else(|| missing("category_id"))? },
        "triage" => Change::Triage,
        "dismiss" => {
            Change::Dismiss { reason: reason.filter(|r| !r.is_empty()).ok_or_else(|| missing("reason"))?.to_owned() }
        }
        "duplicate" => Change::Duplicate { of: of.ok_or_else(|| missing("of"))? },
        "reopen" => Change::Reopen,
        _ => return Err(AppError::BadRequest("unknown action".into())),
    })
}

#[derive(Deserialize)]
struct ActionForm {
    action: String,
    version: i64,
    category_id: Option<i64>,
    reason: Option<String>,
    of: Option<i64>,
    #[serde(flatten)]
    filter: FilterParams,
}

pub(super) fn actor(viewer: &Viewer) -> Result<i64, AppError> {
    viewer.actor_id.ok_or(AppError::Unauthorized)
}

#[post("/hubs/{hub_slug}/triage/annotations/{id}")]
async fn act(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<ActionForm>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let change = parse_change(&form.action, form.category_id, form.reason.as_deref(), form.of)?;
    let changes = [(Target { id, version: form.version }, change)];
    let outcome = crate::triage::apply(&state.db, hub.id, actor(&chrome.viewer)?, &changes).await;
    let answer = Answer { state: &state, hub: &hub, access: &access, filter: &filter, primary: Some(id) };
    answer.outcome(&changes, outcome, false).await
}

/// The value of `key` in a form's pairs.
fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[post("/hubs/{hub_slug}/triage/bulk")]
async fn bulk(
    state: web::Data<AppState>,
    // Pairs, because the selection repeats `sel`.
    form: web::Form<Vec<(String, String)>>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let pairs = form.into_inner();
    let text = |key: &str| field(&pairs, key).map(str::to_owned);
    let number = |key: &str| -> Result<Option<i64>, AppError> {
        field(&pairs, key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| AppError::BadRequest(format!("{key} is not a number"))))
            .transpose()
    };
    let filter = Filter::parse(FilterParams {
        status: text("status"),
        widget: text("widget"),
        category: text("category"),
        q: text("q"),
        from: text("from"),
        to: text("to"),
        sort: text("sort"),
    })?;
    let action = field(&pairs, "action").unwrap_or_default();
    if !matches!(action, "category" | "triage" | "dismiss") {
        return Err(AppError::BadRequest("bulk actions are category, triage and dismiss".into()));
    }
    let change = parse_change(action, number("category_id")?, field(&pairs, "reason"), None)?;
    let mut changes = Vec::new();
    for (_, value) in pairs.iter().filter(|(k, _)| k == "sel") {
        let target = value
            .split_once(':')
            .and_then(|(id, version)| Some(Target { id: id.parse().ok()?, version: version.parse().ok()? }))
            .ok_or_else(|| AppError::BadRequest("a selection is written id:version".into()))?;
        changes.push((target, change.clone()));
    }
    if changes.is_empty() {
        return Err(AppError::BadRequest("select at least one annotation".into()));
    }
    let outcome = crate::triage::apply(&state.db, hub.id, actor(&chrome.viewer)?, &changes).await;
    let answer = Answer { state: &state, hub: &hub, access: &access, filter: &filter, primary: None };
    answer.outcome(&changes, outcome, false).await
}

#[derive(Deserialize)]
struct UndoForm {
    token: String,
    #[serde(flatten)]
    filter: FilterParams,
}

#[post("/hubs/{hub_slug}/triage/undo")]
async fn undo_action(
    state: web::Data<AppState>,
    form: web::Form<UndoForm>,
    InHub { hub, access, .. }: InHub<Triage>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let filter = Filter::parse(form.filter)?;
    let actor = actor(&chrome.viewer)?;
    let token = match UndoToken::verify(&form.token, &state.secret, hub.id, actor, now_ms()) {
        Ok(token) => token,
        Err(UndoError::Invalid) => return Err(AppError::BadRequest("this undo token is not valid".into())),
        Err(UndoError::Expired) => return Err(AppError::Conflict("the time to undo has passed".into())),
    };
    let changes = token.changes();
    let outcome = crate::triage::apply(&state.db, hub.id, actor, &changes).await;
    let answer = Answer { state: &state, hub: &hub, access: &access, filter: &filter, primary: None };
    answer.outcome(&changes, outcome, true).await
}

/// Mounts the actions.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(bulk).service(undo_action).service(act);
}
