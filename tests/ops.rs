//! Running IHF in production: exports (filters, access, constant memory for 100,000
//! annotations), `/metrics`, readiness, backups taken during writes, and SIGTERM with an open
//! live stream. The memory and SIGTERM tests run the real binary as a separate process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{PASSWORD, SseClient, TestApp};
use ihf::db::{Backend, Db};

/// A hub with two widgets, people of each role, and ids for inserting annotations.
#[derive(Clone)]
struct Fixture {
    hub_id: i64,
    cart: i64,
    address: i64,
    bug: i64,
    idea: i64,
    anna: i64,
}

async fn fixture(db: &Db) -> Fixture {
    let hub = ihf::db::hubs::create(db, "checkout", "Checkout", "").await.expect("hub");
    ihf::db::hubs::create(db, "onboarding", "Onboarding", "").await.expect("hub");
    let hash = ihf::auth::password::hash(PASSWORD).expect("hash");
    let mut anna = 0;
    for (handle, hub_slug, role) in [
        ("tomas", "checkout", "triager"),
        ("olga", "checkout", "operator"),
        ("anna", "checkout", "annotator"),
        ("tara", "onboarding", "triager"),
    ] {
        let id = ihf::db::actors::create_person(db, handle, handle, Some(&hash), false).await.expect("person");
        let hub = ihf::db::hubs::by_slug(db, hub_slug).await.expect("hub");
        ihf::db::actors::grant(db, hub.id, id, role).await.expect("grant");
        if handle == "anna" {
            anna = id;
        }
    }
    let widget = |slug: &'static str, name: &'static str| ihf::db::widgets::NewWidget {
        hub_id: hub.id,
        slug,
        name,
        description: "",
        owner_id: None,
        policy_scope: "members",
        allowed_origins: "",
    };
    let cart = ihf::db::widgets::create(db, &widget("cart", "Cart")).await.expect("widget").id;
    let address = ihf::db::widgets::create(db, &widget("address", "Address form")).await.expect("widget").id;
    let category = |slug: &'static str| {
        let db = db.clone();
        async move {
            let id: i64 = sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND slug = $2")
                .bind(hub.id)
                .bind(slug)
                .fetch_one(db.reader())
                .await
                .expect("category");
            id
        }
    };
    Fixture { hub_id: hub.id, cart, address, bug: category("bug").await, idea: category("idea").await, anna }
}

async fn annotate(db: &Db, f: &Fixture, widget: i64, category: i64, status: &str, body: &str, at: i64) -> i64 {
    ihf::db::annotations::create(
        db,
        &ihf::db::annotations::NewAnnotation {
            hub_id: f.hub_id,
            widget_id: widget,
            actor_id: f.anna,
            body,
            category_id: category,
            status: ihf::db::annotations::AnnotationStatus::parse(status).expect("a status"),
            created_at: at,
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation")
}

/// `n` annotations on the cart widget in one statement, each with a body of about 400 bytes.
async fn bulk_annotations(db: &Db, f: &Fixture, n: i64) {
    let filler = "The card number field loses focus after every fourth digit, so I keep typing into nothing; \
                  on the second try the expiry date was cleared as well, and the error message only said \
                  'something went wrong' without telling me which field was wrong. I gave up and paid with \
                  a different method, which took another three minutes of my lunch break.";
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, status, created_at, updated_at)
         SELECT $2, $3, $4, 'Note ' || i || ': ' || $5, $6, 'new', $7 + i, $7 + i FROM n",
    )
    .bind(n)
    .bind(f.hub_id)
    .bind(f.cart)
    .bind(f.anna)
    .bind(filler)
    .bind(f.bug)
    .bind(ihf::db::now_ms() - n - 1000)
    .execute(db.writer())
    .await
    .expect("bulk insert");
}

async fn get_text(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.expect("GET");
    (response.status().as_u16(), response.text().await.expect("body"))
}

// ---------------------------------------------------------------------------------------
// Exports

