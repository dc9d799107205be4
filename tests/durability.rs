//! Nothing acknowledged is ever lost (issue #13): SQLite's disk fills in the middle of every
//! write path, then space comes back. Every write that got a 2xx must be in the database as
//! another connection sees it, every one that failed got a 503 saying why (with `Retry-After`),
//! and writes succeed again without a restart.
//!
//! "Full" is `PRAGMA max_page_count` on the app's writer connection: SQLite refuses the first
//! write that needs a page beyond those in use with `SQLITE_FULL`, as it does on a full disk
//! (and as on a full disk, it rolls the whole transaction back by itself). The pragma belongs
//! to one connection, and the app replaces its writer connection after such a failure, so the
//! limit is set again before every attempt, after a write that fails the way a `COMMIT` on a
//! full disk does (see [`fail_a_whole_transaction`]). `api_writes_on_a_real_full_disk` does
//! the issue's own steps on a small tmpfs filled with a file, when the tests may mount one
//! (as root, which is how `.ci/run` runs here).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;
mod embed_support;

use std::time::{Duration, Instant};

use common::{TestApp, csrf_from, text_attr};
use ihf::db::{Backend, Db};
use serde_json::{Value, json};

/// Attempts with the disk full stop after this many failures...
const FAILURES: usize = 3;
/// ...or after this many attempts (each fills part of a page).
const MAX_ATTEMPTS: usize = 300;
/// Writes made once space is back.
const AFTER: usize = 4;
/// Some text, so that rows fill pages quickly.
const FILLER: &str = "The total jumps when the coupon is applied and jumps back when I change the quantity; \
                      I had to reload twice before the shipping estimate matched what the cart said, and \
                      by then the delivery slot I wanted was gone. Please keep the numbers steady.";

/// Makes the app's writer connection see a full disk (or room again).
async fn disk_full(db: &Db, full: bool) {
    let sql = if full { "PRAGMA max_page_count = 1" } else { "PRAGMA max_page_count = 1073741823" };
    sqlx::query(sql).execute(db.writer()).await.expect("max_page_count");
}

/// A write on the app's writer that fails the way a `COMMIT` on a full disk fails: SQLite
/// rolls the whole transaction back by itself. (A one-row INSERT without triggers runs without
/// a statement journal, so on `SQLITE_FULL` SQLite cannot undo just the statement.) The issue's
/// loss needed exactly this: such a failure, then a second one while the disk was still full.
async fn fail_a_whole_transaction(db: &Db, i: usize) {
    let mut tx = db.begin_write().await.expect("begin");
    let failed = sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2)")
        .bind(format!("filler-{i}"))
        .bind(FILLER.repeat(20))
        .execute(&mut *tx)
        .await;
    assert!(failed.is_err(), "the disk is full");
    drop(tx);
}

/// What the server answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Self {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let status = response.status().as_u16();
        Self { status, content_type, retry_after, body: response.text().await.expect("body") }
    }

    fn ok(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// A 503 that says the storage is full, in the form the caller asked for.
    fn assert_disk_full(&self, json: bool, what: &str) {
        assert_eq!(self.status, 503, "{what}: a failed write is a 503: {self:?}");
        let wait: u64 = self.retry_after.as_deref().and_then(|s| s.parse().ok()).expect("Retry-After");
        assert!(wait > 0, "{what}: Retry-After {wait}");
        if json {
            assert!(self.content_type.starts_with("application/json"), "{what}: JSON for API callers: {self:?}");
            let body: Value = serde_json::from_str(&self.body).expect("JSON body");
            assert_eq!(body["error"], "unavailable", "{what}");
            assert!(body["message"].as_str().is_some_and(|m| m.contains("storage is full")), "{what}: {body}");
        } else {
            assert!(self.content_type.starts_with("text/html"), "{what}: HTML for people: {self:?}");
            assert!(self.body.contains("storage is full"), "{what}: the page says what happened: {}", self.body);
        }
    }
}

/// One write path under test: `attempt(i)` makes write `i` (identified by `key(i)`) and
/// answers; `present` counts the rows carrying a key (`$1`).
struct Outcome {
    acknowledged: Vec<String>,
    failed: Vec<String>,
}

