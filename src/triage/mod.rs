//! Triage as commands: apply changes to annotations (recategorize, triage, dismiss, duplicate,
//! reopen, undo) and promote one to a requirement candidate. Each command runs in one
//! transaction of its own, so a bulk action that fails half-way changes nothing; handlers
//! parse, call a command and render, and never begin a transaction.
//!
//! Every change is optimistic: it names the version the client saw and is refused with
//! [`StoreError::Stale`] when the row moved on. What a change is lives in [`change`]; the SQL
//! in `db/triage/`.

pub mod change;
pub mod status;

pub use change::{Applied, Change, DISMISS_REASONS, Promotion, Target, TriageError, TriageState, reason_label};
pub use status::AnnotationStatus;

use crate::db::{Db, StoreError, triage};

/// Applies every change in one transaction: all of them or none.
pub async fn apply(
    db: &Db,
    hub_id: i64,
    actor_id: i64,
    changes: &[(Target, Change)],
) -> Result<Vec<Applied>, TriageError> {
    let mut tx = db.begin_write().await?;
    let applied = triage::apply_in(&mut tx, hub_id, actor_id, changes).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(applied)
}

/// Promotes an annotation to a requirement candidate (a new one or an open one of the hub):
/// the candidate, the evidence link, the ledger entries and the audit rows in one transaction.
pub async fn promote(
    db: &Db,
    hub_id: i64,
    actor_id: i64,
    target: &Target,
    promotion: &Promotion<'_>,
) -> Result<Applied, TriageError> {
    let mut tx = db.begin_write().await?;
    let applied = triage::promote_in(&mut tx, hub_id, actor_id, target, promotion).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(applied)
}
