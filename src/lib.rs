//! IHF: a live feedback system for product teams.
//!
//! The library holds the whole application; `main.rs` parses the command line and calls
//! [`Application::build`], and so do the integration tests, each on its own port and database.

pub mod auth;
pub mod cli;
pub mod components;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod error;
pub mod telemetry;
pub mod web;

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
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
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
        let state = aw::Data::new(AppState {
            db: db.clone(),
            assets: web::assets::Assets::load(&config.static_dir),
            config: Arc::new(config),
            login_throttle: auth::throttle::LoginThrottle::default(),
            secret: Arc::from(secret.into_bytes()),
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
                .configure(web::configure)
                .configure(move |cfg| web::assets::configure(cfg, &static_dir))
                .default_service(aw::to(web::errors::not_found))
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self { port, server, db })
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

    /// Runs until the server is stopped (SIGINT/SIGTERM or [`Application::handle`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
