//! What travels on a live stream: one region's event, encoded once for all its clients.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::web::{Bytes, BytesMut};

use crate::live::gzip::{self, Chunk};

pub use crate::live::delta::html_hash;
use crate::live::region::Region;

/// One region's HTML on its way to clients, encoded once as an SSE event for all of them.
#[derive(Debug)]
pub struct Frame {
    pub hash: u64,
    /// `event:`, `id:` and `data:` lines, ready for the wire.
    pub wire: Bytes,
    /// What it is: the wire of a page's stream, or a signal to a subscriber that reads for
    /// itself (see [`Follower`]).
    pub kind: FrameKind,
    /// This frame among all frames (what a stream's [`Tail`] names it by).
    id: u64,
    /// Rendered for one person's audience: sent on its own, never bundled with what many
    /// streams share (see [`Frame::bundle`]).
    personal: bool,
    /// The wire deflated, for the streams that take gzip: made once, by the first of them.
    gzip: OnceLock<Chunk>,
    /// The wire deflated as it follows a stream's tail (the ids of the frames that tail holds),
    /// made once for all the streams with that tail.
    after: Mutex<Vec<AfterTail>>,
}

/// A tail (its frames' ids) and the frame compressed after it, made by the first stream that
/// needs it.
type AfterTail = (Vec<u64>, Arc<OnceLock<Chunk>>);

/// Most tails one frame is compressed after; streams with yet another tail get it on its own.
const MAX_TAILS: usize = 8;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    fn with(hash: u64, wire: Bytes, kind: FrameKind) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self { hash, wire, kind, id, personal: false, gzip: OnceLock::new(), after: Mutex::default() }
    }

    /// Marks a frame rendered for one person's audience (or not).
    #[must_use]
    pub fn personal(mut self, personal: bool) -> Self {
        self.personal = personal;
        self
    }

    /// [`wire`](Self::wire) deflated on its own (see [`gzip`](crate::live::gzip)), compressed
    /// once for every stream it goes to.
    pub fn gzipped(&self) -> &Chunk {
        self.gzip.get_or_init(|| Chunk::new(&self.wire))
    }

    /// [`wire`](Self::wire) deflated as it follows `tail` on a stream ([`Chunk::after`]):
    /// compressed once for every stream with the same tail.
    pub fn gzipped_after(&self, tail: &Tail) -> Chunk {
        if tail.frames.is_empty() {
            return self.gzipped().clone();
        }
        let slot = {
            let mut after = self.after.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match after.iter().find(|(ids, _)| tail.is(ids)) {
                Some((_, slot)) => Arc::clone(slot),
                None if after.len() < MAX_TAILS => {
                    let slot = Arc::new(OnceLock::new());
                    after.push((tail.ids(), Arc::clone(&slot)));
                    slot
                }
                None => return self.gzipped().clone(),
            }
        };
        slot.get_or_init(|| Chunk::after(&tail.history(), &self.wire)).clone()
    }

    /// Encodes `html` of `region` as the region's event (its `sse-swap` name) with id `seq`. The
    /// first data line is `KEY HASH` (the region's key, the HTML's hash in hex: what a client
    /// sends back to say what it has); the HTML follows.
    pub fn new(region: &Region, seq: i64, html: &str) -> Self {
        let hash = html_hash(html);
        let head = format!("{} {hash:016x}\n", region.key());
        let mut data = String::with_capacity(head.len() + html.len());
        data.push_str(&head);
        data.push_str(html);
        Self::with(hash, encode_event(region.event_name(), Some(seq), &data), FrameKind::Region)
    }

    /// Rows of `region` that changed since the HTML of hash `base`, as steps (see
    /// [`delta`](super::delta)) that bring a page from `base` to the HTML of hash `hash`. The
    /// first data line is `KEY HASH BASE`; a page that does not have `base` asks for the whole.
    pub fn delta(region: &Region, seq: i64, base: u64, hash: u64, steps: &str) -> Self {
        let head = format!("{} {hash:016x} {base:016x}\n", region.key());
        let mut data = String::with_capacity(head.len() + steps.len());
        data.push_str(&head);
        data.push_str(steps);
        Self::with(hash, encode_event(region.event_name(), Some(seq), &data), FrameKind::Region)
    }

    /// A control event (`hello`, `session`) that no region dedupe applies to.
    pub fn control(event: &str, data: &str) -> Self {
        Self::with(0, encode_event(event, None, data), FrameKind::Control)
    }

    /// Shared frames one stream is sent together, as one: their wires one after the other, so
    /// that a gzip stream gets them as one chunk (compressed once for every stream sent the same).
    pub fn bundle(frames: &[&Arc<Frame>]) -> Self {
        let mut wire = BytesMut::with_capacity(frames.iter().map(|f| f.wire.len()).sum());
        for frame in frames {
            wire.extend_from_slice(&frame.wire);
        }
        Self::with(0, wire.freeze(), FrameKind::Region)
    }

    /// This frame among all frames.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Rendered for one person's audience.
    pub fn is_personal(&self) -> bool {
        self.personal
    }

    /// A signal to a [`Follower`] (never on a page's wire).
    pub fn signal(kind: FrameKind, seq: i64) -> Self {
        Self::with(seq as u64, Bytes::new(), kind)
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

/// The frames a gzip stream was sent last, in order and with nothing in between (heartbeats
/// decompress to nothing): the history its next frame may be compressed after. Streams sent the
/// same frames last have the same tail, and share that compression.
#[derive(Debug, Default)]
pub struct Tail {
    frames: VecDeque<Arc<Frame>>,
    /// The bytes of `frames`' wires together.
    len: usize,
}

impl Tail {
    /// `frame` was sent: it ends the tail. A control event (one stream's own) starts it again,
    /// so that what follows is compressed on its own rather than once per stream. A personal
    /// frame (one person's audience, which all their streams share) stays in it: a frame is
    /// compressed after at most [`MAX_TAILS`] tails, so tails that differ from stream to stream
    /// cost at most that many compressions, and then the frame on its own.
    pub fn push(&mut self, frame: &Arc<Frame>) {
        if frame.kind != FrameKind::Region {
            self.frames.clear();
            self.len = 0;
            return;
        }
        self.frames.push_back(Arc::clone(frame));
        self.len += frame.wire.len();
        // Keep only the frames that reach into the window's worth of history.
        while let Some(first) = self.frames.front() {
            if self.len - first.wire.len() < gzip::WINDOW {
                break;
            }
            self.len -= first.wire.len();
            self.frames.pop_front();
        }
    }

    fn is(&self, ids: &[u64]) -> bool {
        self.frames.len() == ids.len() && self.frames.iter().zip(ids).all(|(frame, id)| frame.id == *id)
    }

    fn ids(&self) -> Vec<u64> {
        self.frames.iter().map(|frame| frame.id).collect()
    }

    /// The last [`gzip::WINDOW`] bytes the stream was sent.
    fn history(&self) -> Vec<u8> {
        // Only the first frame can reach before the window (see `push`).
        let mut skip = self.len.saturating_sub(gzip::WINDOW);
        let mut history = Vec::with_capacity(self.len - skip);
        for frame in &self.frames {
            history.extend_from_slice(&frame.wire[skip.min(frame.wire.len())..]);
            skip = skip.saturating_sub(frame.wire.len());
        }
        history
    }
}
