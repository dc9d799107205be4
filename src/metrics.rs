//! Prometheus metrics: a small registry of atomics any module can bump, the request-tracking
//! middleware, and the `/metrics` listener on its own address (`IHF_METRICS_BIND`), so the
//! numbers never reach the public port. The live series are read from the live hub's own
//! counters (`live::hub::LiveStats`) at scrape time; the webhook queue depth from the database.
//!
//! Hand-written rather than the `prometheus-client` crate: six series and one histogram do
//! not need a dependency, and the text format is a few lines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;

use crate::db::Db;
use crate::live::LiveHub;
use crate::live::hub::LiveStats;

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the request latency histogram.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The series IHF keeps here (the live ones live in `LiveStats`). Shared as `Arc<Metrics>`
/// in `AppState`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Webhook deliveries answered 2xx.
    pub webhook_delivered: Counter,
    /// Webhook attempts that failed and will be retried.
    pub webhook_retried: Counter,
    /// Webhook deliveries given up.
    pub webhook_failed: Counter,
    /// Requests being answered now, until the last byte of their body (streams included):
    /// graceful shutdown waits for it to reach zero.
    in_flight: AtomicI64,
    /// Requests by (method, route template).
    http: Mutex<BTreeMap<(String, String), RouteStats>>,
}

