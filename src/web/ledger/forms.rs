//! The candidate page's forms: edit, decide, attach evidence, remove evidence. Each parses its
//! form, calls a governance command (`crate::governance`, which checks the rules and owns the
//! transaction) and answers with the page: fresh, or with the form as typed and what is wrong.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;

use super::candidate::{DecideForm, EditForm, Forms, RemoveForm, answer, candidate_in};
use crate::AppState;
use crate::domain::DomainError;
use crate::error::AppError;
use crate::governance::{self, Decide, DraftErrors, Edit, Edited, Reason, Status, lifecycle};
use crate::web::access::{self, InHub, Propose};
use crate::web::chrome::Chrome;
use crate::web::render::Htmx;

#[derive(Deserialize)]
pub(super) struct EditInput {
    #[serde(default)]
    title: String,
    #[serde(default)]
    statement: String,
    #[serde(default)]
    reason: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/edit")]
pub(super) async fn post_edit(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<EditInput>,
    InHub { hub, access: hub_access, .. }: InHub<Propose>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let EditInput { title, statement, reason } = form.into_inner();
    let refuse = |reason: &str, errors: DraftErrors, error: Option<String>| Forms {
        edit: Some(EditForm {
            title: title.clone(),
            statement: statement.clone(),
            reason: reason.to_owned(),
            errors,
            error,
            open: true,
        }),
        ..Forms::default()
    };
    let parsed_reason = Reason::optional(&reason, "reason");
    let problem = if !candidate.lifecycle().editable() {
        Some(lifecycle::FINAL.to_owned())
    } else {
        parsed_reason.as_ref().err().cloned()
    };
    let edit = match (problem, governance::Draft::parse(&title, &statement), parsed_reason) {
        (None, Ok(draft), Ok(reason)) => Edit { draft, reason },
        (problem, parsed, _) => {
            let forms = refuse(reason.trim(), parsed.err().unwrap_or_default(), problem);
            return answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await;
        }
    };
    match governance::edit(&state.db, &hub_access, &candidate, &edit).await {
        Ok(Edited::Changed) => answer(&state, chrome, htmx, (hub, hub_access), id, None).await,
        Ok(Edited::Unchanged) => {
            let forms = refuse(edit.reason.as_str(), DraftErrors::default(), Some("Nothing changed.".into()));
            answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await
        }
        Err(DomainError::Invalid(error)) => {
            let forms = refuse(edit.reason.as_str(), DraftErrors::default(), Some(error));
            answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct DecideInput {
    /// The status the person saw when deciding: a decision made meanwhile is a 409.
    from: Option<String>,
    #[serde(default)]
    to: String,
    #[serde(default)]
    rationale: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/decide")]
pub(super) async fn post_decide(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<DecideInput>,
    InHub { hub, access: hub_access, .. }: InHub<access::Decide>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let current = candidate.lifecycle();
    let DecideInput { from, to, rationale } = form.into_inner();
    // The status the person saw; without one (a plain form), the current one.
    let from = match from.as_deref() {
        None => current,
        Some(seen) => Status::parse(seen).filter(|seen| *seen == current).ok_or_else(|| governance::stale(current))?,
    };
    let command = match Status::parse(&to) {
        None => Err("Choose a decision.".to_owned()),
        Some(to) => from.check(to).and_then(|()| {
            let rationale = Reason::required(
                &rationale,
                "rationale",
                "Give a rationale: every decision is recorded in the ledger with its reason.",
            )?;
            Ok(Decide { from, to, rationale })
        }),
    };
    let result = match command {
        Ok(command) => governance::decide(&state.db, &hub_access, &candidate, &command).await,
        Err(error) => Err(DomainError::Invalid(error)),
    };
    match result {
        Ok(()) => answer(&state, chrome, htmx, (hub, hub_access), id, None).await,
        Err(DomainError::Invalid(error)) => {
            let decide = DecideForm { rationale: rationale.trim().to_owned(), error: Some(error) };
            let forms = Forms { decide, ..Forms::default() };
            answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct AttachInput {
    annotation_id: Option<i64>,
    #[serde(default)]
    q: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/evidence")]
pub(super) async fn post_attach(
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    form: web::Form<AttachInput>,
    InHub { hub, access: hub_access, .. }: InHub<Propose>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let AttachInput { annotation_id, q } = form.into_inner();
    let result = match annotation_id {
        None => Err(DomainError::Invalid("Choose an annotation to attach.".into())),
        Some(annotation_id) => governance::attach(&state.db, &hub_access, &candidate, annotation_id).await,
    };
    match result {
        Ok(()) => answer(&state, chrome, htmx, (hub, hub_access), id, None).await,
        Err(DomainError::Invalid(error)) => {
            let forms = Forms { picker_query: q, picker_error: Some(error), ..Forms::default() };
            answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct RemoveInput {
    #[serde(default)]
    reason: String,
}

#[post("/hubs/{hub_slug}/candidates/{id}/evidence/{annotation_id}/remove")]
pub(super) async fn post_remove(
    state: web::Data<AppState>,
    path: web::Path<(String, i64, i64)>,
    form: web::Form<RemoveInput>,
    InHub { hub, access: hub_access, .. }: InHub<Propose>,
    chrome: Chrome,
    htmx: Htmx,
) -> Result<HttpResponse, AppError> {
    let (_, id, annotation_id) = path.into_inner();
    let candidate = candidate_in(&state, &hub, &chrome.viewer, id).await?;
    let typed = form.into_inner().reason;
    let result = match Reason::required(
        &typed,
        "reason",
        "Say why this is no longer evidence: the reason is kept in the ledger.",
    ) {
        Ok(reason) => governance::remove_evidence(&state.db, &hub_access, &candidate, annotation_id, &reason).await,
        Err(error) => Err(DomainError::Invalid(error)),
    };
    match result {
        Ok(()) => answer(&state, chrome, htmx, (hub, hub_access), id, None).await,
        Err(DomainError::Invalid(error)) => {
            let remove = RemoveForm { annotation_id, reason: typed.trim().to_owned(), error: Some(error) };
            let forms = Forms { remove: Some(remove), ..Forms::default() };
            answer(&state, chrome, htmx, (hub, hub_access), id, Some(forms)).await
        }
        Err(e) => Err(e.into()),
    }
}
