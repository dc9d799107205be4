//! Live-region benchmark (`just bench-live`): the release server in its own process on SQLite
//! with the demo data and the shipped live settings (only the admission limits are raised: every
//! client comes from one address and one session), N concurrent SSE clients on one dashboard,
//! each write a plain SQL insert from this process; measures the time from commit to the event
//! arriving at every client, the server's CPU, a burst of 1,000 inserts (renders per client
//! against the bound of one per window), and memory per idle stream. Appends to BENCHMARKS.md.
//!
//! `cargo run --release --example bench_live [-- 1000,10000 10000]`

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ihf::db::Db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[path = "support/browser_body.rs"]
mod browser_body;

/// The clients allocate as the server does (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const WRITES: usize = 10;
const BURST: usize = 1000;
/// The shipped `IHF_LIVE_WINDOW_MS`.
const WINDOW_MS: u64 = 150;

/// One annotation, as plain SQL (what `psql` or another program would do).
/// Retried as another program would when the bench's own connection times out: with 10,000
/// clients on the same two cores, this process can be starved past the pool's 1 s.
async fn insert(db: &Db, hub_id: i64, widget_id: i64, category_id: i64, body: &str) {
    for attempt in 1.. {
        let done = sqlx::query(
            "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
             VALUES ($1, $2, 1, $3, $4, $5, $5)",
        )
        .bind(hub_id)
        .bind(widget_id)
        .bind(body)
        .bind(category_id)
        .bind(ihf::db::now_ms())
        .execute(db.writer())
        .await;
        match done {
            Ok(_) => return,
            Err(e) if attempt < 10 => eprintln!("insert failed ({e}); retrying"),
            Err(e) => panic!("insert: {e}"),
        }
    }
}

struct Server {
    child: Child,
    base: String,
    cookie: String,
    db_url: String,
    /// The dashboard's stream URL as its page names it (regions and feed position).
    live_url: String,
    /// The server's Prometheus listener.
    metrics: String,
}

impl Server {
    /// The live figures from `/metrics`: streams open, slow clients dropped.
    async fn live_metrics(&self) -> String {
        let text = match reqwest::get(format!("{}/metrics", self.metrics)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter(|l| l.starts_with("ihf_live_streams_open") || l.starts_with("ihf_live_slow_clients_dropped_total"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

async fn start_server(dir: &std::path::Path) -> Server {
    std::fs::create_dir_all(dir).expect("bench dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let db_url = format!("sqlite://{}/bench.sqlite3", dir.display());
    let bin = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("ihf"))
        .expect("bin dir");
    let log = std::fs::File::create(dir.join("server.log")).expect("log");
    let metrics_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let child = Command::new(bin)
        // The shipped log level (`info`): one line per request, a span per stream.
        .env_remove("IHF_LOG")
        .env("IHF_BIND", format!("127.0.0.1:{port}"))
        .env("IHF_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
        .env("DATABASE_URL", &db_url)
        .env("IHF_SEED_DEMO", "true")
        .env("IHF_LIVE_MAX_PER_IP", "100000")
        .env("IHF_LIVE_MAX_PER_SESSION", "100000")
        .env("IHF_LIVE_MAX_STREAMS", "100000")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the release server (cargo build --release first)");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(dir.join("server.log")).expect("log");
    let password = log
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("olga")).then(|| words.next().map(str::to_owned)).flatten()
        })
        .expect("demo login in the server output");
    let page = http.get(format!("{base}/login")).send().await.expect("login").text().await.expect("body");
    let csrf =
        page.split("name=\"csrf_token\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf").to_owned();
    let response = http
        .post(format!("{base}/login"))
        .form(&[("handle", "olga"), ("password", password.as_str()), ("csrf_token", csrf.as_str()), ("next", "/")])
        .send()
        .await
        .expect("sign in");
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ihf_session="))
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned();
    let page = http.get(format!("{base}/hubs/checkout")).send().await.expect("page").text().await.expect("body");
    let live_url = page
        .split("sse-connect=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the dashboard is live")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    Server { child, base, cookie, db_url, live_url, metrics: format!("http://127.0.0.1:{metrics_port}") }
}

/// Opens `n` clients, 500 at a time (all at once, their sign-in reads only measure the database
/// pool's queue), each retried after a refusal as a browser would; returns how many are open.
async fn open_clients(server: &Server, n: usize, arrivals: &mpsc::UnboundedSender<(usize, Instant)>) -> usize {
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let mut opened = 0;
    let mut refused = std::collections::BTreeMap::<u16, usize>::new();
    let mut left = n;
    let mut attempts = 0;
    while left > 0 && attempts < n * 2 {
        let batch = left.min(500);
        for _ in 0..batch {
            tokio::spawn(client(
                server.base.clone(),
                server.cookie.clone(),
                server.live_url.clone(),
                arrivals.clone(),
                ready_tx.clone(),
            ));
        }
        attempts += batch;
        for _ in 0..batch {
            match tokio::time::timeout(Duration::from_secs(60), ready.recv()).await {
                Ok(Some(200)) => {
                    opened += 1;
                    left -= 1;
                }
                Ok(Some(status)) => *refused.entry(status).or_default() += 1,
                _ => {}
            }
        }
    }
    if !refused.is_empty() {
        println!("{n} clients: {opened} opened; refused on the way (status: count, then retried): {refused:?}");
    }
    opened
}

/// Opens one SSE client; reports (marker, arrival) for every feed event carrying a marker.
async fn client(
    base: String,
    cookie: String,
    live_url: String,
    arrivals: mpsc::UnboundedSender<(usize, Instant)>,
    ready: mpsc::UnboundedSender<u16>,
) {
    // A raw HTTP/1.1 client (as cheap as a load generator on the server's own two cores can
    // be), taking gzip as browsers do: de-chunked and inflated as it arrives.
    let addr = base.trim_start_matches("http://").to_owned();
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        let _ = ready.send(0);
        return;
    };
    let head = format!(
        "GET {live_url} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        let _ = ready.send(0);
        return;
    }
    let mut chunk = vec![0u8; 4096];
    // Sized at connect, as a browser's buffers are before its first event (see `touched`).
    let mut response = browser_body::Response::sized(8 * 1024);
    let mut opened = false;
    // Bytes, not strings: at thousands of clients on the same two cores the client's own parsing
    // would otherwise show up in the latency it measures.
    let mut buffer = browser_body::touched(32 * 1024);
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !opened {
                    let _ = ready.send(0);
                }
                return;
            }
            Ok(n) => n,
        };
        let now = Instant::now();
        if let Some(status) = response.feed(&chunk[..n], &mut buffer) {
            opened = true;
            let _ = ready.send(status);
            if status != 200 {
                return;
            }
        }
        while let Some(end) = EVENT_END.find(&buffer) {
            let block = &buffer[..end];
            if block.starts_with(b"event: feed") {
                // The newest marker in the feed (it lists the newest first).
                let marker = MARKER_FINDER.find(block).map(|at| {
                    let digits = block[at + MARKER.len()..].iter().take_while(|b| b.is_ascii_digit());
                    digits.fold(0usize, |n, d| n * 10 + usize::from(d - b'0'))
                });
                let _ = arrivals.send((marker.unwrap_or(usize::MAX), now));
            }
            buffer.drain(..end + 2);
        }
    }
}

