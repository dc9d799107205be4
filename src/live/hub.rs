//! The dispatcher: coalesces changes, renders each affected (region, viewer) topic once, and
//! fans the HTML out to that topic's clients through bounded queues.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::web;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};

use super::feed::{ChangeEvent, FeedMessage};
use super::region::Region;
use crate::AppState;
use crate::auth::Viewer;

/// One region's HTML on its way to clients, encoded once as an SSE event for all of them.
#[derive(Debug)]
pub struct Frame {
    pub event: &'static str,
    pub hash: u64,
    /// `event:`, `id:` and `data:` lines, ready for the wire.
    pub wire: Bytes,
}

impl Frame {
    /// Encodes `html` as the SSE event `event` with id `seq`.
    pub fn new(event: &'static str, seq: i64, html: &str) -> Self {
        Self { event, hash: html_hash(html), wire: encode_event(event, seq, html) }
    }
}

/// An SSE event: the `event:` and `id:` lines, then one `data:` line per line of `data` (CR,
/// LF and CRLF all end a line in SSE, so each becomes a line break of the data).
pub fn encode_event(event: &str, seq: i64, data: &str) -> Bytes {
    let mut wire = BytesMut::with_capacity(data.len() + data.len() / 16 + 48);
    wire.extend_from_slice(b"event: ");
    wire.extend_from_slice(event.as_bytes());
    wire.extend_from_slice(b"\nid: ");
    wire.extend_from_slice(seq.to_string().as_bytes());
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
        Self { total: 20_000, per_ip: 500, per_session: 16, queue: 32 }
    }
}

/// Counters for `/metrics` and the benchmarks.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub streams_open: AtomicI64,
    pub change_events: AtomicU64,
    pub flushes: AtomicU64,
    pub renders: AtomicU64,
    /// Changes that did not cause a render of their own because a burst was coalesced.
    pub renders_coalesced: AtomicU64,
    pub frames_sent: AtomicU64,
    pub slow_clients_dropped: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TopicKey {
    region: Region,
    actor: Option<i64>,
}

