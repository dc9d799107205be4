//! The dispatcher: marks the topics a change affects, renders each dirty (region, viewer) topic
//! at once when it has been quiet for a window and otherwise once at the end of the window
//! (leading edge, then one trailing render: last state wins), and fans the HTML out to that
//! topic's clients through bounded queues. Also: streams whose regions change while they are
//! open (one stream per browser, shared by its tabs), and streams that follow their session.
//!
//! - this file: streams, topics and their clients; joining and leaving regions.
//! - [`frame`]: what travels (one region's event, encoded once for all its clients).
//! - `dispatch`: the loop that marks, coalesces, renders and fans out; membership re-checks.
//! - [`follow`]: subscribers that read for themselves (the data API, the embed).
//! - `sessions`: streams that follow their session.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::delta::Split;
use super::region::{Audience, Region};
use crate::auth::Viewer;

mod admission;
use admission::Admission;
mod dispatch;
pub mod follow;
pub mod frame;
mod sessions;

pub use admission::{Admitted, Limits, Refusal};
pub use follow::{Follower, Woken};
pub use frame::{Frame, FrameKind, Tail, encode_event, html_hash};
pub use sessions::SESSION_CHECK;

/// Counters for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub streams_open: AtomicI64,
    pub change_events: AtomicU64,
    pub flushes: AtomicU64,
    pub renders: AtomicU64,
    /// Changes that did not cause a render of their own: the topic was already waiting for one.
    pub renders_coalesced: AtomicU64,
    pub frames_sent: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
    /// Streams ended because their session ended or its rights changed.
    pub streams_ended_by_session: AtomicU64,
    /// Region updates sent as the rows that changed rather than the whole region.
    pub deltas_sent: AtomicU64,
    /// Viewers moved to another audience or dropped from a region after a membership change.
    pub audiences_changed: AtomicU64,
}

/// A topic is a region as one audience sees it ([`super::Surfaces::admit`]): rendered once for all of
/// them, as any one of them. A person's own audience is keyed by their site-wide rights too:
/// two sessions of the same person share it only while both are (or both are not)
/// administrators. Hub roles are read again at every render; a membership change checks the
/// viewers of shared audiences again ([`LiveHub::recheck`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TopicKey {
    region: Region,
    audience: Audience,
}

impl TopicKey {
    fn new(region: &Region, audience: &Audience) -> Self {
        Self { region: region.clone(), audience: audience.clone() }
    }
}

#[derive(Debug)]
struct Topic {
    /// The latest frame's HTML cut at its lists: what the next render is compared with.
    split: Option<Arc<Split>>,
    /// Client id → the hash of the HTML that client has (`None`: unknown, send the next one).
    clients: HashMap<u64, Option<u64>>,
    /// The latest frame fanned out (or rendered for a joining client): what a client joining
    /// later is brought up to.
    last: Option<Arc<Frame>>,
    /// Fan-outs so far: a joining client's own render is dropped when one happened meanwhile.
    generation: u64,
    /// A change arrived that this topic has not rendered yet.
    dirty: bool,
    /// The highest change sequence among those that made it dirty.
    seq: i64,
    /// When its latest render started: the next may start one window later.
    rendered_at: Option<Instant>,
}

impl Topic {
    fn new() -> Self {
        Self {
            split: None,
            clients: HashMap::new(),
            last: None,
            generation: 0,
            dirty: false,
            seq: 0,
            rendered_at: None,
        }
    }
}

#[derive(Debug)]
struct Client {
    sender: mpsc::Sender<Arc<Frame>>,
    session: Option<String>,
    viewer: Viewer,
    /// Each region with the audience the client joined it in.
    regions: Vec<(Region, Audience)>,
    token: String,
}

#[derive(Debug, Default)]
struct Inner {
    topics: HashMap<TopicKey, Topic>,
    /// Table → hub (`None`: any hub) → the topics whose region reads it there: a change is
    /// matched against these only, not against every topic.
    index: HashMap<&'static str, HashMap<Option<i64>, HashSet<TopicKey>>>,
    /// (client, region) pairs in shared audiences of a hub whose memberships changed: to be
    /// admitted again before the next render is sent.
    recheck: Vec<(u64, Region)>,
    clients: HashMap<u64, Client>,
    /// Stream token (given to the browser in the `hello` event) → client id.
    tokens: HashMap<String, u64>,
}

impl Inner {
    /// Removes a client from everything; its queue's sender is dropped, so its stream ends
    /// once it has sent what is queued.
    fn drop_client(&mut self, id: u64) {
        let Some(client) = self.clients.remove(&id) else { return };
        self.tokens.remove(&client.token);
        for (region, audience) in &client.regions {
            let key = TopicKey::new(region, audience);
            self.leave_topic(id, &key);
        }
    }

