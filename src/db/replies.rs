//! Replies on annotations: a thread under each annotation, written by the hub's staff and the
//! annotation's author, read by whoever reads the annotation (internal replies: staff only).
//!
//! [`create`] is the hook notifications build on: it returns the reply with the annotation's
//! author and the handles the reply mentions ([`mentions`]).

use std::collections::HashMap;

use super::api::Tx;
use super::sql::SqlBuilder;
use super::visibility;
use super::{Db, StoreError, now_ms};
use crate::access::Viewer;
use crate::db::annotations::AnnotationBody;

/// A reply as a thread shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reply {
    pub id: i64,
    pub annotation_id: i64,
    pub hub_id: i64,
    pub widget_id: i64,
    pub actor_id: i64,
    pub author_name: String,
    pub body: String,
    /// 1: for the hub's staff only.
    pub internal: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

impl Reply {
    /// Whether only staff read it.
    pub fn is_internal(&self) -> bool {
        self.internal == 1
    }

    /// Whether `actor_id` wrote it.
    pub fn is_by(&self, actor_id: impl std::borrow::Borrow<Option<i64>>) -> bool {
        *actor_id.borrow() == Some(self.actor_id)
    }

    /// Whether it was edited after it was written.
    pub fn is_edited(&self) -> bool {
        self.version > 1
    }
}

const SELECT: &str = "SELECT r.id, r.annotation_id, r.hub_id, r.widget_id, r.actor_id, p.display_name AS author_name,
        r.body, r.internal, r.created_at, r.updated_at, r.version
   FROM annotation_replies r JOIN actors p ON p.id = r.actor_id";

/// The replies `viewer` may read on the annotations `ids`, oldest first, grouped by annotation.
/// Runs as the viewer (Row Level Security on PostgreSQL) with the policy's predicate.
pub async fn for_annotations(db: &Db, viewer: &Viewer, ids: &[i64]) -> Result<HashMap<i64, Vec<Reply>>, StoreError> {
    let mut by_annotation: HashMap<i64, Vec<Reply>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_annotation);
    }
    let mut qb = SqlBuilder::new(SELECT);
    qb.push(" WHERE r.annotation_id IN (").push_bind_list(ids.iter().copied()).push(") AND ");
    visibility::push_reply_visible(&mut qb, viewer);
    qb.push(" ORDER BY r.annotation_id, r.created_at, r.id");
    let rows: Vec<Reply> = db.fetch_all_as(viewer.actor_id, qb).await?;
    for reply in rows {
        by_annotation.entry(reply.annotation_id).or_default().push(reply);
    }
    Ok(by_annotation)
}

/// Reply `id` if `viewer` may read it, or [`StoreError::NotFound`].
pub async fn visible(db: &Db, viewer: &Viewer, id: i64) -> Result<Reply, StoreError> {
    let mut qb = SqlBuilder::new(SELECT);
    qb.push(" WHERE r.id = ").push_bind(id).push(" AND ");
    visibility::push_reply_visible(&mut qb, viewer);
    db.fetch_all_as(viewer.actor_id, qb).await?.into_iter().next().ok_or(StoreError::NotFound)
}

/// [`visible`] inside the caller's transaction (an embed visitor's is confined to their widget,
/// which their policies then let them read); `visible_to: None` leaves the policies alone to
/// decide.
pub async fn visible_in(tx: &mut Tx, visible_to: Option<&Viewer>, id: i64) -> Result<Reply, StoreError> {
    let mut qb = SqlBuilder::new(SELECT);
    qb.push(" WHERE r.id = ").push_bind(id);
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_reply_visible(&mut qb, viewer);
    }
    let found: Option<Reply> = qb.build_query_as()?.fetch_optional(&mut **tx).await?;
    found.ok_or(StoreError::NotFound)
}

/// What it takes to write a reply. The caller has checked that the author may reply (and mark
/// it internal) with [`crate::access::HubAccess::can_reply`]; PostgreSQL checks it again.
#[derive(Debug, Clone)]
pub struct NewReply<'a> {
    pub annotation_id: i64,
    pub actor_id: i64,
    pub body: &'a AnnotationBody,
    pub internal: bool,
}

/// A reply just written, with what notifications need.
#[derive(Debug, Clone)]
pub struct CreatedReply {
    pub reply: Reply,
    /// Who wrote the annotation replied to.
    pub annotation_author_id: i64,
    /// The `@handles` the reply mentions, in order, each once (see [`mentions`]).
    pub mentions: Vec<String>,
}

/// Writes a reply as its author (the annotation's hub and widget are copied from it) and
/// returns it; [`StoreError::NotFound`] when the annotation is gone.
pub async fn create(db: &Db, new: &NewReply<'_>) -> Result<CreatedReply, StoreError> {
    create_confined(db, new, None).await
}

