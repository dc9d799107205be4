//! Event ingestion with group commit on SQLite.
//!
//! SQLite has one writer. Batches that each begin, insert and commit on it take turns, and the
//! writer idles between a transaction's steps while the task holding it waits to be scheduled.
//! Here one thread owns the writing: it takes every batch waiting at that moment (up to
//! [`MAX_GROUP_EVENTS`]) and commits them in one transaction, then answers each sender only
//! once the commit succeeded (an answer is never sent for rows that are not durable). When a
//! group fails because of its data, its batches are retried one by one, so each batch gets its
//! own outcome; when it fails because the database cannot write (disk full, locked), every
//! sender gets that outage at once. A failed group leaves no transaction behind: the writer
//! pool replaces a connection that comes back inside one (see `db::outside_transaction`).
//!
//! PostgreSQL has many writers and checks every row against the caller's policies, so each
//! batch there keeps its own transaction, acting for its caller.

use tokio::sync::{mpsc, oneshot};

use super::api::{self, RlsScope};
use super::events::{self, EncodedEvents, NewEvent};
use super::{Backend, Db, StoreError};

/// Most events committed in one group transaction.
pub const MAX_GROUP_EVENTS: usize = 5_000;
/// Batches waiting for the writer before senders wait for room.
const QUEUE: usize = 256;

struct Job {
    events: EncodedEvents,
    done: oneshot::Sender<Result<u64, StoreError>>,
}

/// Inserts batches of interaction events; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventIngest {
    db: Db,
    /// The group writer's queue (SQLite only).
    jobs: Option<mpsc::Sender<Job>>,
}

impl EventIngest {
    /// Starts the group writer on SQLite; it stops when the last handle is dropped.
    ///
    /// The writer gets a thread of its own (with a single-threaded runtime): as a task among
    /// the others, every step of a group waited its turn behind whatever else was queued, and
    /// the database thread sat idle meanwhile.
    pub fn start(db: Db) -> std::io::Result<Self> {
        let jobs = match db.backend() {
            Backend::Postgres => None,
            Backend::Sqlite => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let writer = db.clone();
                std::thread::Builder::new()
                    .name("ihf-event-writer".into())
                    .spawn(move || runtime.block_on(write_groups(writer, receiver)))?;
                Some(sender)
            }
        };
        Ok(Self { db, jobs })
    }

    /// Inserts one batch acting for `scope` (PostgreSQL's policies check every row); returns
    /// how many rows were inserted once they are committed.
    pub async fn insert(&self, scope: RlsScope, events: &[NewEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        // Encoded here, on the caller's thread, so the writer only writes.
        let events = EncodedEvents::new(events);
        let Some(jobs) = &self.jobs else {
            let written = async {
                let mut tx = api::begin(&self.db, scope, true).await?;
                let inserted = events::insert_encoded(&mut tx, &[&events]).await?;
                tx.commit().await?;
                Ok(inserted)
            };
            return self.db.note(written.await);
        };
        // The writer is gone only when the app is shutting down.
        let stopped = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        let (done, outcome) = oneshot::channel();
        jobs.send(Job { events, done }).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The group writer: commits whatever batches are waiting together.
async fn write_groups(db: Db, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut size = first.events.len() as usize;
        let mut group = vec![first];
        while size < MAX_GROUP_EVENTS {
            let Ok(job) = jobs.try_recv() else { break };
            size += job.events.len() as usize;
            group.push(job);
        }
        let batches: Vec<&EncodedEvents> = group.iter().map(|job| &job.events).collect();
        match events::commit_encoded(&db, &batches).await {
            Ok(_) => {
                // One statement inserted every batch whole, or failed.
                for job in group {
                    let _ = job.done.send(Ok(job.events.len()));
                }
            }
            Err(e) if group.len() == 1 => {
                let _ = group.remove(0).done.send(Err(e));
            }
            Err(e) => match e.outage() {
                // Disk full, locked, unreachable: the batches are not at fault and would fail
                // again one by one (each after the busy timeout); every sender hears why at once.
                Some(outage) => {
                    tracing::warn!(error = %e, batches = group.len(), "group commit failed: {}", outage.reason());
                    for job in group {
                        let _ = job.done.send(Err(StoreError::Outage(outage)));
                    }
                }
                None => {
                    tracing::debug!(error = %e, batches = group.len(), "group commit failed; retrying its batches one by one");
                    for job in group {
                        let _ = job.done.send(events::commit_encoded(&db, &[&job.events]).await);
                    }
                }
            },
        }
    }
}
