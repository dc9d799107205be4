//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};

use crate::AppState;

/// 200 when the database answers, 503 when it does not.
#[get("/healthz")]
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.ping().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ok"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .content_type("text/plain")
                .body("database unreachable")
        }
    }
}

/// 200 when the database answers and every migration is applied.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.db.migrations_applied().await {
        Ok(true) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Ok(false) => HttpResponse::ServiceUnavailable().content_type("text/plain").body("migrations pending"),
        Err(_) => HttpResponse::ServiceUnavailable().content_type("text/plain").body("database unreachable"),
    }
}

/// Mounts the health checks.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}
