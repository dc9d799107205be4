//! Logging set-up.

use std::borrow::Cow;

use actix_web::HttpMessage;
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

/// Query parameters that carry credentials (EventSource and iframes cannot send headers): an
/// API key or embed token (`access_token`), the host site's token (`token`), the visitor token
/// (`vt`). Their values never reach the logs.
const SECRET_PARAMS: [&str; 3] = ["access_token", "token", "vt"];

/// A request's path and query as logged: the values of [`SECRET_PARAMS`] replaced.
pub fn redacted_target(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else { return Cow::Borrowed(path_and_query) };
    let secret = |pair: &str| SECRET_PARAMS.contains(&pair.split('=').next().unwrap_or_default());
    if !query.split('&').any(secret) {
        return Cow::Borrowed(path_and_query);
    }
    let pairs: Vec<Cow<str>> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret(pair) => Cow::Owned(format!("{name}=[redacted]")),
            _ => Cow::Borrowed(pair),
        })
        .collect();
    Cow::Owned(format!("{path}?{}", pairs.join("&")))
}

/// Request spans: tracing-actix-web's root span (route template, method, request id, and the
/// fields its `on_request_end` fills), with credentials in the query redacted, at debug level
/// for health checks so probes don't flood the logs, and one event per request when it ends.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        // Field values are computed only when the span is enabled (inside `span!`).
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let method = request.method().as_str();
        let info = request.connection_info();
        macro_rules! span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "HTTP request",
                    http.method = %method,
                    http.route = %route,
                    http.scheme = %info.scheme(),
                    http.host = %info.host(),
                    http.client_ip = %info.realip_remote_addr().unwrap_or(""),
                    http.user_agent = %request.headers().get("User-Agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
                    http.target = %redacted_target(request.uri().path_and_query().map_or("", |p| p.as_str())),
                    http.status_code = tracing::field::Empty,
                    otel.name = %format_args!("{method} {route}"),
                    otel.kind = "server",
                    otel.status_code = tracing::field::Empty,
                    request_id = %request.extensions().get::<tracing_actix_web::RequestId>().map(ToString::to_string).unwrap_or_default(),
                    exception.message = tracing::field::Empty,
                    exception.details = tracing::field::Empty,
                )
            };
        }
        if matches!(request.path(), "/healthz" | "/readyz") {
            span!(tracing::Level::DEBUG)
        } else {
            span!(tracing::Level::INFO)
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

#[cfg(test)]
mod tests {
    use super::redacted_target;

    #[test]
    fn credentials_in_the_query_are_redacted() {
        assert_eq!(redacted_target("/hubs/checkout?page=2"), "/hubs/checkout?page=2");
        assert_eq!(redacted_target("/live"), "/live");
        assert_eq!(
            redacted_target("/api/v1/widgets/k/annotations/stream?access_token=ihf_key_123&category=bug"),
            "/api/v1/widgets/k/annotations/stream?access_token=[redacted]&category=bug"
        );
        assert_eq!(
            redacted_target("/embed/k?theme=dark&token=eyJ.x.y&vt=abc&tokens=keep"),
            "/embed/k?theme=dark&token=[redacted]&vt=[redacted]&tokens=keep"
        );
    }
}
