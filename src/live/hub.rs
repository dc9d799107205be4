//! The dispatcher: marks the topics a change affects, renders each dirty (region, viewer) topic
//! at once when it has been quiet for a window and otherwise once at the end of the window
//! (leading edge, then one trailing render: last state wins), and fans the HTML out to that
//! topic's clients through bounded queues. Also: streams whose regions change while they are
//! open (one stream per browser, shared by its tabs), and streams that follow their session.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::delta::{self, Split};
use super::feed::FeedMessage;
use super::region::{Audience, Region};
use crate::AppState;

mod follow;
use crate::auth::Viewer;
pub use follow::{Follower, Woken};

/// One region's HTML on its way to clients, encoded once as an SSE event for all of them.
#[derive(Debug)]
pub struct Frame {
    pub hash: u64,
    /// `event:`, `id:` and `data:` lines, ready for the wire.
    pub wire: Bytes,
    /// What it is: the wire of a page's stream, or a signal to a subscriber that reads for
    /// itself (see [`Follower`]).
    pub kind: FrameKind,
}

/// What a [`Frame`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A region's HTML, whole or as the rows that changed.
    Region,
    /// A control event (`hello`, `session`, `refused`).
    Control,
    /// To a [`Follower`]: what it follows changed; read again.
    Changed,
    /// To a [`Follower`]: check access again (a membership or the widget changed).
    Recheck,
}

impl Frame {
    /// Encodes `html` of `region` as the region's event (its `sse-swap` name) with id `seq`. The
    /// first data line is `KEY HASH` (the region's key, the HTML's hash in hex: what a client
    /// sends back to say what it has); the HTML follows.
    pub fn new(region: &Region, seq: i64, html: &str) -> Self {
        let hash = html_hash(html);
        let head = format!("{} {hash:016x}\n", region.key());
        let mut data = String::with_capacity(head.len() + html.len());
        data.push_str(&head);
        data.push_str(html);
        Self { hash, wire: encode_event(region.event_name(), Some(seq), &data), kind: FrameKind::Region }
    }

    /// Rows of `region` that changed since the HTML of hash `base`, as steps (see
    /// [`delta`](super::delta)) that bring a page from `base` to the HTML of hash `hash`. The
    /// first data line is `KEY HASH BASE`; a page that does not have `base` asks for the whole.
    pub fn delta(region: &Region, seq: i64, base: u64, hash: u64, steps: &str) -> Self {
        let head = format!("{} {hash:016x} {base:016x}\n", region.key());
        let mut data = String::with_capacity(head.len() + steps.len());
        data.push_str(&head);
        data.push_str(steps);
        Self { hash, wire: encode_event(region.event_name(), Some(seq), &data), kind: FrameKind::Region }
    }

    /// A control event (`hello`, `session`) that no region dedupe applies to.
    pub fn control(event: &str, data: &str) -> Self {
        Self { hash: 0, wire: encode_event(event, None, data), kind: FrameKind::Control }
    }

    /// A signal to a [`Follower`] (never on a page's wire).
    pub fn signal(kind: FrameKind, seq: i64) -> Self {
        Self { hash: seq as u64, wire: Bytes::new(), kind }
    }
}

/// An SSE event: the `event:` and `id:` lines, then one `data:` line per line of `data` (CR,
/// LF and CRLF all end a line in SSE, so each becomes a line break of the data).
pub fn encode_event(event: &str, seq: Option<i64>, data: &str) -> Bytes {
    let mut wire = BytesMut::with_capacity(data.len() + data.len() / 16 + 48);
    wire.extend_from_slice(b"event: ");
    wire.extend_from_slice(event.as_bytes());
    if let Some(seq) = seq {
        wire.extend_from_slice(b"\nid: ");
        wire.extend_from_slice(seq.to_string().as_bytes());
    }
    let mut rest = data;
    loop {
        wire.extend_from_slice(b"\ndata: ");
        match rest.find(['\r', '\n']) {
            Some(end) => {
                wire.extend_from_slice(&rest.as_bytes()[..end]);
                let next = if rest[end..].starts_with("\r\n") { end + 2 } else { end + 1 };
                rest = &rest[next..];
            }
            None => {
                wire.extend_from_slice(rest.as_bytes());
                break;
            }
        }
    }
    wire.extend_from_slice(b"\n\n");
    wire.freeze()
}