const MARKER: &[u8] = b"bench-marker-";

/// The searches every client makes on every event, built once.
static EVENT_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
static MARKER_FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(MARKER));

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10_000]);
    let idle: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("ihf-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut rows = Vec::new();
    let mut bursts = Vec::new();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");

    for &n in &sizes {
        let server = start_server(&dir.join(format!("n{n}"))).await;
        let db = Db::connect(&server.db_url, 2).await.expect("db");
        let hub_id: i64 = sqlx::query_scalar("SELECT id FROM hubs WHERE slug = 'checkout'")
            .fetch_one(db.reader())
            .await
            .expect("hub");
        let widget_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM widgets WHERE hub_id = $1")
            .bind(hub_id)
            .fetch_one(db.reader())
            .await
            .expect("widget");
        let category_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
            .bind(hub_id)
            .fetch_one(db.reader())
            .await
            .expect("category");
        let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
        let opened = open_clients(&server, n, &arrivals_tx).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        while arrivals.try_recv().is_ok() {}
        let pid = server.child.id();
        println!("{n} clients: {opened} open; writing");
        let cpu_before = cpu_ticks(pid);
        let own_before = cpu_ticks(std::process::id());
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(n * WRITES);
        let mut delivered = 0;
        let mut first_write_p99 = f64::NAN;
        for write in 0..WRITES {
            let body = format!("bench-marker-{write} written at load");
            insert(&db, hub_id, widget_id, category_id, &body).await;
            let committed = Instant::now();
            let deadline = committed + Duration::from_secs(10);
            let mut got = 0;
            while got < opened {
                match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
                    Ok(Some((marker, at))) if marker == write => {
                        latencies.push(at.duration_since(committed).as_secs_f64() * 1000.0);
                        got += 1;
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            delivered += got;
            // Each write on its own: the first is every stream's first event.
            let mut these: Vec<f64> = latencies[latencies.len() - got..].to_vec();
            these.sort_by(f64::total_cmp);
            println!(
                "{n} clients, write {write}: min {:.1} p10 {:.1} p50 {:.1} p90 {:.1} max {:.1} ms",
                percentile(&these, 0.0),
                percentile(&these, 0.1),
                percentile(&these, 0.5),
                percentile(&these, 0.9),
                percentile(&these, 1.0)
            );
            if write == 0 {
                first_write_p99 = percentile(&these, 0.99);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let wall = started.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
        let own = (cpu_ticks(std::process::id()) - own_before) as f64 / 100.0;
        println!(
            "{n} clients: server {:.0}% and clients {:.0}% of one core during the writes",
            cpu / wall * 100.0,
            own / wall * 100.0
        );
        latencies.sort_by(f64::total_cmp);
        println!("{n} clients: delivered {delivered}/{}; {}", n * WRITES, server.live_metrics().await);

        // A burst: 1,000 inserts as fast as one connection commits them. Each client may get
        // at most one feed render per window while it lasts, plus the leading and the trailing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while arrivals.try_recv().is_ok() {}
        let burst_started = Instant::now();
        for i in 0..BURST {
            insert(&db, hub_id, widget_id, category_id, &format!("bench-marker-{} in a burst", 1_000_000 + i)).await;
        }
        let burst = burst_started.elapsed();
        tokio::time::sleep(Duration::from_millis(WINDOW_MS * 3 + 500)).await;
        let mut renders = 0usize;
        let mut final_seen = 0usize;
        while let Ok((marker, _)) = arrivals.try_recv() {
            renders += 1;
            if marker == 1_000_000 + BURST - 1 {
                final_seen += 1;
            }
        }
        let bound = (burst.as_millis() as usize).div_ceil(WINDOW_MS as usize) + 1;
        bursts.push(format!(
            "| {n} | {BURST} in {:.0} ms | {:.1} | {bound} | {final_seen}/{n} |",
            burst.as_secs_f64() * 1000.0,
            renders as f64 / n as f64,
        ));
        rows.push(format!(
            "| {n} | {delivered}/{} | {:.1} | {:.1} | {:.1} | {first_write_p99:.1} | {:.0}% of one core | {:.0}% of one core |",
            n * WRITES,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            cpu / wall * 100.0,
            own / wall * 100.0,
        ));
        drop(server);
    }

    // Memory per idle stream.
    let server = start_server(&dir.join("idle")).await;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let (arrivals_tx, _arrivals) = mpsc::unbounded_channel();
    let started = Arc::new(());
    let opened = open_clients(&server, idle, &arrivals_tx).await;
    // The memory freed after the connection burst goes back to the OS over jemalloc's 10 s
    // decay: sample for at least 12 s, then until three samples a second apart agree within
    // 1% (at most 40 s).
    let mut samples = vec![rss_kib(pid)];
    while samples.len() < 40 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push(rss_kib(pid));
        if let [.., a, _, c] = samples[..]
            && samples.len() > 12
            && a.abs_diff(c) * 100 <= c
        {
            break;
        }
    }
    let after = samples.last().copied().unwrap_or(0);
    let settled = samples.len() - 1;
    let per_stream = (after.saturating_sub(before)) as f64 * 1024.0 / opened.max(1) as f64;
    println!("idle: {opened} opened; {}", server.live_metrics().await);
    drop(started);

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mut md = String::new();
    md.push_str(&format!(
        "\n## Live regions — {} on {cores} cores\n\n`cargo run --release --example bench_live` (`just bench-live`): release server in its own process, SQLite, demo data, \
         **shipped live settings** (coalescing window {WINDOW_MS} ms with leading edge; only the admission limits raised, as every client comes from one address and session); \
         N SSE clients (raw HTTP/1.1 clients of one signed-in operator, taking gzip as browsers do) on the checkout dashboard, each opened with the page's `since`; {WRITES} annotations, each a plain SQL `INSERT` from the benchmark's process, \
         latency from commit to the feed event arriving at each client. Clients and server share the 2 cores; each client's buffers are sized when it connects and the clients run on jemalloc as the server does \
         (10,000 clients in one process growing their buffers on the same event wait on page faults together, which no browser on its own machine does); the first write is every stream's first event, its p99 shown on its own. Load before the run: {}.\n\n\
         | clients | events delivered | p50 ms | p99 ms | max ms | first write's p99 ms | server CPU during the writes | clients' CPU (this process) |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        today(),
        load
    ));
    for row in rows {
        md.push_str(&row);
        md.push('\n');
    }
    md.push_str(&format!(
        "\nBursts: {BURST} plain inserts in a row; feed events each client received, against the bound of one render per {WINDOW_MS} ms window while the burst lasts plus the leading one.\n\n\
         | clients | burst | feed events per client | bound | clients ending on the last insert |\n| ---: | ---: | ---: | ---: | ---: |\n"
    ));
    for row in bursts {
        md.push_str(&row);
        md.push('\n');
    }
    md.push_str(&format!(
        "\nMemory: {opened} idle streams raised the server's RSS from {:.1} MiB to {:.1} MiB (settled {settled} s after the last stream opened): **{:.1} KiB per idle stream** (target: under 8 KiB).\n",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per_stream / 1024.0
    ));
    print!("{md}");
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open("BENCHMARKS.md").expect("BENCHMARKS.md");
    file.write_all(md.as_bytes()).expect("write");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn today() -> String {
    let output = Command::new("date").args(["-u", "+%Y-%m-%d"]).output().ok();
    output.and_then(|o| String::from_utf8(o.stdout).ok()).map(|s| s.trim().to_owned()).unwrap_or_default()
}