/// Writes with the disk full until [`FAILURES`] failed, then [`AFTER`] more with space back.
async fn full_then_freed(
    app: &TestApp,
    what: &str,
    json: bool,
    present: &'static str,
    mut attempt: impl AsyncFnMut(usize) -> Vec<(String, Answer)>,
) -> Outcome {
    let mut outcome = Outcome { acknowledged: Vec::new(), failed: Vec::new() };
    let mut i = 0;
    while outcome.failed.len() < FAILURES && i < MAX_ATTEMPTS {
        disk_full(&app.db, true).await;
        fail_a_whole_transaction(&app.db, i).await;
        // Again: the app may have replaced its writer connection since.
        disk_full(&app.db, true).await;
        for (key, answer) in attempt(i).await {
            if answer.ok() {
                outcome.acknowledged.push(key);
            } else {
                answer.assert_disk_full(json, what);
                outcome.failed.push(key);
            }
        }
        i += 1;
    }
    assert!(outcome.failed.len() >= FAILURES, "{what}: the disk filled up within {MAX_ATTEMPTS} writes");
    let before = outcome.acknowledged.len();
    disk_full(&app.db, false).await;
    let freed = Instant::now();
    for _ in 0..AFTER {
        for (key, answer) in attempt(i).await {
            assert!(answer.ok(), "{what}: writes succeed again once there is space, without a restart: {answer:?}");
            outcome.acknowledged.push(key);
        }
        i += 1;
    }
    eprintln!(
        "{what}: {} writes acknowledged, {} refused with 503 while the disk was full; {AFTER} rounds of writes in {:?} after it was freed",
        before,
        outcome.failed.len(),
        freed.elapsed()
    );
    assert_durable(app, what, present, &outcome).await;
    outcome
}

/// Every acknowledged write is there for another connection, no refused one is, and nothing
/// holds SQLite's write lock.
async fn assert_durable(app: &TestApp, what: &str, present: &'static str, outcome: &Outcome) {
    let outside = Db::connect(&app.database_url, 1).await.expect("another connection");
    for key in &outcome.acknowledged {
        let rows: i64 = sqlx::query_scalar(present).bind(key).fetch_one(outside.reader()).await.expect("count");
        assert!(rows >= 1, "{what}: the acknowledged write {key:?} is missing");
    }
    for key in &outcome.failed {
        let rows: i64 = sqlx::query_scalar(present).bind(key).fetch_one(outside.reader()).await.expect("count");
        assert_eq!(rows, 0, "{what}: the refused write {key:?} was written after all");
    }
    let started = Instant::now();
    let tx = outside.begin_write().await.expect("another process can take the write lock");
    tx.rollback().await.expect("rollback");
    assert!(started.elapsed() < Duration::from_millis(500), "nothing holds the write lock");
    outside.close().await;
}

/// The demo, and a signed-in client of `handle` with its CSRF token.
async fn person(
    app: &TestApp,
    logins: &std::collections::HashMap<String, String>,
    handle: &str,
) -> (reqwest::Client, String) {
    let client = app.signed_in(handle, &logins[handle]).await;
    let csrf = app.csrf(&client, "/").await;
    (client, csrf)
}

