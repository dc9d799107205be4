//! The triage changes as stored: each step reads the annotation's triage fields (locked on
//! PostgreSQL), checks the version the client saw, writes the new fields and one
//! `annotation_changes` row per field changed, inside the transaction the triage commands
//! (`crate::triage`) own.

use crate::db::annotations::stored_status;
use crate::db::candidates;
use crate::db::supports;
use crate::db::{Dialect, StoreError, Tx, now_ms};
use crate::triage::change::{Applied, Change, DISMISS_REASONS, Promotion, Target, TriageError, TriageState};
use crate::triage::status::AnnotationStatus;

struct Locked {
    version: i64,
    state: TriageState,
}

/// Reads an annotation's triage fields inside the transaction; on PostgreSQL the row is
/// locked so nothing changes it between this read and the write (SQLite has one writer).
async fn lock(tx: &mut Tx, hub_id: i64, id: i64) -> Result<Locked, StoreError> {
    let sql = format!(
        "SELECT version, category_id, status, dismiss_reason, duplicate_of FROM annotations
         WHERE id = $1 AND hub_id = $2 AND deleted_at IS NULL{}",
        tx.backend().row_lock()
    );
    let row: (i64, i64, String, Option<String>, Option<i64>) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(hub_id).fetch_one(&mut **tx).await?;
    Ok(Locked {
        version: row.0,
        state: TriageState {
            category_id: row.1,
            status: stored_status(row.2)?,
            dismiss_reason: row.3,
            duplicate_of: row.4,
        },
    })
}

/// The hub's categories: id → (slug, archived).
async fn hub_categories(tx: &mut Tx, hub_id: i64) -> Result<Vec<(i64, String, bool)>, StoreError> {
    let rows: Vec<(i64, String, Option<i64>)> =
        sqlx::query_as("SELECT id, slug, archived_at FROM categories WHERE hub_id = $1")
            .bind(hub_id)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|(id, slug, archived)| (id, slug, archived.is_some())).collect())
}

/// The annotation that `of` stands for as an original: itself, or what it duplicates.
async fn original_of(tx: &mut Tx, hub_id: i64, id: i64, of: i64) -> Result<i64, TriageError> {
    let found: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT status, duplicate_of FROM annotations WHERE id = $1 AND hub_id = $2 AND deleted_at IS NULL",
    )
    .bind(of)
    .bind(hub_id)
    .fetch_optional(&mut **tx)
    .await?;
    let original = match found {
        None => return Err(TriageError::Refused(format!("annotation #{of} is not in this hub"))),
        // Link to the root so duplicates never form chains.
        Some((status, Some(root))) if status == AnnotationStatus::Duplicate.as_str() => root,
        Some(_) => of,
    };
    if original == id {
        return Err(TriageError::Refused("an annotation cannot duplicate itself".into()));
    }
    Ok(original)
}

/// The state `change` leads to from `before`, or why it cannot.
async fn next_state(
    tx: &mut Tx,
    hub_id: i64,
    id: i64,
    before: &TriageState,
    change: &Change,
    categories: &[(i64, String, bool)],
) -> Result<TriageState, TriageError> {
    let promoted = before.status == AnnotationStatus::Promoted;
    let refuse_promoted =
        || TriageError::Refused("this annotation was promoted: change it through its requirement candidate".into());
    Ok(match change {
        Change::Recategorize { category_id } => match categories.iter().find(|(c, ..)| c == category_id) {
            Some((_, _, false)) => TriageState { category_id: *category_id, ..before.clone() },
            Some((_, _, true)) => return Err(TriageError::Refused("that category is archived".into())),
            None => return Err(TriageError::Refused("that category is not one of this hub's".into())),
        },
        Change::Triage if promoted => return Err(refuse_promoted()),
        Change::Triage => before.with_status(AnnotationStatus::Triaged),
        Change::Dismiss { .. } if promoted => return Err(refuse_promoted()),
        Change::Dismiss { reason } => {
            if !DISMISS_REASONS.iter().any(|(slug, _)| slug == reason) {
                return Err(TriageError::Refused("choose a reason from the list".into()));
            }
            TriageState { dismiss_reason: Some(reason.clone()), ..before.with_status(AnnotationStatus::Dismissed) }
        }
        Change::Duplicate { .. } if promoted => return Err(refuse_promoted()),
        Change::Duplicate { of } => {
            let original = original_of(tx, hub_id, id, *of).await?;
            TriageState { duplicate_of: Some(original), ..before.with_status(AnnotationStatus::Duplicate) }
        }
        Change::Reopen if promoted => return Err(refuse_promoted()),
        Change::Reopen => before.with_status(AnnotationStatus::New),
        Change::Restore { to, .. } => {
            if !categories.iter().any(|(c, ..)| *c == to.category_id) {
                return Err(TriageError::Refused("that category is gone".into()));
            }
            to.clone()
        }
    })
}

