//! The store layer: the connection pools, migrations and one module per aggregate.
//!
//! SQL is written once where SQLite and PostgreSQL both accept it (`$1` placeholders work on
//! both through sqlx's `Any` driver); where the dialects differ, both variants sit side by side
//! in the module that needs them, chosen with [`Db::backend`].
//!
//! Times are integer milliseconds since the Unix epoch in both databases; booleans are
//! `0`/`1` integers, because the `Any` driver cannot decode SQLite's booleans.

pub mod actors;
pub mod annotations;
pub mod api;
pub mod api_keys;
pub mod candidates;
pub mod categories;
pub mod charts;
pub mod dialect;
pub mod error;
pub mod events;
pub mod exports;
pub mod hubs;
pub mod ingest;
pub mod ledger;
pub mod ledger_tree;
pub mod notifications;
pub mod replies;
pub mod roadmap;
pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod similar;
pub mod sql;
pub mod supports;
pub mod triage;
pub mod visibility;
pub mod visitors;
pub mod webhooks;
pub mod widgets;
pub mod witnesses;

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

pub use dialect::{Backend, Dialect, Tx};
pub use error::{Outage, StoreError};

/// How long a request waits for a pooled connection (or for a PostgreSQL server that does not
/// answer) before it gets a 503: under pressure a quick, clear answer beats a long wait.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `/readyz` keeps reporting an outage a request ran into.
pub const OUTAGE_MEMORY: Duration = Duration::from_secs(5);

/// Handle to the database: cheap to clone, shared by every request.
///
/// Reads go to `read`, writes to `write`. On SQLite `write` holds exactly one connection, so
/// writers queue inside the process instead of failing with `SQLITE_BUSY`; readers never wait
/// for writers thanks to WAL. On PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    url: String,
    /// The last outage a request ran into, for `/readyz`.
    last_outage: Arc<Mutex<Option<(Outage, Instant)>>>,
}

