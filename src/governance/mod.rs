//! Governance: requirement candidates, their evidence and the decisions about them, as
//! commands. Each command checks who may give it and whether it makes sense, then runs in one
//! transaction of its own, the ledger entry with the change it records; handlers parse a form,
//! call a command and render, and never begin a transaction or name a database.
//!
//! The lifecycle's rules and the limits of what a person may write are in [`lifecycle`]; the
//! SQL is in `db/candidates/`.

pub mod lifecycle;

use crate::access::HubAccess;
use crate::db::candidates::{self, Candidate, Decision};
use crate::db::{Db, StoreError};
use crate::domain::{DomainError, allow};
pub use lifecycle::{Draft, DraftErrors, REASON_MAX, Reason, Status};

/// Decide on a candidate: move it from the status the person saw to another, with a reason.
#[derive(Debug, Clone)]
pub struct Decide {
    pub from: Status,
    pub to: Status,
    pub rationale: Reason,
}

/// Change a candidate's title and statement (an optional reason says why).
#[derive(Debug, Clone)]
pub struct Edit {
    pub draft: Draft,
    pub reason: Reason,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    Changed,
    /// The title and statement were already these: nothing was written.
    Unchanged,
}

/// The proposer: who may propose, edit and attach or remove evidence (triagers and operators).
fn proposer(access: &HubAccess) -> Result<i64, DomainError> {
    allow(access.can_propose(), access.actor_id)?;
    access.actor_id.ok_or(DomainError::NotAllowed { signed_in: false })
}

/// The message of a decision made meanwhile.
pub fn stale(seen: Status) -> DomainError {
    DomainError::Stale(format!(
        "someone decided on this candidate meanwhile (it was {} when you looked); reload to see the decision",
        seen.as_str()
    ))
}

/// Proposes a candidate in the hub; returns its id.
pub async fn propose(db: &Db, access: &HubAccess, hub_id: i64, draft: &Draft) -> Result<i64, DomainError> {
    let actor = proposer(access)?;
    let mut tx = db.begin_write().await?;
    let id = candidates::propose(&mut tx, hub_id, actor, &draft.title, &draft.statement, &[]).await?;
    tx.commit().await?;
    Ok(id)
}

/// Edits a candidate that is not final yet.
pub async fn edit(db: &Db, access: &HubAccess, candidate: &Candidate, edit: &Edit) -> Result<Edited, DomainError> {
    let actor = proposer(access)?;
    if !candidate.lifecycle().editable() {
        return Err(DomainError::Invalid(lifecycle::FINAL.into()));
    }
    let change = candidates::Edit {
        hub_id: candidate.hub_id,
        candidate_id: candidate.id,
        actor_id: actor,
        title: &edit.draft.title,
        statement: &edit.draft.statement,
        reason: edit.reason.as_str(),
    };
    let mut tx = db.begin_write().await?;
    if !candidates::edit(&mut tx, &change).await? {
        return Ok(Edited::Unchanged);
    }
    tx.commit().await?;
    Ok(Edited::Changed)
}

/// Decides on a candidate (operators): [`DomainError::Stale`] when it is no longer in the
/// status the person saw, [`DomainError::Invalid`] when the lifecycle does not allow the step.
pub async fn decide(db: &Db, access: &HubAccess, candidate: &Candidate, decide: &Decide) -> Result<(), DomainError> {
    allow(access.can_decide(), access.actor_id)?;
    let actor = access.actor_id.ok_or(DomainError::NotAllowed { signed_in: false })?;
    if candidate.lifecycle() != decide.from {
        return Err(stale(candidate.lifecycle()));
    }
    decide.from.check(decide.to).map_err(DomainError::Invalid)?;
    let decision = Decision {
        hub_id: candidate.hub_id,
        candidate_id: candidate.id,
        actor_id: actor,
        from: decide.from,
        to: decide.to,
        rationale: decide.rationale.as_str(),
    };
    let mut tx = db.begin_write().await?;
    match candidates::decide(&mut tx, &decision).await {
        Ok(()) => Ok(tx.commit().await?),
        Err(StoreError::Stale) => Err(stale(decide.from)),
        Err(e) => Err(e.into()),
    }
}

/// Attaches an annotation of the hub to a candidate as evidence (again, if it was removed).
pub async fn attach(db: &Db, access: &HubAccess, candidate: &Candidate, annotation_id: i64) -> Result<(), DomainError> {
    let actor = proposer(access)?;
    let mut tx = db.begin_write().await?;
    let attached = candidates::attach_evidence(
        &mut tx,
        candidate.hub_id,
        candidate.id,
        annotation_id,
        actor,
        "attached on the candidate page",
    )
    .await;
    match attached {
        Ok(()) => Ok(tx.commit().await?),
        Err(StoreError::NotFound) => Err(DomainError::Invalid("That annotation is not feedback of this hub.".into())),
        Err(StoreError::Conflict { .. }) => {
            Err(DomainError::Invalid("That annotation is evidence of this candidate already.".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes an annotation from a candidate's evidence, with the reason.
pub async fn remove_evidence(
    db: &Db,
    access: &HubAccess,
    candidate: &Candidate,
    annotation_id: i64,
    reason: &Reason,
) -> Result<(), DomainError> {
    let actor = proposer(access)?;
    let mut tx = db.begin_write().await?;
    match candidates::remove_evidence(&mut tx, candidate.hub_id, candidate.id, annotation_id, actor, reason.as_str())
        .await
    {
        Ok(()) => Ok(tx.commit().await?),
        Err(StoreError::NotFound) => {
            Err(DomainError::Invalid("That annotation is not evidence of this candidate (any more).".into()))
        }
        Err(e) => Err(e.into()),
    }
}
