//! IHF: a live feedback system for product teams.
//!
//! The library holds the whole application; `main.rs` parses the command line and calls
//! [`Application::build`], and so do the integration tests, each on its own port and database.

pub mod access;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod components;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod demo_host;
pub mod domain;
pub mod error;
pub mod governance;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod notifications;
pub mod telemetry;
pub mod tls;
pub mod transparency;
pub mod triage;
pub mod web;
pub mod webhooks;
pub mod witness;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web as aw};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

pub use config::Config;
use db::Db;

/// Switches for tests only. They are not configuration: no flag or environment variable can
/// reach them, only code that builds the app with [`Application::build_with_hooks`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHooks {
    /// The data API and embeds leave out their own access predicates, so that tests prove
    /// PostgreSQL's Row Level Security holds alone. Honoured on PostgreSQL only.
    pub rls_only: bool,
}

/// What every request handler shares.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub assets: web::assets::Assets,
    pub login_throttle: auth::throttle::LoginThrottle,
    /// The server secret shared by all instances; derive purpose keys with `crypto::derive_key`.
    pub secret: Arc<[u8]>,
    /// Event-ingestion rate limits, per embed key and per IP.
    pub ingest_limits: web::api::limits::RateLimits,
    /// Event batches on their way to the database (group commit on SQLite).
    pub events: db::ingest::EventIngest,
    /// Live streams and their topics.
    pub live: Arc<live::LiveHub>,
    /// What draws the live regions (the pages'), for the dispatcher and the stream.
    pub regions: Arc<dyn live::Surfaces>,
    /// Committed changes, from the database's triggers.
    pub feed: live::ChangeFeed,
    /// Counters and the request histogram for `/metrics`; any module may add to them.
    pub metrics: Arc<metrics::Metrics>,
    /// Fires when the server begins to stop; long-lived tasks and responses subscribe.
    pub shutdown: lifecycle::Shutdown,
    /// Wakes the webhook worker after a delivery is enqueued outside the database triggers.
    pub webhook_wake: webhooks::worker::Wake,
    /// Off outside tests.
    pub test_hooks: TestHooks,
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    live: Arc<live::LiveHub>,
    shutdown: lifecycle::Shutdown,
    metrics: Arc<metrics::Metrics>,
    webhook_worker: tokio::task::JoinHandle<()>,
    witness_worker: tokio::task::JoinHandle<()>,
    /// The mail worker, when `IHF_SMTP_URL` is set.
    mail_worker: Option<tokio::task::JoinHandle<()>>,
    metrics_server: Option<(u16, Server)>,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_hooks(config, TestHooks::default()).await
    }

    /// [`Application::build`] with test switches on.
    pub async fn build_with_hooks(config: Config, hooks: TestHooks) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, config.db_max_connections)
            .await
            .with_context(|| format!("connecting to {}", db::redact_url(&config.database_url)))?;
        db.migrate().await.context("applying migrations")?;
        Self::start(config, db, hooks).await
    }

    /// Builds the server on an already connected and migrated database.
    pub async fn build_with_db(config: Config, db: Db) -> anyhow::Result<Self> {
        Self::start(config, db, TestHooks::default()).await
    }

    async fn start(mut config: Config, db: Db, test_hooks: TestHooks) -> anyhow::Result<Self> {
        let tls = match config.tls() {
            Some((cert, key)) => Some(tls::server_config(cert, key)?),
            None => None,
        };
        // Browsers keep `Secure` cookies only over HTTPS, and this is HTTPS.
        config.secure_cookies |= tls.is_some();
        let secret = db::secrets::get_or_create(&db, "master", &crypto::random_token(32))
            .await
            .context("loading the server secret")?;
        db::ledger_tree::ensure_identity(&db, config.ledger_name.as_deref())
            .await
            .context("loading the ledger's signing key")?;
        db::ledger_tree::backfill(&db).await.context("building the ledger's Merkle trees")?;
        let shutdown = lifecycle::Shutdown::new();
        let shutdown_rx = shutdown.receiver();
        let feed = live::ChangeFeed::start(&db, shutdown_rx.clone()).await.context("starting the change feed")?;
        let limits = live::hub::Limits {
            total: config.live_max_streams,
            per_ip: config.live_max_per_ip,
            per_session: config.live_max_per_session,
            ..live::hub::Limits::default()
        };
        let live = Arc::new(live::LiveHub::new(std::time::Duration::from_millis(config.live_window_ms), limits));
        let listener = TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
        let port = listener.local_addr()?.port();
        let metrics = Arc::new(metrics::Metrics::default());
        let metrics_server = match config.metrics_bind {
            Some(bind) => Some(metrics::serve(bind, Arc::clone(&metrics), Arc::clone(&live), db.clone())?),
            None => None,
        };
        let webhook_wake = webhooks::worker::Wake::default();
        let webhook_worker = webhooks::worker::Worker::new(
            db.clone(),
            config.webhook_allow_private,
            config.webhook_retry_base_ms,
            Arc::clone(&metrics),
            webhook_wake.clone(),
        )?
        .spawn(shutdown.subscribe(), feed.subscribe());
        let witness_worker =
            witness::Worker::new(db.clone(), config.webhook_allow_private, config.webhook_retry_base_ms)?
                .spawn(shutdown.subscribe());
        let secret: Arc<[u8]> = Arc::from(secret.into_bytes());
        let mail_worker = match &config.smtp_url {
            Some(smtp_url) => {
                let base = match &config.public_url {
                    Some(_) => config.public_base(),
                    None => format!("{}://{}:{port}", if tls.is_some() { "https" } else { "http" }, config.bind.ip()),
                };
                let mailer = notifications::mailer::Mailer::new(
                    db.clone(),
                    smtp_url,
                    &config.mail_from,
                    base,
                    Arc::clone(&secret),
                    config.mail_retry_base_ms,
                    std::time::Duration::from_secs(config.digest_period_secs),
                )?;
                Some(mailer.spawn(shutdown.subscribe()))
            }
            None => None,
        };
        let state = aw::Data::new(AppState {
            db: db.clone(),
            assets: web::assets::Assets::new(config.static_dir.as_deref()),
            ingest_limits: web::api::limits::RateLimits::new(
                config.ingest_per_key_per_min,
                config.ingest_per_ip_per_min,
            ),
            events: db::ingest::EventIngest::start(db.clone()).context("starting the event writer")?,
            config: Arc::new(config),
            login_throttle: auth::throttle::LoginThrottle::default(),
            secret,
            live: Arc::clone(&live),
            regions: Arc::new(web::live_regions::PageRegions),
            feed: feed.clone(),
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
            webhook_wake,
            test_hooks,
        });
        tokio::spawn(live::LiveHub::follow_sessions(state.clone(), shutdown_rx.clone()));
        tokio::spawn(live::LiveHub::run(state.clone(), feed.subscribe(), shutdown_rx));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(web::extractor_config)
                .wrap(from_fn(auth::middleware::sessions_and_csrf))
                .wrap(from_fn(web::input::guard))
                .wrap(from_fn(web::errors::render_errors))
                .wrap(web::security::headers())
                .wrap(from_fn(web::security::frame_options))
                .wrap(Compress::default())
                // Outside Compress: assets are compressed once, at build time.
                .wrap(from_fn(web::assets::serve))
                .wrap(TracingLogger::<telemetry::RequestSpan>::new())
                .wrap(from_fn(metrics::track))
                .wrap(from_fn(lifecycle::close_when_stopping))
                .configure(web::configure)
                .default_service(aw::to(web::errors::not_found))
        });
        let server = match tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls)?,
            None => server.listen(listener)?,
        };
        let server = server.shutdown_timeout(10).disable_signals().run();
        Ok(Self {
            port,
            server,
            db,
            live,
            shutdown,
            metrics,
            webhook_worker,
            witness_worker,
            mail_worker,
            metrics_server,
        })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database the server uses.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A handle to stop the server gracefully: live streams close first (they would otherwise
    /// hold the shutdown for its whole timeout), then in-flight requests finish.
    pub fn handle(&self) -> Stopper {
        Stopper { server: self.server.handle(), live: Arc::clone(&self.live) }
    }

    /// The live hub (open streams, counters).
    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    /// The port of the metrics listener, when `IHF_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    /// The shutdown signal; [`lifecycle::Shutdown::trigger`] stops the app like SIGTERM does.
    pub fn shutdown(&self) -> lifecycle::Shutdown {
        self.shutdown.clone()
    }

    /// Runs until the server is stopped by [`Application::handle`], [`Application::shutdown`]
    /// or SIGINT/SIGTERM: then it stops accepting, closes live streams (browsers reconnect,
    /// elsewhere or after the restart), lets in-flight requests finish (at most 10 s), lets the
    /// webhook worker record its in-flight deliveries and stops background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let live = Arc::clone(&self.live);
        let shutdown = self.shutdown.clone();
        let metrics = Arc::clone(&self.metrics);
        let signals = tokio::spawn(async move {
            let mut triggered = shutdown.subscribe();
            tokio::select! {
                () = shutdown_signal() => tracing::info!("shutting down: closing live streams, finishing requests"),
                () = triggered.wait() => {}
            }
            shutdown.trigger();
            live.close_all();
            handle.pause().await;
            let drained = lifecycle::drain(&metrics).await;
            handle.stop(drained).await;
        });
        let metrics_server = self.metrics_server.map(|(_, server)| {
            let handle = server.handle();
            tokio::spawn(server);
            handle
        });
        let result = self.server.await;
        signals.abort();
        self.live.close_all();
        self.shutdown.trigger();
        // Requests to witnesses and mails in flight finish (or time out) and record what came back.
        let witnesses = async {
            if tokio::time::timeout(std::time::Duration::from_secs(12), self.witness_worker).await.is_err() {
                tracing::warn!("the witness worker did not stop in time; its claims run out by themselves");
            }
        };
        let mails = async {
            if let Some(mail_worker) = self.mail_worker
                && tokio::time::timeout(std::time::Duration::from_secs(10), mail_worker).await.is_err()
            {
                tracing::warn!("the mail worker did not stop in time; its claimed mails will be retried");
            }
        };
        tokio::join!(witnesses, mails, lifecycle::finish(self.webhook_worker, metrics_server));
        result
    }
}

/// Stops a running [`Application`].
#[derive(Clone)]
pub struct Stopper {
    server: actix_web::dev::ServerHandle,
    live: Arc<live::LiveHub>,
}

impl Stopper {
    /// The live hub (open streams, counters), for tests and benchmarks.
    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    /// Closes live streams, then stops the server gracefully (`graceful = false`: at once).
    pub async fn stop(&self, graceful: bool) {
        self.live.close_all();
        self.server.stop(graceful).await;
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