static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects to `url`, creating the SQLite file and its folder when missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            StoreError::Config(format!(
                "DATABASE_URL must start with sqlite: or postgres:// (got {:?})",
                redact_url(url)
            ))
        })?;
        match backend {
            Backend::Sqlite => Self::connect_sqlite(url, max_connections).await,
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?
                    .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
                // sqlx pings a connection when it goes back to the pool anyway; a second ping
                // on the way out costs every query a round trip. Only a connection that sat
                // idle (the server may have dropped it) is checked before use.
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if !outside_transaction(conn) {
                                return Ok(false);
                            }
                            if meta.idle_for > PING_IF_IDLE_FOR {
                                conn.ping().await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await?;
                Ok(Self { read: pool.clone(), write: pool, backend, url: url.to_owned(), last_outage: Arc::default() })
            }
        }
    }

    async fn connect_sqlite(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let path =
            url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Config(
                "an SQLite DATABASE_URL must name a file (the reader and writer pools share it)".into(),
            ));
        }
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("cannot create the database folder {}: {e}", dir.display())))?;
        }
        let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
        let options = AnyConnectOptions::from_str(&url)?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        // A connection to a local file does not go stale: no ping before each checkout (a round
        // trip to the connection's thread for every transaction). What is checked instead, for
        // free, is that the connection is not inside a transaction (see `outside_transaction`).
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn, true)))
            .before_acquire(|conn, _meta| Box::pin(async move { Ok(outside_transaction(conn)) }))
            .connect_with(options.clone())
            .await?;
        let read = AnyPoolOptions::new()
            .max_connections(max_connections.max(2))
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn, false)))
            .before_acquire(|conn, _meta| Box::pin(async move { Ok(outside_transaction(conn)) }))
            .connect_with(options)
            .await?;
        tokio::spawn(checkpoint_in_background(read.clone()));
        Ok(Self { read, write, backend: Backend::Sqlite, url, last_outage: Arc::default() })
    }

    /// Applies the embedded migrations of this backend; already applied ones are skipped.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &MIGRATOR_SQLITE,
            Backend::Postgres => &MIGRATOR_POSTGRES,
        };
        migrator.run(&self.write).await?;
        Ok(())
    }

    /// Whether every embedded migration has been applied (for `/readyz`).
    pub async fn migrations_applied(&self) -> Result<bool, StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &MIGRATOR_SQLITE,
            Backend::Postgres => &MIGRATOR_POSTGRES,
        };
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.read).await?;
        Ok(applied as usize >= migrator.iter().count())
    }

    /// `SELECT 1` against the database: `Ok` when it answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Whether a write could start now: on SQLite the writer connection takes the write lock
    /// (`BEGIN IMMEDIATE`, then rolls back), on PostgreSQL the pool hands out a connection
    /// that answers. Bounded by [`ACQUIRE_TIMEOUT`] and the busy timeout.
    pub async fn write_probe(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => self.begin_write().await?.rollback().await?,
            Backend::Postgres => {
                sqlx::query("SELECT 1").execute(&self.write).await?;
            }
        }
        Ok(())
    }

    /// Remembers that a request ran into `outage` (for `/readyz`).
    pub fn record_outage(&self, outage: Outage) {
        if let Ok(mut last) = self.last_outage.lock() {
            *last = Some((outage, Instant::now()));
        }
    }

    /// Records the outage `result` reveals, if any, and passes it on.
    pub fn note<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result
            && let Some(outage) = e.outage()
        {
            self.record_outage(outage);
        }
        result
    }

    /// The outage a request ran into within [`OUTAGE_MEMORY`], with how long ago.
    pub fn recent_outage(&self) -> Option<(Outage, Duration)> {
        let last = *self.last_outage.lock().ok()?;
        let (outage, at) = last?;
        Some((outage, at.elapsed())).filter(|(_, ago)| *ago < OUTAGE_MEMORY)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection URL (holds credentials: never log it unredacted).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool for reads.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// The pool for writes (one connection on SQLite).
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// Starts a read transaction that acts for `actor_id` (`None`: anonymous).
    ///
    /// On PostgreSQL it switches to the restricted role `ihf_authenticated` and sets
    /// `ihf.actor_id` with `SET LOCAL`/`set_config(…, true)`, so Row Level Security filters every
    /// row a second time and nothing outlives the transaction on the pooled connection; the
    /// `BEGIN`, the role and the settings travel as one statement (one round trip). On SQLite it
    /// is a plain transaction; the queries' own predicates do the filtering. End it with
    /// [`Db::end_read`].
    pub async fn begin_as(&self, actor_id: Option<i64>) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Postgres => Ok(self.write.begin_with(acting_as(actor_id, None)).await?),
            Backend::Sqlite => Ok(self.read.begin().await?),
        }
    }

    /// Ends a read transaction from [`Db::begin_as`] that wrote nothing.
    ///
    /// It is dropped rather than committed: sqlx then queues the `ROLLBACK`, which leaves with the
    /// check the pool makes of every connection coming back to it, instead of costing the
    /// request a round trip of its own. For a transaction that only read, the two are the same.
    pub fn end_read(tx: sqlx::Transaction<'static, sqlx::Any>) {
        drop(tx);
    }

    /// Runs a dynamic read as `actor_id` (see [`Db::begin_as`]) and returns all its rows.
    pub async fn fetch_all_as<O>(&self, actor_id: Option<i64>, sql: sql::SqlBuilder) -> Result<Vec<O>, StoreError>
    where
        O: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut tx = self.begin_as(actor_id).await?;
        let rows = sql.build_query_as()?.fetch_all(&mut *tx).await?;
        Self::end_read(tx);
        Ok(rows)
    }

    /// [`Db::begin_as`] for a writer that also acts for the actor (PostgreSQL checks the
    /// policies' `WITH CHECK` clauses); `embed_widget` confines it to one widget.
    pub async fn begin_write_as(
        &self,
        actor_id: Option<i64>,
        embed_widget: Option<i64>,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        match self.backend {
            Backend::Postgres => {
                let begun = self.write.begin_with(acting_as(actor_id, embed_widget)).await;
                self.note(begun.map_err(StoreError::from))
            }
            Backend::Sqlite => self.begin_write().await,
        }
    }

    /// Starts a write transaction on the writer.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken first (a lock held by another
    /// process fails here, after the busy timeout, before any work), and sqlx checks with
    /// SQLite itself that the statement opened a transaction, so a connection that is somehow
    /// still inside one fails here instead of nesting this write in a savepoint that is never
    /// committed.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let begun = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        };
        self.note(begun.map_err(StoreError::from))
    }

    /// Closes both pools, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// How long a PostgreSQL connection may sit idle in the pool before it is pinged on checkout.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);

