//! Annotation categories, per hub.

use sqlx::{Any, Transaction};

use super::{Db, StoreError};

/// The categories every new hub starts with: slug, label, colour.
pub const DEFAULTS: [(&str, &str, &str); 5] = [
    ("friction", "Friction", "amber"),
    ("bug", "Bug", "red"),
    ("idea", "Idea", "blue"),
    ("praise", "Praise", "green"),
    ("question", "Question", "violet"),
];

/// The colours a category can take: names, styled by `.c-NAME` classes in `app.css`
/// (the Content-Security-Policy forbids inline styles).
pub const PALETTE: [&str; 10] = ["amber", "red", "blue", "green", "violet", "slate", "teal", "pink", "orange", "cyan"];

/// The category an annotation gets when none is chosen (the seed's composer default).
pub const DEFAULT_SLUG: &str = "friction";

/// A category as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Category {
    pub id: i64,
    pub hub_id: i64,
    pub slug: String,
    pub label: String,
    pub colour: String,
    pub position: i64,
    pub archived_at: Option<i64>,
}

/// Inserts the default categories of a new hub.
pub async fn insert_defaults(tx: &mut Transaction<'static, Any>, hub_id: i64) -> Result<(), StoreError> {
    for (position, (slug, label, colour)) in DEFAULTS.iter().enumerate() {
        sqlx::query("INSERT INTO categories (hub_id, slug, label, colour, position) VALUES ($1, $2, $3, $4, $5)")
            .bind(hub_id)
            .bind(*slug)
            .bind(*label)
            .bind(*colour)
            .bind(position as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The hub's categories in display order; archived ones only when `include_archived`.
pub async fn list(db: &Db, hub_id: i64, include_archived: bool) -> Result<Vec<Category>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, hub_id, slug, label, colour, position, archived_at FROM categories
         WHERE hub_id = $1 AND ($2 = 1 OR archived_at IS NULL) ORDER BY position, id",
    )
    .bind(hub_id)
    .bind(i64::from(include_archived))
    .fetch_all(db.reader())
    .await?)
}

/// What an operator sets on a category.
#[derive(Debug, Clone)]
pub struct CategoryFields<'a> {
    pub slug: &'a str,
    pub label: &'a str,
    pub colour: &'a str,
    pub position: i64,
}

/// Adds a category to a hub; a taken slug is [`StoreError::SlugTaken`].
pub async fn create(db: &Db, hub_id: i64, fields: &CategoryFields<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO categories (hub_id, slug, label, colour, position) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(hub_id)
    .bind(fields.slug)
    .bind(fields.label)
    .bind(fields.colour)
    .bind(fields.position)
    .fetch_one(db.writer())
    .await?)
}

/// Changes a category of the hub; [`StoreError::NotFound`] when it is not the hub's.
pub async fn update(db: &Db, hub_id: i64, id: i64, fields: &CategoryFields<'_>) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE categories SET slug = $1, label = $2, colour = $3, position = $4 WHERE id = $5 AND hub_id = $6",
    )
    .bind(fields.slug)
    .bind(fields.label)
    .bind(fields.colour)
    .bind(fields.position)
    .bind(id)
    .bind(hub_id)
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Archives (or brings back) a category: archived ones stay on the annotations that have them
/// but are no longer offered for new choices.
pub async fn set_archived(db: &Db, hub_id: i64, id: i64, archived: bool) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE categories SET archived_at = CASE WHEN $1 = 1 THEN COALESCE(archived_at, $2) ELSE NULL END
          WHERE id = $3 AND hub_id = $4",
    )
    .bind(i64::from(archived))
    .bind(super::now_ms())
    .bind(id)
    .bind(hub_id)
    .execute(db.writer())
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The next free position at the end of the hub's list.
pub async fn next_position(db: &Db, hub_id: i64) -> Result<i64, StoreError> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM categories WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(db.reader())
        .await?;
    Ok(max.map_or(0, |m| m + 1))
}