dual_test!(exports_apply_the_triage_filters_and_the_access_policy, |app| {
    let f = fixture(&app.db).await;
    let day = ihf::clock::DAY_MS;
    let jan_2 = 1_735_776_000_000; // 2025-01-02T00:00:00Z
    let a = annotate(&app.db, &f, f.cart, f.bug, "new", "Coupon field, \"eats\" my code", jan_2).await;
    let b = annotate(&app.db, &f, f.address, f.idea, "triaged", "=HYPERLINK(\"http://evil\")", jan_2 + day).await;
    let c = annotate(&app.db, &f, f.cart, f.idea, "new", "Multi\nline idea", jan_2 + 2 * day).await;
    let tomas = app.signed_in("tomas", PASSWORD).await;

    let (status, csv) = get_text(&tomas, &app.url("/hubs/checkout/annotations.csv")).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "id,created_at,updated_at,widget,author_id,author,category,status,duplicate_of,version,body");
    let anna = f.anna;
    let first = format!(
        "{a},2025-01-02T00:00:00Z,2025-01-02T00:00:00Z,cart,{anna},anna,bug,new,,1,\"Coupon field, \"\"eats\"\" my code\""
    );
    assert_eq!(lines[1], first, "oldest first, quoted");
    assert!(lines[2].ends_with("\"'=HYPERLINK(\"\"http://evil\"\")\""), "formulas are defused: {}", lines[2]);
    assert!(csv.contains("\"Multi\nline idea\""));

    let response = tomas.get(app.url("/hubs/checkout/annotations.jsonl")).send().await.expect("GET");
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson; charset=utf-8")
    );
    assert!(
        response
            .headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("attachment; filename=\"checkout-annotations-"))
    );
    let jsonl = response.text().await.expect("body");
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(rows.iter().map(|r| r["id"].as_i64().unwrap_or_default()).collect::<Vec<_>>(), [a, b, c]);
    assert_eq!(rows[2]["body"], "Multi\nline idea");
    assert_eq!(rows[1]["widget"]["slug"], "address");

    let ids = |query: &'static str| {
        let tomas = tomas.clone();
        let url = app.url(&format!("/hubs/checkout/annotations.jsonl?{query}"));
        async move {
            let (status, body) = get_text(&tomas, &url).await;
            assert_eq!(status, 200, "{query}");
            body.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON")["id"].as_i64().unwrap_or_default())
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(ids("widget=cart").await, [a, c]);
    assert_eq!(ids("category=idea").await, [b, c]);
    assert_eq!(ids("status=new").await, [a, c]);
    assert_eq!(ids("q=COUPON").await, [a]);
    assert_eq!(ids("q=%25").await, Vec::<i64>::new(), "% is searched literally");
    assert_eq!(ids("from=2025-01-03").await, [b, c]);
    assert_eq!(ids("to=2025-01-03").await, [a, b], "to is inclusive");
    assert_eq!(ids("from=2025-01-03&to=2025-01-03&widget=address&category=idea&status=triaged&q=evil").await, [b]);
    assert_eq!(ids("widget=&category=&status=&q=&from=&to=").await, [a, b, c], "empty filters are no filters");
    for bad in ["widget=nope", "category=nope", "status=open", "from=yesterday"] {
        let (status, _) = get_text(&tomas, &app.url(&format!("/hubs/checkout/annotations.csv?{bad}"))).await;
        assert_eq!(status, 400, "{bad}");
    }
    assert_eq!(get_text(&tomas, &app.url("/hubs/checkout/annotations.xml")).await.0, 404);
    assert_eq!(get_text(&tomas, &app.url("/hubs/checkout/export")).await.0, 200);

    // Triage rights only: annotators, other hubs' triagers and anonymous visitors are refused.
    for (who, expected) in [("anna", 403), ("tara", 403)] {
        let client = app.signed_in(who, PASSWORD).await;
        assert_eq!(get_text(&client, &app.url("/hubs/checkout/annotations.csv")).await.0, expected, "{who}");
        assert_eq!(get_text(&client, &app.url("/hubs/checkout/export")).await.0, expected, "{who}");
    }
    assert_eq!(get_text(&app.new_client(), &app.url("/hubs/checkout/annotations.jsonl")).await.0, 401);
    // Operators may export too; an empty hub exports just the header.
    let olga = app.signed_in("olga", PASSWORD).await;
    assert_eq!(get_text(&olga, &app.url("/hubs/checkout/annotations.csv")).await.0, 200);
    let tara = app.signed_in("tara", PASSWORD).await;
    let (status, empty) = get_text(&tara, &app.url("/hubs/onboarding/annotations.csv")).await;
    assert_eq!((status, empty.lines().count()), (200, 1));
});

/// The real binary as a separate process, so its memory can be measured and it can be sent
/// SIGTERM. Killed (by its own pid) if a test fails before it exits.
struct Binary {
    child: Child,
    url: String,
}

