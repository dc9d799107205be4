//! Logging set-up.
//!
//! `pretty` (the default) writes one short line per event and per request: time, level, and
//! `GET /hubs/{hub} 200 3.1 ms` (method, route template, status, time to the response head).
//! `json` writes one object per line with every field, the request span's OpenTelemetry-style
//! fields (`http.*`, `otel.*`, `request_id`, …) included.

use std::borrow::Cow;
use std::fmt;
use std::sync::OnceLock;
use std::time::Instant;

use actix_web::HttpMessage;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// The target of the one line per request.
pub const REQUEST_TARGET: &str = "ihf::request";

/// The format [`init`] installed (pretty until then).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the global subscriber; a bad filter falls back to `info` with a warning.
pub fn init(level: &str, format: LogFormat) {
    let (filter, bad) = match EnvFilter::try_new(level) {
        Ok(filter) => (filter, None),
        Err(e) => (EnvFilter::new("info"), Some(e)),
    };
    let _ = FORMAT.set(format);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.event_format(Concise).try_init(),
    };
    if installed.is_ok()
        && let Some(e) = bad
    {
        tracing::warn!(error = %e, "invalid IHF_LOG filter, using info");
    }
}

/// The `pretty` line: time, level, the target (left out on request lines) and the event's
/// fields; the fields of the spans around it are left out (`json` has them).
pub struct Concise;

impl<S, N> FormatEvent<S, N> for Concise
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        SystemTime.format_time(&mut writer)?;
        let level = meta.level().as_str();
        if writer.has_ansi_escapes() {
            let colour = match *meta.level() {
                tracing::Level::ERROR => 31,
                tracing::Level::WARN => 33,
                tracing::Level::INFO => 32,
                _ => 34,
            };
            write!(writer, " \x1b[{colour}m{level:>5}\x1b[0m ")?;
        } else {
            write!(writer, " {level:>5} ")?;
        }
        if meta.target() != REQUEST_TARGET {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// What the request line needs, kept from the request's start.
struct RequestStart {
    at: Instant,
    /// `METHOD route` (the route template, or the redacted path when no route matched).
    label: String,
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

/// Health checks: probes that would flood the logs, at debug level.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Requests whose span is at debug level: probes, and live streams (pages', embeds', the data
/// API's), whose span would be kept, fields and all, as long as the stream lasts (hours for an
/// open tab); their `served` line stays at info, and the live hub's metrics count the streams.
fn quiet_span(path: &str) -> bool {
    is_probe(path)
        || path == "/live"
        || (path.starts_with("/embed/") && path.ends_with("/live"))
        || (path.starts_with("/api/") && path.ends_with("/annotations/stream"))
}

/// Request spans: tracing-actix-web's root span (route template, method, request id, and the
/// fields its `on_request_end` fills), with credentials in the query redacted, at debug level
/// for health checks so probes don't flood the logs and for live streams (see [`quiet_span`]),
/// and one event per request when it ends.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        // Field values are computed only when the span is enabled (inside `span!`).
        let pattern = request.match_pattern();
        let target = redacted_target(request.uri().path_and_query().map_or("", |p| p.as_str())).into_owned();
        let route = pattern.clone().unwrap_or_else(|| "default".into());
        let method = request.method().as_str();
        request.extensions_mut().insert(RequestStart {
            at: Instant::now(),
            label: format!("{method} {}", pattern.as_deref().unwrap_or(&target)),
        });
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
                    http.client_ip = %crate::web::client_addr::client_ip(request.request()).map(|ip| ip.to_string()).unwrap_or_default(),
                    http.user_agent = %request.headers().get("User-Agent").and_then(|h| h.to_str().ok()).unwrap_or(""),
                    http.target = %target,
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
        if quiet_span(request.path()) { span!(tracing::Level::DEBUG) } else { span!(tracing::Level::INFO) }
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        // Only probes' lines are at debug; a request that failed is logged whatever its path.
        let debug = matches!(outcome, Ok(response) if is_probe(response.request().path()));
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span.clone(), outcome);
        let (elapsed_ms, label) = match outcome {
            Ok(response) => response
                .request()
                .extensions()
                .get::<RequestStart>()
                .map(|start| (start.at.elapsed().as_secs_f64() * 1000.0, start.label.clone()))
                .unwrap_or_default(),
            Err(_) => Default::default(),
        };
        let json = FORMAT.get() == Some(&LogFormat::Json);
        span.in_scope(|| {
            macro_rules! served {
                ($level:expr) => {
                    if json {
                        tracing::event!(target: REQUEST_TARGET, $level, status, elapsed_ms, "served")
                    } else {
                        tracing::event!(target: REQUEST_TARGET, $level, "{label} {status} {elapsed_ms:.1} ms")
                    }
                };
            }
            if debug {
                served!(tracing::Level::DEBUG);
            } else if status >= 500 {
                served!(tracing::Level::WARN);
            } else {
                served!(tracing::Level::INFO);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn written(buffer: &Buffer) -> String {
        String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default()
    }

    /// A request span as [`RequestSpan`] opens it, and the line at its end.
    fn request() {
        let span = tracing::info_span!(
            "HTTP request",
            http.method = "GET",
            http.route = "/hubs/{hub}",
            http.user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            request_id = "0b5e9c6e-2f4b-4bb1-9a53-1f0e3c6f1c10",
        );
        span.in_scope(|| {
            tracing::info!(target: REQUEST_TARGET, "GET /hubs/{{hub}} 200 3.1 ms");
            tracing::warn!(error = "boom", "could not record session activity");
        });
    }

    #[test]
    fn pretty_lines_are_short_and_leave_the_span_fields_out() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(Concise)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, request);
        let out = written(&buffer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].ends_with("  INFO GET /hubs/{hub} 200 3.1 ms"), "{out}");
        assert!(
            lines[1].ends_with("  WARN ihf::telemetry::tests: could not record session activity error=\"boom\""),
            "{out}"
        );
        assert!(!out.contains("user_agent") && !out.contains("request_id"), "{out}");
    }

    #[test]
    fn json_lines_carry_every_field() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::fmt().json().flatten_event(true).with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, request);
        let out = written(&buffer);
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default()).expect("JSON");
        assert_eq!(first["span"]["http.route"], "/hubs/{hub}", "{out}");
        assert_eq!(first["span"]["request_id"], "0b5e9c6e-2f4b-4bb1-9a53-1f0e3c6f1c10", "{out}");
        assert!(first["span"]["http.user_agent"].as_str().is_some_and(|ua| ua.starts_with("Mozilla")), "{out}");
    }

    #[test]
    fn a_live_stream_keeps_no_span_at_info_but_logs_its_line() {
        use tracing_actix_web::RootSpanBuilder;
        assert!(quiet_span("/live") && quiet_span("/embed/k/live") && quiet_span("/healthz"));
        assert!(quiet_span("/api/v1/widgets/k/annotations/stream"));
        assert!(!quiet_span("/hubs/checkout") && !quiet_span("/api/v1/widgets/k/annotations"));
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .event_format(Concise)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for path in ["/live", "/healthz"] {
                let request = actix_web::test::TestRequest::get().uri(path).to_srv_request();
                let span = RequestSpan::on_request_start(&request);
                assert!(span.is_disabled(), "{path}: a stream's span is not kept at info");
                let response = request.into_response(actix_web::HttpResponse::Ok().finish());
                RequestSpan::on_request_end(span, &Ok(response));
            }
        });
        let out = written(&buffer);
        assert!(out.contains("INFO GET /live 200"), "the stream's line is logged: {out}");
        assert!(!out.contains("/healthz"), "probes stay at debug: {out}");
    }

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
