//! The live stream: `GET /live` opens one SSE stream (one per browser: its tabs share it through
//! `static/live-worker.js`), `POST /live/{stream}` adds and removes regions while it stays open.
//!
//! - The stream starts with a `hello` event, `{"stream": TOKEN, "events": [names], "csrf":
//!   CSRF}`: the stream's token (by which its browser changes its regions), the event names
//!   regions use, and the CSRF token of the stream's session (for those changes). Then one event per region update, named as the region's container's `sse-swap`
//!   (first data line `KEY HASH`, then the HTML), and a `session` event (`ended`, or `changed`
//!   when the person's rights changed) before it closes because its session no longer allows it.
//! - `GET /live?regions=a,b&since=N` opens a stream with those regions at once (one page).
//! - A region joins with what the client has: `since`, the feed position its page was rendered
//!   at, or `hash`, the hash of the HTML it last received. Nothing is sent when that is current;
//!   otherwise the current HTML is, rendered after the client joined its topic, so a change is
//!   never missed whatever the order its transaction committed in. Access is checked for every
//!   region joined.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, ContentEncoding};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time;

use crate::AppState;
use crate::auth::{Session, Viewer};
use crate::error::AppError;
use crate::live::gzip::{Chunk, GzipStream};
use crate::live::hub::{Admitted, Baseline, Frame, Join, Refusal, Tail};
use crate::live::{Region, delta};
use crate::web::chrome::Chrome;

/// Most regions one stream may carry (a browser's tabs together).
pub const MAX_REGIONS: usize = 64;

#[derive(Deserialize)]
struct LiveQuery {
    regions: Option<String>,
    /// The feed position the page was rendered at: nothing to send at once if unchanged.
    since: Option<i64>,
    /// The hashes (hex) of the regions' HTML as the page shows them, in `regions`' order: the
    /// first update can then be the rows that changed.
    hashes: Option<String>,
}

fn parse_regions(keys: &str) -> Result<Vec<Region>, AppError> {
    keys.split(',')
        .filter(|k| !k.is_empty())
        .map(Region::parse)
        .collect::<Option<_>>()
        .ok_or_else(|| AppError::BadRequest("unknown live region".into()))
}

#[get("/live")]
async fn live(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LiveQuery>,
    chrome: Chrome,
) -> Result<HttpResponse, AppError> {
    let regions = match &query.regions {
        Some(keys) => parse_regions(keys)?,
        None => Vec::new(),
    };
    if regions.len() > MAX_REGIONS {
        return Err(AppError::BadRequest(format!("at most {MAX_REGIONS} live regions")));
    }
    let viewer = chrome.viewer;
    // The stream's own session's token: the browser's changes to the stream carry it, whichever
    // tab (with whichever page, signed in or not) asked for them.
    let csrf = chrome.csrf_token;
    let session = req.extensions().get::<Session>().map(|s| s.token_hash.clone());
    let ip = crate::web::client_addr::client_ip(&req);
    let mut admitted = state.live.admit(ip, session).map_err(|refusal| {
        tracing::info!(?refusal, "live stream refused");
        AppError::Overloaded(match refusal {
            Refusal::TooManyTotal => 10,
            Refusal::TooManyFromIp | Refusal::TooManyForSession => 30,
        })
    })?;
    let (receiver, id, token) = state.live.open(&mut admitted, &viewer);
    let resumed = req.headers().contains_key("Last-Event-ID");
    let hashes: Vec<Option<u64>> =
        query.hashes.as_deref().unwrap_or_default().split(',').map(|h| u64::from_str_radix(h, 16).ok()).collect();
    for (i, region) in regions.iter().enumerate() {
        let baseline = match (query.since, hashes.get(i).copied().flatten()) {
            _ if resumed => Baseline::Nothing,
            (_, Some(hash)) => Baseline::Hash(hash),
            (Some(since), None) => Baseline::Since(since),
            (None, None) => Baseline::Nothing,
        };
        // A region they may not read refuses the whole stream.
        bring_up_to_date(&state, id, &viewer, region, baseline).await?;
    }

    let mut prefix = BytesMut::from(RETRY);
    let hello = serde_json::json!({ "stream": token, "events": Region::EVENT_NAMES, "csrf": csrf });
    prefix.extend_from_slice(&Frame::control("hello", &hello.to_string()).wire);
    let heartbeat = Duration::from_secs(state.config.live_heartbeat_secs.max(1));
    // Browsers take gzip: each event is compressed once for all its streams (live::gzip).
    let gzip = crate::web::assets::accepts_gzip(&req).then(GzipStream::default);
    let encoding = if gzip.is_some() { ContentEncoding::Gzip } else { ContentEncoding::Identity };
    let body = LiveBody {
        prefix: Some(prefix.freeze()),
        frames: receiver,
        heartbeat: {
            let mut interval = time::interval_at(time::Instant::now() + heartbeat, heartbeat);
            interval.set_missed_tick_behavior(time::MissedTickBehavior::Delay);
            interval
        },
        tail: Tail::default(),
        gzip,
        _admitted: admitted,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // Set here, so the Compress middleware (whose encoder would hold events back and keep a
        // deflate context per stream) leaves the stream alone.
        .insert_header(encoding)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(body))
}