const PAYMENT: &str = "/hubs/checkout/widgets/payment-form";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composer_writes_are_durable_when_the_disk_fills() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let page = wendy.get(app.url(PAYMENT)).send().await.expect("page").text().await.expect("body");
    let csrf = csrf_from(&page);
    let mut token = text_attr(&page, "name=\"token\" value=\"").expect("composer token");
    let present = "SELECT COUNT(*) FROM annotations WHERE body LIKE $1 || '%'";
    full_then_freed(&app, "composer", false, present, async |i| {
        let key = format!("composer {i}:");
        let body = format!("{key} {FILLER}");
        let response = wendy
            .post(app.url(&format!("{PAYMENT}/composer")))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &csrf)
            .form(&[("token", token.as_str()), ("body", &body), ("category", "bug"), ("action", "submit")])
            .send()
            .await
            .expect("POST composer");
        let answer = Answer::of(response).await;
        if !answer.ok() {
            assert!(answer.body.contains(&key), "the composer keeps what was typed");
        }
        token = text_attr(&answer.body, "name=\"token\" value=\"").expect("composer token");
        vec![(key, answer)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_are_durable_when_the_disk_fills_and_retries_find_them() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    let (_, _, key, _) = embed_support::widget(&app, "payment-form").await;
    let url = app.url(&format!("/api/v1/widgets/{key}/annotations"));
    let post = async |idempotency_key: &str| {
        let body = format!("{idempotency_key} {FILLER}");
        let request = json!({"body": body, "category": "bug", "idempotency_key": idempotency_key});
        Answer::of(tomas.post(&url).header("X-CSRF-Token", &csrf).json(&request).send().await.expect("POST")).await
    };
    let present = "SELECT COUNT(*) FROM annotations WHERE idempotency_key = $1";
    let outcome = full_then_freed(&app, "API", true, present, async |i| {
        let key = format!("api-{i}");
        let answer = post(&key).await;
        vec![(key, answer)]
    })
    .await;
    // Clients retry with the same key (the failure came back exactly on this path: a
    // retry rolled back to a savepoint and left SQLite's transaction open for good). A retry of
    // an acknowledged write finds it; a retry of a refused one writes it now.
    for key in &outcome.acknowledged {
        assert_eq!(post(key).await.status, 200, "the retry of {key} finds the first write");
    }
    for key in &outcome.failed {
        assert_eq!(post(key).await.status, 201, "the retry of refused {key} writes it");
    }
    let all = Outcome { acknowledged: [outcome.acknowledged, outcome.failed].concat(), failed: Vec::new() };
    assert_durable(&app, "API retries", present, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_writes_are_durable_when_the_disk_fills() {
    let app = common::spawn_app(Backend::Sqlite).await;
    app.seed_demo().await;
    let (_, _, key, _) = embed_support::widget(&app, "cart-summary").await;
    let vt = embed_support::visitor_token(&app, &key).await;
    let (action, mut state) = embed_support::composer(&app, &key, &vt).await;
    let present = "SELECT COUNT(*) FROM annotations WHERE body LIKE $1 || '%'";
    full_then_freed(&app, "embed", false, present, async |i| {
        let key = format!("embed {i}:");
        let body = format!("{key} {FILLER}");
        let fields = [("body", body.as_str()), ("category", "bug"), ("action", "submit")];
        let answer = Answer::of(embed_support::post_composer(&app, &action, &state, &fields, true, &[]).await).await;
        if !answer.ok() {
            assert!(answer.body.contains(&key), "the embed's composer keeps what was typed");
        }
        state = text_attr(&answer.body, "name=\"token\" value=\"").expect("composer token");
        vec![(key, answer)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_writes_are_durable_when_the_disk_fills() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    // Enough new annotations to triage until the disk is full.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, status, created_at, updated_at)
         SELECT a.hub_id, a.widget_id, a.actor_id, 'To triage ' || n.i, a.category_id, 'new', a.created_at, a.updated_at
         FROM n, (SELECT * FROM annotations WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout') ORDER BY id LIMIT 1) a",
    )
    .execute(app.db.writer())
    .await
    .expect("annotations to triage");
    let open: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.version FROM annotations a JOIN hubs h ON h.id = a.hub_id
         WHERE h.slug = 'checkout' AND a.status = 'new' AND a.deleted_at IS NULL ORDER BY a.id",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("annotations");
    let present = "SELECT COUNT(*) FROM annotations WHERE CAST(id AS TEXT) = $1 AND status = 'triaged'";
    full_then_freed(&app, "triage", false, present, async |i| {
        assert!(i < open.len(), "enough annotations to triage");
        let (id, version) = open[i];
        let form = [("action", "triage".to_owned()), ("version", version.to_string())];
        let response = tomas
            .post(app.url(&format!("/hubs/checkout/triage/annotations/{id}")))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &csrf)
            .form(&form)
            .send()
            .await
            .expect("POST");
        vec![(id.to_string(), Answer::of(response).await)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_writes_are_durable_when_the_disk_fills() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    let present = "SELECT COUNT(*) FROM requirement_candidates WHERE title = $1";
    full_then_freed(&app, "ledger", false, present, async |i| {
        let key = format!("Keep the totals steady ({i})");
        let form = [("title", key.as_str()), ("statement", FILLER), ("csrf_token", csrf.as_str())];
        let response = tomas
            .post(app.url("/hubs/checkout/candidates"))
            .header("HX-Request", "true")
            .form(&form)
            .send()
            .await
            .expect("POST");
        vec![(key, Answer::of(response).await)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_writes_are_durable_when_the_disk_fills() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let (olga, csrf) = person(&app, &logins, "olga").await;
    let present = "SELECT COUNT(*) FROM widgets WHERE slug = $1";
    full_then_freed(&app, "settings", false, present, async |i| {
        let key = format!("banner-{i}");
        let form = [
            ("name", format!("Banner {i}")),
            ("slug", key.clone()),
            ("description", FILLER.to_owned()),
            ("owner", String::new()),
            ("policy_scope", "members".to_owned()),
            ("allowed_origins", String::new()),
            ("csrf_token", csrf.clone()),
        ];
        let response = olga
            .post(app.url("/hubs/checkout/settings/widgets"))
            .header("HX-Request", "true")
            .form(&form)
            .send()
            .await
            .expect("POST");
        vec![(key, Answer::of(response).await)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_group_commits_are_durable_when_the_disk_fills() {
    let app = common::spawn_app_with(Backend::Sqlite, |config| {
        config.ingest_per_ip_per_min = 1_000_000;
        config.ingest_per_key_per_min = 1_000_000;
    })
    .await;
    app.seed_demo().await;
    let (_, _, key, _) = embed_support::widget(&app, "cart-summary").await;
    let url = app.url(&format!("/api/v1/widgets/{key}/events"));
    let present = "SELECT COUNT(*) FROM interaction_events WHERE payload LIKE '%' || $1 || '%'";
    full_then_freed(&app, "ingestion", true, present, async |i| {
        // Several batches at once, so they share group commits.
        let keys: Vec<String> = (0..4).map(|j| format!("batch{i}x{j}y")).collect();
        let batches = keys.iter().map(|key| {
            let events: Vec<Value> =
                (0..20).map(|n| json!({"kind": "click", "payload": {"k": key, "n": n, "note": FILLER}})).collect();
            app.client.post(&url).json(&json!({ "events": events })).send()
        });
        let mut answers = Vec::new();
        for (key, response) in keys.iter().zip(futures_util::future::join_all(batches).await) {
            answers.push((key.clone(), Answer::of(response.expect("POST")).await));
        }
        answers
    })
    .await;
}

/// The root cause, on a pool without the app's check: after a write fails with "disk full"
/// (SQLite rolled the transaction back by itself, so sqlx's ROLLBACK fails) sqlx still counts
/// an open transaction on the connection, and the next `begin()` is a savepoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_loses_count_of_transactions_after_disk_full() {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let url = common::fresh_database_url(Backend::Sqlite).await;
    let pool =
        sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&format!("{url}?mode=rwc")).await.expect("pool");
    pool.execute("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)").await.expect("table");
    for i in 0..50 {
        pool.execute("PRAGMA max_page_count = 1").await.expect("full");
        let mut tx = pool.begin().await.expect("begin");
        let inserted =
            sqlx::query("INSERT INTO t (body) VALUES ($1)").bind(format!("{i} {FILLER}")).execute(&mut *tx).await;
        match inserted {
            Ok(_) => tx.commit().await.expect("commit"),
            Err(e) => {
                eprintln!("insert {i}: {e}");
                drop(tx);
                break;
            }
        }
    }
    let mut conn = pool.acquire().await.expect("acquire");
    let _ = conn.ping().await;
    eprintln!("after the failure sqlx counts a transaction: {}", conn.is_in_transaction());
}

/// A small tmpfs, unmounted (with its files) when dropped.
struct Tmpfs {
    dir: std::path::PathBuf,
}

impl Tmpfs {
    /// `None` when this process may not mount (not root, or no mount namespace rights).
    fn mount(size_mib: u32) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("ihf_tmpfs_{}_{}", std::process::id(), ihf::db::now_ms()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Self { dir })
    }

    /// Writes a file until the file system is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.flush();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The steps: the database on a 32 MiB tmpfs, the file system filled with a file,
/// annotations sent through the API one at a time (each retried once with the same key, as a
/// client would), then the file deleted and more sent. Every acknowledged annotation must be
/// in the file for another connection, and nothing may hold the write lock. Runs when the
/// tests may mount a tmpfs (root); says so and returns otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_on_a_real_full_disk() {
    let Some(tmpfs) = Tmpfs::mount(32) else {
        eprintln!("api_writes_on_a_real_full_disk: SKIPPED, this process cannot mount a tmpfs (needs root)");
        return;
    };
    let url = format!("sqlite://{}/ihf.sqlite3", tmpfs.dir.display());
    let app = common::spawn_on(url, Backend::Sqlite, |_| {}).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    let (_, _, key, _) = embed_support::widget(&app, "payment-form").await;
    let url = app.url(&format!("/api/v1/widgets/{key}/annotations"));
    let post = async |idempotency_key: &str| {
        let body = format!("{idempotency_key} {}", FILLER.repeat(4));
        let request = json!({"body": body, "category": "bug", "idempotency_key": idempotency_key});
        Answer::of(tomas.post(&url).header("X-CSRF-Token", &csrf).json(&request).send().await.expect("POST")).await
    };
    let filler = tmpfs.fill();
    let mut outcome = Outcome { acknowledged: Vec::new(), failed: Vec::new() };
    let started = Instant::now();
    let mut i = 0;
    while i < 400 && (outcome.failed.len() < 20 || started.elapsed() < Duration::from_secs(2)) {
        let key = format!("full-{i}");
        let first = post(&key).await;
        let retry = post(&key).await;
        for answer in [&first, &retry] {
            if !answer.ok() {
                answer.assert_disk_full(true, "API on a full tmpfs");
            }
        }
        if first.ok() || retry.ok() {
            outcome.acknowledged.push(key);
        } else {
            outcome.failed.push(key);
        }
        i += 1;
    }
    let full_answers = (outcome.acknowledged.len(), outcome.failed.len());
    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let mut recovered = None;
    for j in 0..40 {
        let key = format!("freed-{j}");
        let answer = post(&key).await;
        if answer.ok() {
            recovered.get_or_insert_with(|| freed.elapsed());
            outcome.acknowledged.push(key);
        } else {
            answer.assert_disk_full(true, "API after the space came back");
            assert!(recovered.is_none(), "once writes succeed again they keep succeeding: {answer:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            outcome.failed.push(key);
        }
    }
    eprintln!(
        "real full disk: {} acknowledged and {} refused while full; first success {:?} after the space came back",
        full_answers.0, full_answers.1, recovered
    );
    assert!(full_answers.1 > 0, "the full disk refused some writes");
    assert!(recovered.is_some(), "writes succeed again without a restart");
    assert_durable(
        &app,
        "API on a real full disk",
        "SELECT COUNT(*) FROM annotations WHERE idempotency_key = $1",
        &outcome,
    )
    .await;
    app.handle.stop(true).await;
}

// ---------------------------------------------------------------------------------------
// Clear, fast answers under pressure

/// A GET's status and how long it took.
async fn timed_get(client: &reqwest::Client, url: &str) -> (u16, Duration, String) {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, started.elapsed(), response.text().await.unwrap_or_default())
}

/// Another connection holds SQLite's write lock (as another process would, e.g. a long
/// `sqlite3` session): writes answer 503 "locked" within about a second, as JSON for the API
/// and as HTML with the typed text for the composer; `/readyz` says why; `/healthz` stays
/// quick; once the lock is released writes succeed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lock_held_elsewhere_gives_fast_503s() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    let (_, _, key, _) = embed_support::widget(&app, "payment-form").await;
    let api = app.url(&format!("/api/v1/widgets/{key}/annotations"));
    let post = async |text: &str| {
        let started = Instant::now();
        let request = json!({"body": text, "category": "bug", "idempotency_key": text});
        let answer =
            Answer::of(tomas.post(&api).header("X-CSRF-Token", &csrf).json(&request).send().await.expect("POST")).await;
        (answer, started.elapsed())
    };

    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let page = wendy.get(app.url(PAYMENT)).send().await.expect("page").text().await.expect("body");

    let other = Db::connect(&app.database_url, 1).await.expect("another connection");
    let lock = other.begin_write().await.expect("take the write lock");
    let mut slowest = Duration::ZERO;
    for i in 0..3 {
        let (answer, took) = post(&format!("while locked {i}")).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.content_type.starts_with("application/json"));
        assert!(answer.body.contains("locked by another writer"), "{}", answer.body);
        assert!(answer.retry_after.is_some());
        assert!(took < Duration::from_millis(2500), "a locked database answers within about a second: {took:?}");
        slowest = slowest.max(took);
    }
    // The composer keeps the text and says what happened.
    let token = text_attr(&page, "name=\"token\" value=\"").expect("token");
    let typed = "Typed while the database was locked";
    let response = wendy
        .post(app.url(&format!("{PAYMENT}/composer")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", csrf_from(&page))
        .form(&[("token", token.as_str()), ("body", typed), ("category", "bug"), ("action", "submit")])
        .send()
        .await
        .expect("POST composer");
    let answer = Answer::of(response).await;
    assert_eq!(answer.status, 503);
    assert!(answer.retry_after.is_some(), "the composer's 503 has Retry-After");
    assert!(answer.body.contains("locked by another writer") && answer.body.contains(typed), "{}", answer.body);

    let (status, took, reason) = timed_get(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 503, "not ready while writes fail");
    assert!(reason.contains("locked"), "readiness says why: {reason}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let (status, took, _) = timed_get(&app.client, &app.url("/healthz")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(200), "liveness is quick: {took:?}");

    lock.rollback().await.expect("release the lock");
    let released = Instant::now();
    let (answer, _) = post("after the lock").await;
    assert_eq!(answer.status, 201, "writes succeed once the lock is released: {answer:?}");
    eprintln!(
        "SQLite lock held elsewhere: API 503 in at most {slowest:?}; first write {:?} after release",
        released.elapsed()
    );
    other.close().await;
}

/// A TCP proxy in front of PostgreSQL; `down` closes its listener and every connection
/// through it, as a stopped server would.
struct PgProxy {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
}

impl PgProxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let mut halt = stopped.clone();
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = halt.wait_for(|s| *s) => return,
                };
                let Ok((mut inbound, _)) = accepted else { return };
                let mut halt = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = halt.wait_for(|s| *s) => {}
                    }
                });
            }
        });
        Self { port, stop }
    }

    fn down(&self) {
        self.stop.send_replace(true);
    }
}

/// PostgreSQL goes away under a running app: API callers with a session cookie get a JSON
/// 503 within about a second (not 5 s), pages a 503 page, `/healthz` stays quick and `/readyz`
/// fails quickly, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_fast_json_503s() {
    if !common::pg_enabled() {
        return;
    }
    let direct = common::fresh_database_url(Backend::Postgres).await;
    let proxy = PgProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let through_proxy = direct.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(through_proxy, direct, "IHF_TEST_PG points at 127.0.0.1:5432");
    let app = common::spawn_on(through_proxy, Backend::Postgres, |_| {}).await;
    let logins = app.seed_demo().await;
    let (tomas, csrf) = person(&app, &logins, "tomas").await;
    let (_, _, key, _) = embed_support::widget(&app, "payment-form").await;
    let api = app.url(&format!("/api/v1/widgets/{key}/annotations"));

    proxy.down();
    let mut slowest = Duration::ZERO;
    for i in 0..3 {
        let started = Instant::now();
        let request = json!({"body": format!("while down {i}"), "category": "bug"});
        let response = tomas.post(&api).header("X-CSRF-Token", &csrf).json(&request).send().await.expect("POST");
        let answer = Answer::of(response).await;
        let took = started.elapsed();
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(
            answer.content_type.starts_with("application/json"),
            "JSON for an API caller with a session: {answer:?}"
        );
        let body: Value = serde_json::from_str(&answer.body).expect("JSON");
        assert_eq!(body["error"], "unavailable");
        assert!(answer.retry_after.is_some());
        assert!(took < Duration::from_millis(2500), "PostgreSQL down answers within about a second: {took:?}");
        slowest = slowest.max(took);
    }
    let (status, took, page) = timed_get(&tomas, &app.url("/hubs/checkout")).await;
    assert_eq!(status, 503);
    assert!(
        page.contains("<html") && (page.contains("cannot be reached") || page.contains("did not answer")),
        "{page}"
    );
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let (status, took, _) = timed_get(&app.client, &app.url("/healthz")).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_millis(200), "liveness is quick: {took:?}");
    let (status, took, reason) = timed_get(&app.client, &app.url("/readyz")).await;
    assert_eq!(status, 503);
    assert!(reason.contains("database"), "{reason}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    eprintln!("PostgreSQL down: API 503 JSON in at most {slowest:?}, page 503, /readyz 503 in {took:?}");
    app.handle.stop(false).await;
}