impl Binary {
    fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ihf"))
            .env("DATABASE_URL", database_url)
            .env("IHF_BIND", "127.0.0.1:0")
            .env("IHF_SEED_DEMO", "false")
            .env("IHF_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ihf");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout so the server never blocks on a full pipe; its log lines
        // (warnings and errors only) go to the test's output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("IHF is running at ") {
                    let _ = tx.send(url.trim_end_matches('/').to_owned());
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("ihf: {line}");
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).expect("the server printed its URL");
        Self { child, url }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `bound`.
    fn wait_exit(&mut self, bound: Duration) -> Option<(ExitStatus, Duration)> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `VmRSS` or `VmHWM` of the process, in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix(" kB")?.parse().ok())
            .expect("memory field")
    }

    /// Resets the peak resident set size (`VmHWM`) to the current one.
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").expect("clear_refs");
    }

    async fn signed_in(&self, handle: &str) -> reqwest::Client {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let page = client.get(self.url("/login")).send().await.expect("login page").text().await.expect("body");
        let csrf = common::csrf_from(&page);
        let response = client
            .post(self.url("/login"))
            .form(&[("handle", handle), ("password", PASSWORD), ("csrf_token", &csrf), ("next", "/")])
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 303, "sign-in of {handle}");
        client
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

