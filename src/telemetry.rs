//! Logging set-up.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a bad filter falls back to `info` with a warning.
pub fn init(level: &str, format: LogFormat) {
    let (filter, bad) = match EnvFilter::try_new(level) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    if installed.is_ok()
        && let Some(e) = bad
    {
        tracing::warn!(error = %e, "invalid IHF_LOG filter, using info");
    }
}

/// Request spans: tracing-actix-web's root span (route template, method, request id), at
/// debug level for health checks so probes don't flood the logs, and one event per request
/// when it ends.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        if matches!(request.path(), "/healthz" | "/readyz") {
            tracing_actix_web::root_span!(level = tracing::Level::DEBUG, request)
        } else {
            tracing_actix_web::root_span!(request)
        }
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        let debug = span.is_disabled() || span.metadata().is_some_and(|m| *m.level() == tracing::Level::DEBUG);
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        span.in_scope(|| {
            if debug {
                tracing::debug!(status, "served");
            } else if status >= 500 {
                tracing::warn!(status, "served");
            } else {
                tracing::info!(status, "served");
            }
        });
    }
}
