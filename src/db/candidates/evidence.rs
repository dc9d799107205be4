//! A candidate's evidence: linking an annotation (it becomes `promoted`), linking it again,
//! and unlinking it, with the one `evidence_removed` ledger write both the candidate page and
//! triage's undo use.

use crate::db::ledger::{self, NewEntry};
use crate::db::{StoreError, Tx, now_ms};

/// Links an annotation to a candidate as evidence, marks it promoted and writes the ledger entry.
/// [`StoreError::NotFound`] (and the caller's transaction should roll back) when the
/// annotation is not a live annotation of the hub.
pub async fn add_evidence(
    tx: &mut Tx,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO candidate_evidence (candidate_id, annotation_id, added_by, added_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(candidate_id)
    .bind(annotation_id)
    .bind(actor_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    promote_and_record(tx, hub_id, candidate_id, annotation_id, actor_id, rationale).await
}

/// [`add_evidence`] from the candidate page: an annotation whose link was removed earlier is
/// linked again (the ledger keeps both events). [`StoreError::Conflict`] on
/// `candidate_evidence_active` when it is evidence already.
pub async fn attach_evidence(
    tx: &mut Tx,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    let existing: Option<Option<i64>> =
        sqlx::query_scalar("SELECT removed_at FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2")
            .bind(candidate_id)
            .bind(annotation_id)
            .fetch_optional(&mut **tx)
            .await?;
    match existing {
        None => add_evidence(tx, hub_id, candidate_id, annotation_id, actor_id, rationale).await,
        Some(None) => Err(StoreError::Conflict { constraint: "candidate_evidence_active".into() }),
        Some(Some(_)) => {
            sqlx::query(
                "UPDATE candidate_evidence SET removed_at = NULL, removed_reason = NULL, added_by = $1, added_at = $2
                 WHERE candidate_id = $3 AND annotation_id = $4",
            )
            .bind(actor_id)
            .bind(now_ms())
            .bind(candidate_id)
            .bind(annotation_id)
            .execute(&mut **tx)
            .await?;
            promote_and_record(tx, hub_id, candidate_id, annotation_id, actor_id, rationale).await
        }
    }
}

async fn promote_and_record(
    tx: &mut Tx,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    // The hub check keeps an annotation of another hub from becoming evidence here.
    let promoted = sqlx::query(
        "UPDATE annotations SET status = 'promoted', updated_at = $1, version = version + 1
         WHERE id = $2 AND hub_id = $3 AND deleted_at IS NULL",
    )
    .bind(now_ms())
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    if promoted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    touch(tx, hub_id, candidate_id).await?;
    ledger::append(
        tx,
        &NewEntry {
            hub_id,
            candidate_id: Some(candidate_id),
            actor_id,
            action: "evidence_added",
            rationale,
            detail: serde_json::json!({ "annotation_id": annotation_id }).to_string(),
        },
    )
    .await?;
    Ok(())
}

/// Marks a candidate changed (the list sorts by it); [`StoreError::NotFound`] when the
/// candidate is not in the hub.
async fn touch(tx: &mut Tx, hub_id: i64, candidate_id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE requirement_candidates SET updated_at = $1 WHERE id = $2 AND hub_id = $3")
        .bind(now_ms())
        .bind(candidate_id)
        .bind(hub_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Removes an annotation from a candidate's evidence, keeping the link with when and why, and
/// writes `evidence_removed` to the ledger. An annotation that is no longer evidence of any
/// candidate goes back to `triaged` (recorded in its triage history), so it is not lost.
/// [`StoreError::NotFound`] when it is not active evidence of the candidate.
pub async fn remove_evidence(
    tx: &mut Tx,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    let now = now_ms();
    if !unlink_evidence(tx, hub_id, candidate_id, annotation_id, actor_id, reason, now).await? {
        return Err(StoreError::NotFound);
    }
    touch(tx, hub_id, candidate_id).await?;
    let reverted = sqlx::query(
        "UPDATE annotations SET status = 'triaged', updated_at = $1, version = version + 1
         WHERE id = $2 AND hub_id = $3 AND status = 'promoted' AND NOT EXISTS (
             SELECT 1 FROM candidate_evidence e WHERE e.annotation_id = $2 AND e.removed_at IS NULL)",
    )
    .bind(now)
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    if reverted.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO annotation_changes (annotation_id, hub_id, actor_id, field, old_value, new_value, created_at)
             VALUES ($1, $2, $3, 'status', 'promoted', 'triaged', $4)",
        )
        .bind(annotation_id)
        .bind(hub_id)
        .bind(actor_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Ends the active evidence link between a candidate of the hub and an annotation (the link
/// stays, with when and why) and writes `evidence_removed` to the ledger: the one place that
/// does, for the candidate page's removal and for triage undoing a promotion. Returns whether
/// there was an active link; nothing is written when there was none.
pub async fn unlink_evidence(
    tx: &mut Tx,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    reason: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE candidate_evidence SET removed_at = $1, removed_reason = $2
          WHERE candidate_id = $3 AND annotation_id = $4 AND removed_at IS NULL
            AND candidate_id IN (SELECT id FROM requirement_candidates WHERE hub_id = $5)",
    )
    .bind(at)
    .bind(reason)
    .bind(candidate_id)
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    ledger::append(
        tx,
        &NewEntry {
            hub_id,
            candidate_id: Some(candidate_id),
            actor_id,
            action: "evidence_removed",
            rationale: reason,
            detail: serde_json::json!({ "annotation_id": annotation_id }).to_string(),
        },
    )
    .await?;
    Ok(true)
}
