//! "Me too": people and embed visitors supporting an annotation, once each (a toggle).
//!
//! Counts are read as the viewer, so on PostgreSQL Row Level Security shows a support only
//! with an annotation the viewer reads. Marking an annotation a duplicate moves its support
//! (and its author, who said the same) to the original: [`move_to_original`]; undoing the
//! marking moves it back: [`move_back`].

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

/// Sets whether `actor_id` supports annotation `annotation_id` (`supports`: give it, or take it
/// back), inside the caller's transaction opened as the actor; saying it twice changes nothing.
/// [`StoreError::NotFound`] when giving support to an annotation that cannot take it (gone, on a
/// private or archived widget, or the actor's own).
pub async fn set_in(
    tx: &mut Transaction<'static, Any>,
    actor_id: i64,
    annotation_id: i64,
    supports: bool,
) -> Result<(), StoreError> {
    if !supports {
        sqlx::query("DELETE FROM annotation_supports WHERE annotation_id = $1 AND actor_id = $2")
            .bind(annotation_id)
            .bind(actor_id)
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    let supportable: Option<i64> = sqlx::query_scalar(
        "SELECT a.id FROM annotations a JOIN widgets w ON w.id = a.widget_id
          WHERE a.id = $1 AND a.deleted_at IS NULL AND a.actor_id <> $2
            AND w.policy_scope IN ('public', 'members') AND w.archived_at IS NULL",
    )
    .bind(annotation_id)
    .bind(actor_id)
    .fetch_optional(&mut **tx)
    .await?;
    if supportable.is_none() {
        return Err(StoreError::NotFound);
    }
    sqlx::query(
        "INSERT INTO annotation_supports (annotation_id, actor_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (annotation_id, actor_id) DO NOTHING",
    )
    .bind(annotation_id)
    .bind(actor_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
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
/// Runs inside the triage transaction that marks the duplicate. Every move is remembered in
/// `support_moves`, so [`move_back`] can undo it.
pub async fn move_to_original(
    tx: &mut Transaction<'static, Any>,
    duplicate: i64,
    original: i64,
) -> Result<(), StoreError> {
    // A move left over from an earlier marking is undone first (the caller normally has).
    move_back(tx, duplicate).await?;
    // `added`: whether the original gains the support now (not its own author's, and not one
    // it had already).
    sqlx::query(
        "INSERT INTO support_moves (duplicate_id, original_id, actor_id, created_at, on_duplicate, added)
         SELECT CAST($2 AS BIGINT), CAST($1 AS BIGINT), x.actor_id, x.created_at, x.on_duplicate,
                CASE WHEN x.actor_id = (SELECT o.actor_id FROM annotations o WHERE o.id = $1)
                       OR EXISTS (SELECT 1 FROM annotation_supports e WHERE e.annotation_id = $1 AND e.actor_id = x.actor_id)
                     THEN 0 ELSE 1 END
           FROM (SELECT s.actor_id, s.created_at, 1 AS on_duplicate FROM annotation_supports s WHERE s.annotation_id = $2
                 UNION ALL
                 SELECT d.actor_id, CAST($3 AS BIGINT), 0 FROM annotations d WHERE d.id = $2) x",
    )
    .bind(original)
    .bind(duplicate)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO annotation_supports (annotation_id, actor_id, created_at)
         SELECT m.original_id, m.actor_id, m.created_at FROM support_moves m WHERE m.duplicate_id = $1 AND m.added = 1
         ON CONFLICT (annotation_id, actor_id) DO NOTHING",
    )
    .bind(duplicate)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM annotation_supports WHERE annotation_id = $1").bind(duplicate).execute(&mut **tx).await?;
    Ok(())
}

/// Undoes [`move_to_original`] for `duplicate` (no longer a duplicate, or a duplicate of
/// another annotation now): its supporters support it again, and the original loses the
/// support the move added, unless another duplicate's move still counts it there. Runs inside
/// the triage transaction; nothing happens when nothing was moved.
pub async fn move_back(tx: &mut Transaction<'static, Any>, duplicate: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO annotation_supports (annotation_id, actor_id, created_at)
         SELECT m.duplicate_id, m.actor_id, m.created_at FROM support_moves m WHERE m.duplicate_id = $1 AND m.on_duplicate = 1
         ON CONFLICT (annotation_id, actor_id) DO NOTHING",
    )
    .bind(duplicate)
    .execute(&mut **tx)
    .await?;
    // Another duplicate of the same original that moved the same person's support takes over
    // the claim: undoing that one later takes the support away.
    sqlx::query(
        "UPDATE support_moves SET added = 1
          WHERE duplicate_id <> $1 AND EXISTS (
                SELECT 1 FROM support_moves m WHERE m.duplicate_id = $1 AND m.added = 1
                   AND m.original_id = support_moves.original_id AND m.actor_id = support_moves.actor_id)",
    )
    .bind(duplicate)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM annotation_supports
          WHERE EXISTS (SELECT 1 FROM support_moves m WHERE m.duplicate_id = $1 AND m.added = 1
                           AND m.original_id = annotation_supports.annotation_id AND m.actor_id = annotation_supports.actor_id)
            AND NOT EXISTS (SELECT 1 FROM support_moves o WHERE o.duplicate_id <> $1
                               AND o.original_id = annotation_supports.annotation_id AND o.actor_id = annotation_supports.actor_id)",
    )
    .bind(duplicate)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM support_moves WHERE duplicate_id = $1").bind(duplicate).execute(&mut **tx).await?;
    Ok(())
}