    /// The topic of `key`, made (and indexed by its dependencies) if there is none.
    fn topic_mut(&mut self, key: &TopicKey) -> &mut Topic {
        if !self.topics.contains_key(key) {
            for (table, hub) in key.region.dependencies() {
                self.index.entry(table).or_default().entry(hub).or_default().insert(key.clone());
            }
        }
        self.topics.entry(key.clone()).or_insert_with(Topic::new)
    }

    /// Takes client `id` out of a topic, and the topic away when nobody is left.
    fn leave_topic(&mut self, id: u64, key: &TopicKey) {
        let Some(topic) = self.topics.get_mut(key) else { return };
        topic.clients.remove(&id);
        if !topic.clients.is_empty() {
            return;
        }
        self.topics.remove(key);
        for (table, hub) in key.region.dependencies() {
            let Some(hubs) = self.index.get_mut(table) else { continue };
            if let Some(keys) = hubs.get_mut(&hub) {
                keys.remove(key);
                if keys.is_empty() {
                    hubs.remove(&hub);
                }
            }
            if hubs.is_empty() {
                self.index.remove(table);
            }
        }
    }

    /// The topics a change of `table` in hub `hub_id` may affect (by the index).
    fn candidates(&self, table: &str, hub_id: Option<i64>) -> Vec<TopicKey> {
        let Some(hubs) = self.index.get(table) else { return Vec::new() };
        let mut keys: Vec<TopicKey> = hubs.get(&None).into_iter().flatten().cloned().collect();
        if hub_id.is_some() {
            keys.extend(hubs.get(&hub_id).into_iter().flatten().cloned());
        }
        keys
    }