/// Who changes which hub, and when: what every audit row records.
#[derive(Debug, Clone, Copy)]
struct Author {
    hub_id: i64,
    actor_id: i64,
    at: i64,
}

/// One `annotation_changes` row per field that differs between `before` and `after`.
async fn audit(
    tx: &mut Tx,
    by: Author,
    id: i64,
    before: &TriageState,
    after: &TriageState,
    categories: &[(i64, String, bool)],
) -> Result<(), StoreError> {
    let slug =
        |c: i64| categories.iter().find(|(id, ..)| *id == c).map_or_else(|| c.to_string(), |(_, s, _)| s.clone());
    let mut fields: Vec<(&str, Option<String>, Option<String>)> = Vec::new();
    if before.category_id != after.category_id {
        fields.push(("category", Some(slug(before.category_id)), Some(slug(after.category_id))));
    }
    if before.status != after.status {
        fields.push(("status", Some(before.status.to_string()), Some(after.status.to_string())));
    }
    if before.dismiss_reason != after.dismiss_reason {
        fields.push(("dismiss_reason", before.dismiss_reason.clone(), after.dismiss_reason.clone()));
    }
    if before.duplicate_of != after.duplicate_of {
        let show = |v: Option<i64>| v.map(|v| v.to_string());
        fields.push(("duplicate_of", show(before.duplicate_of), show(after.duplicate_of)));
    }
    for (field, old, new) in fields {
        record(tx, by, id, field, old.as_deref(), new.as_deref()).await?;
    }
    Ok(())
}

