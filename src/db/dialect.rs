//! The one seam between the two databases: which [`Backend`] a pool or a transaction talks to,
//! and the few pieces of SQL that differ between them. Everything else is written once.
//!
//! A store function that writes takes the caller's transaction ([`Tx`]) and asks *it* for its
//! backend ([`Dialect::backend`]); nobody passes a backend along by hand.

use sqlx::{Any, Transaction};

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, WAL, one writer connection.
    Sqlite,
    /// Multi-instance deployments: LISTEN/NOTIFY and Row Level Security.
    Postgres,
}

impl Backend {
    /// The backend a `DATABASE_URL` names, or `None` for a scheme IHF does not speak.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// A transaction on either database.
pub type Tx = Transaction<'static, Any>;

impl Backend {
    /// The backend behind a connection, as sqlx's `Any` driver names it.
    pub fn of(connection: &sqlx::AnyConnection) -> Self {
        if connection.backend_name() == "PostgreSQL" { Self::Postgres } else { Self::Sqlite }
    }

    /// Locks the rows a `SELECT` reads until the transaction ends. PostgreSQL needs it so
    /// nothing changes them between a read and the write that depends on it; SQLite has one
    /// writer, and a write transaction already excludes every other.
    pub fn row_lock(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }

    /// Claims rows for one worker among several: rows another instance holds are skipped, not
    /// waited for (PostgreSQL); SQLite's single writer claims alone.
    pub fn claim_lock(self) -> &'static str {
        match self {
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
            Self::Sqlite => "",
        }
    }
}

/// What a transaction knows about its database.
pub trait Dialect {
    /// The backend the transaction runs on.
    fn backend(&self) -> Backend;
}

impl Dialect for Tx {
    fn backend(&self) -> Backend {
        Backend::of(self)
    }
}
