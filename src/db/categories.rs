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