async fn record(
    tx: &mut Tx,
    by: Author,
    id: i64,
    field: &str,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO annotation_changes (annotation_id, hub_id, actor_id, field, old_value, new_value, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(by.hub_id)
    .bind(by.actor_id)
    .bind(field)
    .bind(old)
    .bind(new)
    .bind(by.at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the new state if the row is still at `expected` version; returns the new version.
async fn write_state(
    tx: &mut Tx,
    hub_id: i64,
    id: i64,
    expected: i64,
    state: &TriageState,
    at: i64,
) -> Result<i64, StoreError> {
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE annotations SET category_id = $1, status = $2, dismiss_reason = $3, duplicate_of = $4,
                updated_at = $5, version = version + 1
          WHERE id = $6 AND hub_id = $7 AND version = $8 RETURNING version",
    )
    .bind(state.category_id)
    .bind(state.status.as_str())
    .bind(state.dismiss_reason.as_deref())
    .bind(state.duplicate_of)
    .bind(at)
    .bind(id)
    .bind(hub_id)
    .bind(expected)
    .fetch_optional(&mut **tx)
    .await?;
    version.ok_or(StoreError::Stale)
}

/// Takes a promoted annotation off the candidate it was promoted to, with its ledger entry
/// (the ledger is append-only: the promotion stays on record, followed by its removal).
async fn unlink(tx: &mut Tx, by: Author, id: i64, candidate_id: i64) -> Result<(), StoreError> {
    let reason = "promotion undone in triage";
    if !candidates::unlink_evidence(tx, by.hub_id, candidate_id, id, by.actor_id, reason, by.at).await? {
        return Err(StoreError::Stale);
    }
    record(tx, by, id, "candidate", Some(&candidate_id.to_string()), None).await
}

/// Applies every change inside the caller's transaction (all of them or none: the caller
/// commits only when every one succeeded).
pub async fn apply_in(
    tx: &mut Tx,
    hub_id: i64,
    actor_id: i64,
    changes: &[(Target, Change)],
) -> Result<Vec<Applied>, TriageError> {
    let categories = hub_categories(tx, hub_id).await?;
    let at = now_ms();
    let by = Author { hub_id, actor_id, at };
    let mut applied = Vec::with_capacity(changes.len());
    for (target, change) in changes {
        let locked = lock(tx, hub_id, target.id).await?;
        if locked.version != target.version {
            return Err(StoreError::Stale.into());
        }
        let before = locked.state;
        let after = next_state(tx, hub_id, target.id, &before, change, &categories).await?;
        if let Change::Restore { unlink: Some(candidate), .. } = change {
            unlink(tx, by, target.id, *candidate).await?;
        }
        // Choosing what is already there changes nothing, not even the version.
        let unchanged = after == before && !matches!(change, Change::Restore { unlink: Some(_), .. });
        let version = if unchanged {
            target.version
        } else {
            write_state(tx, hub_id, target.id, target.version, &after, at).await?
        };
        // A duplicate's "me too"s (and its author's) count for the original from now on; no
        // longer a duplicate (undone, reopened, or a duplicate of another), they come back.
        if after.duplicate_of != before.duplicate_of {
            if before.duplicate_of.is_some() {
                supports::move_back(tx, target.id).await?;
            }
            if let Some(original) = after.duplicate_of {
                supports::move_to_original(tx, target.id, original).await?;
            }
        }
        audit(tx, by, target.id, &before, &after, &categories).await?;
        applied.push(Applied { id: target.id, before, after, version, candidate: None });
    }
    Ok(applied)
}

/// Promotes an annotation to a requirement candidate: the candidate (when new), the evidence
/// link, the ledger entries and the audit rows, inside the caller's transaction.
pub async fn promote_in(
    tx: &mut Tx,
    hub_id: i64,
    actor_id: i64,
    target: &Target,
    promotion: &Promotion<'_>,
) -> Result<Applied, TriageError> {
    let locked = lock(tx, hub_id, target.id).await?;
    if locked.version != target.version {
        return Err(StoreError::Stale.into());
    }
    let before = locked.state;
    if before.status == AnnotationStatus::Promoted {
        return Err(TriageError::Refused("this annotation is already promoted".into()));
    }
    let candidate_id = match promotion {
        Promotion::New { title, statement } => {
            candidates::propose(tx, hub_id, actor_id, title, statement, &[target.id]).await?
        }
        Promotion::Existing { candidate_id } => {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM requirement_candidates WHERE id = $1 AND hub_id = $2")
                    .bind(candidate_id)
                    .bind(hub_id)
                    .fetch_optional(&mut **tx)
                    .await?;
            match status.as_deref() {
                Some("proposed" | "accepted" | "deferred") => {}
                Some(_) => return Err(TriageError::Refused("that candidate is closed".into())),
                None => return Err(TriageError::Refused("that candidate is not one of this hub's".into())),
            }
            let linked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2",
            )
            .bind(candidate_id)
            .bind(target.id)
            .fetch_one(&mut **tx)
            .await?;
            if linked > 0 {
                return Err(TriageError::Refused("this annotation was evidence of that candidate before".into()));
            }
            candidates::add_evidence(tx, hub_id, *candidate_id, target.id, actor_id, "promoted from triage").await?;
            *candidate_id
        }
    };
    // `add_evidence` set the status and bumped the version; a promoted annotation is neither
    // dismissed nor a duplicate any more.
    let at = now_ms();
    let version: i64 = sqlx::query_scalar(
        "UPDATE annotations SET dismiss_reason = NULL, duplicate_of = NULL, updated_at = $1
          WHERE id = $2 AND hub_id = $3 RETURNING version",
    )
    .bind(at)
    .bind(target.id)
    .bind(hub_id)
    .fetch_one(&mut **tx)
    .await?;
    // A promoted duplicate stands on its own: its support comes back to it.
    if before.duplicate_of.is_some() {
        supports::move_back(tx, target.id).await?;
    }
    let categories = hub_categories(tx, hub_id).await?;
    let after = before.with_status(AnnotationStatus::Promoted);
    let by = Author { hub_id, actor_id, at };
    audit(tx, by, target.id, &before, &after, &categories).await?;
    record(tx, by, target.id, "candidate", None, Some(&candidate_id.to_string())).await?;
    Ok(Applied { id: target.id, before, after, version, candidate: Some(candidate_id) })
}