/// Joins `region` for client `id` and sends it what it lacks; an error (no access) leaves the
/// region joined: the caller takes it off again or drops the stream.
async fn bring_up_to_date(
    state: &AppState,
    id: u64,
    viewer: &Viewer,
    region: &Region,
    baseline: Baseline,
) -> Result<(), AppError> {
    // The access policy first: it also says which audience (shared render) they join.
    let audience = state.regions.admit(state, region, viewer).await?;
    match state.live.join(id, region, &audience, baseline, || state.feed.current_seq()) {
        Join::Authorize => Ok(()),
        Join::CatchUp => {
            state.live.catch_up(id, region);
            Ok(())
        }
        Join::Render { generation } => {
            let seq = state.feed.last_seq();
            let html = state.regions.render(state, region, viewer, &audience).await?;
            let split = delta::split(&html);
            let frame = Frame::new(region, seq, &html).personal(audience.is_personal());
            state.live.joined_with(id, region, generation, frame, split);
            Ok(())
        }
        Join::Gone => Err(AppError::NotFound("live stream")),
        Join::Duplicate => Ok(()),
    }
}

/// One region a browser adds, with what it has of it.
#[derive(Deserialize)]
struct Add {
    key: String,
    /// The feed position its page was rendered at.
    since: Option<i64>,
    /// The hash (hex, from the event's first line) of the HTML it last received.
    hash: Option<String>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    add: Vec<Add>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Serialize)]
struct Changed {
    /// Keys not added: unknown, too many, or not readable by this viewer.
    refused: Vec<String>,
}

/// `POST /live/{stream}` with `{"add": [{"key", "since" | "hash"}], "remove": [key]}`: changes
/// the regions of an open stream of the same session. Answers `{"refused": [key]}`; 404 when the
/// stream is gone (the browser opens a new one).
#[post("/live/{stream}")]
async fn change(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<Change>,
) -> Result<HttpResponse, AppError> {
    let (id, session, viewer, mut count) =
        state.live.client_by_token(&path).ok_or(AppError::NotFound("live stream"))?;
    let caller = req.extensions().get::<Session>().map(|s| s.token_hash.clone());
    if caller != session {
        return Err(AppError::Forbidden);
    }
    let body = body.into_inner();
    for key in &body.remove {
        if let Some(region) = Region::parse(key)
            && state.live.leave(id, &region)
        {
            count = count.saturating_sub(1);
        }
    }
    let mut refused = Vec::new();
    for add in body.add {
        let Some(region) = Region::parse(&add.key) else {
            refused.push(add.key);
            continue;
        };
        // The browser adds only what it believes is off the stream: a region still on it (its
        // remove overtaken by this add, two requests racing) is joined afresh, so what the stream
        // sent before is not taken for what the adding tab shows.
        if state.live.leave(id, &region) {
            count = count.saturating_sub(1);
        }
        if count >= MAX_REGIONS {
            refused.push(add.key);
            continue;
        }
        let baseline = match (add.hash.as_deref().and_then(|h| u64::from_str_radix(h, 16).ok()), add.since) {
            (Some(hash), _) => Baseline::Hash(hash),
            (None, Some(since)) => Baseline::Since(since),
            (None, None) => Baseline::Nothing,
        };
        match bring_up_to_date(&state, id, &viewer, &region, baseline).await {
            Ok(()) => count += 1,
            Err(AppError::NotFound("live stream")) => return Err(AppError::NotFound("live stream")),
            Err(e) => {
                tracing::debug!(region = %add.key, error = %e, "live region refused");
                let _ = state.live.leave(id, &region);
                refused.push(add.key);
            }
        }
    }
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(Changed { refused }))
}

/// How soon the browser reconnects after the stream drops.
const RETRY: &[u8] = b"retry: 2000\n\n";

/// A comment line, every heartbeat period whatever else was sent (resetting a timer for every
/// frame of every stream costs more than a few bytes): keeps proxies from timing the stream out
/// and lets the server notice a client that went away (a write fails). A gzip stream sends an
/// empty block instead, which does the same without adding to what its next event may refer
/// back to.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// The body of one live stream: the `retry:` line and the `hello` event, then the frames the
/// hub sends it (pre-encoded, shared by every client of a topic; the hub sends a client only
/// HTML it does not have), and a heartbeat every period. It ends when the hub drops the client
/// (shutdown, session ended, too slow to keep up).
struct LiveBody {
    prefix: Option<Bytes>,
    frames: mpsc::Receiver<Arc<Frame>>,
    heartbeat: time::Interval,
    /// Set when the stream is gzip-encoded: what it has sent, for the trailer.
    gzip: Option<GzipStream>,
    /// The frames a gzip stream was sent last: what the next may be compressed after.
    tail: Tail,
    /// The stream's slot and subscriptions, released when the body is dropped (client gone).
    _admitted: Admitted,
}

impl MessageBody for LiveBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Infallible>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take() {
            let bytes = match &mut this.gzip {
                Some(gzip) => gzip.start(&Chunk::stored(&prefix)),
                None => prefix,
            };
            return Poll::Ready(Some(Ok(bytes)));
        }
        if let Poll::Ready(frame) = this.frames.poll_recv(cx) {
            let Some(frame) = frame else {
                // Ended by the hub: a gzip stream ends with its trailer, so the browser reads a
                // complete body rather than a truncated one.
                return Poll::Ready(this.gzip.take().map(|gzip| Ok(gzip.finish())));
            };
            let bytes = match &mut this.gzip {
                Some(gzip) => {
                    let bytes = gzip.send(&frame.gzipped_after(&this.tail));
                    this.tail.push(&frame);
                    bytes
                }
                None => frame.wire.clone(),
            };
            return Poll::Ready(Some(Ok(bytes)));
        }
        if this.heartbeat.poll_tick(cx).is_ready() {
            let bytes = match &mut this.gzip {
                Some(gzip) => gzip.heartbeat(),
                None => Bytes::from_static(HEARTBEAT),
            };
            return Poll::Ready(Some(Ok(bytes)));
        }
        Poll::Pending
    }
}

/// Mounts the live stream.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(live).service(change);
}
