//! One configuration, from flags and environment variables.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::web::client_addr::TrustedProxies;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The embedded default database, relative to the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/ihf.sqlite3";

/// Everything the server needs to start. Parsed by clap; every flag has an environment variable.
#[derive(Clone, Args)]
pub struct Config {
    /// Address to serve on.
    #[arg(long, env = "IHF_BIND", default_value = "127.0.0.1:8080", global = true)]
    pub bind: SocketAddr,

    /// `sqlite://PATH` (the default, created when missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Most database connections in a pool.
    #[arg(long, env = "IHF_DB_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub db_max_connections: u32,

    /// Log filter, e.g. `info` or `ihf=debug,actix_web=info`.
    #[arg(long, env = "IHF_LOG", default_value = "info", global = true)]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "IHF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Development override: serve CSS and scripts from this folder (IHF's `static/`), read on
    /// every request, instead of the copies compiled into the binary.
    #[arg(long, env = "IHF_STATIC_DIR", global = true)]
    pub static_dir: Option<PathBuf>,

    /// Milliseconds a live region waits to coalesce a burst of changes into one render.
    #[arg(long, env = "IHF_LIVE_WINDOW_MS", default_value_t = 150, global = true)]
    pub live_window_ms: u64,

    /// Seconds between heartbeat comments on idle live streams (also how soon a vanished
    /// client is noticed: a closed connection shows when a write fails).
    #[arg(long, env = "IHF_LIVE_HEARTBEAT_SECS", default_value_t = 15, global = true)]
    pub live_heartbeat_secs: u64,

    /// Most live streams open at once on this instance.
    #[arg(long, env = "IHF_LIVE_MAX_STREAMS", default_value_t = 20_000, global = true)]
    pub live_max_streams: usize,

    /// Most live streams from one IP address.
    #[arg(long, env = "IHF_LIVE_MAX_PER_IP", default_value_t = 500, global = true)]
    pub live_max_per_ip: usize,

    /// Most live streams of one signed-in session.
    #[arg(long, env = "IHF_LIVE_MAX_PER_SESSION", default_value_t = 16, global = true)]
    pub live_max_per_session: usize,

    /// PEM certificate chain (leaf first); with `IHF_TLS_KEY`, serve HTTPS with HTTP/2 and
    /// HTTP/1.1 (by ALPN) and mark cookies `Secure`.
    #[arg(long, env = "IHF_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `IHF_TLS_CERT`.
    #[arg(long, env = "IHF_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Mark cookies `Secure` (set when served over HTTPS, e.g. behind a TLS proxy).
    #[arg(long, env = "IHF_SECURE_COOKIES", default_value_t = false, global = true)]
    pub secure_cookies: bool,

    /// Seed the demo data (people of every role, a site administrator among them, with printed
    /// passwords) into an empty database on start. Unset: only for the default SQLite database,
    /// never for PostgreSQL or another file.
    #[arg(long, env = "IHF_SEED_DEMO", action = clap::ArgAction::Set, global = true)]
    pub seed_demo: Option<bool>,

    /// Address of the Prometheus `/metrics` listener; none when unset (keep it off the public port).
    #[arg(long, env = "IHF_METRICS_BIND", global = true)]
    pub metrics_bind: Option<SocketAddr>,

    /// Let webhooks reach private, loopback and link-local addresses (off: no server-side request forgery).
    #[arg(long, env = "IHF_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,

    /// Milliseconds before the first retry of a failed webhook delivery; each retry doubles it.
    #[arg(long, env = "IHF_WEBHOOK_RETRY_BASE_MS", default_value_t = 30_000, global = true)]
    pub webhook_retry_base_ms: u64,

    /// Event-ingestion requests allowed per minute for one widget's embed key.
    #[arg(long, env = "IHF_INGEST_PER_KEY_PER_MIN", default_value_t = 6000, global = true)]
    pub ingest_per_key_per_min: u32,

    /// Event-ingestion requests allowed per minute from one client IP address.
    #[arg(long, env = "IHF_INGEST_PER_IP_PER_MIN", default_value_t = 600, global = true)]
    pub ingest_per_ip_per_min: u32,

    /// The name of this instance's ledger log, the first part of every hub's checkpoint origin
    /// (`<name>/<hub>`), e.g. `feedback.example.com`; used when the signing key is first made
    /// (default `ihf-` and 8 random hex digits), fixed after that.
    #[arg(long, env = "IHF_LEDGER_NAME", global = true)]
    pub ledger_name: Option<String>,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client, as
    /// comma-separated addresses or CIDR networks (`127.0.0.1,10.0.0.0/8,::1`); empty trusts
    /// nobody, and then the TCP peer is the client for every per-IP limit and log.
    #[arg(long, env = "IHF_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: TrustedProxies,
}

