//! Reading candidates: the ledger list and its counts, a candidate, its evidence (and the
//! annotations that could become evidence), its history.

use super::rows::{Candidate, CandidateRow, Evidence, EvidenceList, HistoryEntry, ListFilter};
use crate::access::Viewer;
use crate::db::annotations::{AnnotationRow, ROW_SELECT};
use crate::db::sql::{SqlBuilder, like_pattern};
use crate::db::{Db, StoreError, visibility};
use crate::governance::lifecycle::Status;

fn push_search(qb: &mut SqlBuilder, query: &str) {
    if !query.trim().is_empty() {
        let pattern = like_pattern(query);
        qb.push(" AND (LOWER(c.title) LIKE ").push_bind(pattern.clone());
        qb.push(" ESCAPE '\\' OR LOWER(c.statement) LIKE ").push_bind(pattern).push(" ESCAPE '\\')");
    }
}

/// The candidates of a hub matching `filter`, most recently changed first (at most `limit`).
pub async fn list(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    filter: &ListFilter,
    limit: i64,
) -> Result<Vec<CandidateRow>, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT c.id, c.title, c.status, c.updated_at,
            (SELECT COUNT(*) FROM candidate_evidence e WHERE e.candidate_id = c.id AND e.removed_at IS NULL) AS evidence_count,
            (SELECT COUNT(*) FROM candidate_evidence e JOIN annotations ea ON ea.id = e.annotation_id
               JOIN widgets ew ON ew.id = ea.widget_id JOIN annotation_supports s ON s.annotation_id = e.annotation_id
              WHERE e.candidate_id = c.id AND e.removed_at IS NULL AND ew.policy_scope IN ('public', 'members')) AS support_count,
            d.detail AS decision_detail, d.rationale AS decision_rationale, d.created_at AS decision_at,
            p.display_name AS decision_by
         FROM requirement_candidates c
         LEFT JOIN ledger_entries d ON d.hub_id = c.hub_id AND d.seq = (
             SELECT MAX(l.seq) FROM ledger_entries l WHERE l.candidate_id = c.id AND l.action = 'status_changed')
         LEFT JOIN actors p ON p.id = d.actor_id
         WHERE c.hub_id = ",
    );
    qb.push_bind(hub_id);
    if let Some(status) = filter.status {
        qb.push(" AND c.status = ").push_bind(status.as_str().to_owned());
    }
    push_search(&mut qb, &filter.query);
    qb.push(" ORDER BY c.updated_at DESC, c.id DESC LIMIT ").push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}

/// How many candidates of a hub matching the search are in each status, in lifecycle order.
pub async fn status_counts(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    query: &str,
) -> Result<Vec<(Status, i64)>, StoreError> {
    let mut qb = SqlBuilder::new("SELECT c.status, COUNT(*) FROM requirement_candidates c WHERE c.hub_id = ");
    qb.push_bind(hub_id);
    push_search(&mut qb, query);
    qb.push(" GROUP BY c.status");
    let rows: Vec<(String, i64)> = db.fetch_all_as(viewer.actor_id, qb).await?;
    Ok(Status::ALL
        .into_iter()
        .map(|s| (s, rows.iter().find(|(name, _)| name == s.as_str()).map_or(0, |(_, n)| *n)))
        .collect())
}

/// A candidate of a hub, read as `viewer`; [`StoreError::NotFound`] when there is none.
pub async fn get(db: &Db, viewer: &Viewer, hub_id: i64, id: i64) -> Result<Candidate, StoreError> {
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let candidate = sqlx::query_as(
        "SELECT c.id, c.hub_id, c.title, c.statement, c.status, c.created_by, p.display_name AS creator_name,
                c.created_at, c.updated_at, c.version
         FROM requirement_candidates c JOIN actors p ON p.id = c.created_by
         WHERE c.id = $1 AND c.hub_id = $2",
    )
    .bind(id)
    .bind(hub_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(candidate)
}

/// A candidate's evidence (active first, then removed) that `viewer` may read.
pub async fn evidence(db: &Db, viewer: &Viewer, candidate_id: i64) -> Result<EvidenceList, StoreError> {
    let mut qb = SqlBuilder::new(
        "SELECT a.id AS annotation_id, a.body, a.status AS annotation_status,
            CASE WHEN a.deleted_at IS NULL THEN 0 ELSE 1 END AS deleted, a.created_at,
            w.slug AS widget_slug, w.name AS widget_name, p.display_name AS author_name,
            c.label AS category_label, c.colour AS category_colour,
            ab.display_name AS added_by_name, e.added_at, e.removed_at, e.removed_reason
         FROM candidate_evidence e
         JOIN annotations a ON a.id = e.annotation_id
         JOIN widgets w ON w.id = a.widget_id
         JOIN actors p ON p.id = a.actor_id
         JOIN categories c ON c.id = a.category_id
         JOIN actors ab ON ab.id = e.added_by
         WHERE e.candidate_id = ",
    );
    qb.push_bind(candidate_id).push(" AND ");
    visibility::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY CASE WHEN e.removed_at IS NULL THEN 0 ELSE 1 END, e.added_at, a.id");
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let items: Vec<Evidence> = qb.build_query_as()?.fetch_all(&mut *tx).await?;
    let active: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1 AND removed_at IS NULL")
            .bind(candidate_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    let visible = items.iter().filter(|e| e.removed_at.is_none()).count() as i64;
    Ok(EvidenceList { items, hidden: (active - visible).max(0) })
}

/// Annotations of the hub that `viewer` may read and that are not yet evidence of the
/// candidate, matching `query` (words in the body, or `#id`), newest first.
pub async fn evidence_candidates(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    candidate_id: i64,
    query: &str,
    limit: i64,
) -> Result<Vec<AnnotationRow>, StoreError> {
    let mut qb = SqlBuilder::new(ROW_SELECT);
    qb.push(" WHERE a.hub_id = ").push_bind(hub_id);
    qb.push(" AND a.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM candidate_evidence e WHERE e.candidate_id = ")
        .push_bind(candidate_id)
        .push(" AND e.annotation_id = a.id AND e.removed_at IS NULL)");
    let query = query.trim();
    if let Some(id) = query.trim_start_matches('#').parse::<i64>().ok().filter(|_| !query.is_empty()) {
        qb.push(" AND (a.id = ").push_bind(id);
        qb.push(" OR LOWER(a.body) LIKE ").push_bind(like_pattern(query)).push(" ESCAPE '\\')");
    } else if !query.is_empty() {
        qb.push(" AND LOWER(a.body) LIKE ").push_bind(like_pattern(query)).push(" ESCAPE '\\'");
    }
    qb.push(" AND ");
    visibility::push_annotation_visible(&mut qb, viewer);
    qb.push(" ORDER BY a.created_at DESC, a.id DESC LIMIT ").push_bind(limit);
    db.fetch_all_as(viewer.actor_id, qb).await
}

/// The ledger entries about a candidate, in chain order.
pub async fn history(
    db: &Db,
    viewer: &Viewer,
    hub_id: i64,
    candidate_id: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut tx = db.begin_as(viewer.actor_id).await?;
    let rows = sqlx::query_as(
        "SELECT l.seq, l.action, l.rationale, l.detail, l.created_at, l.hash, p.display_name AS actor_name
         FROM ledger_entries l JOIN actors p ON p.id = l.actor_id
         WHERE l.hub_id = $1 AND l.candidate_id = $2 ORDER BY l.seq",
    )
    .bind(hub_id)
    .bind(candidate_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}
