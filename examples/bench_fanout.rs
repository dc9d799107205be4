//! Live fan-out against polling (`just bench-fanout`, #16): the release server in its own process
//! on SQLite with the demo data and the **shipped** live settings (only the admission limits are
//! raised: every client comes from one address). N viewers, **each with its own session** of its
//! own person (created in the database before the server starts), watch one page:
//!
//! - `dashboard`: N distinct operators of the checkout hub on its dashboard;
//! - `thread`: N distinct annotators (members) on the members-only `payment-form` widget's
//!   thread, each with an annotation of their own in it (shown with their edit/delete buttons).
//!
//! Each write is a plain SQL `INSERT` from this process (another process than the server). It
//! measures, from outside: latency from commit to the new row arriving at every client (the SSE
//! event parsed from a raw TCP stream), the server's CPU per write (`/proc/PID/stat`), bytes on
//! the wire per client per write; then the same N viewers polling the feed fragment every 1 s
//! (server CPU per second, bytes per poll) in the same run; and memory per idle stream. The
//! clients are raw tokio TCP connections so that they cost little next to the server.
//! Appends to BENCHMARKS.md.
//!
//! `cargo run --release --example bench_fanout [-- dashboard,thread 1000 10000]`

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
const POLL_SECS: u64 = 10;
const MARKER: &[u8] = b"fanout-marker-";