/// The `BEGIN` of a PostgreSQL transaction acting for `actor_id` (confined to `embed_widget`):
/// the restricted role and the actor for the rest of the transaction, sent as one simple
/// query, so one round trip. Only integers are written into it.
fn acting_as(actor_id: Option<i64>, embed_widget: Option<i64>) -> sqlx::AssertSqlSafe<String> {
    let id = |value: Option<i64>| value.map(|id| id.to_string()).unwrap_or_default();
    sqlx::AssertSqlSafe(format!(
        "BEGIN; SET LOCAL ROLE ihf_authenticated; \
         SELECT set_config('ihf.actor_id', '{}', true), set_config('ihf.embed_widget_id', '{}', true)",
        id(actor_id),
        id(embed_widget)
    ))
}

/// The pools' check before they hand out an idle connection: one that is still inside a
/// transaction is closed (which rolls that transaction back) and replaced.
///
/// This is what keeps a failed write from swallowing the ones after it. When a statement or a
/// `COMMIT` fails with "disk full" (or an I/O error), SQLite rolls the whole transaction back
/// by itself; the `ROLLBACK` sqlx then sends fails ("no transaction is active"), and sqlx's own
/// count of open transactions stays at one. Without this check the next `begin()` would open
/// a *savepoint*, a later early return would roll back to it and leave SQLite's transaction
/// open, and from then on every "commit" would only release a savepoint: acknowledged writes
/// that no other connection sees and that vanish at shutdown (issue #13). sqlx's count is
/// only ever above zero here after such a failure: every transaction the app opens is closed
/// (committed or rolled back) before its connection comes back, and the pool flushes a queued
/// rollback before it takes a connection back.
fn outside_transaction(conn: &mut sqlx::AnyConnection) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection came back inside a transaction (after a failed write); replacing it");
    }
    clean
}

/// Per-connection SQLite settings: WAL so readers never wait for the writer, foreign keys on,
/// a busy timeout of one second for the rare writer outside this process (the CLI; beyond
/// it the request gets a 503 saying the database is locked), temporary storage
/// (statement journals of multi-row inserts inside a transaction) in memory rather than in
/// files created and deleted for each statement, and a WAL file cut back to 64 MiB when it
/// restarts. Checkpoints (copying the WAL into the database
/// and syncing it) took a quarter of the writer thread's time: [`checkpoint_in_background`]
/// now does most of that work on a reader's thread, and the writer's own checkpoint, every
/// 16,000 pages (64 MiB), copies only what is left and lets the WAL start over.
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection, writer: bool) -> Result<(), sqlx::Error> {
    conn.execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 1000; \
         PRAGMA temp_store = MEMORY; PRAGMA journal_size_limit = 67108864;",
    )
    .await?;
    if writer {
        // The pages new events land on (the recent end of the table and of its time indexes)
        // are several MiB at full ingestion rate: a 2 MiB cache read them back from the file.
        conn.execute("PRAGMA wal_autocheckpoint = 16000; PRAGMA cache_size = -65536;").await?;
    } else {
        // A reader's page cache outlives its transaction only while nothing is committed (in WAL
        // mode a connection drops its whole cache when it begins a read after another's
        // commit), so under writes it serves one transaction's pages; SQLite's default of 2 MiB
        // per reader only filled, idle, with whatever was read last (10,000 sessions signing
        // in filled all five). What a query rereads within its transaction fits in 512 KiB.
        conn.execute("PRAGMA cache_size = -512;").await?;
    }
    Ok(())
}

/// How often the WAL is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed WAL pages into the database file every [`CHECKPOINT_EVERY`] on one of the
/// reader connections (each has a thread of its own) without blocking the writer (`PASSIVE`).
/// It cannot make the WAL start over (a busy writer never leaves it fully copied at the start
/// of a write); the writer's own checkpoint does that, with little left to copy. Stops when
/// the pool closes.
async fn checkpoint_in_background(pool: AnyPool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await
            && !pool.is_closed()
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// `url` with any password replaced by `***`, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn acting_as_is_one_statement_of_integers() {
        assert_eq!(
            acting_as(Some(42), None).0,
            "BEGIN; SET LOCAL ROLE ihf_authenticated; \
             SELECT set_config('ihf.actor_id', '42', true), set_config('ihf.embed_widget_id', '', true)"
        );
        assert!(
            acting_as(None, Some(7))
                .0
                .ends_with("set_config('ihf.actor_id', '', true), set_config('ihf.embed_widget_id', '7', true)")
        );
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::from_url("sqlite://x"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("postgresql://h/d"), Some(Backend::Postgres));
        assert_eq!(Backend::from_url("mysql://h/d"), None);
    }
}
