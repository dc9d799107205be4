//! `ihf`: parse the command line, configure, run.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Parser;
use ihf::cli::{ApiKeyCommand, Cli, Command, UserCommand};
use ihf::db::{self, Db};
use ihf::{Application, Config, auth, demo, telemetry};

/// jemalloc returns the pages a burst of connections freed; see `Cargo.toml`.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.config.log_level, cli.config.log_format);
    if let Err(problem) = cli.config.validate() {
        eprintln!("ihf: {problem}");
        return ExitCode::from(2);
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ihf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let db = connect(&config).await?;
            // Entries written before the Merkle tree existed get their tree and a checkpoint
            // now, not only at the next `serve`: `ihf ledger verify` right after passes.
            db::ledger_tree::ensure_identity(&db, config.ledger_name.as_deref()).await?;
            let added = db::ledger_tree::backfill(&db).await?;
            println!("migrations applied to {}", db::redact_url(&config.database_url));
            if added > 0 {
                println!("ledger: {added} entries added to the Merkle trees, checkpoints signed");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SeedDemo => {
            let db = connect(&config).await?;
            match demo::seed(&db).await? {
                Some(logins) => print_logins(&logins),
                None => println!("the demo data is already there; nothing to do"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User(command) => user(&connect(&config).await?, command).await,
        Command::ApiKey(ApiKeyCommand::Create { hub_slug, name, by }) => {
            let db = connect(&config).await?;
            let hub = db::hubs::by_slug(&db, &hub_slug).await.map_err(|_| anyhow::anyhow!("no hub {hub_slug:?}"))?;
            let actor =
                db::actors::by_handle(&db, &by).await.map_err(|_| anyhow::anyhow!("no person with handle {by:?}"))?;
            let viewer = auth::Viewer {
                actor_id: Some(actor.id),
                handle: actor.handle.clone(),
                display_name: actor.display_name.clone(),
                is_admin: actor.is_admin == 1,
            };
            let access = ihf::access::HubAccess::load(&db, &viewer, hub.id).await?;
            if !access.can_manage() {
                anyhow::bail!("{by} is not an operator of {hub_slug}: the key would not work");
            }
            let (_, key) = db::api_keys::create(&db, hub.id, &name, actor.id).await?;
            println!("{key}");
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoHost { listen, server } => {
            let server = server.unwrap_or_else(|| format!("http://{}", config.bind));
            ihf::demo_host::run(connect(&config).await?, listen, server).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(command) => ihf::cli::ledger(&config, command).await,
        Command::Backup { path } => {
            let report = ihf::backup::backup(&config.database_url, &path).await?;
            println!(
                "backed up to {} ({} bytes, {} annotations)",
                report.path.display(),
                report.bytes,
                report.annotations
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { path, force } => {
            let report = ihf::backup::restore(&config.database_url, &path, force).await?;
            println!("restored {} from {} ({} annotations)", report.path.display(), path.display(), report.annotations);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.db_max_connections).await?;
    db.migrate().await?;
    Ok(db)
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let db = connect(&config).await?;
    let seeds_demo = config.seeds_demo();
    let logins = if seeds_demo { demo::seed(&db).await? } else { None };
    let app = Application::build_with_db(config.clone(), db).await?;
    println!();
    let scheme = if config.tls().is_some() { "https" } else { "http" };
    println!("  IHF is running at {scheme}://{}:{}/", config.bind.ip(), app.port());
    println!("  database: {}", db::redact_url(&config.database_url));
    if let (Some(bind), Some(port)) = (config.metrics_bind, app.metrics_port()) {
        println!("  metrics: http://{}:{port}/metrics", bind.ip());
    }
    match logins {
        Some(logins) => print_logins(&logins),
        None if seeds_demo => println!(
            "  demo logins were printed when the demo was seeded; reset one with\n  `echo NEWPASSWORD | ihf user set-password HANDLE`"
        ),
        None => println!(
            "  no demo data (IHF_SEED_DEMO=true seeds it into an empty database); add a site administrator\n  with `echo PASSWORD | ihf user add HANDLE --admin`"
        ),
    }
    println!();
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

fn print_logins(logins: &[demo::DemoLogin]) {
    println!("  demo logins (shown once; passwords are stored hashed):");
    for login in logins {
        println!("    {:<10} {:<22} {}", login.handle, login.password, login.what);
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    auth::password::check_strength(&password).map_err(anyhow::Error::msg)?;
    Ok(password)
}

async fn user(db: &Db, command: UserCommand) -> anyhow::Result<ExitCode> {
    use ihf::db::{actors, hubs};
    match command {
        UserCommand::Add { handle, name, admin } => {
            let password = read_password()?;
            let hash = auth::password::hash(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            let display = name.unwrap_or_else(|| handle.clone());
            match actors::create_person(db, &handle, &display, Some(&hash), admin).await {
                Ok(id) => println!("added {handle} (id {id}){}", if admin { ", administrator" } else { "" }),
                Err(db::StoreError::Conflict { .. }) => anyhow::bail!("the handle {handle:?} is taken"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::SetPassword { handle } => {
            let actor = actors::by_handle(db, &handle)
                .await
                .map_err(|_| anyhow::anyhow!("no person with handle {handle:?}"))?;
            let password = read_password()?;
            let hash = auth::password::hash(&password).map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            actors::set_password_hash(db, actor.id, &hash).await?;
            // A new password ends every session of the person (their live streams follow).
            let ended = ihf::db::sessions::revoke_all(db, actor.id, ihf::db::now_ms()).await?;
            println!("password of {handle} changed; {ended} session(s) signed out");
        }
        UserCommand::Grant { handle, hub_slug, role } => {
            if ihf::access::Role::parse(&role).is_none() {
                anyhow::bail!("role must be one of {}", ihf::access::Role::names().join(", "));
            }
            let actor = actors::by_handle(db, &handle)
                .await
                .map_err(|_| anyhow::anyhow!("no person with handle {handle:?}"))?;
            let hub = hubs::by_slug(db, &hub_slug).await.map_err(|_| anyhow::anyhow!("no hub {hub_slug:?}"))?;
            actors::grant(db, hub.id, actor.id, &role).await?;
            println!("{handle} is now {role} of {hub_slug}");
        }
        UserCommand::Revoke { handle, hub_slug } => {
            let actor = actors::by_handle(db, &handle)
                .await
                .map_err(|_| anyhow::anyhow!("no person with handle {handle:?}"))?;
            let hub = hubs::by_slug(db, &hub_slug).await.map_err(|_| anyhow::anyhow!("no hub {hub_slug:?}"))?;
            match actors::revoke(db, hub.id, actor.id).await {
                Ok(()) => println!("{handle} is no longer a member of {hub_slug}"),
                Err(db::StoreError::NotFound) => anyhow::bail!("{handle} is not a member of {hub_slug}"),
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::Email { handle, email, mode } => {
            use ihf::db::notifications;
            let actor = actors::by_handle(db, &handle)
                .await
                .map_err(|_| anyhow::anyhow!("no person with handle {handle:?}"))?;
            let email = notifications::parse_email(&email)?;
            let mode = notifications::parse_mode(&mode)?;
            notifications::set_email(db, actor.id, email.as_deref(), mode).await?;
            match email {
                Some(email) => println!("{handle}: {email}, mail {mode}"),
                None => println!("{handle}: no email address (notifications stay in the app)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
