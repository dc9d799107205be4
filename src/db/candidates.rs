//! Requirement candidates and their evidence.

use sqlx::{Any, Transaction};

use super::ledger::{self, NewEntry};
use super::{Backend, StoreError, now_ms};

/// The statuses of a candidate.
pub const STATUSES: [&str; 5] = ["proposed", "accepted", "rejected", "deferred", "implemented"];

/// Proposes a candidate with its first evidence, marks the evidence promoted and writes the
/// `proposed` ledger entry, all inside the caller's transaction. Returns the candidate's id.
pub async fn propose(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    actor_id: i64,
    title: &str,
    statement: &str,
    evidence: &[i64],
) -> Result<i64, StoreError> {
    let now = now_ms();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO requirement_candidates (hub_id, title, statement, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(title)
    .bind(statement)
    .bind(actor_id)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let detail = serde_json::json!({ "title": title, "statement": statement }).to_string();
    ledger::append(
        tx,
        backend,
        &NewEntry { hub_id, candidate_id: Some(id), actor_id, action: "proposed", rationale: statement, detail },
    )
    .await?;
    for annotation_id in evidence {
        add_evidence(tx, backend, hub_id, id, *annotation_id, actor_id, "promoted from triage").await?;
    }
    Ok(id)
}

/// Links an annotation to a candidate as evidence, marks it promoted and writes the ledger entry.
pub async fn add_evidence(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    hub_id: i64,
    candidate_id: i64,
    annotation_id: i64,
    actor_id: i64,
    rationale: &str,
) -> Result<(), StoreError> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO candidate_evidence (candidate_id, annotation_id, added_by, added_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(candidate_id)
    .bind(annotation_id)
    .bind(actor_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE annotations SET status = 'promoted', updated_at = $1, version = version + 1
         WHERE id = $2 AND hub_id = $3",
    )
    .bind(now)
    .bind(annotation_id)
    .bind(hub_id)
    .execute(&mut **tx)
    .await?;
    ledger::append(
        tx,
        backend,
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

/// A status change of a candidate, with its reason.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub hub_id: i64,
    pub candidate_id: i64,
    pub actor_id: i64,
    pub from: &'a str,
    pub to: &'a str,
    pub rationale: &'a str,
}

/// Changes a candidate's status (only if it is still `from`) and writes the decision to the
/// ledger; [`StoreError::Stale`] when the status changed meanwhile.
pub async fn decide(tx: &mut Transaction<'static, Any>, backend: Backend, d: &Decision<'_>) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE requirement_candidates SET status = $1, updated_at = $2, version = version + 1
         WHERE id = $3 AND hub_id = $4 AND status = $5",
    )
    .bind(d.to)
    .bind(now_ms())
    .bind(d.candidate_id)
    .bind(d.hub_id)
    .bind(d.from)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    ledger::append(
        tx,
        backend,
        &NewEntry {
            hub_id: d.hub_id,
            candidate_id: Some(d.candidate_id),
            actor_id: d.actor_id,
            action: "status_changed",
            rationale: d.rationale,
            detail: serde_json::json!({ "from": d.from, "to": d.to }).to_string(),
        },
    )
    .await?;
    Ok(())
}