struct Server {
    child: Child,
    addr: String,
    db_url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin_dir() -> std::path::PathBuf {
    std::env::current_exe().expect("exe").parent().and_then(|p| p.parent()).map(|p| p.to_path_buf()).expect("dir")
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

fn spawn_server(dir: &std::path::Path, port: u16, db_url: &str, seed: bool) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log");
    // IHF_BENCH_BIN: another build of the server (e.g. the one before a change) to compare.
    let bin = std::env::var_os("IHF_BENCH_BIN").map_or_else(|| bin_dir().join("ihf"), std::path::PathBuf::from);
    Command::new(bin)
        // The shipped log level (`info`): one line per request, a span per stream.
        .env_remove("IHF_LOG")
        .env("IHF_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db_url)
        .env("IHF_SEED_DEMO", if seed { "true" } else { "false" })
        .env("IHF_LIVE_MAX_PER_IP", "100000")
        .env("IHF_LIVE_MAX_STREAMS", "100000")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the release server (cargo build --release first)")
}

async fn wait_healthy(addr: &str) {
    for _ in 0..600 {
        if let Ok((status, _, _)) = request(addr, "/healthz", None, false).await
            && status == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up");
}

/// Seeds the demo (first start), stops, adds `n` people with their own sessions to the database
/// as `role` of the checkout hub, then starts the server again; returns it and the cookies.
async fn start_server(dir: &std::path::Path, n: usize, role: &str) -> (Server, Vec<String>) {
    std::fs::create_dir_all(dir).expect("bench dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
    let addr = format!("127.0.0.1:{port}");
    let db_url = format!("sqlite://{}/bench.sqlite3", dir.display());
    let mut first = spawn_server(dir, port, &db_url, true);
    wait_healthy(&addr).await;
    let _ = first.kill();
    let _ = first.wait();

    let db = Db::connect(&db_url, 2).await.expect("db");
    let hub_id = hub_id(&db).await;
    let now = ihf::db::now_ms();
    let mut cookies = Vec::with_capacity(n);
    let mut tx = db.writer().begin().await.expect("tx");
    for i in 0..n {
        let actor: i64 = sqlx::query_scalar(
            "INSERT INTO actors (handle, display_name, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(format!("fanout{i}"))
        .bind(format!("Viewer {i}"))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .expect("actor");
        sqlx::query("INSERT INTO hub_members (hub_id, actor_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hub_id)
            .bind(actor)
            .bind(role)
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("member");
        let token = format!("fanout-session-{i}-{}", ihf::crypto::random_token(12));
        sqlx::query(
            "INSERT INTO sessions (token_hash, actor_id, csrf_token, created_at, last_seen_at, expires_at)
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(ihf::crypto::sha256_hex(token.as_bytes()))
        .bind(actor)
        .bind(ihf::crypto::random_token(12))
        .bind(now)
        .bind(now + 86_400_000)
        .execute(&mut *tx)
        .await
        .expect("session");
        cookies.push(format!("ihf_session={token}"));
    }
    tx.commit().await.expect("commit");
    db.writer().close().await;
    let child = spawn_server(dir, port, &db_url, false);
    wait_healthy(&addr).await;
    (Server { child, addr, db_url }, cookies)
}

async fn hub_id(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT id FROM hubs WHERE slug = 'checkout'").fetch_one(db.reader()).await.expect("hub")
}

/// One HTTP/1.1 GET on a new connection; (status, headers, body).
async fn request(addr: &str, path: &str, cookie: Option<&str>, htmx: bool) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    send_get(&mut stream, addr, path, cookie, htmx, true, false).await?;
    read_response(&mut stream, &mut Vec::new()).await
}

async fn send_get(
    stream: &mut TcpStream,
    addr: &str,
    path: &str,
    cookie: Option<&str>,
    htmx: bool,
    close: bool,
    // Taking gzip as browsers do.
    gzip: bool,
) -> std::io::Result<()> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if gzip {
        head.push_str("Accept-Encoding: gzip, deflate, br, zstd\r\n");
    }
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if htmx {
        head.push_str("HX-Request: true\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await
}

/// Reads one response (Content-Length or chunked) from a kept-alive connection; `buf` keeps what
/// was read past it. The body's length on the wire is what it counts.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let length =
        lower.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    let body = if let Some(length) = length {
        while buf.len() < length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..length).collect()
    } else if lower.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(buf, b"\r\n") {
                    break at;
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).unwrap_or(0);
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        Vec::new()
    };
    Ok((status, head, body))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// The highest marker number in `bytes`.
fn newest_marker(bytes: &[u8]) -> Option<usize> {
    let mut best = None;
    let mut at = 0;
    while let Some(found) = find(&bytes[at..], MARKER) {
        let start = at + found + MARKER.len();
        let digits = bytes[start..].iter().take_while(|b| b.is_ascii_digit());
        let n = digits.fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        best = best.max(Some(n));
        at = start;
    }
    best
}

/// The stream URL a page names in its `#live` element.
fn live_url(page: &str) -> String {
    page.split("sse-connect=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page is live")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// A page's stream URL without the `bell:` region (and its hash, at the same place).
fn without_bell(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let get = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).unwrap_or_default();
    let regions: Vec<&str> = get("regions").split(',').collect();
    let hashes: Vec<&str> = get("hashes").split(',').collect();
    let keep: Vec<usize> = (0..regions.len()).filter(|i| !regions[*i].starts_with("bell:")).collect();
    let mut out = format!("{path}?regions={}", keep.iter().map(|i| regions[*i]).collect::<Vec<_>>().join(","));
    for (k, v) in &params {
        match *k {
            "regions" => {}
            "hashes" => {
                let kept: Vec<&str> = keep.iter().filter_map(|i| hashes.get(*i).copied()).collect();
                out.push_str(&format!("&hashes={}", kept.join(",")));
            }
            _ => out.push_str(&format!("&{k}={v}")),
        }
    }
    out
}

/// One SSE client: opens its own page's stream and reports (client, marker, arrival) for each
/// new marker it sees; counts the bytes it reads.
async fn sse_client(
    addr: String,
    cookie: String,
    url: String,
    client: usize,
    arrivals: mpsc::UnboundedSender<(usize, usize, Instant)>,
    ready: mpsc::UnboundedSender<bool>,
    bytes: Arc<AtomicU64>,
) {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        let _ = ready.send(false);
        return;
    };
    if send_get(&mut stream, &addr, &url, Some(&cookie), false, false, true).await.is_err() {
        let _ = ready.send(false);
        return;
    }
    let mut chunk = vec![0u8; 32768];
    // Sized at connect, as a browser's buffers are before its first event (see `touched`).
    let mut response = browser_body::Response::sized(8 * 1024);
    let mut tail = browser_body::touched(32 * 1024);
    let mut newest: Option<usize> = None;
    let mut answered = false;
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let now = Instant::now();
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        let before = tail.len();
        if let Some(status) = response.feed(&chunk[..n], &mut tail) {
            answered = true;
            let _ = ready.send(status == 200);
            if status != 200 {
                break;
            }
        }
        if client == 0
            && let Some(path) = std::env::var_os("IHF_BENCH_DUMP")
            && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = file.write_all(&tail[before..]);
        }
        // The tail of the last read joins this one: a marker may straddle two reads.
        if let Some(marker) = newest_marker(&tail)
            && newest.is_none_or(|m| marker > m)
        {
            newest = Some(marker);
            let _ = arrivals.send((client, marker, now));
        }
        let keep = tail.len().saturating_sub(32);
        tail.drain(..keep);
    }
    if !answered {
        let _ = ready.send(false);
    }
}

/// One poller: every second (from a random start), GET `path` as htmx does (`HX-Request`) on a
/// kept-alive connection; counts polls and body bytes.
async fn poller(
    addr: String,
    cookie: String,
    path: String,
    until: Instant,
    polls: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) {
    let offset = Duration::from_millis(u64::from(rand_u32() % 1000));
    tokio::time::sleep(offset).await;
    let Ok(mut stream) = TcpStream::connect(&addr).await else { return };
    let mut buf = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < until {
        tick.tick().await;
        if send_get(&mut stream, &addr, &path, Some(&cookie), true, false, true).await.is_err() {
            return;
        }
        match read_response(&mut stream, &mut buf).await {
            Ok((_, head, body)) => {
                polls.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add((head.len() + 4 + body.len()) as u64, Ordering::Relaxed);
            }
            Err(_) => return,
        }
    }
}

fn rand_u32() -> u32 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos.wrapping_mul(2_654_435_761)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Scenario {
    name: &'static str,
    role: &'static str,
    /// The page each viewer opens, and the fragment a poller would poll instead.
    page: &'static str,
    poll: &'static str,
    widget: &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "dashboard",
        role: "operator",
        page: "/hubs/checkout",
        poll: "/hubs/checkout/feed",
        widget: "cart-summary",
    },
    Scenario {
        name: "thread",
        role: "annotator",
        page: "/hubs/checkout/widgets/payment-form",
        poll: "/hubs/checkout/widgets/payment-form/thread",
        widget: "payment-form",
    },
];

async fn insert(db: &Db, hub_id: i64, widget_id: i64, actor_id: i64, category_id: i64, body: &str) {
    sqlx::query(
        "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(hub_id)
    .bind(widget_id)
    .bind(actor_id)
    .bind(body)
    .bind(category_id)
    .bind(ihf::db::now_ms())
    .execute(db.writer())
    .await
    .expect("insert");
}

async fn run_scenario(dir: &std::path::Path, scenario: &Scenario, n: usize) -> String {
    let (server, cookies) = start_server(&dir.join(format!("{}-{n}", scenario.name)), n, scenario.role).await;
    let db = Db::connect(&server.db_url, 2).await.expect("db");
    let hub_id = hub_id(&db).await;
    let widget_id: i64 = sqlx::query_scalar("SELECT id FROM widgets WHERE hub_id = $1 AND slug = $2")
        .bind(hub_id)
        .bind(scenario.widget)
        .fetch_one(db.reader())
        .await
        .expect("widget");
    let category_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(db.reader())
        .await
        .expect("category");
    let viewers: Vec<i64> = sqlx::query_scalar("SELECT id FROM actors WHERE handle LIKE 'fanout%' ORDER BY id")
        .fetch_all(db.reader())
        .await
        .expect("viewers");
    if scenario.name == "thread" {
        // Each of the first 20 annotators has an annotation of their own on the thread's first page.
        for (i, actor) in viewers.iter().take(20).enumerate() {
            insert(&db, hub_id, widget_id, *actor, category_id, &format!("own note of viewer {i}")).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every viewer loads their own page (their own render, feed position and region hashes),
    // then opens its stream.
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let sse_bytes = Arc::new(AtomicU64::new(0));
    let mut own_marked = 0usize;
    for (i, cookie) in cookies.iter().enumerate() {
        let (status, _, body) = request(&server.addr, scenario.page, Some(cookie), false).await.expect("page");
        assert_eq!(status, 200, "the page for viewer {i}");
        let page = String::from_utf8_lossy(&body);
        if i < 20 && scenario.name == "thread" && page.contains("class=\"own-actions\">") {
            own_marked += 1;
        }
        tokio::spawn(sse_client(
            server.addr.clone(),
            cookie.clone(),
            live_url(&page),
            i,
            arrivals_tx.clone(),
            ready_tx.clone(),
            Arc::clone(&sse_bytes),
        ));
    }
    let mut opened = 0;
    for _ in 0..n {
        if matches!(tokio::time::timeout(Duration::from_secs(30), ready.recv()).await, Ok(Some(true))) {
            opened += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    while arrivals.try_recv().is_ok() {}

    let pid = server.child.id();
    let bytes_before = sse_bytes.load(Ordering::Relaxed);
    let cpu_before = cpu_ticks(pid);
    let load = loadavg();
    let mut latencies = Vec::with_capacity(n * WRITES);
    let mut delivered = 0;
    // Bytes of the first write alone: the streams' first update, with no earlier update of
    // theirs to refer back to (see live::gzip); the later ones may.
    let mut bytes_first = 0;
    for write in 0..WRITES {
        let author = viewers[write % viewers.len().max(1)];
        let body = format!("fanout-marker-{write} a new annotation");
        insert(&db, hub_id, widget_id, author, category_id, &body).await;
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(10);
        let mut got = 0;
        while got < opened {
            match tokio::time::timeout_at(deadline.into(), arrivals.recv()).await {
                Ok(Some((_, marker, at))) if marker == write => {
                    latencies.push(at.duration_since(committed).as_secs_f64() * 1000.0);
                    got += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        delivered += got;
        // Quiet between writes: each is an isolated change (the leading edge).
        tokio::time::sleep(Duration::from_millis(400)).await;
        if write == 0 {
            bytes_first = sse_bytes.load(Ordering::Relaxed) - bytes_before;
        }
    }
    let cpu_writes = (cpu_ticks(pid) - cpu_before) as f64 / 100.0;
    let bytes_all = sse_bytes.load(Ordering::Relaxed) - bytes_before;
    let bytes_per_client = bytes_all as f64 / (opened.max(1) * WRITES) as f64;
    let first_per_client = bytes_first as f64 / opened.max(1) as f64;
    let later_per_client = (bytes_all - bytes_first) as f64 / (opened.max(1) * (WRITES - 1)) as f64;
    latencies.sort_by(f64::total_cmp);

    // Idle CPU of the same streams over the same span, to take out of the writes' figure.
    let idle_span = Duration::from_secs(3);
    let idle_before = cpu_ticks(pid);
    tokio::time::sleep(idle_span).await;
    let idle_per_sec = (cpu_ticks(pid) - idle_before) as f64 / 100.0 / idle_span.as_secs_f64();

    // The same viewers polling the fragment every second instead (the streams stay open, idle).
    let polls = Arc::new(AtomicU64::new(0));
    let poll_bytes = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(POLL_SECS + 1);
    let mut pollers = Vec::new();
    for cookie in &cookies {
        pollers.push(tokio::spawn(poller(
            server.addr.clone(),
            cookie.clone(),
            scenario.poll.to_owned(),
            until,
            Arc::clone(&polls),
            Arc::clone(&poll_bytes),
        )));
    }
    // Measure the steady part: from 1 s in (every poller started) for POLL_SECS - 1 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let poll_cpu_before = cpu_ticks(pid);
    let polls_before = polls.load(Ordering::Relaxed);
    let span = Duration::from_secs(POLL_SECS - 1);
    tokio::time::sleep(span).await;
    let poll_cpu_per_sec = (cpu_ticks(pid) - poll_cpu_before) as f64 / 100.0 / span.as_secs_f64();
    let polls_done = polls.load(Ordering::Relaxed) - polls_before;
    for poller in pollers {
        let _ = poller.await;
    }
    let per_poll = poll_bytes.load(Ordering::Relaxed) as f64 / polls.load(Ordering::Relaxed).max(1) as f64;

    let wall_writes = WRITES as f64 * 0.4 + latencies.last().copied().unwrap_or(0.0) / 1000.0;
    let cpu_per_write = (cpu_writes - idle_per_sec * wall_writes).max(0.0) / WRITES as f64;
    println!(
        "{} {n}: opened {opened}, delivered {delivered}/{}, p50 {:.1} p99 {:.1} ms, cpu/write {cpu_per_write:.3} s, \
         bytes/client/write {bytes_per_client:.0} (first {first_per_client:.0}, later {later_per_client:.0}), polling {poll_cpu_per_sec:.2} CPU-s/s ({polls_done} polls), {per_poll:.0} B/poll",
        scenario.name,
        opened * WRITES,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    let marked = if scenario.name == "thread" { format!(" ({own_marked}/20 own rows marked)") } else { String::new() };
    format!(
        "| {}{marked} | {n} | {delivered}/{} | {:.1} | {:.1} | {:.1} | {cpu_per_write:.3} | {bytes_per_client:.0} ({first_per_client:.0}; {later_per_client:.0}) | {poll_cpu_per_sec:.2} ({:.1} polls/s) | {per_poll:.0} | {:.0}× | {load} |",
        scenario.name,
        opened * WRITES,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
        polls_done as f64 / span.as_secs_f64(),
        poll_cpu_per_sec / cpu_per_write.max(0.0005),
    )
}

async fn idle_memory(dir: &std::path::Path, n: usize) -> String {
    let (server, cookies) = start_server(&dir.join("idle"), n, "operator").await;
    let pid = server.child.id();
    let (status, _, body) = request(&server.addr, "/hubs/checkout", Some(&cookies[0]), false).await.expect("page");
    assert_eq!(status, 200);
    // One page's stream URL for every viewer: without its bell, which is that one person's.
    let url = without_bell(&live_url(&String::from_utf8_lossy(&body)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let (arrivals_tx, _arrivals) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let bytes = Arc::new(AtomicU64::new(0));
    // In batches: each stream's first request signs its session in (a write), and 10,000 at
    // once would only measure SQLite's busy timeout.
    let mut opened = 0;
    for (batch, cookies) in cookies.chunks(100).enumerate() {
        for (i, cookie) in cookies.iter().enumerate() {
            tokio::spawn(sse_client(
                server.addr.clone(),
                cookie.clone(),
                url.clone(),
                batch * 100 + i + 1,
                arrivals_tx.clone(),
                ready_tx.clone(),
                Arc::clone(&bytes),
            ));
        }
        for _ in 0..cookies.len() {
            if matches!(tokio::time::timeout(Duration::from_secs(60), ready.recv()).await, Ok(Some(true))) {
                opened += 1;
            }
        }
    }
    // Freed memory of the connection burst returns to the OS over jemalloc's decay: sample for
    // at least 12 s, then until three samples a second apart agree within 1% (at most 40 s).
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
    let per_stream = after.saturating_sub(before) as f64 / opened.max(1) as f64;
    println!("idle: {opened} streams of distinct operators, {per_stream:.1} KiB each");
    format!(
        "Memory: {opened} idle dashboard streams of {n} distinct operators raised the server's RSS from {:.1} MiB to {:.1} MiB: **{per_stream:.1} KiB per idle stream** (target < 8 KiB; load {}).\n",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        loadavg()
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let names: Vec<String> = args
        .get(1)
        .map(|a| a.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| vec!["dashboard".into(), "thread".into()]);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let idle: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("ihf-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mut rows = Vec::new();
    for scenario in SCENARIOS.iter().filter(|s| names.iter().any(|n| n == s.name)) {
        rows.push(run_scenario(&dir, scenario, n).await);
    }
    let memory = if idle > 0 { idle_memory(&dir, idle).await } else { String::new() };

    let mut md = format!(
        "\n## Live fan-out against polling — {} at {commit}, 2-core / 24 GiB AMD EPYC sandbox\n\n\
         `cargo run --release --example bench_fanout` (`just bench-fanout`, #16): release server in its own process, SQLite, demo data, **shipped live settings** \
         (only the admission limits raised: every client comes from 127.0.0.1). Each viewer is a distinct person with **their own session**, loads their own page and opens its stream \
         (raw TCP clients on the same 2 cores, taking gzip as browsers do: streams and polls alike). {WRITES} writes, each a plain SQL `INSERT` of one annotation from the benchmark's process, 400 ms apart; latency from commit to the \
         new row arriving at each client; server CPU per write from `/proc/PID/stat` (idle CPU of the open streams subtracted); bytes on the wire per client per write (mean of the 10; in brackets the first write's, whose update has no earlier one on the stream to refer back to, and the mean of the nine after it). Then the same \
         viewers poll the region's fragment every 1 s (`HX-Request`, kept-alive connections) for {POLL_SECS} s: server CPU per second and bytes per poll. \
         `dashboard`: distinct operators of the checkout hub on its dashboard (feed event); `thread`: distinct annotators on the members widget `payment-form` (the thread).\n\n\
         | case | viewers | delivered | p50 ms | p99 ms | max ms | server CPU-s per write | bytes per client per write (first; later) | polling: CPU-s per s | bytes per poll | polling ÷ live | load (1/5/15) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
        today()
    );
    for row in rows {
        md.push_str(&row);
        md.push('\n');
    }
    if !memory.is_empty() {
        md.push('\n');
        md.push_str(&memory);
    }
    print!("{md}");
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open("BENCHMARKS.md").expect("BENCHMARKS.md");
    file.write_all(md.as_bytes()).expect("write");
    let _ = std::fs::remove_dir_all(&dir);
}

fn today() -> String {
    let output = Command::new("date").args(["-u", "+%Y-%m-%d"]).output().ok();
    output.and_then(|o| String::from_utf8(o.stdout).ok()).map(|s| s.trim().to_owned()).unwrap_or_default()
}
