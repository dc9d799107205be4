//! The store layer's one error type.

/// What can go wrong talking to the database, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or the actor may not see it).
    #[error("not found")]
    NotFound,
    /// A unique or check constraint refused the write; `constraint` names it when known.
    #[error("constraint {constraint} refused the write")]
    Conflict { constraint: String },
    /// The row changed since the caller read it (optimistic concurrency).
    #[error("the row was changed by someone else")]
    Stale,
    /// The database cannot be reached right now; retrying later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The configuration is wrong (bad URL, unusable path).
    #[error("{0}")]
    Config(String),
    /// Anything else: a bug or a broken database.
    #[error("database error")]
    Other(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict {
                constraint: db.constraint().map(str::to_owned).unwrap_or_else(|| {
                    // SQLite names the columns, not the constraint: "UNIQUE constraint failed: widgets.hub_id, widgets.slug".
                    db.message().rsplit(": ").next().unwrap_or_default().to_owned()
                }),
            },
            sqlx::Error::Database(db) if db.code().as_deref() == Some("57P01") => Self::Unavailable(error),
            _ => Self::Other(error),
        }
    }
}

impl StoreError {
    /// Whether a unique-constraint conflict concerns `name` (a PostgreSQL constraint name such
    /// as `widgets_hub_id_slug_key`, or for SQLite the `table.column` list it reports).
    pub fn is_conflict_on(&self, pg_constraint: &str, sqlite_columns: &str) -> bool {
        matches!(self, Self::Conflict { constraint } if constraint == pg_constraint || constraint == sqlite_columns)
    }
}
