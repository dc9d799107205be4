//! Static assets: served from `static/` with year-long caching behind versioned URLs.

use std::path::Path;

use actix_web::middleware::DefaultHeaders;
use actix_web::web;

/// The version stamped into asset URLs: a hash of our own CSS and JS, so a deploy that
/// changes them changes the URL. Vendored files carry their version in their file name.
#[derive(Debug, Clone)]
pub struct Assets {
    pub version: String,
}

impl Assets {
    /// Hashes the files under `dir` that the layout links without a version in their name.
    pub fn load(dir: &Path) -> Self {
        let mut bytes = Vec::new();
        for name in ["app.css", "app.js", "live.js", "live-worker.js", "triage.js", "embed.js", "embed-frame.js"] {
            if let Ok(content) = std::fs::read(dir.join(name)) {
                bytes.extend_from_slice(name.as_bytes());
                bytes.extend_from_slice(&content);
            }
        }
        let version = crate::crypto::sha256_hex(&bytes)[..12].to_owned();
        Self { version }
    }
}

/// Mounts `/static`.
pub fn configure(cfg: &mut web::ServiceConfig, dir: &Path) {
    cfg.service(
        web::scope("/static")
            .wrap(DefaultHeaders::new().add(("Cache-Control", "public, max-age=31536000, immutable")))
            .service(actix_files::Files::new("", dir).prefer_utf8(true)),
    );
}
