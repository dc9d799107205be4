//! Proposing, editing and deciding on candidates, each with its ledger entry, inside the
//! caller's transaction.

use super::evidence::add_evidence;
use crate::db::ledger::{self, NewEntry};
use crate::db::{StoreError, Tx, now_ms};
use crate::governance::lifecycle::Status;

/// Proposes a candidate with its first evidence, marks the evidence promoted and writes the
/// `proposed` ledger entry, all inside the caller's transaction. Returns the candidate's id.
pub async fn propose(
    tx: &mut Tx,
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
        &NewEntry { hub_id, candidate_id: Some(id), actor_id, action: "proposed", rationale: statement, detail },
    )
    .await?;
    for annotation_id in evidence {
        add_evidence(tx, hub_id, id, *annotation_id, actor_id, "promoted from triage").await?;
    }
    Ok(id)
}

/// A change of a candidate's title and statement.
#[derive(Debug, Clone)]
pub struct Edit<'a> {
    pub hub_id: i64,
    pub candidate_id: i64,
    pub actor_id: i64,
    pub title: &'a str,
    pub statement: &'a str,
    /// Why it changed (may be empty).
    pub reason: &'a str,
}

/// Changes a candidate's title and statement and writes `edited` to the ledger with what
/// changed (`{"title": {"from": …, "to": …}}`, the same for the statement). Returns whether
/// anything changed; nothing is written when nothing did.
pub async fn edit(tx: &mut Tx, e: &Edit<'_>) -> Result<bool, StoreError> {
    let (title, statement): (String, String) =
        sqlx::query_as("SELECT title, statement FROM requirement_candidates WHERE id = $1 AND hub_id = $2")
            .bind(e.candidate_id)
            .bind(e.hub_id)
            .fetch_one(&mut **tx)
            .await?;
    let mut changes = serde_json::Map::new();
    if title != e.title {
        changes.insert("title".into(), serde_json::json!({ "from": title, "to": e.title }));
    }
    if statement != e.statement {
        changes.insert("statement".into(), serde_json::json!({ "from": statement, "to": e.statement }));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE requirement_candidates SET title = $1, statement = $2, updated_at = $3, version = version + 1
         WHERE id = $4 AND hub_id = $5",
    )
    .bind(e.title)
    .bind(e.statement)
    .bind(now_ms())
    .bind(e.candidate_id)
    .bind(e.hub_id)
    .execute(&mut **tx)
    .await?;
    ledger::append(
        tx,
        &NewEntry {
            hub_id: e.hub_id,
            candidate_id: Some(e.candidate_id),
            actor_id: e.actor_id,
            action: "edited",
            rationale: e.reason,
            detail: serde_json::Value::Object(changes).to_string(),
        },
    )
    .await?;
    Ok(true)
}

/// A status change of a candidate, with its reason.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub hub_id: i64,
    pub candidate_id: i64,
    pub actor_id: i64,
    pub from: Status,
    pub to: Status,
    pub rationale: &'a str,
}

/// Changes a candidate's status (only if it is still `from`) and writes the decision to the
/// ledger; [`StoreError::Stale`] when the status changed meanwhile, and
/// [`StoreError::Conflict`] on `candidate_lifecycle` when the lifecycle does not allow the
/// step or the rationale is empty (callers check with [`Status::check`] first to say why).
pub async fn decide(tx: &mut Tx, d: &Decision<'_>) -> Result<(), StoreError> {
    if d.from.check(d.to).is_err() || d.rationale.trim().is_empty() {
        return Err(StoreError::Conflict { constraint: "candidate_lifecycle".into() });
    }
    let done = sqlx::query(
        "UPDATE requirement_candidates SET status = $1, updated_at = $2, version = version + 1
         WHERE id = $3 AND hub_id = $4 AND status = $5",
    )
    .bind(d.to.as_str())
    .bind(now_ms())
    .bind(d.candidate_id)
    .bind(d.hub_id)
    .bind(d.from.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Stale);
    }
    ledger::append(
        tx,
        &NewEntry {
            hub_id: d.hub_id,
            candidate_id: Some(d.candidate_id),
            actor_id: d.actor_id,
            action: "status_changed",
            rationale: d.rationale,
            detail: serde_json::json!({ "from": d.from.as_str(), "to": d.to.as_str() }).to_string(),
        },
    )
    .await?;
    Ok(())
}
