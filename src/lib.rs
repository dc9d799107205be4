//! IHF: a live feedback system for product teams.
//!
//! The library holds the whole application; `main.rs` parses the command line and calls
//! [`Application::build`], and so do the integration tests, each on its own port and database.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod error;
pub mod lifecycle;
pub mod metrics;
pub mod telemetry;
pub mod web;
pub mod webhooks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web as aw};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

pub use config::Config;
use db::Db;

/// What every request handler shares.
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub assets: web::assets::Assets,
    pub login_throttle: auth::throttle::LoginThrottle,
    /// The server secret shared by all instances; derive purpose keys with `crypto::derive_key`.
    pub secret: Arc<[u8]>,
    /// Counters and gauges for `/metrics`; any module may bump them.
    pub metrics: Arc<metrics::Metrics>,
    /// Fires when the server begins to stop: live streams subscribe and end with a reconnect hint.
    pub shutdown: lifecycle::Shutdown,
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    shutdown: lifecycle::Shutdown,
    webhook_worker: Option<tokio::task::JoinHandle<()>>,
    metrics_server: Option<(u16, Server)>,
}

impl Application {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, config.db_max_connections)
            .await
            .with_context(|| format!("connecting to {}", db::redact_url(&config.database_url)))?;
        db.migrate().await.context("applying migrations")?;
        Self::build_with_db(config, db).await
    }

    /// Builds the server on an already connected and migrated database.
    pub async fn build_with_db(config: Config, db: Db) -> anyhow::Result<Self> {
        let secret = db::secrets::get_or_create(&db, "master", &crypto::random_token(32))
            .await
            .context("loading the server secret")?;
        let listener = TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
        let port = listener.local_addr()?.port();
        let metrics = Arc::new(metrics::Metrics::default());
        let shutdown = lifecycle::Shutdown::new();
        let metrics_server = match config.metrics_bind {
            Some(bind) => Some(metrics::serve(bind, metrics.clone(), db.clone())?),
            None => None,
        };
        let webhook_worker = webhooks::worker::Worker::new(
            db.clone(),
            config.webhook_allow_private,
            config.webhook_retry_base_ms,
            metrics.clone(),
        )?
        .spawn(shutdown.subscribe());
        let state = aw::Data::new(AppState {
            db: db.clone(),
            assets: web::assets::Assets::load(&config.static_dir),
            config: Arc::new(config),
            login_throttle: auth::throttle::LoginThrottle::default(),
            secret: Arc::from(secret.into_bytes()),
            metrics,
            shutdown: shutdown.clone(),
        });
        let static_dir = state.config.static_dir.clone();
        let server = HttpServer::new(move || {
            let static_dir = static_dir.clone();
            App::new()
                .app_data(state.clone())
                .configure(web::extractor_config)
                .wrap(from_fn(auth::middleware::sessions_and_csrf))
                .wrap(from_fn(web::errors::render_errors))
                .wrap(web::security::headers())
                .wrap(Compress::default())
                .wrap(TracingLogger::default())
                .wrap(from_fn(metrics::track))
                .configure(web::configure)
                .configure(move |cfg| web::assets::configure(cfg, &static_dir))
                .default_service(aw::to(web::errors::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        // Signals are handled by `lifecycle::run`, which fires the shutdown signal first.
        .disable_signals()
        .run();
        Ok(Self { port, server, db, shutdown, webhook_worker: Some(webhook_worker), metrics_server })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database the server uses.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The port of the metrics listener, when `IHF_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(port, _)| *port)
    }

    /// The shutdown signal: [`lifecycle::Shutdown::trigger`] stops the app gracefully.
    pub fn shutdown(&self) -> lifecycle::Shutdown {
        self.shutdown.clone()
    }

    /// Runs until the server is stopped (SIGINT/SIGTERM, [`Application::shutdown`] or
    /// [`Application::handle`]), then stops the webhook worker and the metrics listener.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        lifecycle::run(self.server, self.shutdown, self.webhook_worker, self.metrics_server.map(|(_, s)| s)).await
    }
}
