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
