//! The web layer: one module per surface, each exposing `configure(cfg)`.

pub mod access;
pub mod api;
pub mod api_keys;
pub mod assets;
pub mod categories;
pub mod charts;
pub mod chrome;
pub mod client_addr;
pub mod composer_form;
pub mod content_type;
pub mod dashboard;
pub mod embed;
pub mod errors;
pub mod exports;
pub mod format;
pub mod health;
pub mod hubs;
pub mod inbox;
pub mod input;
pub mod ledger;
pub mod ledger_proofs;
pub mod live_regions;
pub mod live_stream;
pub mod login;
pub mod markup;
pub mod notifications;
pub mod region;
pub mod render;
pub mod replies;
pub mod roadmap;
pub mod security;
pub mod settings;
pub mod triage;
pub mod widgets;

use actix_web::web;

use crate::error::AppError;

/// Mounts every surface.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::configure(cfg);
    hubs::configure(cfg);
    login::configure(cfg);
    dashboard::configure(cfg);
    widgets::configure(cfg);
    replies::configure(cfg);
    roadmap::configure(cfg);
    inbox::configure(cfg);
    live_stream::configure(cfg);
    settings::configure(cfg);
    exports::configure(cfg);
    ledger::configure(cfg);
    api::configure(cfg);
    embed::configure(cfg);
    api_keys::configure(cfg);
    triage::configure(cfg);
    categories::configure(cfg);
    notifications::configure(cfg);
}

/// Extractor configuration: malformed paths, queries and forms become [`AppError::BadRequest`].
pub fn extractor_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| AppError::BadRequest(e.to_string()).into()))
        .app_data(web::PathConfig::default().error_handler(|e, _| AppError::BadRequest(e.to_string()).into()))
        .app_data(
            web::FormConfig::default()
                .limit(64 * 1024)
                .error_handler(|e, _| AppError::BadRequest(e.to_string()).into()),
        );
}
