//! Graceful lifecycle: one shutdown signal for every long-lived task, and the order in which
//! the server stops.
//!
//! On SIGTERM (or SIGINT, or [`Shutdown::trigger`]): the signal fires first, so live streams
//! can end with a reconnect hint and the webhook worker stops claiming; then the HTTP server
//! stops accepting and finishes in-flight requests (at most `shutdown_timeout`, 10 s); then the
//! webhook worker's in-flight deliveries are recorded (bounded by [`FLUSH_TIMEOUT`]) and the
//! metrics listener stops.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// Runs the server until a signal or [`Shutdown::trigger`] stops it, in the order above.
pub async fn run(
    server: Server,
    shutdown: Shutdown,
    worker: Option<JoinHandle<()>>,
    metrics: Option<Server>,
) -> std::io::Result<()> {
    let handle = server.handle();
    let metrics_handle = metrics.as_ref().map(Server::handle);
    if let Some(metrics) = metrics {
        tokio::spawn(metrics);
    }
    let stopper = tokio::spawn({
        let shutdown = shutdown.clone();
        let mut signal = shutdown.subscribe();
        async move {
            tokio::select! {
                () = terminate() => tracing::info!("stopping: finishing in-flight requests"),
                () = signal.wait() => {}
            }
            shutdown.trigger();
            handle.stop(true).await;
        }
    });
    let result = server.await;
    // Stopped through the server handle: make sure every task hears it.
    shutdown.trigger();
    stopper.abort();
    if let Some(worker) = worker
        && tokio::time::timeout(FLUSH_TIMEOUT, worker).await.is_err()
    {
        tracing::warn!("the webhook worker did not stop in time; its claimed deliveries will be retried");
    }
    if let Some(metrics) = metrics_handle {
        metrics.stop(false).await;
    }
    tracing::info!("stopped");
    result
}

/// SIGTERM or SIGINT.
async fn terminate() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
