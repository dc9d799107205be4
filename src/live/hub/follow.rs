//! Subscribers that read for themselves: the data API's subscriptions and the embed's live
//! thread. They join the dispatcher like a page's stream joins a region ([`Region::Follow`]),
//! so the same change feed, topic index, leading-edge coalescing, bounded queues, session
//! following and membership re-checks apply to them; but what each is sent is read or rendered
//! as its own credential (an API key, an embed token, a session), by its own task, when the
//! dispatcher wakes it. A row the subscriber may not read never travels: the read that follows
//! a wake applies the access policy (and, on PostgreSQL, Row Level Security) as that caller.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::{Admitted, Frame, FrameKind, LiveHub, TopicKey, lock};
use crate::auth::Viewer;
use crate::live::region::{Audience, Region};

/// What woke a [`Follower`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// What it follows changed: read again (a burst arrives as one, per the live window).
    Changed,
    /// The hub's memberships or the widget changed: check access again before reading.
    Recheck,
    /// Nothing happened for the follower's quiet period: check the credential still holds.
    Quiet,
    /// The dispatcher let it go (shutdown, its session ended, too slow to keep up): end.
    Ended,
}

/// A subscriber's end of the dispatcher: its slot among the live streams and its queue.
#[derive(Debug)]
pub struct Follower {
    frames: mpsc::Receiver<Arc<Frame>>,
    /// A change arrived together with a recheck: reported at the next wait.
    changed: bool,
    quiet: Duration,
    _admitted: Admitted,
}

impl Follower {
    /// Waits for the next thing to do. Everything already queued is taken at once: a recheck
    /// first, then one read for any number of changes.
    pub async fn wait(&mut self) -> Woken {
        if std::mem::take(&mut self.changed) {
            return Woken::Changed;
        }
        let mut next = tokio::select! {
            frame = self.frames.recv() => frame,
            () = tokio::time::sleep(self.quiet) => return Woken::Quiet,
        };
        let mut recheck = false;
        loop {
            let Some(frame) = next else { return Woken::Ended };
            match frame.kind {
                FrameKind::Changed => self.changed = true,
                FrameKind::Recheck => recheck = true,
                // A `session` event (its session ended or its rights changed): over.
                FrameKind::Control | FrameKind::Region => return Woken::Ended,
            }
            next = match self.frames.try_recv() {
                Ok(frame) => Some(frame),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => None,
            };
        }
        if recheck {
            Woken::Recheck
        } else if std::mem::take(&mut self.changed) {
            Woken::Changed
        } else {
            Woken::Quiet
        }
    }
}

impl LiveHub {
    /// Registers an admitted subscriber as `viewer`, following `region` (a
    /// [`Region::Follow`]); it is woken when a change affects it, at most once per window
    /// after the first, and asked to recheck when its access may have changed, and checks its
    /// credential itself after `quiet` without either. Join it *before* the first read, so a
    /// change committed in between still wakes it.
    pub fn follow(
        self: &Arc<Self>,
        mut admitted: Admitted,
        viewer: &Viewer,
        region: Region,
        quiet: Duration,
    ) -> Follower {
        let (frames, id, _) = self.open(&mut admitted, viewer);
        // Followers of one person share a topic: one wake-up for all of them per window.
        let audience = Audience::Person { actor: viewer.actor_id, admin: viewer.is_admin };
        let mut inner = lock(&self.inner);
        if let Some(client) = inner.clients.get_mut(&id) {
            client.regions.push((region.clone(), audience.clone()));
            inner.topic_mut(&TopicKey::new(&region, &audience)).clients.insert(id, None);
        }
        drop(inner);
        Follower { frames, changed: false, quiet, _admitted: admitted }
    }

    /// Wakes every follower of a topic (its "render").
    pub(super) fn wake(&self, key: &TopicKey, seq: i64) {
        let mut inner = lock(&self.inner);
        let Some(topic) = inner.topics.get_mut(key) else { return };
        topic.generation += 1;
        let ids: Vec<u64> = topic.clients.keys().copied().collect();
        let frame = Arc::new(Frame::signal(FrameKind::Changed, seq));
        let dropped: Vec<u64> = ids.into_iter().filter(|id| !inner.send(&self.stats, *id, &frame)).collect();
        for id in dropped {
            inner.drop_client(id);
        }
    }

    /// Sends one follower a signal about `region` (a recheck).
    pub(super) fn signal(&self, id: u64, region: &Region, kind: FrameKind) {
        let mut inner = lock(&self.inner);
        if !inner.clients.get(&id).is_some_and(|c| c.regions.iter().any(|(r, _)| r == region)) {
            return;
        }
        let frame = Arc::new(Frame::signal(kind, 0));
        if !inner.send(&self.stats, id, &frame) {
            inner.drop_client(id);
        }
    }
}