impl Config {
    /// A configuration for tests: a given database, port 0, no demo data.
    pub fn for_tests(database_url: String) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            db_max_connections: 5,
            log_level: "warn".into(),
            log_format: LogFormat::Pretty,
            static_dir: None,
            live_window_ms: 50,
            live_heartbeat_secs: 15,
            live_max_streams: 20_000,
            live_max_per_ip: 500,
            live_max_per_session: 16,
            tls_cert: None,
            tls_key: None,
            secure_cookies: false,
            seed_demo: Some(false),
            metrics_bind: None,
            webhook_allow_private: false,
            webhook_retry_base_ms: 30_000,
            ingest_per_key_per_min: 6000,
            ingest_per_ip_per_min: 600,
            ledger_name: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }

    /// The certificate and key files when HTTPS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Whether serving seeds the demo into an empty database: as `IHF_SEED_DEMO` says, and when
    /// it is unset only on the default SQLite database (what `cargo run` serves).
    pub fn seeds_demo(&self) -> bool {
        self.seed_demo.unwrap_or(self.database_url == DEFAULT_DATABASE_URL)
    }

    /// Checks what clap cannot: returns one clear line describing the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if crate::db::Backend::from_url(&self.database_url).is_none() {
            return Err(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
                crate::db::redact_url(&self.database_url)
            ));
        }
        if let Some(dir) = &self.static_dir
            && !dir.join("vendor").is_dir()
        {
            return Err(format!(
                "IHF_STATIC_DIR {} has no vendor/ folder: point it at IHF's static/ folder, or unset it",
                dir.display()
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("IHF_TLS_CERT and IHF_TLS_KEY go together: set both for HTTPS, or neither".into());
        }
        if self.db_max_connections == 0 {
            return Err("IHF_DB_MAX_CONNECTIONS must be at least 1".into());
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &crate::db::redact_url(&self.database_url))
            .field("db_max_connections", &self.db_max_connections)
            .field("log_level", &self.log_level)
            .field("log_format", &self.log_format)
            .field("static_dir", &self.static_dir)
            .field("live_window_ms", &self.live_window_ms)
            .field("live_heartbeat_secs", &self.live_heartbeat_secs)
            .field("live_max_streams", &self.live_max_streams)
            .field("live_max_per_ip", &self.live_max_per_ip)
            .field("live_max_per_session", &self.live_max_per_session)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("secure_cookies", &self.secure_cookies)
            .field("seed_demo", &self.seed_demo)
            .field("metrics_bind", &self.metrics_bind)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("webhook_retry_base_ms", &self.webhook_retry_base_ms)
            .field("ingest_per_key_per_min", &self.ingest_per_key_per_min)
            .field("ingest_per_ip_per_min", &self.ingest_per_ip_per_min)
            .field("ledger_name", &self.ledger_name)
            .field("trusted_proxies", &self.trusted_proxies.to_string())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("ihf").chain(args.iter().copied())).expect("valid flags").config
    }

    #[test]
    fn the_demo_is_seeded_by_default_only_into_the_default_sqlite_database() {
        assert!(parse(&["--database-url", DEFAULT_DATABASE_URL]).seeds_demo());
        assert!(!parse(&["--database-url", "postgres://postgres@127.0.0.1/ihf"]).seeds_demo());
        assert!(!parse(&["--database-url", "sqlite:///srv/ihf/prod.sqlite3"]).seeds_demo());
        assert!(parse(&["--database-url", "postgres://postgres@127.0.0.1/ihf", "--seed-demo", "true"]).seeds_demo());
        assert!(!parse(&["--database-url", DEFAULT_DATABASE_URL, "--seed-demo", "false"]).seeds_demo());
    }

    #[test]
    fn trusted_proxies_default_to_nobody_and_refuse_bad_networks() {
        assert!(parse(&[]).trusted_proxies.is_empty());
        let list = parse(&["--trusted-proxies", "127.0.0.1,10.0.0.0/8,::1"]).trusted_proxies;
        assert!(list.trusts("10.2.3.4".parse().unwrap()) && !list.trusts("192.0.2.1".parse().unwrap()));
        let cli = Cli::try_parse_from(["ihf", "--trusted-proxies", "10.0.0.0/40"]);
        assert!(cli.is_err(), "a prefix longer than the address is refused at start");
    }
}
