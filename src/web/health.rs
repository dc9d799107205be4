//! Liveness and readiness.
//!
//! `/healthz` says the process is alive and serving: it touches no database, so it answers at
//! once whatever the database does (a load balancer must not restart a server because its
//! database is down). `/readyz` says whether requests can be served *and written* now: the
//! migrations are applied, a write could start (SQLite: the write lock can be taken;
//! PostgreSQL: a connection answers), and no request ran into an outage (disk full, locked,
//! unreachable) in the last few seconds. A failure names its reason.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};

use crate::AppState;
use crate::db::{OUTAGE_MEMORY, Outage};

/// Longest a readiness check may take (each database step is bounded by the acquire timeout).
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// 200 while the process serves requests.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).content_type("text/plain").body("ok")
}

/// 200 when the database answers, writes can start, every migration is applied and no request
/// ran into an outage lately; 503 with the reason otherwise.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = tokio::time::timeout(READY_TIMEOUT, readiness(&state)).await;
    match checked.unwrap_or_else(|_| Err(("database unreachable: no answer in time".into(), Outage::Timeout))) {
        Ok(()) => {
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).content_type("text/plain").body("ready")
        }
        Err((reason, outage)) => {
            tracing::debug!(reason, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", outage.retry_after().as_secs().to_string()))
                .insert_header(("Cache-Control", "no-store"))
                .content_type("text/plain")
                .body(reason)
        }
    }
}

async fn readiness(state: &AppState) -> Result<(), (String, Outage)> {
    let unreachable = |e: crate::db::StoreError| {
        let outage = e.outage().unwrap_or(Outage::Unreachable);
        (outage.reason().to_owned(), outage)
    };
    match state.db.migrations_applied().await {
        Ok(true) => {}
        Ok(false) => return Err(("migrations pending".into(), Outage::Unreachable)),
        Err(e) => return Err(unreachable(e)),
    }
    state.db.write_probe().await.map_err(|e| {
        let (reason, outage) = unreachable(e);
        (format!("writes failing: {reason}"), outage)
    })?;
    if let Some((outage, ago)) = state.db.recent_outage() {
        return Err((
            format!(
                "writes failing: {} ({} ms ago; ready again {} s after the last failure)",
                outage.reason(),
                ago.as_millis(),
                OUTAGE_MEMORY.as_secs()
            ),
            outage,
        ));
    }
    Ok(())
}

/// Mounts the health checks.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}
