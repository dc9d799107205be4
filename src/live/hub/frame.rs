//! What travels on a live stream: one region's event, encoded once for all its clients.

use std::sync::OnceLock;

use actix_web::web::{Bytes, BytesMut};

use crate::live::gzip::Chunk;

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
    /// The wire deflated, for the streams that take gzip: made once, by the first of them.
    gzip: OnceLock<Chunk>,
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
    fn with(hash: u64, wire: Bytes, kind: FrameKind) -> Self {
        Self { hash, wire, kind, gzip: OnceLock::new() }
    }

    /// [`wire`](Self::wire) deflated on its own (see [`gzip`](crate::live::gzip)), compressed
    /// once for every stream it goes to.
    pub fn gzipped(&self) -> &Chunk {
        self.gzip.get_or_init(|| Chunk::new(&self.wire))
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
