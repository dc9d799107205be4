//! The store layer's one error type.

use std::time::Duration;

/// What can go wrong talking to the database, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or the actor may not see it).
    #[error("not found")]
    NotFound,
    /// A unique or check constraint refused the write; `constraint` names it when known.
    #[error("constraint {constraint} refused the write")]
    Conflict { constraint: String },
    /// A hub, widget or category with that slug exists already (in its hub): the unique
    /// constraints of [`SLUG_CONSTRAINTS`], named here once for both dialects.
    #[error("the slug is taken")]
    SlugTaken,
    /// The row changed since the caller read it (optimistic concurrency).
    #[error("the row was changed by someone else")]
    Stale,
    /// The database cannot take the request right now (disk full, locked, unreachable: see
    /// [`StoreError::outage`]); nothing was written, and retrying later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The same as [`StoreError::Unavailable`], without the driver's error: an outage one
    /// failed statement revealed, reported to every request it concerned.
    #[error("the database is unavailable: {}", .0.reason())]
    Outage(Outage),
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

/// Why the database cannot take a request right now: each says what happened, in words a
/// person can act on, and how long to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk (or SQLite's size limit) is full: no write fits until space is freed.
    DiskFull,
    /// Another writer holds the lock (SQLite's write lock held by another process, a
    /// PostgreSQL lock, deadlock or serialization failure).
    Locked,
    /// No connection within the acquire timeout: every connection is busy, or the server does
    /// not answer.
    Timeout,
    /// The storage itself failed (I/O error, read-only file system).
    Storage,
    /// The database server cannot be reached (refused, closed, shutting down).
    Unreachable,
}

impl Outage {
    /// Classifies a driver error; `None` for errors that retrying would not cure.
    pub fn of(error: &sqlx::Error) -> Option<Self> {
        match error {
            sqlx::Error::PoolTimedOut => Some(Self::Timeout),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => {
                Some(Self::Unreachable)
            }
            sqlx::Error::Database(db) => Self::of_code(db.code().as_deref()?),
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATEs are five characters; SQLite's (extended) result codes are numbers.
    fn of_code(code: &str) -> Option<Self> {
        if code.len() == 5 {
            return Self::of_sqlstate(code);
        }
        match code.parse::<u32>().ok()? & 0xff {
            13 => Some(Self::DiskFull),    // SQLITE_FULL
            5 | 6 => Some(Self::Locked),   // SQLITE_BUSY, SQLITE_LOCKED
            8 | 10 => Some(Self::Storage), // SQLITE_READONLY, SQLITE_IOERR
            14 => Some(Self::Unreachable), // SQLITE_CANTOPEN
            _ => None,
        }
    }

    fn of_sqlstate(code: &str) -> Option<Self> {
        match code {
            "53100" => Some(Self::DiskFull),
            "55P03" | "40001" | "40P01" => Some(Self::Locked),
            "57014" => Some(Self::Timeout),
            "58030" => Some(Self::Storage),
            _ if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") => Some(Self::Unreachable),
            _ => None,
        }
    }

    /// What happened, for the person who asked (the page, the fragment, the JSON message).
    pub fn message(self) -> &'static str {
        match self {
            Self::DiskFull => {
                "The server's storage is full: nothing new can be saved until space is freed. \
                 Everything saved before is safe; try again in a minute."
            }
            Self::Locked => {
                "The database is locked by another writer right now; nothing was changed. Try again in a few seconds."
            }
            Self::Timeout => {
                "The database did not answer within a second (it is busy or cannot be reached); nothing was changed. \
                 Try again in a few seconds."
            }
            Self::Storage => "The server's storage reported an error; nothing was changed. Try again in a minute.",
            Self::Unreachable => {
                "The database cannot be reached right now; nothing was changed. Try again in a few seconds."
            }
        }
    }

    /// A short reason for `/readyz` and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::DiskFull => "disk full",
            Self::Locked => "database locked",
            Self::Timeout => "database timed out",
            Self::Storage => "storage error",
            Self::Unreachable => "database unreachable",
        }
    }

    /// When a retry may work, for `Retry-After`.
    pub fn retry_after(self) -> Duration {
        match self {
            Self::DiskFull | Self::Storage => Duration::from_secs(30),
            Self::Locked | Self::Timeout => Duration::from_secs(2),
            Self::Unreachable => Duration::from_secs(5),
        }
    }
}

/// The unique constraints on slugs, as PostgreSQL names them and as SQLite reports them
/// (its `table.column` list): a violation of one is [`StoreError::SlugTaken`].
const SLUG_CONSTRAINTS: [(&str, &str); 3] = [
    ("hubs_slug_key", "hubs.slug"),
    ("widgets_hub_id_slug_key", "widgets.hub_id, widgets.slug"),
    ("categories_hub_id_slug_key", "categories.hub_id, categories.slug"),
];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let constraint = db.constraint().map(str::to_owned).unwrap_or_else(|| {
                    // SQLite names the columns, not the constraint: "UNIQUE constraint failed: widgets.hub_id, widgets.slug".
                    db.message().rsplit(": ").next().unwrap_or_default().to_owned()
                });
                if SLUG_CONSTRAINTS.iter().any(|(pg, sqlite)| constraint == *pg || constraint == *sqlite) {
                    Self::SlugTaken
                } else {
                    Self::Conflict { constraint }
                }
            }
            e if Outage::of(e).is_some() => Self::Unavailable(error),
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

    /// Why the database could not take the request, when that is the trouble.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            Self::Unavailable(e) => Some(Outage::of(e).unwrap_or(Outage::Unreachable)),
            Self::Outage(outage) => Some(*outage),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes_of_both_databases() {
        assert_eq!(Outage::of_code("13"), Some(Outage::DiskFull));
        assert_eq!(Outage::of_code("5"), Some(Outage::Locked));
        assert_eq!(Outage::of_code("517"), Some(Outage::Locked), "SQLITE_BUSY_SNAPSHOT");
        assert_eq!(Outage::of_code("778"), Some(Outage::Storage), "SQLITE_IOERR_WRITE");
        assert_eq!(Outage::of_code("2067"), None, "SQLITE_CONSTRAINT_UNIQUE");
        assert_eq!(Outage::of_code("53100"), Some(Outage::DiskFull));
        assert_eq!(Outage::of_code("57P01"), Some(Outage::Unreachable));
        assert_eq!(Outage::of_code("08006"), Some(Outage::Unreachable));
        assert_eq!(Outage::of_code("40P01"), Some(Outage::Locked));
        assert_eq!(Outage::of_code("23505"), None);
        assert_eq!(Outage::of_code("42501"), None);
    }
}