async fn prepared_database(backend: Backend) -> (String, Db, Fixture) {
    let url = common::fresh_database_url(backend).await;
    let db = Db::connect(&url, 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    let f = fixture(&db).await;
    (url, db, f)
}

mod export_of_100k_annotations_has_bounded_memory {
    use super::*;

    const N: i64 = 100_000;
    /// The bound on the server's peak resident memory growth while it streams the export
    /// (about 40 MiB of CSV: a server that buffered it would grow by at least that much).
    const BOUND_MIB: u64 = 16;

    async fn run(backend: Backend) {
        let (url, db, f) = prepared_database(backend).await;
        bulk_annotations(&db, &f, N).await;
        // Statistics, as autovacuum would gather after a bulk load: without them PostgreSQL
        // guesses a hub holds a handful of rows and plans a sort instead of the index.
        sqlx::query("ANALYZE").execute(db.writer()).await.expect("analyze");
        db.close().await;
        // Two pooled connections: each keeps its own SQLite page cache, so fewer make the
        // warm-up below cover them all.
        let server = Binary::start(&url, &[("IHF_DB_MAX_CONNECTIONS", "2")]);
        let tomas = server.signed_in("tomas").await;
        // Warm up with a first full export (it fills the page caches of the pooled database
        // connections and the allocator's pools), then measure a second one: streaming means
        // the peak does not grow with the size of the export.
        let mut warm_up = tomas.get(server.url("/hubs/checkout/annotations.csv")).send().await.expect("GET");
        while warm_up.chunk().await.expect("chunk").is_some() {}
        let rss_before = server.memory_kib("VmRSS");
        server.reset_peak();
        let started = Instant::now();
        let mut response = tomas.get(server.url("/hubs/checkout/annotations.csv")).send().await.expect("GET");
        assert_eq!(response.status(), 200);
        let (mut bytes, mut lines, mut max_chunk, mut first_byte) = (0usize, 0usize, 0usize, None);
        while let Some(chunk) = response.chunk().await.expect("chunk") {
            first_byte.get_or_insert_with(|| started.elapsed());
            bytes += chunk.len();
            max_chunk = max_chunk.max(chunk.len());
            lines += chunk.iter().filter(|&&b| b == b'\n').count();
        }
        let elapsed = started.elapsed();
        let peak = server.memory_kib("VmHWM");
        let growth_kib = peak.saturating_sub(rss_before);
        eprintln!(
            "export of {N} annotations ({backend:?}): {:.1} MiB in {elapsed:?}, first byte after {:?}, \
             largest chunk {max_chunk} B; server RSS before {rss_before} KiB, peak {peak} KiB, growth {growth_kib} KiB",
            bytes as f64 / 1_048_576.0,
            first_byte.unwrap_or_default(),
        );
        assert_eq!(lines as i64, N + 1, "header + one line per annotation");
        assert!(bytes > 40 * 1_048_576, "the export is large ({bytes} B)");
        assert!(
            growth_kib < BOUND_MIB * 1024,
            "peak RSS grew by {growth_kib} KiB while streaming {bytes} B: the export is not streamed"
        );
    }

    crate::dual_run!();
}

// ---------------------------------------------------------------------------------------
// Graceful lifecycle

mod sigterm_with_an_open_stream_exits_within_the_bound {
    use super::*;

    /// actix's shutdown timeout is 10 s; the process must be gone well within 12.
    const BOUND: Duration = Duration::from_secs(12);

    async fn run(backend: Backend) {
        let (url, db, f) = prepared_database(backend).await;
        bulk_annotations(&db, &f, 20_000).await;
        sqlx::query("ANALYZE").execute(db.writer()).await.expect("analyze");
        db.close().await;
        let mut server = Binary::start(&url, &[]);
        let tomas = server.signed_in("tomas").await;

        // An open live stream: the dashboard's.
        let (_, page) = get_text(&tomas, &server.url("/hubs/checkout")).await;
        let live = common::text_attr(&page, "sse-connect=\"").expect("the dashboard is live").replace("&amp;", "&");
        let mut stream =
            tomas.get(server.url(&live)).header("Accept", "text/event-stream").send().await.expect("stream");
        assert_eq!(stream.status(), 200);
        assert!(stream.chunk().await.expect("first event").is_some());
        // A kept-alive connection: a client that made one request and keeps its connection.
        let kept = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
        assert_eq!(kept.get(server.url("/healthz")).send().await.expect("GET").status(), 200);
        // A request in flight: an export whose body we stop reading after the first chunk.
        let mut export = tomas.get(server.url("/hubs/checkout/annotations.csv")).send().await.expect("export");
        let mut exported = export.chunk().await.expect("chunk").expect("first chunk").len();

        server.terminate();
        let signalled = Instant::now();
        // The live stream ends (with `retry:` already sent, the browser reconnects).
        let ended =
            tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = stream.chunk().await {} })
                .await;
        assert!(ended.is_ok(), "the live stream was not closed on SIGTERM");
        let stream_closed_after = signalled.elapsed();
        // No new connections are accepted.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let refused = reqwest::Client::new().get(server.url("/healthz")).timeout(Duration::from_secs(2)).send().await;
        assert!(refused.is_err(), "a new request was accepted after SIGTERM");
        // No new request starts on the kept-alive connection: it is refused with
        // `Connection: close` (or the connection is already gone).
        match kept.get(server.url("/healthz")).timeout(Duration::from_secs(2)).send().await {
            Ok(response) => {
                assert_eq!(response.status(), 503, "a request on a kept-alive connection after SIGTERM did not run");
                assert_eq!(response.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
                assert!(response.headers().contains_key("retry-after"));
            }
            Err(e) => assert!(!e.is_timeout(), "refused at once, not left hanging: {e}"),
        }
        // The request in flight finishes completely.
        while let Some(chunk) = export.chunk().await.expect("the export finishes") {
            exported += chunk.len();
        }
        assert!(exported > 20_000 * 300, "the whole export arrived ({exported} B)");
        let (status, _) = server.wait_exit(BOUND).expect("the server exits within the bound");
        let exited_after = signalled.elapsed();
        eprintln!(
            "SIGTERM ({backend:?}): live stream closed after {stream_closed_after:?}, process exited after {exited_after:?}"
        );
        assert!(status.success(), "exit status {status}");
        assert!(exited_after < BOUND);
    }

    crate::dual_run!();
}

// ---------------------------------------------------------------------------------------
// Metrics and readiness

/// An app with a metrics listener, as a [`TestApp`] plus the metrics URL.
async fn app_with_metrics(backend: Backend) -> (TestApp, String) {
    let database_url = common::fresh_database_url(backend).await;
    let mut config = ihf::Config::for_tests(database_url.clone());
    config.metrics_bind = Some("127.0.0.1:0".parse().expect("address"));
    // A vanished client is noticed when a write to it fails: heartbeat every second here.
    config.live_heartbeat_secs = 1;
    let app = ihf::Application::build(config).await.expect("build");
    let metrics = format!("http://127.0.0.1:{}/metrics", app.metrics_port().expect("metrics listener"));
    let (port, db, handle) = (app.port(), app.db().clone(), app.handle());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    let app = TestApp { address: format!("http://127.0.0.1:{port}"), port, db, backend, database_url, client, handle };
    (app, metrics)
}

mod metrics_expose_the_listed_series {
    use super::*;

