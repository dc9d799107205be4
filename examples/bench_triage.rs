//! Triage board benchmark: a hub with the demo plus 10,000 annotations, measured in-process
//! with a reqwest client against the app on a random port.
//!
//! `cargo run --release --example bench_triage` (SQLite; `IHF_BENCH_PG=postgres://…/postgres`
//! adds a run on a fresh PostgreSQL database). Prints p50/p99 of the board page, a filter
//! request and a recategorize round trip, with a static file of the page's size served by the
//! same server as the baseline, so the ratios come from one run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::time::{Duration, Instant};

use ihf::Config;
use ihf::db::annotations::{self, AnnotationStatus, NewAnnotation};
use ihf::db::{Backend, Db};

/// Annotations added to the demo's checkout hub.
const EXTRA: usize = 10_000;
/// Requests per measurement.
const ROUNDS: usize = 200;

const WORDS: &[&str] = &[
    "checkout", "total", "coupon", "address", "payment", "card", "button", "slow", "error", "shipping", "refund",
    "wallet", "mobile", "summary", "discount", "invoice", "tax", "currency", "spinner", "timeout",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

struct Stats {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

async fn measure<F, Fut>(name: &'static str, mut request: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for i in 0..20 {
        request(i).await;
    }
    let mut times = Vec::with_capacity(ROUNDS);
    let mut bytes = 0;
    for i in 0..ROUNDS {
        let start = Instant::now();
        bytes = request(i).await;
        times.push(start.elapsed());
    }
    times.sort_unstable();
    Stats { name, p50: percentile(&times, 0.5), p99: percentile(&times, 0.99), bytes }
}

async fn database_url(backend: Backend) -> anyhow::Result<String> {
    let name = format!("ihf_bench_triage_{}", std::process::id());
    Ok(match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(name);
            std::fs::create_dir_all(&dir)?;
            format!("sqlite://{}/ihf.sqlite3", dir.display())
        }
        Backend::Postgres => {
            let server = std::env::var("IHF_BENCH_PG")?;
            let admin = Db::connect(&server, 1).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}"))).execute(admin.writer()).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(admin.writer()).await?;
            admin.close().await;
            let base = server.rsplit_once('/').map(|(base, _)| base).unwrap_or(&server);
            format!("{base}/{name}")
        }
    })
}