    /// Sends `frame` to `client` unless it has exactly that HTML; false when the client must
    /// be dropped (too slow, or gone).
    fn send(&self, stats: &LiveStats, id: u64, frame: &Arc<Frame>) -> bool {
        let Some(client) = self.clients.get(&id) else { return true };
        match client.sender.try_send(Arc::clone(frame)) {
            Ok(()) => {
                stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Too slow to keep up: drop it rather than slow anyone else down. Its
                // stream ends; the browser reconnects and gets the current state.
                stats.slow_clients_dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Live streams and their topics; one per instance, in `AppState`.
#[derive(Debug)]
pub struct LiveHub {
    inner: Mutex<Inner>,
    admission: Mutex<Admission>,
    next_client: AtomicU64,
    window: Duration,
    limits: Limits,
    closed: watch::Sender<bool>,
    pub stats: LiveStats,
}

/// What a client joining a region already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// The region as its page rendered it at this feed position (`since`).
    Since(i64),
    /// The HTML of this hash, from an earlier event (a tab coming back, a reconnect).
    Hash(u64),
    /// Nothing known: send the current state.
    Nothing,
}

/// What joining a region needs next (see [`LiveHub::join`]).
#[derive(Debug)]
pub enum Join {
    /// The client is up to date or will be by the next fan-out; only access is to be checked.
    Authorize,
    /// The topic's current frame is to be sent once access is checked ([`LiveHub::catch_up`]).
    CatchUp,
    /// Nobody knows the current state: render, then [`LiveHub::joined_with`] (`generation`
    /// tells whether a fan-out overtook the render).
    Render { generation: u64 },
    /// The stream is gone.
    Gone,
    /// The stream already has this region.
    Duplicate,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LiveHub {
    /// A hub whose topics render at most once per `window`.
    pub fn new(window: Duration, limits: Limits) -> Self {
        Self {
            inner: Mutex::default(),
            admission: Mutex::default(),
            next_client: AtomicU64::new(1),
            window,
            limits,
            closed: watch::Sender::new(false),
            stats: LiveStats::default(),
        }
    }

    /// Registers an admitted stream as `viewer`, with no regions yet; frames arrive on the
    /// receiver. Returns the client id and the stream's token (its name for later requests
    /// that change its regions).
    pub fn open(&self, admitted: &mut Admitted, viewer: &Viewer) -> (mpsc::Receiver<Arc<Frame>>, u64, String) {
        let (sender, receiver) = mpsc::channel(self.limits.queue.max(4));
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let token = crate::crypto::random_token(18);
        let mut inner = lock(&self.inner);
        if *self.closed.borrow() {
            // Shutting down: the sender is dropped here, so the stream ends at once.
            return (receiver, id, token);
        }
        let client =
            Client { sender, session: admitted.session.clone(), viewer: viewer.clone(), regions: Vec::new(), token };
        let token = client.token.clone();
        inner.tokens.insert(token.clone(), id);
        inner.clients.insert(id, client);
        admitted.client = Some(id);
        (receiver, id, token)
    }

    /// The client behind a stream token, with its session and viewer.
    pub fn client_by_token(&self, token: &str) -> Option<(u64, Option<String>, Viewer, usize)> {
        let inner = lock(&self.inner);
        let id = *inner.tokens.get(token)?;
        let client = inner.clients.get(&id)?;
        Some((id, client.session.clone(), client.viewer.clone(), client.regions.len()))
    }

    /// Adds `region` to client `id`'s stream, which already has `baseline`, and says what is
    /// needed to bring it up to date. `position` reads the feed's position; it is read after
    /// the client joined the topic, so a change arriving later reaches it through the topic.
    pub fn join(
        &self,
        id: u64,
        region: &Region,
        audience: &Audience,
        baseline: Baseline,
        position: impl FnOnce() -> i64,
    ) -> Join {
        let mut inner = lock(&self.inner);
        let position = position();
        let Some(client) = inner.clients.get_mut(&id) else { return Join::Gone };
        if client.regions.iter().any(|(r, _)| r == region) {
            return Join::Duplicate;
        }
        client.regions.push((region.clone(), audience.clone()));
        let topic = inner.topic_mut(&TopicKey::new(region, audience));
        let last = topic.last.as_ref().map(|frame| frame.hash);
        let (have, next) = match baseline {
            // The page is current but its HTML's hash unknown (the topic's latest frame may hold a
            // change the page lacks whose notification is yet to come): the next fan-out is sent.
            Baseline::Since(since) if since == position => (None, Join::Authorize),
            Baseline::Hash(hash) if last == Some(hash) => (Some(hash), Join::Authorize),
            Baseline::Hash(hash) => (Some(hash), Self::current(topic)),
            Baseline::Since(_) | Baseline::Nothing => (None, Self::current(topic)),
        };
        topic.clients.insert(id, have);
        next
    }

    fn current(topic: &Topic) -> Join {
        match topic.last {
            Some(_) => Join::CatchUp,
            None => Join::Render { generation: topic.generation },
        }
    }

    /// The topic of client `id`'s `region`.
    fn key_of(inner: &Inner, id: u64, region: &Region) -> Option<TopicKey> {
        let client = inner.clients.get(&id)?;
        let (_, audience) = client.regions.iter().find(|(r, _)| r == region)?;
        Some(TopicKey::new(region, audience))
    }

    /// Sends the topic's latest frame to client `id` unless it has it (after [`Join::CatchUp`]).
    pub fn catch_up(&self, id: u64, region: &Region) {
        let mut inner = lock(&self.inner);
        let Some(key) = Self::key_of(&inner, id, region) else { return };
        let Some(topic) = inner.topics.get_mut(&key) else { return };
        let Some(frame) = topic.last.clone() else { return };
        let Some(have) = topic.clients.get_mut(&id) else { return };
        if *have == Some(frame.hash) {
            return;
        }
        *have = Some(frame.hash);
        if !inner.send(&self.stats, id, &frame) {
            inner.drop_client(id);
        }
    }

    /// Completes [`Join::Render`] with the client's own render: sent (and kept as the topic's
    /// latest) unless a fan-out happened since the client joined, which brought it newer HTML.
    pub fn joined_with(&self, id: u64, region: &Region, generation: u64, frame: Frame, split: Option<Split>) {
        let frame = Arc::new(frame);
        let mut inner = lock(&self.inner);
        let Some(key) = Self::key_of(&inner, id, region) else { return };
        let Some(topic) = inner.topics.get_mut(&key) else { return };
        if topic.generation != generation {
            return;
        }
        topic.last = Some(Arc::clone(&frame));
        topic.split = split.map(Arc::new);
        let Some(have) = topic.clients.get_mut(&id) else { return };
        if *have == Some(frame.hash) {
            return;
        }
        *have = Some(frame.hash);
        if !inner.send(&self.stats, id, &frame) {
            inner.drop_client(id);
        }
    }

    /// Takes `region` off client `id`'s stream; false when it was not on it.
    pub fn leave(&self, id: u64, region: &Region) -> bool {
        let mut inner = lock(&self.inner);
        let Some(client) = inner.clients.get_mut(&id) else { return false };
        let Some(at) = client.regions.iter().position(|(r, _)| r == region) else { return false };
        let (_, audience) = client.regions.remove(at);
        inner.leave_topic(id, &TopicKey::new(region, &audience));
        true
    }

    /// Number of open streams.
    pub fn open_streams(&self) -> usize {
        lock(&self.admission).total
    }

    /// Number of topics (distinct region and audience pairs) being watched.
    pub fn topics(&self) -> usize {
        lock(&self.inner).topics.len()
    }

    /// Closes every stream (graceful shutdown): dropping the clients drops every client's
    /// queue, so clients see their stream end and reconnect, to this instance after a restart
    /// or to another one.
    pub fn close_all(&self) {
        let mut inner = lock(&self.inner);
        let _ = self.closed.send(true);
        inner.topics.clear();
        inner.index.clear();
        inner.clients.clear();
        inner.tokens.clear();
    }

    /// A receiver that turns true when [`close_all`](Self::close_all) runs.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

#[cfg(test)]
mod tests;
