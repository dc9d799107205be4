//! The dispatcher's loop: marks the topics a change affects (by the (table, hub) index),
//! re-admits viewers whose memberships changed, renders each dirty topic once per window and
//! fans the HTML out.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix_web::web;
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::{Baseline, Frame, FrameKind, Join, LiveHub, TopicKey, lock};
use crate::AppState;
use crate::auth::Viewer;
use crate::live::delta::{self, Split};
use crate::live::feed::FeedMessage;
use crate::live::region::{Audience, Region};

impl LiveHub {
    /// Runs the dispatcher until the feed closes or `shutdown` turns true.
    pub async fn run(
        state: web::Data<AppState>,
        mut feed: broadcast::Receiver<FeedMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let hub = Arc::clone(&state.live);
        loop {
            let due = hub.next_due();
            let message = tokio::select! {
                message = feed.recv() => Some(message),
                () = sleep_until(due) => None,
                _ = shutdown.changed() => return,
            };
            if let Some(message) = message {
                if !hub.mark(message) {
                    return;
                }
                // Whatever else is already waiting joins this round.
                loop {
                    match feed.try_recv() {
                        Ok(message) => {
                            if !hub.mark(Ok(message)) {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            hub.mark(Err(broadcast::error::RecvError::Lagged(n)));
                        }
                        Err(broadcast::error::TryRecvError::Closed) => return,
                    }
                }
            }
            hub.recheck(&state).await;
            hub.flush(&state).await;
        }
    }

    /// Admits again the viewers of shared audiences whose hub's memberships changed, before
    /// anything more is sent to them: one whose role changed moves to their new audience (and
    /// is sent its HTML), one who lost access leaves the region (and is told so with a
    /// `refused` event naming it).
    pub(super) async fn recheck(&self, state: &web::Data<AppState>) {
        let pending: Vec<(u64, Region, Audience, Viewer)> = {
            let mut inner = lock(&self.inner);
            let pending = std::mem::take(&mut inner.recheck);
            pending
                .into_iter()
                .filter_map(|(id, region)| {
                    let client = inner.clients.get(&id)?;
                    let (_, audience) = client.regions.iter().find(|(r, _)| *r == region)?;
                    Some((id, region, audience.clone(), client.viewer.clone()))
                })
                .collect()
        };
        let (followers, pending): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|(_, region, _, _)| region.follows_itself());
        for (id, region, _, _) in followers {
            self.signal(id, &region, FrameKind::Recheck);
        }
        if pending.is_empty() {
            return;
        }
        let mut checks = futures_util::stream::iter(pending)
            .map(|(id, region, audience, viewer)| async move {
                let now = state.regions.admit(state, &region, &viewer).await;
                (id, region, audience, now)
            })
            .buffer_unordered(8);
        while let Some((id, region, audience, now)) = checks.next().await {
            match now {
                Ok(now) if now == audience => {}
                Ok(now) => {
                    self.stats.audiences_changed.fetch_add(1, Ordering::Relaxed);
                    let _ = self.leave(id, &region);
                    match self.join(id, &region, &now, Baseline::Nothing, || 0) {
                        Join::CatchUp => self.catch_up(id, &region),
                        Join::Render { .. } => {
                            let mut inner = lock(&self.inner);
                            if let Some(topic) = inner.topics.get_mut(&TopicKey::new(&region, &now)) {
                                topic.dirty = true;
                            }
                        }
                        _ => {}
                    }
                }
                Err(crate::error::AppError::Unavailable(_) | crate::error::AppError::Unexpected(_)) => {
                    tracing::warn!(region = %region.key(), "could not check a live viewer again; keeping them");
                }
                Err(_) => {
                    self.stats.audiences_changed.fetch_add(1, Ordering::Relaxed);
                    let _ = self.leave(id, &region);
                    let frame = Arc::new(Frame::control("refused", &region.key()));
                    let mut inner = lock(&self.inner);
                    if !inner.send(&self.stats, id, &frame) {
                        inner.drop_client(id);
                    }
                }
            }
        }
    }

