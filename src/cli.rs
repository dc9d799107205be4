//! The command line: `ihf [serve]`, `migrate`, `seed-demo`, `user …`, `ledger verify`, `demo-host`.

use clap::{Parser, Subcommand};

use crate::config::Config;

/// IHF: a live feedback system for product teams.
#[derive(Debug, Parser)]
#[command(name = "ihf", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app (migrates, and seeds the demo into an empty database).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Seed the demo data (idempotent: does nothing when the demo hubs exist).
    SeedDemo,
    /// Manage people and their hub roles.
    #[command(subcommand)]
    User(UserCommand),
    /// Governance ledger tools.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Write a consistent copy of the SQLite database to PATH, safe while the server runs.
    Backup { path: std::path::PathBuf },
    /// Replace the SQLite database with the backup at PATH (stop the server first).
    Restore {
        path: std::path::PathBuf,
        /// Overwrite even a database with newer writes than the backup.
        #[arg(long)]
        force: bool,
    },
    /// Serve a third-party demo page (another origin) that embeds demo widgets of the server.
    /// It reads the demo widgets (and signs a visitor token with one's embed secret) from the
    /// server's database, so give it the same DATABASE_URL; `--bind` / IHF_BIND name the IHF
    /// server it embeds from, not this page.
    DemoHost {
        /// Where the demo page listens; this origin is added to the demo widgets' allowed origins.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: std::net::SocketAddr,
        /// The IHF server the page embeds from (default: http:// + IHF_BIND).
        #[arg(long)]
        server: Option<String>,
    },
}

/// `ihf user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a person; the password is read from the first line of standard input.
    Add {
        handle: String,
        /// Display name (defaults to the handle).
        #[arg(long)]
        name: Option<String>,
        /// Make them a site administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Set a person's password from the first line of standard input.
    SetPassword { handle: String },
    /// Grant a role (annotator, triager, operator) in a hub.
    Grant { handle: String, hub_slug: String, role: String },
    /// Remove a person from a hub.
    Revoke { handle: String, hub_slug: String },
}

/// `ihf ledger …`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Walk the hash chain of every hub (or one) and report the first break.
    Verify {
        #[arg(long)]
        hub: Option<String>,
    },
}