/// [`create`] for an embed visitor: on PostgreSQL the write is confined to the visitor's widget
/// (`embed_widget`), as every query of theirs is.
pub async fn create_confined(
    db: &Db,
    new: &NewReply<'_>,
    embed_widget: Option<i64>,
) -> Result<CreatedReply, StoreError> {
    let mut tx = db.begin_write_as(Some(new.actor_id), embed_widget).await?;
    let created = create_in(&mut tx, new).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create`] inside the caller's transaction, opened as the reply's author (the data API's
/// carries its credential's confinement).
pub async fn create_in(tx: &mut Tx, new: &NewReply<'_>) -> Result<CreatedReply, StoreError> {
    let now = now_ms();
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO annotation_replies (annotation_id, hub_id, widget_id, actor_id, body, internal, created_at, updated_at)
         SELECT a.id, a.hub_id, a.widget_id, $1, $2, $3, $4, $4 FROM annotations a
          WHERE a.id = $5 AND a.deleted_at IS NULL RETURNING id",
    )
    .bind(new.actor_id)
    .bind(new.body.as_str())
    .bind(i64::from(new.internal))
    .bind(now)
    .bind(new.annotation_id)
    .fetch_optional(&mut **tx)
    .await?;
    let id = id.ok_or(StoreError::NotFound)?;
    let reply: Reply = sqlx::query_as(
        "SELECT r.id, r.annotation_id, r.hub_id, r.widget_id, r.actor_id, p.display_name AS author_name,
                r.body, r.internal, r.created_at, r.updated_at, r.version
           FROM annotation_replies r JOIN actors p ON p.id = r.actor_id WHERE r.id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let annotation_author_id: i64 = sqlx::query_scalar("SELECT actor_id FROM annotations WHERE id = $1")
        .bind(new.annotation_id)
        .fetch_one(&mut **tx)
        .await?;
    let mentions = mentions(&reply.body);
    // Notified in the reply's own transaction: no notice of a reply that rolled back.
    super::notifications::on_reply(tx, id, &mentions).await?;
    Ok(CreatedReply { reply, annotation_author_id, mentions })
}

/// The author changes the body of their reply `id`; [`StoreError::NotFound`] when there is no
/// such reply of theirs. `embed_widget` confines an embed visitor's write to their widget.
pub async fn update_body(
    db: &Db,
    actor_id: i64,
    embed_widget: Option<i64>,
    id: i64,
    body: &AnnotationBody,
) -> Result<(), StoreError> {
    let mut tx = db.begin_write_as(Some(actor_id), embed_widget).await?;
    update_body_in(&mut tx, actor_id, id, body, None).await?;
    tx.commit().await?;
    Ok(())
}

/// [`update_body`] inside the caller's transaction; with `version`, only when the reply is at
/// that version ([`StoreError::Stale`] otherwise).
pub async fn update_body_in(
    tx: &mut Tx,
    actor_id: i64,
    id: i64,
    body: &AnnotationBody,
    version: Option<i64>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE annotation_replies SET body = $1, updated_at = $2, version = version + 1
          WHERE id = $3 AND actor_id = $4 AND ($5 < 0 OR version = $5)",
    )
    .bind(body.as_str())
    .bind(now_ms())
    .bind(id)
    .bind(actor_id)
    .bind(version.unwrap_or(-1))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT version FROM annotation_replies WHERE id = $1 AND actor_id = $2")
                .bind(id)
                .bind(actor_id)
                .fetch_optional(&mut **tx)
                .await?;
        return Err(if exists.is_some() { StoreError::Stale } else { StoreError::NotFound });
    }
    Ok(())
}

/// The replies on the annotations `ids` inside the caller's transaction (opened as the reader:
/// on PostgreSQL Row Level Security applies), with the policy's predicate for `visible_to`
/// (`None`: the policies alone decide), oldest first, grouped by annotation.
pub async fn for_annotations_in(
    tx: &mut Tx,
    visible_to: Option<&Viewer>,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<Reply>>, StoreError> {
    let mut by_annotation: HashMap<i64, Vec<Reply>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_annotation);
    }
    let mut qb = SqlBuilder::new(SELECT);
    qb.push(" WHERE r.annotation_id IN (").push_bind_list(ids.iter().copied()).push(")");
    if let Some(viewer) = visible_to {
        qb.push(" AND ");
        visibility::push_reply_visible(&mut qb, viewer);
    }
    qb.push(" ORDER BY r.annotation_id, r.created_at, r.id");
    let rows: Vec<Reply> = qb.build_query_as()?.fetch_all(&mut **tx).await?;
    for reply in rows {
        by_annotation.entry(reply.annotation_id).or_default().push(reply);
    }
    Ok(by_annotation)
}

/// The `@handle` mentions of a text, in order of appearance, each once. A mention starts with
/// `@` at the start or after a character that cannot be part of an address (so `a@b.c` is no
/// mention) and takes letters, digits, `_`, `.` and `-`; a trailing `.` or `-` is punctuation.
pub fn mentions(text: &str) -> Vec<String> {
    let is_handle_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut found: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let starts = c == '@' && previous.is_none_or(|p| !(p.is_alphanumeric() || matches!(p, '_' | '.' | '-' | '@')));
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[at + 1..];
        let len = rest.find(|c: char| !is_handle_char(c)).unwrap_or(rest.len());
        let handle = rest[..len].trim_end_matches(['.', '-']);
        if !handle.is_empty() && handle.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            let handle = handle.to_owned();
            if !found.contains(&handle) {
                found.push(handle);
            }
        }
        // Skip the handle's characters.
        while chars.peek().is_some_and(|(i, _)| *i <= at + len) {
            if let Some((_, c)) = chars.next() {
                previous = Some(c);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_are_found_once_in_order() {
        assert_eq!(mentions("@olga please look, cc @tomas and @olga."), vec!["olga", "tomas"]);
        assert_eq!(mentions("mail me at wendy@example.com"), Vec::<String>::new());
        assert_eq!(mentions("(@ada) @_x @a.b- @@c @ @-no"), vec!["ada", "_x", "a.b"]);
        assert_eq!(mentions("first line\n@tara: done"), vec!["tara"]);
    }
}
