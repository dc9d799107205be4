//! Secrets every instance shares (made once, kept in the database).

use super::{Db, StoreError};

/// The secret called `name`, created with `fresh` if it does not exist yet. Concurrent first
/// starts agree: whoever inserts first wins and everyone reads that value.
pub async fn get_or_create(db: &Db, name: &str, fresh: &str) -> Result<String, StoreError> {
    sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .execute(db.writer())
        .await?;
    Ok(sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(db.writer()).await?)
}
