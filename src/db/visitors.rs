//! Visitors of embeds: pseudonymous actors (`kind = 'visitor'`) known by an external reference,
//! `anon:<random>` for an anonymous browser or `host:<widget id>:<sub>` for a user the host site
//! vouches for. An anonymous visitor's row is written only when they first write something.

use super::{Db, StoreError, now_ms};

/// The actor of an external reference, if it was ever written.
pub async fn find(db: &Db, external_ref: &str) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT id FROM actors WHERE external_ref = $1 AND kind = 'visitor'")
        .bind(external_ref)
        .fetch_optional(db.reader())
        .await?)
}

/// The actor of `external_ref`, created with `display_name` when missing. With `refresh_name`
/// (identified visitors, whose name the host may change) a different stored name is replaced.
pub async fn upsert(db: &Db, external_ref: &str, display_name: &str, refresh_name: bool) -> Result<i64, StoreError> {
    let existing: Option<(i64, String)> =
        sqlx::query_as("SELECT id, display_name FROM actors WHERE external_ref = $1 AND kind = 'visitor'")
            .bind(external_ref)
            .fetch_optional(db.reader())
            .await?;
    match existing {
        Some((id, name)) if !refresh_name || name == display_name => Ok(id),
        _ => Ok(sqlx::query_scalar(
            "INSERT INTO actors (display_name, kind, external_ref, created_at, email_mode) VALUES ($1, 'visitor', $2, $3, 'off')
             ON CONFLICT (external_ref) DO UPDATE SET display_name = CASE WHEN $4 = 1 THEN excluded.display_name ELSE actors.display_name END
             RETURNING id",
        )
        .bind(display_name)
        .bind(external_ref)
        .bind(now_ms())
        .bind(i64::from(refresh_name))
        .fetch_one(db.writer())
        .await?),
    }
}