/// Adds `EXTRA` annotations to the checkout hub, spread over 30 days, widgets and categories.
async fn load(db: &Db) -> anyhow::Result<()> {
    let hub: i64 = sqlx::query_scalar("SELECT id FROM hubs WHERE slug = 'checkout'").fetch_one(db.reader()).await?;
    let widgets: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM widgets WHERE hub_id = $1").bind(hub).fetch_all(db.reader()).await?;
    let categories: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1").bind(hub).fetch_all(db.reader()).await?;
    let authors: Vec<i64> = sqlx::query_scalar("SELECT id FROM actors").fetch_all(db.reader()).await?;
    let now = ihf::db::now_ms();
    let mut tx = db.writer().begin().await?;
    for i in 0..EXTRA {
        let body = format!(
            "The {} {} is {} when I {} the {} (report {i})",
            WORDS[i % WORDS.len()],
            WORDS[(i / 3) % WORDS.len()],
            WORDS[(i / 7) % WORDS.len()],
            WORDS[(i / 11) % WORDS.len()],
            WORDS[(i / 13) % WORDS.len()],
        );
        let status = match i % 10 {
            0..=5 => AnnotationStatus::New,
            6..=7 => AnnotationStatus::Triaged,
            8 => AnnotationStatus::Dismissed,
            _ => AnnotationStatus::Duplicate,
        };
        annotations::insert(
            &mut tx,
            &NewAnnotation {
                hub_id: hub,
                widget_id: widgets[i % widgets.len()],
                actor_id: authors[i % authors.len()],
                body: &body,
                category_id: categories[i % categories.len()],
                status,
                created_at: now - ((i as i64 * 7919) % (30 * 24 * 60)) * 60_000,
                idempotency_key: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// `value="<id>:<version>"` of the row `id` in an action's answer.
fn version_in(html: &str, id: i64) -> Option<i64> {
    let prefix = format!("value=\"{id}:");
    let start = html.find(&prefix)? + prefix.len();
    let rest = &html[start..];
    rest[..rest.find('"')?].parse().ok()
}

/// What one run measures, on the demo alone and again with `EXTRA` more annotations.
struct Run {
    demo: Vec<Stats>,
    loaded: Vec<Stats>,
    annotations: (i64, i64),
}

async fn run(backend: Backend) -> anyhow::Result<Run> {
    let url = database_url(backend).await?;
    let mut config = Config::for_tests(url);
    config.db_max_connections = 10;
    // The baseline file lives in a folder of its own, served through the `IHF_STATIC_DIR` override.
    let static_dir = std::env::temp_dir().join(format!("ihf-bench-triage-{}-{backend:?}", std::process::id()));
    std::fs::create_dir_all(&static_dir)?;
    config.static_dir = Some(static_dir.clone());
    let app = ihf::Application::build(config).await?;
    let db = app.db().clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());

    ihf::demo::seed(&db).await?;
    let hash = ihf::auth::password::hash("bench password").map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
    let triager = ihf::db::actors::create_person(&db, "bench", "Bench Triager", Some(&hash), false).await?;
    let hub = ihf::db::hubs::by_slug(&db, "checkout").await?;
    ihf::db::actors::grant(&db, hub.id, triager, "triager").await?;

    let client = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let login = client.get(format!("{address}/login")).send().await?.text().await?;
    let csrf_of = |html: &str| {
        let prefix = "name=\"csrf-token\" content=\"";
        html.find(prefix)
            .and_then(|s| html[s + prefix.len()..].split('"').next().map(str::to_owned))
            .unwrap_or_default()
    };
    let form = [("handle", "bench"), ("password", "bench password"), ("csrf_token", &csrf_of(&login)), ("next", "/")];
    let signed_in = client.post(format!("{address}/login")).form(&form).send().await?;
    anyhow::ensure!(signed_in.status() == 303, "sign-in failed: {}", signed_in.status());
    let board = client.get(format!("{address}/hubs/checkout/triage")).send().await?.text().await?;
    let csrf = csrf_of(&board);
    let bench = Bench { client, address, csrf, db: db.clone(), hub: hub.id, static_dir: static_dir.clone() };
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM annotations WHERE hub_id = $1")
            .bind(hub.id)
            .fetch_one(db.reader())
            .await
    };
    let before = count().await?;
    let demo = bench.measure_all().await?;
    load(&db).await?;
    if backend == Backend::Postgres {
        // As autovacuum would after a bulk load.
        sqlx::query("ANALYZE").execute(db.writer()).await?;
    }
    let after = count().await?;
    let loaded = bench.measure_all().await?;
    handle.stop(true).await;
    db.close().await;
    let _ = std::fs::remove_dir_all(&static_dir);
    Ok(Run { demo, loaded, annotations: (before, after) })
}

struct Bench {
    client: reqwest::Client,
    address: String,
    csrf: String,
    db: Db,
    hub: i64,
    static_dir: std::path::PathBuf,
}

impl Bench {
    async fn measure_all(&self) -> anyhow::Result<Vec<Stats>> {
        let Self { client, address, csrf, db, hub, static_dir } = self;
        let board = client.get(format!("{address}/hubs/checkout/triage")).send().await?.text().await?;

        // A static file of the page's size, served by the same server: the baseline.
        let baseline = static_dir.join("baseline.txt");
        std::fs::write(&baseline, "x".repeat(board.len()))?;
        let baseline_url =
            format!("{address}/static/{}", baseline.file_name().and_then(|n| n.to_str()).unwrap_or_default());

        let mut results = Vec::new();
        results.push(
            measure("static file, same size (baseline)", |_| {
                let request = client.get(&baseline_url);
                async move { request.send().await.expect("GET").bytes().await.expect("body").len() }
            })
            .await,
        );
        results.push(
            measure("board page, full", |_| {
                let request = client.get(format!("{address}/hubs/checkout/triage"));
                async move { request.send().await.expect("GET").bytes().await.expect("body").len() }
            })
            .await,
        );
        results.push(
            measure("filter: queue, bug + search (htmx)", |i| {
                let word = WORDS[i % WORDS.len()];
                let request = client
                    .get(format!("{address}/hubs/checkout/triage/queue?status=new&category=bug&q={word}"))
                    .header("HX-Request", "true");
                async move { request.send().await.expect("GET").bytes().await.expect("body").len() }
            })
            .await,
        );
        // Recategorize the oldest new annotations one after another, each at its current version.
        let targets: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, version FROM annotations WHERE hub_id = $1 AND status = 'new' ORDER BY created_at, id LIMIT 50",
        )
        .bind(hub)
        .fetch_all(db.reader())
        .await?;
        let categories: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1").bind(hub).fetch_all(db.reader()).await?;
        let versions = std::sync::Arc::new(std::sync::Mutex::new(targets.clone()));
        results.push(
            measure("recategorize round trip (htmx)", |i| {
                let slot = i % targets.len();
                let (id, version) = versions.lock().map(|v| v[slot]).unwrap_or_default();
                let category = categories[i % categories.len()];
                let form = [
                    ("action", "category".to_owned()),
                    ("category_id", category.to_string()),
                    ("version", version.to_string()),
                    ("status", "new".to_owned()),
                ];
                let request = client
                    .post(format!("{address}/hubs/checkout/triage/annotations/{id}"))
                    .header("HX-Request", "true")
                    .header("X-CSRF-Token", csrf)
                    .form(&form);
                let versions = versions.clone();
                async move {
                    let response = request.send().await.expect("POST");
                    assert!(response.status().is_success(), "recategorize: {}", response.status());
                    let html = response.text().await.expect("body");
                    if let (Some(next), Ok(mut v)) = (version_in(&html, id), versions.lock()) {
                        v[slot].1 = next;
                    }
                    html.len()
                }
            })
            .await,
        );
        let _ = std::fs::remove_file(&baseline);
        Ok(results)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut backends = vec![Backend::Sqlite];
    if std::env::var("IHF_BENCH_PG").is_ok_and(|v| !v.is_empty()) {
        backends.push(Backend::Postgres);
    }
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("{ROUNDS} sequential requests each, {profile} build; then again with {EXTRA} more annotations\n");
    for backend in backends {
        let run = run(backend).await?;
        for (load, results) in [(run.annotations.0, &run.demo), (run.annotations.1, &run.loaded)] {
            let base = results[0].p50.as_secs_f64();
            println!("| {backend:?}, {load} annotations in the hub | p50 ms | p99 ms | bytes | p50 / static |");
            println!("| --- | ---: | ---: | ---: | ---: |");
            for r in results {
                println!(
                    "| {} | {} | {} | {} | {:.1}× |",
                    r.name,
                    ms(r.p50),
                    ms(r.p99),
                    r.bytes,
                    r.p50.as_secs_f64() / base
                );
            }
            println!();
        }
    }
    Ok(())
}