    async fn run(backend: Backend) {
        let (app, metrics) = app_with_metrics(backend).await;
        let f = fixture(&app.db).await;
        let tomas = app.signed_in("tomas", PASSWORD).await;
        assert_eq!(get_text(&tomas, &app.url("/hubs/checkout")).await.0, 200);
        assert_eq!(get_text(&tomas, &app.url("/hubs/nowhere")).await.0, 404);
        assert_eq!(get_text(&tomas, &app.url("/no/such/page/123")).await.0, 404);
        let (_, page) = get_text(&tomas, &app.url("/hubs/checkout")).await;
        let live = common::text_attr(&page, "sse-connect=\"").expect("live").replace("&amp;", "&");
        let mut stream = SseClient::open(&app, &tomas, &live, None).await;
        annotate(&app.db, &f, f.cart, f.bug, "new", "counted", ihf::db::now_ms()).await;
        stream.next_event(Duration::from_secs(5)).await.expect("a live update");
        let hook = ihf::db::webhooks::create(
            &app.db,
            f.hub_id,
            "https://8.8.8.8/hook",
            "annotation.created",
            "secret-0123456789abcdef",
        )
        .await
        .expect("webhook");
        sqlx::query("INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at) VALUES ($1, 'annotation.created', '{}', $2, $2)")
            .bind(hook.id)
            .bind(ihf::db::now_ms() + 3_600_000)
            .execute(app.db.writer())
            .await
            .expect("a queued delivery");

        let response = reqwest::get(&metrics).await.expect("scrape");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = response.text().await.expect("body");
        for series in [
            "ihf_http_requests_total{method=\"GET\",route=\"/hubs/{hub_slug}\",status=\"200\"} 2",
            "ihf_http_requests_total{method=\"GET\",route=\"/hubs/{hub_slug}\",status=\"404\"} 1",
            "ihf_http_requests_total{method=\"POST\",route=\"/login\",status=\"303\"} 1",
            "ihf_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
            "# TYPE ihf_http_request_duration_seconds histogram",
            "ihf_http_request_duration_seconds_bucket{method=\"GET\",route=\"/hubs/{hub_slug}\",le=\"+Inf\"} 3",
            "ihf_http_request_duration_seconds_count{method=\"GET\",route=\"/hubs/{hub_slug}\"} 3",
            "ihf_live_streams_open 1",
            "ihf_http_requests_in_flight 1",
            "# TYPE ihf_change_events_total counter",
            "# TYPE ihf_renders_coalesced_total counter",
            "ihf_webhook_queue_depth 1",
            "ihf_webhook_deliveries_total{outcome=\"delivered\"} 0",
        ] {
            assert!(text.contains(series), "missing {series}:\n{text}");
        }
        assert!(
            !text.contains("/hubs/checkout") && !text.contains("/no/such"),
            "labels are route templates, not paths"
        );
        let change_events: u64 =
            text.lines().find_map(|l| l.strip_prefix("ihf_change_events_total ")?.parse().ok()).expect("change events");
        assert!(change_events >= 1);
        // Metrics never reach the public port.
        assert_eq!(get_text(&tomas, &app.url("/metrics")).await.0, 404);
        drop(stream);
        // The server sees the closed connection at the next heartbeat it cannot write (the
        // first write after the close may still be taken by the kernel): about two heartbeats.
        // What is checked is that it is counted out, not how fast — the deadline only bounds
        // the wait, with room for a loaded machine running the whole suite (5 s was missed once).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut text = String::new();
        while std::time::Instant::now() < deadline {
            text = reqwest::get(&metrics).await.expect("scrape").text().await.expect("body");
            if text.contains("ihf_live_streams_open 0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(text.contains("ihf_live_streams_open 0"), "the closed stream is counted out");
        assert!(text.contains("ihf_http_requests_in_flight 0"), "its request too");
    }

    crate::dual_run!();
}

dual_test!(no_metrics_listener_unless_configured, |app| {
    assert_eq!(app.get("/metrics").await.status(), 404);
});

dual_test!(readiness_needs_every_migration, |app| {
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.expect("body"), "ready");
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
        .execute(app.db.writer())
        .await
        .expect("forget a migration");
    let pending = app.get("/readyz").await;
    assert_eq!(pending.status(), 503);
    assert_eq!(pending.text().await.expect("body"), "migrations pending");
    assert_eq!(app.get("/healthz").await.status(), 200, "alive, just not ready");
});

// ---------------------------------------------------------------------------------------
// Backups (SQLite)

fn ihf(args: &[&str], database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("IHF_LOG", "warn")
        .output()
        .expect("run ihf")
}

fn sqlite_file(database_url: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(database_url.trim_start_matches("sqlite://"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_taken_during_writes_opens_and_matches() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let f = fixture(&app.db).await;
    for i in 0..200 {
        annotate(&app.db, &f, f.cart, f.bug, "new", &format!("before {i}"), ihf::db::now_ms()).await;
    }
    // A writer keeps inserting (one transaction per annotation) while the backup runs.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (db, writing) = (app.db.clone(), writing.clone());
        let f = f.clone();
        async move {
            let mut n = 0;
            while writing.load(Ordering::Relaxed) {
                annotate(&db, &f, f.cart, f.idea, "new", &format!("during {n}"), ihf::db::now_ms()).await;
                n += 1;
            }
            n
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = sqlite_file(&app.database_url).parent().expect("dir").to_owned();
    let backup = dir.join("backup.sqlite3");
    let url = app.database_url.clone();
    let backup_arg = backup.to_string_lossy().into_owned();
    let output = tokio::task::spawn_blocking(move || ihf(&["backup", &backup_arg], &url)).await.expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("backed up to"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    writing.store(false, Ordering::Relaxed);
    let during = writer.await.expect("writer");
    assert!(during > 0);

    // The copy opens as an IHF database (migrations applied, ready) and is a consistent
    // snapshot: a prefix of the live annotations, each identical, with its change-log rows.
    let copy_url = format!("sqlite://{}", backup.display());
    let copy = common::spawn_on(copy_url.clone(), Backend::Sqlite, |_| {}).await;
    assert_eq!(copy.get("/readyz").await.status(), 200);
    let check: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(copy.db.reader()).await.expect("check");
    assert_eq!(check, "ok");
    let rows = |db: Db, max: i64| async move {
        let rows: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT id, body, created_at FROM annotations WHERE id <= $1 ORDER BY id")
                .bind(max)
                .fetch_all(db.reader())
                .await
                .expect("rows");
        rows
    };
    let copied = rows(copy.db.clone(), i64::MAX).await;
    let live_total = app.scalar("SELECT COUNT(*) FROM annotations").await as usize;
    assert!(copied.len() > 200, "the backup has the annotations written before it started");
    assert!(copied.len() < live_total, "writes after the backup are not in it ({} of {live_total})", copied.len());
    let last = copied.last().map(|r| r.0).unwrap_or_default();
    assert_eq!(rows(app.db.clone(), last).await, copied, "the backup matches the live database up to its snapshot");
    let logged: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM change_log WHERE table_name = 'annotations' AND op = 'insert'")
            .fetch_one(copy.db.reader())
            .await
            .expect("change log");
    assert_eq!(logged as usize, copied.len(), "each annotation with its trigger's row: one transaction, whole");
    copy.handle.stop(true).await;

    // A second backup to the same path is refused; PostgreSQL is pointed to pg_dump.
    let again = ihf(&["backup", &backup.to_string_lossy()], &app.database_url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let pg = ihf(&["backup", "/tmp/never.sqlite3"], "postgres://nobody@127.0.0.1:1/none");
    assert!(!pg.status.success() && String::from_utf8_lossy(&pg.stderr).contains("pg_dump"));

    // Restore: the live database is newer than the backup, so it is refused without --force.
    app.handle.stop(true).await;
    app.db.close().await;
    let refused = ihf(&["restore", &backup.to_string_lossy()], &app.database_url);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("newer writes"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let still = Db::connect(&app.database_url, 2).await.expect("connect");
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM annotations").fetch_one(still.reader()).await.expect("count");
    assert_eq!(count as usize, live_total, "nothing was overwritten");
    still.close().await;
    let forced = ihf(&["restore", "--force", &backup.to_string_lossy()], &app.database_url);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    let restored = Db::connect(&app.database_url, 2).await.expect("connect");
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM annotations").fetch_one(restored.reader()).await.expect("count");
    assert_eq!(count as usize, copied.len(), "the backup's data is back");
    restored.close().await;
    // Into an empty place, a restore needs no force.
    let fresh = format!("sqlite://{}", dir.join("elsewhere/new.sqlite3").display());
    let into_new = ihf(&["restore", &backup.to_string_lossy()], &fresh);
    assert!(into_new.status.success(), "{}", String::from_utf8_lossy(&into_new.stderr));
}