/// The limits on open streams.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_ip: usize,
    pub per_session: usize,
    /// Frames a client may have queued before it counts as too slow and is dropped.
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { total: 20_000, per_ip: 500, per_session: 16, queue: 160 }
    }
}

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

/// A topic is a region as one audience sees it ([`Region::admit`]): rendered once for all of
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
            if let Some(topic) = self.topics.get_mut(&key) {
                topic.clients.remove(&id);
                if topic.clients.is_empty() {
                    self.topics.remove(&key);
                }
            }
        }
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

#[derive(Debug, Default)]
struct Admission {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_session: HashMap<String, usize>,
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

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyTotal,
    TooManyFromIp,
    TooManyForSession,
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

/// A stable hash of a region's HTML.
pub fn html_hash(html: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}

/// How often the sessions behind open streams are checked (revoked, expired, rights changed).
pub const SESSION_CHECK: Duration = Duration::from_secs(2);

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

    /// Admits a new stream or says why not. The returned guard gives the slot back when dropped.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>, session: Option<String>) -> Result<Admitted, Refusal> {
        let mut admission = lock(&self.admission);
        if admission.total >= self.limits.total {
            return Err(Refusal::TooManyTotal);
        }
        if let Some(ip) = ip
            && admission.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip
        {
            return Err(Refusal::TooManyFromIp);
        }
        if let Some(session) = &session
            && admission.per_session.get(session).copied().unwrap_or(0) >= self.limits.per_session
        {
            return Err(Refusal::TooManyForSession);
        }
        admission.total += 1;
        if let Some(ip) = ip {
            *admission.per_ip.entry(ip).or_default() += 1;
        }
        if let Some(session) = &session {
            *admission.per_session.entry(session.clone()).or_default() += 1;
        }
        self.stats.streams_open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted { hub: Arc::clone(self), ip, session, client: None })
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
        let topic = inner.topics.entry(TopicKey::new(region, audience)).or_insert_with(Topic::new);
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

    /// Takes `region` off client `id`'s stream.
    pub fn leave(&self, id: u64, region: &Region) {
        let mut inner = lock(&self.inner);
        let Some(client) = inner.clients.get_mut(&id) else { return };
        let Some(at) = client.regions.iter().position(|(r, _)| r == region) else { return };
        let (_, audience) = client.regions.remove(at);
        let key = TopicKey::new(region, &audience);
        if let Some(topic) = inner.topics.get_mut(&key) {
            topic.clients.remove(&id);
            if topic.clients.is_empty() {
                inner.topics.remove(&key);
            }
        }
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
        inner.clients.clear();
        inner.tokens.clear();
    }

    /// A receiver that turns true when [`close_all`](Self::close_all) runs.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Ends the streams of a session that ended (sign-out, revocation, expiry): each gets a
    /// `session` event saying `ended`, then its stream closes.
    pub fn end_session(&self, token_hash: &str) {
        self.end_where("ended", |client| client.session.as_deref() == Some(token_hash));
    }

    /// Ends streams whose session is in `sessions`, telling each why (`reason`: `ended`, or
    /// `changed` when the person's rights changed and the browser should reconnect).
    fn end_where(&self, reason: &str, matches: impl Fn(&Client) -> bool) -> usize {
        let mut inner = lock(&self.inner);
        let ids: Vec<u64> = inner.clients.iter().filter(|(_, c)| matches(c)).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return 0;
        }
        let frame = Arc::new(Frame::control("session", reason));
        for id in &ids {
            // A full queue is ended all the same.
            inner.send(&self.stats, *id, &frame);
            inner.drop_client(*id);
        }
        self.stats.streams_ended_by_session.fetch_add(ids.len() as u64, Ordering::Relaxed);
        ids.len()
    }

    /// The sessions behind open streams, each with the site-wide rights its streams were
    /// opened with.
    fn watched_sessions(&self) -> HashMap<String, bool> {
        let inner = lock(&self.inner);
        inner.clients.values().filter_map(|c| Some((c.session.clone()?, c.viewer.is_admin))).collect()
    }

    /// Checks the sessions behind open streams every [`SESSION_CHECK`] until `shutdown`: a
    /// session revoked or expired ends its streams; one whose person's admin flag changed ends
    /// them with `changed`, and the browser reconnects with its new rights (each region is
    /// authorized again).
    pub async fn follow_sessions(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
        let hub = Arc::clone(&state.live);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SESSION_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            let watched = hub.watched_sessions();
            if watched.is_empty() {
                continue;
            }
            let hashes: Vec<String> = watched.keys().cloned().collect();
            let live = match crate::db::sessions::rights_of_live(&state.db, &hashes, crate::db::now_ms()).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "checking the sessions of live streams failed; retrying");
                    continue;
                }
            };
            let live: HashMap<String, bool> = live.into_iter().collect();
            let ended: HashSet<&String> = watched.keys().filter(|h| !live.contains_key(*h)).collect();
            let changed: HashSet<&String> = watched
                .iter()
                .filter(|(h, admin)| live.get(*h).is_some_and(|now| now != *admin))
                .map(|(h, _)| h)
                .collect();
            if !ended.is_empty() {
                let n = hub.end_where("ended", |c| c.session.as_ref().is_some_and(|s| ended.contains(s)));
                tracing::info!(streams = n, "ended the live streams of sessions that ended");
            }
            if !changed.is_empty() {
                let n = hub.end_where("changed", |c| {
                    c.session.as_ref().is_some_and(|s| {
                        changed.contains(s) && live.get(s.as_str()).is_some_and(|admin| *admin != c.viewer.is_admin)
                    })
                });
                tracing::info!(streams = n, "ended the live streams of people whose rights changed");
            }
        }
    }

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
    async fn recheck(&self, state: &web::Data<AppState>) {
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
                let now = region.admit(state, &viewer).await;
                (id, region, audience, now)
            })
            .buffer_unordered(8);
        while let Some((id, region, audience, now)) = checks.next().await {
            match now {
                Ok(now) if now == audience => {}
                Ok(now) => {
                    self.stats.audiences_changed.fetch_add(1, Ordering::Relaxed);
                    self.leave(id, &region);
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
                    self.leave(id, &region);
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
    fn mark(&self, message: Result<FeedMessage, broadcast::error::RecvError>) -> bool {
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
        if let Some(change) = change.as_ref() {
            let inner = &mut *inner;
            for (key, topic) in &inner.topics {
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
        for (key, topic) in inner.topics.iter_mut() {
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
    fn next_due(&self) -> Option<Instant> {
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
    async fn flush(&self, state: &web::Data<AppState>) {
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
                let html = key.region.render_for(state, &viewer, &key.audience).await;
                (key, seq, html)
            })
            .buffer_unordered(4);
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
            let frame = Arc::new(Frame::new(&key.region, seq, &html));
            let split = delta::split(&html);
            self.fan_out(&key, seq, &frame, split);
        }
    }

    /// Sends a topic's new render to its clients: as the rows that changed to those that have
    /// the previous render, whole to the others (and to none that have it already).
    fn fan_out(&self, key: &TopicKey, seq: i64, frame: &Arc<Frame>, split: Option<Split>) {
        let mut inner = lock(&self.inner);
        let Some(topic) = inner.topics.get_mut(key) else { return };
        let split = split.map(Arc::new);
        let delta = match (&topic.last, &topic.split, &split) {
            (Some(last), Some(old), Some(new)) if last.hash != frame.hash => delta::delta(old, new)
                .filter(|steps| steps.len() < frame.wire.len())
                .map(|steps| (last.hash, Arc::new(Frame::delta(&key.region, seq, last.hash, frame.hash, &steps)))),
            _ => None,
        };
        topic.generation += 1;
        topic.last = Some(Arc::clone(frame));
        topic.split = split;
        let targets: Vec<(u64, bool)> = topic
            .clients
            .iter_mut()
            .filter(|(_, have)| **have != Some(frame.hash))
            .map(|(id, have)| {
                let rows = delta.as_ref().is_some_and(|(base, _)| *have == Some(*base));
                *have = Some(frame.hash);
                (*id, rows)
            })
            .collect();
        let mut dropped = Vec::new();
        for (id, rows) in targets {
            let sent = match (&delta, rows) {
                (Some((_, steps)), true) => {
                    self.stats.deltas_sent.fetch_add(1, Ordering::Relaxed);
                    inner.send(&self.stats, id, steps)
                }
                _ => inner.send(&self.stats, id, frame),
            };
            if !sent {
                dropped.push(id);
            }
        }
        for id in dropped {
            inner.drop_client(id);
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// An admitted stream's slot and client, released when dropped (client gone).
#[derive(Debug)]
pub struct Admitted {
    hub: Arc<LiveHub>,
    ip: Option<IpAddr>,
    session: Option<String>,
    client: Option<u64>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(id) = self.client.take() {
            lock(&self.hub.inner).drop_client(id);
        }
        let mut admission = lock(&self.hub.admission);
        admission.total = admission.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(count) = admission.per_ip.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                admission.per_ip.remove(&ip);
            }
        }
        if let Some(session) = &self.session
            && let Some(count) = admission.per_session.get_mut(session)
        {
            *count -= 1;
            if *count == 0 {
                admission.per_session.remove(session);
            }
        }
        self.hub.stats.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_an_event_with_a_data_line_per_line() {
        let wire = encode_event("feed", Some(42), "<ul>\n<li>a\r\nb\rc</li>\n</ul>");
        assert_eq!(&wire[..], b"event: feed\nid: 42\ndata: <ul>\ndata: <li>a\ndata: b\ndata: c</li>\ndata: </ul>\n\n");
        assert_eq!(&encode_event("signals", Some(7), "")[..], b"event: signals\nid: 7\ndata: \n\n");
        assert_eq!(&encode_event("signals", Some(7), "x\n")[..], b"event: signals\nid: 7\ndata: x\ndata: \n\n");
        assert_eq!(&encode_event("hello", None, "t")[..], b"event: hello\ndata: t\n\n");
    }

    #[test]
    fn a_region_frame_names_its_region_and_hash() {
        let region = Region::Feed { hub_id: 3 };
        let (a, b) = (Frame::new(&region, 1, "<p>same</p>"), Frame::new(&region, 2, "<p>same</p>"));
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, Frame::new(&region, 1, "<p>other</p>").hash);
        let wire = String::from_utf8(a.wire.to_vec()).expect("utf-8");
        assert_eq!(wire, format!("event: feed\nid: 1\ndata: feed:3 {:016x}\ndata: <p>same</p>\n\n", a.hash));
    }

    fn viewer(actor: i64) -> Viewer {
        Viewer { actor_id: Some(actor), handle: None, display_name: String::new(), is_admin: false }
    }

    fn person(actor: i64) -> Audience {
        Audience::Person { actor: Some(actor), admin: false }
    }

    fn change(seq: i64, hub_id: i64) -> FeedMessage {
        FeedMessage::Change(Arc::new(super::super::ChangeEvent {
            seq,
            table: "annotations".into(),
            op: "insert".into(),
            hub_id: Some(hub_id),
            widget_id: None,
            row_id: None,
        }))
    }

    #[tokio::test]
    async fn the_first_change_is_due_at_once_and_a_burst_waits_for_the_window() {
        let hub = Arc::new(LiveHub::new(Duration::from_secs(60), Limits::default()));
        let mut admitted = hub.admit(None, None).expect("admitted");
        let (_frames, id, _) = hub.open(&mut admitted, &viewer(1));
        let feed = Region::Feed { hub_id: 1 };
        assert!(matches!(hub.join(id, &feed, &person(1), Baseline::Nothing, || 0), Join::Render { .. }));
        assert_eq!(hub.next_due(), None, "nothing waits");
        assert!(hub.mark(Ok(change(1, 2))));
        assert_eq!(hub.next_due(), None, "another hub's change marks nothing");
        assert!(hub.mark(Ok(change(2, 1))));
        let due = hub.next_due().expect("due");
        assert!(due <= Instant::now(), "the first change renders at once");
        // As if it rendered now: the next change waits for the window, and folds with others.
        {
            let mut inner = lock(&hub.inner);
            for topic in inner.topics.values_mut() {
                topic.dirty = false;
                topic.rendered_at = Some(Instant::now());
            }
        }
        for seq in 3..10 {
            assert!(hub.mark(Ok(change(seq, 1))));
        }
        let due = hub.next_due().expect("due");
        assert!(due > Instant::now() + Duration::from_secs(50), "a burst waits for the window");
        assert_eq!(hub.stats.renders_coalesced.load(Ordering::Relaxed), 6, "seven changes, one render");
    }

    #[test]
    fn a_client_that_has_the_current_html_gets_nothing_and_others_get_it_once() {
        let hub = Arc::new(LiveHub::new(Duration::from_millis(10), Limits::default()));
        let region = Region::Feed { hub_id: 1 };
        let mut a = hub.admit(None, None).expect("a");
        let (mut frames_a, id_a, _) = hub.open(&mut a, &viewer(1));
        let mut b = hub.admit(None, None).expect("b");
        let (mut frames_b, id_b, _) = hub.open(&mut b, &viewer(1));
        let Join::Render { generation } = hub.join(id_a, &region, &person(1), Baseline::Nothing, || 0) else {
            panic!("nobody had rendered it")
        };
        hub.joined_with(id_a, &region, generation, Frame::new(&region, 1, "<p>one</p>"), None);
        assert!(frames_a.try_recv().is_ok(), "a gets its render");
        let hash = html_hash("<p>one</p>");
        assert!(matches!(hub.join(id_b, &region, &person(1), Baseline::Hash(hash), || 0), Join::Authorize));
        let key = TopicKey::new(&region, &person(1));
        hub.fan_out(&key, 2, &Arc::new(Frame::new(&region, 2, "<p>one</p>")), None);
        assert!(frames_a.try_recv().is_err() && frames_b.try_recv().is_err(), "same HTML: nothing sent");
        hub.fan_out(&key, 3, &Arc::new(Frame::new(&region, 3, "<p>two</p>")), None);
        assert!(frames_a.try_recv().is_ok() && frames_b.try_recv().is_ok());
        // A render that a fan-out overtook is dropped: the client already has newer HTML.
        let mut c = hub.admit(None, None).expect("c");
        let (mut frames_c, id_c, _) = hub.open(&mut c, &viewer(2));
        let Join::Render { generation } = hub.join(id_c, &region, &person(2), Baseline::Nothing, || 0) else {
            panic!("render")
        };
        let key_c = TopicKey::new(&region, &person(2));
        hub.fan_out(&key_c, 5, &Arc::new(Frame::new(&region, 5, "<p>newer</p>")), None);
        hub.joined_with(id_c, &region, generation, Frame::new(&region, 4, "<p>older</p>"), None);
        let got = frames_c.try_recv().expect("the fan-out");
        assert_eq!(got.hash, html_hash("<p>newer</p>"));
        assert!(frames_c.try_recv().is_err(), "the overtaken render is not sent");
    }

    fn list(rows: &[&str]) -> String {
        let rows: String = rows.iter().map(|r| format!("<li id=\"r{r}\">{r}</li>\n")).collect();
        format!("<ol id=\"l\" data-live-list>\n{rows}</ol>")
    }

    #[test]
    fn one_render_reaches_an_audience_and_those_with_the_last_get_only_the_rows() {
        let hub = Arc::new(LiveHub::new(Duration::from_millis(10), Limits::default()));
        let region = Region::Feed { hub_id: 1 };
        let first = list(&["a", "b"]);
        let (mut a, mut b, mut c) =
            (hub.admit(None, None).expect("a"), hub.admit(None, None).expect("b"), hub.admit(None, None).expect("c"));
        let (mut frames_a, id_a, _) = hub.open(&mut a, &viewer(1));
        let (mut frames_b, id_b, _) = hub.open(&mut b, &viewer(2));
        let (mut frames_c, id_c, _) = hub.open(&mut c, &viewer(3));
        let Join::Render { generation } = hub.join(id_a, &region, &Audience::Staff, Baseline::Nothing, || 0) else {
            panic!("render")
        };
        hub.joined_with(id_a, &region, generation, Frame::new(&region, 1, &first), delta::split(&first));
        assert!(frames_a.try_recv().is_ok());
        // Two more people of the same audience: one topic, nothing rendered for them.
        assert!(matches!(
            hub.join(id_b, &region, &Audience::Staff, Baseline::Hash(html_hash(&first)), || 0),
            Join::Authorize
        ));
        assert!(matches!(hub.join(id_c, &region, &Audience::Staff, Baseline::Nothing, || 0), Join::CatchUp));
        hub.catch_up(id_c, &region);
        assert!(frames_c.try_recv().is_ok(), "c gets the whole region");
        assert_eq!(hub.topics(), 1, "one topic for the three of them");
        let next = list(&["n", "a", "b"]);
        let key = TopicKey::new(&region, &Audience::Staff);
        hub.fan_out(&key, 2, &Arc::new(Frame::new(&region, 2, &next)), delta::split(&next));
        for frames in [&mut frames_a, &mut frames_b, &mut frames_c] {
            let frame = frames.try_recv().expect("the update");
            let wire = String::from_utf8(frame.wire.to_vec()).expect("utf-8");
            assert!(wire.contains("data-id=\"rn\""), "only the new row: {wire}");
            assert!(!wire.contains(">a<"), "not the unchanged rows: {wire}");
            assert_eq!(frame.hash, html_hash(&next));
        }
        assert_eq!(hub.stats.deltas_sent.load(Ordering::Relaxed), 3);
    }
}
