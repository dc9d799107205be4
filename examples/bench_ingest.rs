//! Event-ingestion benchmark: events per second through `POST /api/v1/widgets/{key}/events` in
//! batches of 100, on SQLite and on PostgreSQL in one run, next to the store alone (the same
//! batches inserted with `db::events::insert`, no HTTP). Appends the results to BENCHMARKS.md.
//!
//! `cargo run --release --example bench_ingest [-- SECONDS CONCURRENCY]` (default 10 s, 8 clients).
//! PostgreSQL: `IHF_TEST_PG` or `postgres://postgres@127.0.0.1:5432/postgres`; a database is made
//! for the run and dropped after it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ihf::db::events::{self, NewEvent};
use ihf::db::widgets::{self, NewWidget};
use ihf::db::{Backend, Db, hubs};
use ihf::{Application, Config};

const BATCH: usize = 100;
const KINDS: [&str; 5] = ["view", "click", "scroll", "input", "rage_click"];

struct Row {
    backend: &'static str,
    path: &'static str,
    events: u64,
    seconds: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }

    fn markdown(&self) -> String {
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
        format!(
            "| {} | {} | {} | {:.1} | **{:.0}** | {} | {} |",
            self.backend,
            self.path,
            self.events,
            self.seconds,
            self.rate(),
            ms(self.p50_ms),
            ms(self.p99_ms)
        )
    }
}

/// A batch body of 100 events, like a widget script sends.
fn batch_body(seed: u64) -> String {
    let now = ihf::db::now_ms();
    let events: Vec<serde_json::Value> = (0..BATCH as u64)
        .map(|i| {
            let n = seed.wrapping_mul(31).wrapping_add(i);
            serde_json::json!({
                "kind": KINDS[(n % KINDS.len() as u64) as usize],
                "occurred_at": now - (n % 5_000) as i64,
                "payload": { "target": "#checkout-pay", "x": n % 1280, "y": n % 720, "session": format!("s{}", n % 97) }
            })
        })
        .collect();
    serde_json::json!({ "events": events }).to_string()
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() - 1) as f64 * p).round() as usize])
}

async fn fixture(db: &Db) -> (i64, i64, String) {
    let hub = hubs::create(db, "bench", "Benchmark", "").await.expect("hub");
    let widget = widgets::create(
        db,
        &NewWidget {
            hub_id: hub.id,
            slug: "checkout",
            name: "Checkout",
            description: "",
            owner_id: None,
            policy_scope: "public",
            allowed_origins: "",
        },
    )
    .await
    .expect("widget");
    (hub.id, widget.id, widget.embed_key)
}

/// The store alone: batches of 100 in their own transactions, one after another.
async fn store_only(db: &Db, hub_id: i64, widget_id: i64, seconds: f64) -> (u64, f64) {
    let started = Instant::now();
    let mut inserted = 0;
    let mut seed = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let now = ihf::db::now_ms();
        let batch: Vec<NewEvent> = (0..BATCH as i64)
            .map(|i| NewEvent {
                hub_id,
                widget_id,
                kind: KINDS[(i as usize + seed) % KINDS.len()],
                actor_id: None,
                occurred_at: now - i,
                payload: format!("{{\"target\":\"#checkout-pay\",\"x\":{i},\"y\":{seed}}}"),
            })
            .collect();
        inserted += events::insert(db, &batch).await.expect("insert");
        seed += 1;
    }
    (inserted, started.elapsed().as_secs_f64())
}