impl Metrics {
    /// Requests being answered now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records one answered request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut http) = self.http.lock() else { return };
        let stats = http.entry((method.to_owned(), route.to_owned())).or_default();
        *stats.by_status.entry(status).or_default() += 1;
        for (bucket, bound) in stats.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        stats.count += 1;
        stats.sum += seconds;
    }

    /// The Prometheus text exposition of every series; `queue_depth` is read by the caller.
    pub fn render(&self, live: &LiveStats, queue_depth: Option<i64>) -> String {
        let mut out = String::with_capacity(4096);
        let http = self.http.lock().map(|h| {
            h.iter().map(|(k, v)| (k.clone(), v.by_status.clone(), v.buckets, v.count, v.sum)).collect::<Vec<_>>()
        });
        let http = http.unwrap_or_default();
        out.push_str("# HELP ihf_http_requests_total HTTP requests answered, by route template and status.\n");
        out.push_str("# TYPE ihf_http_requests_total counter\n");
        for ((method, route), by_status, ..) in &http {
            for (status, n) in by_status {
                let _ = writeln!(
                    out,
                    "ihf_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(method),
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP ihf_http_request_duration_seconds Time from request to response head, by route template.\n",
        );
        out.push_str("# TYPE ihf_http_request_duration_seconds histogram\n");
        for ((method, route), _, buckets, count, sum) in &http {
            let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
            for (bound, n) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(out, "ihf_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "ihf_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "ihf_http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "ihf_http_request_duration_seconds_count{{{labels}}} {count}");
        }
        let mut single = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        };
        let get = |value: &AtomicU64| value.load(Ordering::Relaxed).to_string();
        single(
            "ihf_http_requests_in_flight",
            "gauge",
            "Requests being answered (streams included).",
            self.in_flight().to_string(),
        );
        single(
            "ihf_live_streams_open",
            "gauge",
            "Live SSE streams open.",
            live.streams_open.load(Ordering::Relaxed).to_string(),
        );
        single(
            "ihf_change_events_total",
            "counter",
            "Change events received from the change feed.",
            get(&live.change_events),
        );
        single("ihf_renders_total", "counter", "Live region renders.", get(&live.renders));
        single(
            "ihf_renders_coalesced_total",
            "counter",
            "Changes that caused no render of their own because a burst was coalesced.",
            get(&live.renders_coalesced),
        );
        single("ihf_live_frames_sent_total", "counter", "Region updates sent to live clients.", get(&live.frames_sent));
        single(
            "ihf_live_row_updates_sent_total",
            "counter",
            "Region updates sent as the rows that changed rather than the whole region.",
            get(&live.deltas_sent),
        );
        single(
            "ihf_live_audiences_changed_total",
            "counter",
            "Live viewers moved to another audience or out of a region after a membership change.",
            get(&live.audiences_changed),
        );
        single(
            "ihf_live_slow_clients_dropped_total",
            "counter",
            "Live clients dropped because they could not keep up.",
            get(&live.slow_clients_dropped),
        );
        if let Some(depth) = queue_depth {
            single("ihf_webhook_queue_depth", "gauge", "Webhook deliveries waiting to be sent.", depth.to_string());
        }
        out.push_str("# HELP ihf_webhook_deliveries_total Webhook delivery attempts, by outcome.\n");
        out.push_str("# TYPE ihf_webhook_deliveries_total counter\n");
        for (outcome, counter) in [
            ("delivered", &self.webhook_delivered),
            ("retried", &self.webhook_retried),
            ("failed", &self.webhook_failed),
        ] {
            let _ = writeln!(out, "ihf_webhook_deliveries_total{{outcome=\"{outcome}\"}} {}", counter.get());
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: counts every request by its route template (never the raw path, which would
/// make a series per hub and per id), times it to the response head, and counts it in flight
/// until its body is sent (or dropped).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(metrics) = req.app_data::<web::Data<crate::AppState>>().map(|state| Arc::clone(&state.metrics)) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body)
            .map(|res| res.map_body(|_, body| InFlight { body, guard: None }));
    };
    let method = req.method().as_str().to_owned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let guard = InFlightGuard(Arc::clone(&metrics));
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    metrics.observe_request(&method, &route, status, started.elapsed().as_secs_f64());
    let res = res?.map_into_boxed_body();
    Ok(res.map_body(|_, body| InFlight { body, guard: Some(guard) }))
}

/// Takes a request out of the in-flight count when dropped.
struct InFlightGuard(Arc<Metrics>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that holds its request in the in-flight count until it is dropped.
struct InFlight {
    body: BoxBody,
    guard: Option<InFlightGuard>,
}

impl MessageBody for InFlight {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let next = Pin::new(&mut this.body).poll_next(cx);
        if matches!(next, Poll::Ready(None)) {
            this.guard = None; // the last byte is out
        }
        next
    }
}

struct Exporter {
    metrics: Arc<Metrics>,
    live: Arc<LiveHub>,
    db: Db,
}

async fn scrape(exporter: web::Data<Exporter>) -> HttpResponse {
    let depth = match crate::db::webhooks::queue_depth(&exporter.db).await {
        Ok(depth) => Some(depth),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the webhook queue depth");
            None
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(exporter.metrics.render(&exporter.live.stats, depth))
}

/// Binds the metrics listener (`GET /metrics`); returns its port and the server to run.
pub fn serve(bind: SocketAddr, metrics: Arc<Metrics>, live: Arc<LiveHub>, db: Db) -> anyhow::Result<(u16, Server)> {
    let listener = std::net::TcpListener::bind(bind).with_context(|| format!("binding the metrics address {bind}"))?;
    let port = listener.local_addr()?.port();
    let exporter = web::Data::new(Exporter { metrics, live, db });
    let server =
        HttpServer::new(move || App::new().app_data(exporter.clone()).route("/metrics", web::get().to(scrape)))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)?
            .run();
    Ok((port, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.observe_request("GET", "/hubs/{hub_slug}", 200, 0.02);
        metrics.observe_request("GET", "/hubs/{hub_slug}", 404, 0.2);
        let live = LiveStats::default();
        live.streams_open.fetch_add(1, Ordering::Relaxed);
        let text = metrics.render(&live, Some(3));
        assert!(text.contains("ihf_http_requests_total{method=\"GET\",route=\"/hubs/{hub_slug}\",status=\"200\"} 1"));
        assert!(text.contains(
            "ihf_http_request_duration_seconds_bucket{method=\"GET\",route=\"/hubs/{hub_slug}\",le=\"0.025\"} 1"
        ));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("ihf_live_streams_open 1"));
        assert!(text.contains("ihf_webhook_queue_depth 3"));
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
