//! The command line: `ihf [serve]`, `migrate`, `seed-demo`, `user …`, `api-key create`, `ledger …`,
//! `demo-host`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
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
    /// Data API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
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
    /// Set a person's email address ("" for none) and how notifications reach them by mail.
    Email {
        handle: String,
        email: String,
        /// immediate, daily (one digest a day) or off.
        #[arg(long, default_value = "immediate")]
        mode: String,
    },
}

/// `ihf ledger …`
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Walk the hash chain and Merkle tree of every hub (or one) and report the first break.
    Verify {
        #[arg(long)]
        hub: Option<String>,
    },
    /// Print an inclusion or consistency proof as JSON (what the HTTP API answers).
    #[command(subcommand)]
    Prove(ProveCommand),
    /// Print the verifier key of a hub's checkpoints (pin it).
    Key {
        #[arg(long)]
        hub: String,
    },
    /// Check an audit bundle with no database: the chain, the Merkle tree, the checkpoint's
    /// signature, and whether a checkpoint you kept earlier is consistent with it.
    VerifyBundle {
        /// The bundle (from `/hubs/{hub}/ledger/bundle`).
        file: PathBuf,
        /// The log key you trust (the text of `/hubs/{hub}/ledger/key`, or a file holding it).
        #[arg(long)]
        key: Option<String>,
        /// A signed checkpoint you kept earlier (a file, as `/hubs/{hub}/ledger/checkpoint` gave it).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
}

/// `ihf ledger prove …`
#[derive(Debug, Subcommand)]
pub enum ProveCommand {
    /// That entry SEQ is in the tree of SIZE entries (default: the newest checkpoint's).
    Inclusion {
        #[arg(long)]
        hub: String,
        #[arg(long)]
        seq: u64,
        #[arg(long)]
        size: Option<u64>,
    },
    /// That the tree of FROM entries is a prefix of the tree of TO entries (default: the newest).
    Consistency {
        #[arg(long)]
        hub: String,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
}

async fn connect(config: &Config) -> anyhow::Result<crate::db::Db> {
    let db = crate::db::Db::connect(&config.database_url, config.db_max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

async fn hub(db: &crate::db::Db, slug: &str) -> anyhow::Result<crate::db::hubs::Hub> {
    match crate::db::hubs::by_slug(db, slug).await {
        Err(crate::db::StoreError::NotFound) => anyhow::bail!("no hub {slug:?}"),
        other => Ok(other?),
    }
}

/// Runs `ihf ledger …`.
pub async fn ledger(config: &Config, command: LedgerCommand) -> anyhow::Result<ExitCode> {
    use crate::db::{ledger, ledger_tree};
    match command {
        LedgerCommand::Verify { hub } => {
            let db = connect(config).await?;
            let report = match ledger::verify_all(&db, hub.as_deref()).await {
                Err(crate::db::StoreError::NotFound) => anyhow::bail!("no hub {:?}", hub.unwrap_or_default()),
                other => other?,
            };
            for line in &report.lines {
                println!("{line}");
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        LedgerCommand::Key { hub: slug } => {
            let db = connect(config).await?;
            let hub = hub(&db, &slug).await?;
            println!("{}", ledger_tree::identity(&db).await?.signer(&hub.slug)?.vkey());
            Ok(ExitCode::SUCCESS)
        }
        LedgerCommand::Prove(prove) => {
            let db = connect(config).await?;
            let identity = ledger_tree::identity(&db).await?;
            let mut tx = db.writer().begin().await?;
            let answer = match prove {
                ProveCommand::Inclusion { hub: slug, seq, size } => {
                    let hub = hub(&db, &slug).await?;
                    ledger_tree::prove_inclusion(&mut tx, &identity, hub.id, &hub.slug, seq, size)
                        .await?
                        .map(|a| serde_json::to_string_pretty(&a))
                }
                ProveCommand::Consistency { hub: slug, from, to } => {
                    let hub = hub(&db, &slug).await?;
                    ledger_tree::prove_consistency(&mut tx, &identity, hub.id, &hub.slug, from, to)
                        .await?
                        .map(|a| serde_json::to_string_pretty(&a))
                }
            };
            tx.commit().await?;
            match answer {
                Ok(json) => {
                    println!("{}", json?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(refused) => {
                    eprintln!("ihf: {refused}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        LedgerCommand::VerifyBundle { file, key, checkpoint } => {
            let pinned = match key {
                None => None,
                Some(key) => {
                    let text = if std::path::Path::new(&key).is_file() {
                        std::fs::read_to_string(&key).with_context(|| format!("reading the key file {key}"))?
                    } else {
                        key
                    };
                    Some(text.trim().parse::<crate::transparency::note::VerifierKey>().context("the --key")?)
                }
            };
            let kept = match checkpoint {
                None => None,
                Some(path) => {
                    Some(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)
                }
            };
            let input = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let report = crate::audit::verify_bundle(std::io::BufReader::new(input), pinned.as_ref(), kept.as_deref())?;
            for line in &report.lines {
                println!("{line}");
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// `ihf api-key …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make an API key for HUB as the operator BY (as the settings page does) and print it; it
    /// is shown only this once. Scripts (and CI's schemathesis run) use it.
    Create {
        hub_slug: String,
        name: String,
        /// The handle of the operator the key acts as (a site administrator will do).
        #[arg(long)]
        by: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `ihf demo-host --help` says what `--bind` means there and that the page needs the
    /// server's database (issue #20, item 7).
    #[test]
    fn demo_host_help_explains_bind_and_the_database() {
        let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cli = Cli::command();
        let top = words(cli.render_long_help().to_string());
        assert!(top.contains("for `demo-host`, the IHF server its page embeds from"), "{top}");
        let help =
            words(cli.find_subcommand_mut("demo-host").map(|c| c.render_long_help().to_string()).unwrap_or_default());
        assert!(help.contains("the same DATABASE_URL"), "{help}");
        assert!(help.contains("name the IHF server it embeds from, not this page"), "{help}");
        assert!(help.contains("--listen"), "{help}");
    }
}
