//! The change feed: committed writes as events, from SQLite's `change_log` or PostgreSQL's
//! NOTIFY, on one in-process broadcast channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::db::{Backend, Db, StoreError};

/// One committed change of one row (or, for interaction events, of one batch per widget).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, sqlx::FromRow)]
pub struct ChangeEvent {
    /// Monotonic across the whole database (all instances).
    pub seq: i64,
    pub table: String,
    pub op: String,
    pub hub_id: Option<i64>,
    pub widget_id: Option<i64>,
    pub row_id: Option<i64>,
}

/// What the feed broadcasts.
#[derive(Debug, Clone)]
pub enum FeedMessage {
    /// A committed change.
    Change(Arc<ChangeEvent>),
    /// Changes may have been lost (listener reconnected, receiver lagged): everything may have
    /// changed, so every region should re-render.
    Resync { seq: i64 },
}

/// The broadcast side of the feed, shared by the app.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<FeedMessage>,
    last_seq: Arc<AtomicI64>,
    /// How many messages this instance has published, from a random start: a page records it
    /// before rendering, and its stream, finding it unchanged, knows that every change the page
    /// does not show is still to come through the feed. A count of *arrivals*, not a change
    /// sequence: PostgreSQL's sequence is taken at insert, not at commit, so a change can commit
    /// after one with a higher number (migration 0003), but notifications arrive in commit order.
    position: Arc<AtomicI64>,
}

/// Broadcast capacity: a receiver that falls this far behind gets `Lagged` and resyncs.
const CAPACITY: usize = 4096;
/// How often SQLite's change log is read: an indexed `seq > last` lookup that finds nothing
/// most of the time, cheap enough to do 200 times a second for low latency.
const SQLITE_POLL: Duration = Duration::from_millis(5);
/// How many change-log rows SQLite keeps for late readers before pruning.
const SQLITE_KEEP: i64 = 10_000;

impl ChangeFeed {
    /// A feed with no source yet (tests can [`publish`](Self::publish) into it).
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        // Another instance's positions start elsewhere, so a page rendered there never matches.
        // Below 2^53, so the browser (JavaScript numbers) hands it back exactly.
        let start = i64::from(rand::random::<u32>()) << 20;
        Self { sender, last_seq: Arc::new(AtomicI64::new(0)), position: Arc::new(AtomicI64::new(start)) }
    }

    /// Starts the feed's source for `db`: the SQLite tailer or the PostgreSQL listener. It runs
    /// until `shutdown` turns true.
    pub async fn start(db: &Db, shutdown: watch::Receiver<bool>) -> Result<Self, StoreError> {
        let feed = Self::new();
        match db.backend() {
            Backend::Sqlite => {
                let start: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(seq) FROM change_log").fetch_one(db.reader()).await?;
                feed.last_seq.store(start.unwrap_or(0), Ordering::Relaxed);
                tokio::spawn(tail_sqlite(db.clone(), feed.clone(), shutdown));
            }
            Backend::Postgres => {
                let mut listener = sqlx::postgres::PgListener::connect(db.url()).await?;
                listener.listen(CHANNEL).await?;
                let start: i64 =
                    sqlx::query_scalar("SELECT last_value FROM ihf_change_seq").fetch_one(db.reader()).await?;
                feed.last_seq.store(start, Ordering::Relaxed);
                tokio::spawn(listen_postgres(listener, feed.clone(), shutdown));
            }
        }
        Ok(feed)
    }

    /// A new receiver of everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedMessage> {
        self.sender.subscribe()
    }

    /// The feed's position, for a page's `since`: read it *before* loading what the page shows.
    /// When a stream finds the position unchanged, nothing has arrived since (see `position`).
    pub fn current_seq(&self) -> i64 {
        self.position.load(Ordering::SeqCst)
    }

    /// The highest change sequence seen so far (the `id:` of events).
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    /// Publishes a message to every receiver.
    pub fn publish(&self, message: FeedMessage) {
        let seq = match &message {
            FeedMessage::Change(change) => change.seq,
            FeedMessage::Resync { seq } => *seq,
        };
        self.last_seq.fetch_max(seq, Ordering::Relaxed);
        self.position.fetch_add(1, Ordering::SeqCst);
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(message);
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

/// The PostgreSQL NOTIFY channel the triggers of migration 0003 use.
pub const CHANNEL: &str = "ihf_changes";

async fn tail_sqlite(db: Db, feed: ChangeFeed, mut shutdown: watch::Receiver<bool>) {
    let mut last = feed.last_seq();
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SQLITE_POLL) => {}
            _ = shutdown.changed() => return,
        }
        let rows: Result<Vec<ChangeEvent>, sqlx::Error> = sqlx::query_as(
            "SELECT seq, table_name AS \"table\", op, hub_id, widget_id, row_id FROM change_log
             WHERE seq > $1 ORDER BY seq LIMIT 5000",
        )
        .bind(last)
        .fetch_all(db.reader())
        .await;
        match rows {
            Ok(rows) => {
                for row in rows {
                    last = row.seq;
                    feed.publish(FeedMessage::Change(Arc::new(row)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the change log failed; live regions will resync");
                tokio::time::sleep(Duration::from_millis(500)).await;
                feed.publish(FeedMessage::Resync { seq: last });
            }
        }
        polls += 1;
        if polls.is_multiple_of(12_000) {
            // About once a minute: keep the log short.
            if let Err(e) =
                sqlx::query("DELETE FROM change_log WHERE seq < $1").bind(last - SQLITE_KEEP).execute(db.writer()).await
            {
                tracing::warn!(error = %e, "pruning the change log failed");
            }
        }
    }
}

async fn listen_postgres(
    mut listener: sqlx::postgres::PgListener,
    feed: ChangeFeed,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            next = listener.try_recv() => next,
            _ = shutdown.changed() => return,
        };
        match next {
            Ok(Some(notification)) => match serde_json::from_str::<ChangeEvent>(notification.payload()) {
                Ok(change) => feed.publish(FeedMessage::Change(Arc::new(change))),
                Err(e) => {
                    tracing::warn!(error = %e, payload = notification.payload(), "unreadable change notification")
                }
            },
            Ok(None) => {
                // The connection was lost; the next try_recv reconnects. Notifications sent
                // meanwhile are gone, so every region must resync.
                tracing::warn!("change listener lost its connection; reconnecting and resyncing");
                feed.publish(FeedMessage::Resync { seq: feed.last_seq() });
            }
            Err(e) => {
                tracing::warn!(error = %e, "change listener failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                feed.publish(FeedMessage::Resync { seq: feed.last_seq() });
            }
        }
    }
}
