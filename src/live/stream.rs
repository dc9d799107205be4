//! `GET /live?regions=…&since=…`: one SSE stream per page, one named event per region.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, ContentEncoding};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, web};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time;

use super::hub::{Admitted, Frame, Refusal};
use super::region::Region;
use crate::AppState;
use crate::auth::Session;
use crate::error::AppError;
use crate::web::chrome::Chrome;

/// Most regions one stream may carry.
const MAX_REGIONS: usize = 16;

#[derive(Deserialize)]
struct LiveQuery {
    regions: String,
    /// The change sequence the page was rendered at: nothing to send at once if unchanged.
    since: Option<i64>,
}

#[get("/live")]
async fn live(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LiveQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let regions: Vec<Region> = query
        .regions
        .split(',')
        .filter(|k| !k.is_empty())
        .map(Region::parse)
        .collect::<Option<_>>()
        .ok_or_else(|| AppError::BadRequest("unknown live region".into()))?;
    if regions.is_empty() || regions.len() > MAX_REGIONS {
        return Err(AppError::BadRequest(format!("between 1 and {MAX_REGIONS} live regions")));
    }
    let viewer = chrome.viewer;
    let session = req.extensions().get::<Session>().map(|s| s.token_hash.clone());
    let ip = req.peer_addr().map(|a| a.ip());
    let mut admitted = state.live.admit(ip, session).map_err(|refusal| {
        tracing::info!(?refusal, "live stream refused");
        AppError::Overloaded(match refusal {
            Refusal::TooManyTotal => 10,
            Refusal::TooManyFromIp | Refusal::TooManyForSession => 30,
        })
    })?;

    // Subscribe before rendering, so a change between the two is not missed.
    let (receiver, known) = state.live.subscribe(&mut admitted, &regions, &viewer);
    let seq = state.feed.current_seq();
    let resumed = req.headers().contains_key("Last-Event-ID");
    let stale = query.since.is_none_or(|since| since < seq);
    let mut initial = Vec::new();
    let mut last_sent = Vec::with_capacity(regions.len());
    for (region, known) in regions.iter().zip(known) {
        match known {
            // Nothing changed since the page was rendered and others watch the same topic: the
            // topic's latest hash is what this client has; only check access.
            Some(hash) if !resumed && !stale => {
                region.authorize(&state, &viewer).await?;
                last_sent.push((region.event_name(), hash));
            }
            _ => {
                // Renders as the viewer: a region they may not read refuses the whole stream.
                let html = region.render(&state, &viewer).await?;
                let frame = Frame::new(region.event_name(), seq, &html);
                state.live.remember_hash(region, viewer.actor_id, frame.hash);
                last_sent.push((region.event_name(), frame.hash));
                if resumed || stale {
                    initial.push(frame);
                }
            }
        }
    }

    let mut prefix = BytesMut::from(RETRY);
    for frame in initial {
        prefix.extend_from_slice(&frame.wire);
    }
    let heartbeat = Duration::from_secs(state.config.live_heartbeat_secs.max(1));
    let body = LiveBody {
        prefix: Some(prefix.freeze()),
        frames: receiver,
        last_sent,
        heartbeat: time::interval_at(time::Instant::now() + heartbeat, heartbeat),
        _admitted: admitted,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(ContentEncoding::Identity) // compression would hold events back
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(body))
}

/// How soon the browser reconnects after the stream drops.
const RETRY: &[u8] = b"retry: 2000\n\n";

/// A comment line: keeps proxies from timing the stream out and lets the server notice a
/// client that went away (a write fails).
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// The body of one live stream: the `retry:` line and any initial frames, then the frames the
/// hub fans out (pre-encoded, shared by every client of a topic), each only when its HTML
/// differs from what this client last received, and a heartbeat when nothing else was sent.
/// It ends when the hub drops the client's queue (shutdown, or too slow to keep up).
struct LiveBody {
    prefix: Option<Bytes>,
    frames: mpsc::Receiver<Arc<Frame>>,
    /// Per region (event name), the hash of the HTML this client last received.
    last_sent: Vec<(&'static str, u64)>,
    heartbeat: time::Interval,
    /// The stream's slot and subscriptions, released when the body is dropped (client gone).
    _admitted: Admitted,
}

impl LiveBody {
    /// Records `frame` as sent; false when this client already has exactly that HTML.
    fn changes(&mut self, frame: &Frame) -> bool {
        match self.last_sent.iter_mut().find(|(event, _)| *event == frame.event) {
            Some((_, hash)) if *hash == frame.hash => false,
            Some((_, hash)) => {
                *hash = frame.hash;
                true
            }
            None => {
                self.last_sent.push((frame.event, frame.hash));
                true
            }
        }
    }
}

impl MessageBody for LiveBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(prefix)));
        }
        while let Poll::Ready(frame) = this.frames.poll_recv(cx) {
            let Some(frame) = frame else { return Poll::Ready(None) };
            if this.changes(&frame) {
                this.heartbeat.reset();
                return Poll::Ready(Some(Ok(frame.wire.clone())));
            }
        }
        if this.heartbeat.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT))));
        }
        Poll::Pending
    }
}

/// Mounts the live stream.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(live);
}