    /// Marks the topics a message affects as dirty; false when the feed is closed.
    pub(super) fn mark(&self, message: Result<FeedMessage, broadcast::error::RecvError>) -> bool {
        let mut inner = lock(&self.inner);
        let (change, seq) = match message {
            Ok(FeedMessage::Change(change)) => {
                let seq = change.seq;
                (Some(change), seq)
            }
            Ok(FeedMessage::Resync { seq }) => (None, seq),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "live dispatcher lagged; resyncing every region");
                (None, 0)
            }
            Err(broadcast::error::RecvError::Closed) => return false,
        };
        self.stats.change_events.fetch_add(1, Ordering::Relaxed);
        // Changes that can move viewers between audiences (or out): a membership change (its
        // row is the person's id) re-admits that person's streams in the hub's shared audiences;
        // a widget's change (its scope) everyone in the shared audience of its thread.
        let candidates: Vec<TopicKey> = match change.as_ref() {
            Some(change) => inner.candidates(&change.table, change.hub_id),
            None => inner.topics.keys().cloned().collect(),
        };
        if let Some(change) = change.as_ref() {
            let inner = &mut *inner;
            for key in &candidates {
                let Some(topic) = inner.topics.get(key) else { continue };
                if !key.region.shares_renders() {
                    continue;
                }
                let who: Option<Option<i64>> = match (&key.region, change.table.as_str()) {
                    (region, "hub_members") if region.hub_id() == change.hub_id => Some(change.row_id),
                    (Region::Thread { widget_id, .. }, "widgets")
                        if change.widget_id == Some(*widget_id) && key.audience == Audience::Everyone =>
                    {
                        Some(None)
                    }
                    (Region::Follow { widget_id, .. }, "widgets") if change.widget_id == Some(*widget_id) => Some(None),
                    _ => None,
                };
                let Some(who) = who else { continue };
                let clients = &inner.clients;
                let chosen = topic
                    .clients
                    .keys()
                    .filter(|id| who.is_none() || clients.get(id).is_some_and(|c| c.viewer.actor_id == who));
                inner.recheck.extend(chosen.map(|id| (*id, key.region.clone())));
            }
        }
        for key in &candidates {
            let Some(topic) = inner.topics.get_mut(key) else { continue };
            if change.as_ref().is_none_or(|c| key.region.affected_by(c)) {
                if topic.dirty {
                    self.stats.renders_coalesced.fetch_add(1, Ordering::Relaxed);
                }
                topic.dirty = true;
                topic.seq = topic.seq.max(seq);
            }
        }
        true
    }

    /// When the next dirty topic may render (`None`: none is waiting).
    pub(super) fn next_due(&self) -> Option<Instant> {
        let inner = lock(&self.inner);
        inner
            .topics
            .values()
            .filter(|t| t.dirty)
            .map(|t| t.rendered_at.map_or_else(Instant::now, |at| at + self.window))
            .min()
    }

    /// Renders every dirty topic whose window has passed and fans the HTML out. Topics that
    /// rendered less than a window ago stay dirty for their trailing render.
    pub(super) async fn flush(&self, state: &web::Data<AppState>) {
        let now = Instant::now();
        let due: Vec<(TopicKey, Viewer, i64)> = {
            let mut inner = lock(&self.inner);
            let inner = &mut *inner;
            let clients = &inner.clients;
            inner
                .topics
                .iter_mut()
                .filter(|(_, t)| t.dirty && t.rendered_at.is_none_or(|at| at + self.window <= now))
                .filter_map(|(key, topic)| {
                    topic.dirty = false;
                    topic.rendered_at = Some(now);
                    // Rendered as any one of its audience (all of them see the same).
                    let viewer = topic.clients.keys().find_map(|id| clients.get(id))?.viewer.clone();
                    Some((key.clone(), viewer, topic.seq))
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        // Subscribers that read for themselves are woken, not rendered for.
        let (followed, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|(key, _, _)| key.region.follows_itself());
        for (key, _, seq) in followed {
            self.wake(&key, seq);
        }
        let mut renders = futures_util::stream::iter(due)
            .map(|(key, viewer, seq)| async move {
                let started = Instant::now();
                let html = state.regions.render(state, &key.region, &viewer, &key.audience).await;
                tracing::debug!(region = %key.region.key(), ms = started.elapsed().as_secs_f64() * 1000.0, "live region rendered");
                (key, seq, html)
            })
            .buffer_unordered(4);
        let mut rendered = Vec::new();
        while let Some((key, seq, html)) = renders.next().await {
            self.stats.renders.fetch_add(1, Ordering::Relaxed);
            let html = match html {
                Ok(html) => html,
                Err(e) => {
                    // Lost access, hub gone, database trouble: send nothing; the client keeps
                    // what it has and the next change retries.
                    tracing::debug!(region = %key.region.key(), error = %e, "live region not rendered");
                    continue;
                }
            };
            let frame = Arc::new(Frame::new(&key.region, seq, &html).personal(key.audience.is_personal()));
            let split = delta::split(&html);
            rendered.push(Rendered { key, seq, frame, split });
        }
        // All of this round's regions go out together: a stream is woken once and writes them
        // in one go, rather than once per region.
        self.fan_out_all(rendered);
    }

    /// Sends a topic's new render to its clients (see [`fan_out_all`](Self::fan_out_all)).
    #[cfg(test)]
    pub(super) fn fan_out(&self, key: &TopicKey, seq: i64, frame: &Arc<Frame>, split: Option<Split>) {
        self.fan_out_all(vec![Rendered { key: key.clone(), seq, frame: Arc::clone(frame), split }]);
    }

    /// Sends topics' new renders to their clients: as the rows that changed to those that have
    /// the previous render, whole to the others (and to none that have it already). Each
    /// client is sent all of its frames before the next client is sent any.
    pub(super) fn fan_out_all(&self, rendered: Vec<Rendered>) {
        let mut inner = lock(&self.inner);
        let mut targets: Vec<(u64, Arc<Frame>)> = Vec::new();
        for Rendered { key, seq, frame, split } in rendered {
            let Some(topic) = inner.topics.get_mut(&key) else { continue };
            let split = split.map(Arc::new);
            let delta = match (&topic.last, &topic.split, &split) {
                (Some(last), Some(old), Some(new)) if last.hash != frame.hash => {
                    delta::delta(old, new).filter(|steps| steps.len() < frame.wire.len()).map(|steps| {
                        let steps = Frame::delta(&key.region, seq, last.hash, frame.hash, &steps);
                        (last.hash, Arc::new(steps.personal(key.audience.is_personal())))
                    })
                }
                _ => None,
            };
            topic.generation += 1;
            topic.last = Some(Arc::clone(&frame));
            topic.split = split;
            for (id, have) in topic.clients.iter_mut().filter(|(_, have)| **have != Some(frame.hash)) {
                let sent = match &delta {
                    Some((base, steps)) if *have == Some(*base) => {
                        self.stats.deltas_sent.fetch_add(1, Ordering::Relaxed);
                        Arc::clone(steps)
                    }
                    _ => Arc::clone(&frame),
                };
                *have = Some(frame.hash);
                targets.push((*id, sent));
            }
        }
        // By client, each client's frames in the order of their topics (a stable sort). Its
        // shared frames go as one bundle (the same frames for many clients make one bundle for
        // all of them, compressed once), its personal ones after them, each on its own: a
        // bundle holding one person's frame would be compressed once per person.
        targets.sort_by_key(|(id, _)| *id);
        let mut bundles: HashMap<Vec<u64>, Arc<Frame>> = HashMap::new();
        let mut dropped = Vec::new();
        for group in targets.chunk_by(|a, b| a.0 == b.0) {
            let id = group[0].0;
            let (shared, personal): (Vec<&Arc<Frame>>, Vec<&Arc<Frame>>) =
                group.iter().map(|(_, frame)| frame).partition(|frame| !frame.is_personal());
            let bundle = match shared[..] {
                [] => None,
                [frame] => Some(Arc::clone(frame)),
                _ => {
                    let ids: Vec<u64> = shared.iter().map(|frame| frame.id()).collect();
                    Some(Arc::clone(bundles.entry(ids).or_insert_with(|| Arc::new(Frame::bundle(&shared)))))
                }
            };
            let sent = bundle.iter().chain(personal).all(|frame| inner.send(&self.stats, id, frame));
            if !sent {
                dropped.push(id);
            }
        }
        for id in dropped {
            inner.drop_client(id);
        }
    }
}

/// A topic's new render, on its way to [`LiveHub::fan_out_all`].
pub(super) struct Rendered {
    pub(super) key: TopicKey,
    pub(super) seq: i64,
    pub(super) frame: Arc<Frame>,
    pub(super) split: Option<Split>,
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
