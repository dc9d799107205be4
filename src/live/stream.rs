//! `GET /live?regions=…&since=…`: one SSE stream per page, one named event per region.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest, Responder, get, web};
use actix_web_lab::sse;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::hub::{Frame, Refusal, html_hash};
use super::region::Region;
use crate::AppState;
use crate::auth::Session;
use crate::error::AppError;
use crate::web::chrome::Chrome;

/// Most regions one stream may carry.
const MAX_REGIONS: usize = 16;
/// How soon the browser reconnects after the stream drops.
const RETRY: Duration = Duration::from_secs(2);

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
) -> Result<impl Responder, AppError> {
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
    let receiver = state.live.subscribe(&mut admitted, &regions, &viewer);
    let seq = state.feed.current_seq();
    let mut baseline = Vec::with_capacity(regions.len());
    for region in &regions {
        // Renders as the viewer: a region they may not read refuses the whole stream.
        let html = region.render(&state, &viewer).await?;
        baseline.push(Frame { event: region.event_name(), hash: html_hash(&html), html: html.into(), seq });
    }
    let resumed = req.headers().contains_key("Last-Event-ID");
    let stale = query.since.is_none_or(|since| since < seq);
    let mut last_sent: HashMap<&'static str, u64> = baseline.iter().map(|f| (f.event, f.hash)).collect();
    let initial: Vec<Frame> = if resumed || stale { baseline } else { Vec::new() };

    let mut closing = state.live.closing();
    let updates = ReceiverStream::new(receiver)
        .take_until(async move {
            // Graceful shutdown ends the stream; the browser reconnects elsewhere.
            let _ = closing.wait_for(|closed| *closed).await;
        })
        .filter_map(move |frame| {
            // Send a region only when its HTML differs from what this client last received.
            let changed = last_sent.insert(frame.event, frame.hash) != Some(frame.hash);
            std::future::ready(changed.then_some(frame))
        });
    let events = futures_util::stream::iter(initial).chain(updates).map(move |frame| {
        let _keep = &admitted; // released (unsubscribed, slot freed) when the stream is dropped
        Ok::<_, Infallible>(sse::Event::Data(
            sse::Data::new(frame.html.to_string()).event(frame.event).id(frame.seq.to_string()),
        ))
    });
    Ok(sse::Sse::from_stream(events)
        .with_keep_alive(Duration::from_secs(state.config.live_heartbeat_secs.max(1)))
        .with_retry_duration(RETRY)
        .customize()
        .insert_header(("X-Accel-Buffering", "no")))
}

/// Mounts the live stream.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(live);
}