#[derive(Debug)]
struct Topic {
    viewer: Viewer,
    clients: HashMap<u64, mpsc::Sender<Arc<Frame>>>,
    /// The hash of the topic's latest render, a baseline for clients that join later.
    last_hash: Option<u64>,
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
    topics: Mutex<HashMap<TopicKey, Topic>>,
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stable hash of a region's HTML.
pub fn html_hash(html: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    html.hash(&mut hasher);
    hasher.finish()
}

impl LiveHub {
    /// A hub coalescing changes for `window`.
    pub fn new(window: Duration, limits: Limits) -> Self {
        Self {
            topics: Mutex::default(),
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

    /// Subscribes an admitted stream to its regions as `viewer`; frames arrive on the receiver.
    /// Also returns, per region, the hash of the topic's latest render when there is one (so a
    /// client joining an existing topic needs no render of its own to know what it has).
    pub fn subscribe(
        &self,
        admitted: &mut Admitted,
        regions: &[Region],
        viewer: &Viewer,
    ) -> (mpsc::Receiver<Arc<Frame>>, Vec<Option<u64>>) {
        let (sender, receiver) = mpsc::channel(self.limits.queue.max(regions.len() * 2));
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        let mut topics = lock(&self.topics);
        if *self.closed.borrow() {
            // Shutting down: the sender is dropped here, so the stream ends at once.
            return (receiver, vec![None; regions.len()]);
        }
        let mut known = Vec::with_capacity(regions.len());
        for region in regions {
            let key = TopicKey { region: region.clone(), actor: viewer.actor_id };
            let topic = topics.entry(key).or_insert_with(|| Topic {
                viewer: viewer.clone(),
                clients: HashMap::new(),
                last_hash: None,
            });
            topic.clients.insert(id, sender.clone());
            known.push(topic.last_hash);
        }
        admitted.client = Some((id, regions.to_vec(), viewer.actor_id));
        (receiver, known)
    }

    /// Records a client's baseline render as the topic's latest hash when the topic has none
    /// yet, so the next clients of the topic need not render.
    pub fn remember_hash(&self, region: &Region, actor: Option<i64>, hash: u64) {
        let key = TopicKey { region: region.clone(), actor };
        if let Some(topic) = lock(&self.topics).get_mut(&key) {
            topic.last_hash.get_or_insert(hash);
        }
    }

    /// Number of open streams.
    pub fn open_streams(&self) -> usize {
        lock(&self.admission).total
    }

    /// Closes every stream (graceful shutdown): dropping the topics drops every client's queue,
    /// so clients see their stream end and reconnect, to this instance after a restart or to
    /// another one.
    pub fn close_all(&self) {
        let mut topics = lock(&self.topics);
        let _ = self.closed.send(true);
        topics.clear();
    }

    /// A receiver that turns true when [`close_all`](Self::close_all) runs.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    fn unsubscribe(&self, id: u64, regions: &[Region], actor: Option<i64>) {
        let mut topics = lock(&self.topics);
        for region in regions {
            let key = TopicKey { region: region.clone(), actor };
            if let Some(topic) = topics.get_mut(&key) {
                topic.clients.remove(&id);
                if topic.clients.is_empty() {
                    topics.remove(&key);
                }
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
            let first = tokio::select! {
                message = feed.recv() => message,
                _ = shutdown.changed() => return,
            };
            let mut batch = Batch::default();
            if !batch.take(first) {
                return;
            }
            // Coalesce: whatever else arrives within the window joins this flush.
            let deadline = tokio::time::Instant::now() + hub.window;
            loop {
                tokio::select! {
                    message = feed.recv() => if !batch.take(message) { return },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            hub.flush(&state, batch).await;
        }
    }

    async fn flush(&self, state: &web::Data<AppState>, batch: Batch) {
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.change_events.fetch_add(batch.changes.len() as u64, Ordering::Relaxed);
        let dirty: Vec<(TopicKey, Viewer)> = lock(&self.topics)
            .iter()
            .filter(|(key, _)| batch.resync || batch.changes.iter().any(|c| key.region.affected_by(c)))
            .map(|(key, topic)| (key.clone(), topic.viewer.clone()))
            .collect();
        if dirty.is_empty() {
            return;
        }
        let coalesced = (batch.changes.len() as u64).saturating_sub(1);
        self.stats.renders_coalesced.fetch_add(coalesced, Ordering::Relaxed);
        let seq = batch.seq;
        let mut renders = futures_util::stream::iter(dirty)
            .map(|(key, viewer)| async move {
                let html = key.region.render(state, &viewer).await;
                (key, html)
            })
            .buffer_unordered(4);
        while let Some((key, html)) = renders.next().await {
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
            let frame = Arc::new(Frame::new(key.region.event_name(), seq, &html));
            let mut topics = lock(&self.topics);
            let Some(topic) = topics.get_mut(&key) else { continue };
            topic.last_hash = Some(frame.hash);
            topic.clients.retain(|_, sender| match sender.try_send(Arc::clone(&frame)) {
                Ok(()) => {
                    self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Too slow to keep up: drop it rather than slow anyone else down. Its
                    // stream ends; the browser reconnects and gets the current state.
                    self.stats.slow_clients_dropped.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
}

/// The changes of one coalesced flush.
#[derive(Default)]
struct Batch {
    changes: Vec<Arc<ChangeEvent>>,
    resync: bool,
    seq: i64,
}

impl Batch {
    /// Adds a received message; false when the feed is closed.
    fn take(&mut self, message: Result<FeedMessage, broadcast::error::RecvError>) -> bool {
        match message {
            Ok(FeedMessage::Change(change)) => {
                self.seq = self.seq.max(change.seq);
                self.changes.push(change);
            }
            Ok(FeedMessage::Resync { seq }) => {
                self.seq = self.seq.max(seq);
                self.resync = true;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "live dispatcher lagged; resyncing every region");
                self.resync = true;
            }
            Err(broadcast::error::RecvError::Closed) => return false,
        }
        true
    }
}

/// An admitted stream's slot and subscriptions, released when dropped (client gone).
#[derive(Debug)]
pub struct Admitted {
    hub: Arc<LiveHub>,
    ip: Option<IpAddr>,
    session: Option<String>,
    client: Option<(u64, Vec<Region>, Option<i64>)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((id, regions, actor)) = self.client.take() {
            self.hub.unsubscribe(id, &regions, actor);
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
        let wire = encode_event("feed", 42, "<ul>\n<li>a\r\nb\rc</li>\n</ul>");
        assert_eq!(&wire[..], b"event: feed\nid: 42\ndata: <ul>\ndata: <li>a\ndata: b\ndata: c</li>\ndata: </ul>\n\n");
        assert_eq!(&encode_event("signals", 7, "")[..], b"event: signals\nid: 7\ndata: \n\n");
        assert_eq!(&encode_event("signals", 7, "x\n")[..], b"event: signals\nid: 7\ndata: x\ndata: \n\n");
    }

    #[test]
    fn equal_html_gives_equal_frames() {
        let (a, b) = (Frame::new("feed", 1, "<p>same</p>"), Frame::new("feed", 2, "<p>same</p>"));
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, Frame::new("feed", 1, "<p>other</p>").hash);
    }
}