/// HTTP: `concurrency` clients posting batches for `seconds`.
async fn over_http(base: &str, key: &str, seconds: f64, concurrency: usize) -> (u64, f64, Vec<f64>) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().expect("client");
    let url = format!("{base}/api/v1/widgets/{key}/events");
    let bodies: Arc<Vec<String>> = Arc::new((0..64).map(batch_body).collect());
    // Warm up the connections and the server.
    for body in bodies.iter().take(concurrency) {
        let response = client.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
        assert_eq!(response.expect("warm-up").status(), 200);
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url, bodies, accepted, stop) =
            (client.clone(), url.clone(), bodies.clone(), accepted.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[i % bodies.len()].clone();
                i += concurrency;
                let sent = Instant::now();
                let response = client.post(&url).header("content-type", "application/json").body(body).send().await;
                let response = response.expect("post");
                assert_eq!(response.status(), 200, "ingestion refused");
                let report: serde_json::Value = response.json().await.expect("report");
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                accepted.fetch_add(report["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (accepted.load(Ordering::Relaxed), elapsed, latencies)
}

async fn bench(backend: Backend, url: String, seconds: f64, concurrency: usize) -> Vec<Row> {
    let name = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    let mut config = Config::for_tests(url);
    config.ingest_per_key_per_min = u32::MAX;
    config.ingest_per_ip_per_min = u32::MAX;
    config.db_max_connections = 10;
    let app = Application::build(config).await.expect("build the app");
    let db = app.db().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let (hub_id, widget_id, key) = fixture(&db).await;

    let (events, elapsed, latencies) = over_http(&base, &key, seconds, concurrency).await;
    let http = Row {
        backend: name,
        path: "HTTP, batches of 100",
        events,
        seconds: elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
    };
    println!("{}", http.markdown());
    let (events, elapsed) = store_only(&db, hub_id, widget_id, seconds / 2.0).await;
    let store = Row {
        backend: name,
        path: "store only (`events::insert`)",
        events,
        seconds: elapsed,
        p50_ms: None,
        p99_ms: None,
    };
    println!("{}", store.markdown());

    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1")
        .bind(widget_id)
        .fetch_one(db.reader())
        .await
        .expect("count");
    let warm_up = (concurrency * BATCH) as i64;
    assert_eq!(stored, http.events as i64 + store.events as i64 + warm_up, "every accepted event is stored");
    handle.stop(true).await;
    db.close().await;
    vec![http, store]
}

async fn postgres_url(server: &str) -> Option<(String, String)> {
    let admin = Db::connect(server, 1).await.ok()?;
    let name = format!("ihf_bench_{}", std::process::id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(admin.writer()).await.ok()?;
    admin.close().await;
    let base = server.rsplit_once('/').map(|(base, _)| base).unwrap_or(server);
    Some((format!("{base}/{name}"), name))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

fn today() -> String {
    let output = std::process::Command::new("date").args(["-u", "+%Y-%m-%d"]).output().ok();
    output.and_then(|o| String::from_utf8(o.stdout).ok()).map(|s| s.trim().to_owned()).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    sqlx::any::install_default_drivers();

    let dir = std::env::temp_dir().join(format!("ihf_bench_ingest_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("| database | path | events | seconds | events/s | p50 ms | p99 ms |");
    let mut rows =
        bench(Backend::Sqlite, format!("sqlite://{}/bench.sqlite3", dir.display()), seconds, concurrency).await;
    let _ = std::fs::remove_dir_all(&dir);

    let server = std::env::var("IHF_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut note = String::new();
    match postgres_url(&server).await {
        Some((url, name)) => {
            rows.extend(bench(Backend::Postgres, url, seconds, concurrency).await);
            if let Ok(admin) = Db::connect(&server, 1).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(admin.writer())
                    .await;
                admin.close().await;
            }
        }
        None => note = format!("\nPostgreSQL was not reachable at {}: not measured.\n", ihf::db::redact_url(&server)),
    }

    let mut md = format!(
        "\n## Event ingestion — {} on {}\n\n`cargo run --release --example bench_ingest` (release build, server and {concurrency} HTTP clients in one process sharing the cores): \
         `POST /api/v1/widgets/{{key}}/events` with batches of {BATCH} events (~10 KB of JSON each; validated per item; on SQLite the batches waiting for the writer \
         commit together, on PostgreSQL each batch commits as the widget's confined RLS scope; one INSERT per batch, its rows in one JSON parameter), {seconds:.0} s per database; then the store alone (`events::insert`, one transaction per batch, \
         sequential) for half as long. Target: 50,000 events/s on SQLite over HTTP.\n\n\
         | database | path | events | seconds | events/s | p50 ms | p99 ms |\n| --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
        today(),
        machine()
    );
    for row in &rows {
        md.push_str(&row.markdown());
        md.push('\n');
    }
    md.push_str(&note);
    print!("{md}");
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open("BENCHMARKS.md").expect("BENCHMARKS.md");
    file.write_all(md.as_bytes()).expect("write BENCHMARKS.md");
}
