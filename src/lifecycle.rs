//! Graceful lifecycle: one shutdown signal for every long-lived task.
//!
//! On SIGTERM (or SIGINT, or [`Shutdown::trigger`]), `Application::run_until_stopped` fires
//! the signal first (the change feed and the webhook worker stop taking new work), closes the
//! live streams (clients reconnect, elsewhere or after the restart), stops accepting
//! connections and [`drain`]s the requests in flight (at most [`DRAIN_TIMEOUT`]) before it
//! stops the HTTP workers; last, [`finish`] lets the webhook worker record its in-flight
//! deliveries (bounded by [`FLUSH_TIMEOUT`]) and stops the metrics listener.
//!
//! Why drain before stopping the workers: each actix worker has its own runtime, and a pooled
//! PostgreSQL connection belongs to the runtime that opened it. Stopping an idle worker while
//! another still answers would break the connections the idle one opened, under the request
//! still using them.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long requests in flight may take to finish once shutdown began (actix's own
/// `shutdown_timeout` is the same 10 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the webhook worker may take to record its in-flight deliveries after the server
/// stopped (its requests time out after 10 s).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(12);

/// The sending side: cheap to clone, kept in `AppState`.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

/// The receiving side, one per task: [`ShutdownSignal::wait`] returns once shutdown began.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self { tx: Arc::new(watch::channel(false).0) }
    }

    /// Begins shutdown; every subscriber wakes. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has begun (new long-lived work should be refused).
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A receiver for one task.
    pub fn subscribe(&self) -> ShutdownSignal {
        ShutdownSignal { rx: self.tx.subscribe() }
    }

    /// The raw `watch` receiver (true once shutdown began), for tasks that `select!` on it.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

impl ShutdownSignal {
    /// Returns once shutdown has begun (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means we are shutting down.
        let _ = self.rx.wait_for(|stopping| *stopping).await;
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Middleware: once shutdown began, no new request starts. One that arrives on a kept-alive
/// connection gets 503 with `Connection: close` and `Retry-After: 1` (a client or proxy retries
/// it elsewhere, or after the restart) without running; a request already running finishes,
/// and its answer carries `Connection: close` so the connection ends with it.
pub async fn close_when_stopping(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let stopping = |req: &ServiceRequest| {
        req.app_data::<actix_web::web::Data<crate::AppState>>().is_some_and(|state| state.shutdown.is_triggered())
    };
    if stopping(&req) {
        let mut response = actix_web::HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/plain; charset=utf-8")
            .body("The server is restarting; try again in a moment.");
        response.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(req.into_response(response).map_into_right_body());
    }
    let state = req.app_data::<actix_web::web::Data<crate::AppState>>().cloned();
    let mut res = next.call(req).await?;
    if state.is_some_and(|state| state.shutdown.is_triggered()) {
        res.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res.map_into_left_body())
}

/// Waits until no request is in flight (the metrics middleware counts them, bodies included),
/// at most [`DRAIN_TIMEOUT`]; `false` when some were still running.
pub async fn drain(metrics: &crate::metrics::Metrics) -> bool {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while metrics.in_flight() > 0 {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(in_flight = metrics.in_flight(), "requests still running at the shutdown deadline");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// After the HTTP server stopped: waits for the webhook worker to record its in-flight
/// deliveries (at most [`FLUSH_TIMEOUT`]), then stops the metrics listener.
pub async fn finish(worker: JoinHandle<()>, metrics: Option<ServerHandle>) {
    if tokio::time::timeout(FLUSH_TIMEOUT, worker).await.is_err() {
        tracing::warn!("the webhook worker did not stop in time; its claimed deliveries will be retried");
    }
    if let Some(metrics) = metrics {
        metrics.stop(false).await;
    }
    tracing::info!("stopped");
}
