//! "Me too": people and embed visitors supporting an annotation, once each (a toggle).
//!
//! Counts are read as the viewer, so on PostgreSQL Row Level Security shows a support only
//! with an annotation the viewer reads. Marking an annotation a duplicate moves its support
//! (and its author, who said the same) to the original: [`move_to_original`].

use std::collections::HashMap;

use sqlx::{Any, Transaction};

use super::sql::SqlBuilder;
use super::{Db, StoreError, now_ms};

/// An annotation's support as a viewer sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    /// How many people and visitors support it.
    pub count: i64,
    /// Whether the viewer is one of them.
    pub mine: bool,
}

/// Gives or takes back `actor_id`'s support of annotation `annotation_id` inside the caller's
/// transaction (opened as the actor: on PostgreSQL the policies check it again). Returns whether
/// the actor supports it now. [`StoreError::NotFound`] when the annotation is not one that can
/// be supported (gone, on a private widget, or the actor's own).
pub async fn toggle_in(
    tx: &mut Transaction<'static, Any>,
    actor_id: i64,
    annotation_id: i64,
) -> Result<bool, StoreError> {
    let taken_back = sqlx::query("DELETE FROM annotation_supports WHERE annotation_id = $1 AND actor_id = $2")
        .bind(annotation_id)
        .bind(actor_id)
        .execute(&mut **tx)
        .await?;
    if taken_back.rows_affected() > 0 {
        return Ok(false);
    }
    let given = sqlx::query(
        "INSERT INTO annotation_supports (annotation_id, actor_id, created_at)
         SELECT a.id, $1, $2 FROM annotations a JOIN widgets w ON w.id = a.widget_id
          WHERE a.id = $3 AND a.deleted_at IS NULL AND a.actor_id <> $1
            AND w.policy_scope IN ('public', 'members') AND w.archived_at IS NULL
         ON CONFLICT (annotation_id, actor_id) DO NOTHING",
    )
    .bind(actor_id)
    .bind(now_ms())
    .bind(annotation_id)
    .execute(&mut **tx)
    .await?;
    if given.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(true)
}

/// [`toggle_in`] in its own transaction, acting for `actor_id` (confined to `embed_widget`
/// for an embed visitor).
pub async fn toggle(db: &Db, actor_id: i64, embed_widget: Option<i64>, annotation_id: i64) -> Result<bool, StoreError> {
    let mut tx = db.begin_write_as(Some(actor_id), embed_widget).await?;
    let now = toggle_in(&mut tx, actor_id, annotation_id).await?;
    tx.commit().await?;
    Ok(now)
}

/// The support of each of the annotations `ids`, as `me` sees it, inside the caller's
/// transaction (opened as the viewer). Annotations nobody supports are left out.
pub async fn counts_in(
    tx: &mut Transaction<'static, Any>,
    me: Option<i64>,
    ids: &[i64],
) -> Result<HashMap<i64, Support>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut qb = SqlBuilder::new("SELECT s.annotation_id, COUNT(*) AS count, SUM(CASE WHEN s.actor_id = ");
    qb.push_bind(me.unwrap_or(-1)).push(" THEN 1 ELSE 0 END) AS mine FROM annotation_supports s");
    qb.push(" WHERE s.annotation_id IN (").push_bind_list(ids.iter().copied()).push(") GROUP BY s.annotation_id");
    let rows: Vec<(i64, i64, i64)> = qb.build_query_as()?.fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().map(|(id, count, mine)| (id, Support { count, mine: mine > 0 })).collect())
}

/// [`counts_in`] in a read transaction acting for `me`.
pub async fn counts(db: &Db, me: Option<i64>, ids: &[i64]) -> Result<HashMap<i64, Support>, StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut tx = db.begin_as(me).await?;
    let counts = counts_in(&mut tx, me, ids).await?;
    Db::end_read(tx);
    Ok(counts)
}

/// Moves the support of annotation `duplicate` to `original`, with the duplicate's author as
/// a supporter too (they asked for the same thing), except for the original's own author.
/// Runs inside the triage transaction that marks the duplicate.
pub async fn move_to_original(
    tx: &mut Transaction<'static, Any>,
    duplicate: i64,
    original: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO annotation_supports (annotation_id, actor_id, created_at)
         SELECT CAST($1 AS BIGINT), s.actor_id, s.created_at FROM annotation_supports s
          WHERE s.annotation_id = $2 AND s.actor_id <> (SELECT o.actor_id FROM annotations o WHERE o.id = $1)
         UNION
         SELECT CAST($1 AS BIGINT), d.actor_id, CAST($3 AS BIGINT) FROM annotations d
          WHERE d.id = $2 AND d.actor_id <> (SELECT o.actor_id FROM annotations o WHERE o.id = $1)
         ON CONFLICT (annotation_id, actor_id) DO NOTHING",
    )
    .bind(original)
    .bind(duplicate)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM annotation_supports WHERE annotation_id = $1").bind(duplicate).execute(&mut **tx).await?;
    Ok(())
}
