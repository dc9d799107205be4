//! Witnesses cosign the ledger's checkpoints (C2SP tlog-witness / tlog-cosignature), against
//! real witness servers this test starts: a good one that checks the log's signature and the
//! consistency proofs and cosigns, one that hangs, one that cosigns with the wrong key. Settings
//! add and remove them (URL and key checked); the good one's cosignature is verified, stored and
//! shown while the hanging one blocks nobody; the bad one's is rejected; a burst of appends is
//! one request; two instances on one database never send one checkpoint twice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::TestApp;
use ihf::db::Backend;
use ihf::transparency::merkle::{self, Hash};
use ihf::transparency::note::{self, Checkpoint, Cosigner, Note, VerifierKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---- a tiny tlog-witness ------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    /// Reads the request and never answers.
    Hang,
    /// Answers with a cosignature by another key under the witness's name.
    WrongKey,
}

#[derive(Default)]
struct State {
    /// The latest size and root it cosigned.
    latest: Option<(u64, Hash)>,
    /// Every request: (old, size, status answered).
    requests: Vec<(u64, u64, u16)>,
}

struct Witness {
    url: String,
    vkey: String,
    state: Arc<Mutex<State>>,
}

impl Witness {
    fn requests(&self) -> Vec<(u64, u64, u16)> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Starts a witness named `name` on 127.0.0.1 that trusts the log key `log_key`.
async fn start_witness(name: &str, seed: u8, mode: Mode, log_key: VerifierKey) -> Witness {
    let cosigner = Cosigner::new(name, &[seed; 32]).unwrap();
    let impostor = Cosigner::new(name, &[seed.wrapping_add(100); 32]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/{}", listener.local_addr().unwrap(), name.replace('/', "-"));
    let state = Arc::new(Mutex::new(State::default()));
    let shared = Arc::clone(&state);
    let vkey = cosigner.vkey();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let (cosigner, impostor, log_key, state) =
                (cosigner.clone(), impostor.clone(), log_key.clone(), Arc::clone(&shared));
            tokio::spawn(async move {
                let Some((path, body)) = read_request(&mut socket).await else { return };
                if mode == Mode::Hang {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    return;
                }
                let (status, content_type, answer) = if path.ends_with("/add-checkpoint") {
                    let signer = if mode == Mode::WrongKey { &impostor } else { &cosigner };
                    add_checkpoint(&body, &log_key, signer, &state)
                } else {
                    (404, "text/plain", "not found\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Witness { url, vkey, state }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string()))
}

/// The witness side of `add-checkpoint`, as C2SP tlog-witness specifies it.
fn add_checkpoint(
    body: &str,
    log_key: &VerifierKey,
    signer: &Cosigner,
    state: &Mutex<State>,
) -> (u16, &'static str, String) {
    let Some((head, note)) = body.split_once("\n\n") else { return (400, "text/plain", "no blank line\n".into()) };
    let mut lines = head.lines();
    let Some(old) = lines.next().and_then(|l| l.strip_prefix("old ")).and_then(|n| n.parse::<u64>().ok()) else {
        return (400, "text/plain", "no old line\n".into());
    };
    let proof: Vec<Hash> = lines.map(|l| BASE64.decode(l).unwrap().try_into().unwrap()).collect();
    let Ok(checkpoint) = Checkpoint::open(note, log_key) else { return (403, "text/plain", "bad signature\n".into()) };
    let mut state = state.lock().unwrap();
    let answer = (|| {
        let (held, held_root) = state.latest.unwrap_or((0, merkle::empty_root()));
        if old != held {
            return (409, "text/x.tlog.size", format!("{held}\n"));
        }
        if old > checkpoint.size {
            return (400, "text/plain", "old > size\n".into());
        }
        if old > 0 && merkle::verify_consistency(old, checkpoint.size, &proof, &held_root, &checkpoint.root).is_err() {
            return (422, "text/plain", "inconsistent\n".into());
        }
        state.latest = Some((checkpoint.size, checkpoint.root));
        let text = Note::parse(note).unwrap().text;
        (200, "text/plain", signer.cosign(&text, 1_700_000_000 + checkpoint.size))
    })();
    state.requests.push((old, checkpoint.size, answer.0));
    answer
}

// ---- helpers ----------------------------------------------------------------------------------

async fn propose(app: &TestApp, hub: i64, title: &str) {
    let tomas = ihf::db::actors::by_handle(&app.db, "tomas").await.expect("tomas").id;
    let mut tx = app.db.writer().begin().await.expect("begin");
    ihf::db::candidates::propose(&mut tx, hub, tomas, title, "Because customers asked.", &[]).await.expect("propose");
    tx.commit().await.expect("commit");
}

async fn signed_size(app: &TestApp, hub: i64) -> i64 {
    ihf::db::ledger_tree::signed_size(app.db.reader(), hub).await.unwrap() as i64
}

async fn witness_row(app: &TestApp, hub: i64, url: &str) -> ihf::db::witnesses::Witness {
    let all = ihf::db::witnesses::for_hub(app.db.reader(), hub).await.unwrap();
    all.into_iter().find(|w| w.url == url).expect("the witness row")
}

/// Waits until `check` holds (or fails the test after `limit`).
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

async fn add_witness(app: &TestApp, client: &reqwest::Client, url: &str, vkey: &str) -> (u16, String) {
    let csrf = app.csrf(client, "/hubs/checkout/settings/witnesses").await;
    let response = client
        .post(app.url("/hubs/checkout/settings/witnesses"))
        .form(&[("csrf_token", csrf.as_str()), ("url", url), ("vkey", vkey)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    client.get(app.url(path)).send().await.unwrap().text().await.unwrap()
}

// ---- the test ---------------------------------------------------------------------------------

async fn run(backend: Backend) {
    let url = common::fresh_database_url(backend).await;
    let configure = |c: &mut ihf::Config| {
        c.webhook_allow_private = true;
        c.webhook_retry_base_ms = 300;
        c.ledger_name = Some("feedback.example.com".into());
    };
    let app = common::spawn_on(url.clone(), backend, configure).await;
    let logins = app.seed_demo().await;
    let checkout = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let log_key: VerifierKey = page(&app, &app.new_client(), "/hubs/checkout/ledger/key").await.parse().unwrap();

    let good = start_witness("witness.example/w1", 1, Mode::Good, log_key.clone()).await;
    let hanging = start_witness("witness.example/slow", 2, Mode::Hang, log_key.clone()).await;
    let wrong = start_witness("witness.example/liar", 3, Mode::WrongKey, log_key.clone()).await;

    // Settings: only operators; URL and key are checked, what was typed is kept.
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    assert_eq!(tomas.get(app.url("/hubs/checkout/settings/witnesses")).send().await.unwrap().status(), 403);
    // With private addresses refused (the default), the SSRF guard keeps a loopback witness out.
    let guarded = common::spawn_on(url.clone(), backend, |c| c.ledger_name = Some("feedback.example.com".into())).await;
    let olga_guarded = guarded.signed_in("olga", &logins["olga"]).await;
    let (status, body) = add_witness(&guarded, &olga_guarded, "http://127.0.0.1:9/w", &good.vkey).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("value=\"http://127.0.0.1:9/w\""), "what was typed is kept: {body}");
    guarded.handle.stop(true).await;
    let (status, body) = add_witness(&app, &olga, "ftp://witness.example/w1", &good.vkey).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("https://") && body.contains("value=\"ftp://witness.example/w1\""), "{body}");
    let (status, body) = add_witness(&app, &olga, &good.url, &log_key.encode()).await;
    assert_eq!(status, 422, "a log key is not a cosigning key: {body}");
    assert!(body.contains("log signing key"), "{body}");
    let (status, body) = add_witness(&app, &olga, &good.url, "not a key").await;
    assert_eq!(status, 422, "{body}");
    for witness in [&good, &hanging, &wrong] {
        let (status, body) = add_witness(&app, &olga, &witness.url, &witness.vkey).await;
        assert_eq!(status, 303, "{body}");
    }
    let (status, body) = add_witness(&app, &olga, &good.url, &good.vkey).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("a witness at this URL already"), "{body}");

    // A new checkpoint reaches the good witness at once although another one hangs: its
    // cosignature is verified and stored, and shown on the ledger page.
    propose(&app, checkout, "Witnessed decision").await;
    let size = signed_size(&app, checkout).await;
    assert!(size >= 1);
    let waited = until(Duration::from_secs(8), "the good witness cosigned", || async {
        witness_row(&app, checkout, &good.url).await.cosigned_size == size
    })
    .await;
    assert!(waited < Duration::from_secs(6), "the hanging witness (10 s timeout) did not hold it up: {waited:?}");
    assert_eq!(witness_row(&app, checkout, &hanging.url).await.cosigned_size, 0, "the hanging one has nothing");
    // (It may have cosigned the demo's checkpoint first; each request started where the last ended.)
    let requests = good.requests();
    assert_eq!(requests.last(), Some(&(requests.len().checked_sub(2).map_or(0, |i| requests[i].1), size as u64, 200)));
    assert!(requests.iter().all(|(_, _, status)| *status == 200), "{requests:?}");

    let checkpoint = page(&app, &olga, "/hubs/checkout/ledger/checkpoint").await;
    let text = Note::parse(&checkpoint).unwrap().text;
    let line = checkpoint.lines().find(|l| l.starts_with("— witness.example/w1 ")).expect("the cosignature is served");
    let cosignature = note::verify_cosignature(&text, line, &good.vkey.parse().unwrap()).expect("it verifies");
    assert_eq!(cosignature.timestamp, 1_700_000_000 + size as u64);
    let ledger = page(&app, &olga, "/hubs/checkout/ledger").await;
    let cosigners = common::section(&ledger, "ledger-cosigners", "</div>").expect("the cosigners on the page");
    assert!(
        cosigners.contains("witness.example/w1</code>: cosigned the checkpoint of")
            && cosigners.contains(&format!("{size} entries (the latest)")),
        "{cosigners}"
    );
    assert!(cosigners.contains("witness.example/slow</code>: nothing cosigned yet"), "{cosigners}");

    // The wrong key's cosignature is rejected: nothing stored, the reason kept for operators.
    until(Duration::from_secs(8), "the liar was answered", || async {
        witness_row(&app, checkout, &wrong.url).await.last_error.is_some()
    })
    .await;
    let liar = witness_row(&app, checkout, &wrong.url).await;
    assert!(liar.last_error.as_deref().unwrap().contains("rejected the cosignature"), "{:?}", liar.last_error);
    assert_eq!(liar.cosigned_size, 0);
    assert!(!checkpoint.contains("witness.example/liar"), "{checkpoint}");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_cosignatures WHERE witness_id = $1")
        .bind(liar.id)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let settings = page(&app, &olga, "/hubs/checkout/settings/witnesses").await;
    assert!(settings.contains("rejected the cosignature"), "operators see why");

    // The rate rule: a checkpoint after every append (in its transaction); a witness gets the
    // newest one only, one request at a time, so a burst of appends is far fewer requests.
    let before = good.requests().len();
    for i in 0..10 {
        propose(&app, checkout, &format!("Burst {i}")).await;
    }
    let size = signed_size(&app, checkout).await;
    let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_checkpoints WHERE hub_id = $1")
        .bind(checkout)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    assert_eq!(entries, size, "one signed checkpoint per append");
    until(Duration::from_secs(8), "the burst was cosigned", || async {
        witness_row(&app, checkout, &good.url).await.cosigned_size == size
    })
    .await;
    let burst = &good.requests()[before..];
    assert!(burst.len() < 10, "a burst of 10 appends is fewer requests: {burst:?}");
    assert!(burst.iter().all(|(_, _, status)| *status == 200), "every proof verified at the witness: {burst:?}");
    assert_eq!(burst.last().unwrap().1, size as u64);

    // Two instances on one database: each checkpoint is sent once, not once per instance.
    let second = common::spawn_on(url.clone(), backend, configure).await;
    let before = good.requests().len();
    for i in 0..4 {
        propose(&app, checkout, &format!("Two instances {i}")).await;
        let size = signed_size(&app, checkout).await;
        until(Duration::from_secs(8), "cosigned with two instances", || async {
            witness_row(&app, checkout, &good.url).await.cosigned_size == size
        })
        .await;
    }
    let requests = &good.requests()[before..];
    let mut per_size: HashMap<u64, usize> = HashMap::new();
    for (_, size, _) in requests {
        *per_size.entry(*size).or_default() += 1;
    }
    assert!(per_size.values().all(|n| *n == 1), "never twice: {requests:?}");
    assert!(requests.iter().all(|(_, _, status)| *status == 200), "{requests:?}");
    second.handle.stop(true).await;

    // Removing a witness: it is no longer sent anything or shown; its past cosignatures stay.
    let liar = witness_row(&app, checkout, &wrong.url).await;
    let csrf = app.csrf(&olga, "/hubs/checkout/settings/witnesses").await;
    let response = olga
        .post(app.url(&format!("/hubs/checkout/settings/witnesses/{}/remove", liar.id)))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let ledger = page(&app, &olga, "/hubs/checkout/ledger").await;
    assert!(!ledger.contains("witness.example/liar"), "removed witnesses are not shown");
    let settings = page(&app, &olga, "/hubs/checkout/settings/witnesses").await;
    assert!(!settings.contains(&wrong.url) && settings.contains(&good.url));
    app.handle.stop(true).await;
}

dual_run!();

// ---- "consistent with the last checkpoint you saw", in a real browser -------------------------

/// The state and text of the ledger page's consistency verdict once the script has written it.
async fn consistency_verdict(browser: &fantoccini::Client, not: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let got = browser
            .execute(
                "const p = document.getElementById('log-consistency'); return p ? [p.dataset.state || '', p.textContent] : null;",
                Vec::new(),
            )
            .await
            .expect("script");
        if let Some([state, text]) = got.as_array().map(|a| a.as_slice())
            && let (Some(state), Some(text)) = (state.as_str(), text.as_str())
            && !state.is_empty()
            && state != not
        {
            return (state.to_owned(), text.to_owned());
        }
        assert!(Instant::now() < deadline, "timed out waiting for the consistency verdict");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_with_the_last_checkpoint_seen_is_checked_in_the_browser() {
    if !common::browser::enabled() {
        eprintln!(
            "skipped consistency_with_the_last_checkpoint_seen_is_checked_in_the_browser: IHF_TEST_BROWSER is not set"
        );
        return;
    }
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    let checkout = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let session = common::browser::browser().await;
    let browser = &session.client;
    common::browser::sign_in(browser, &app, "olga", &logins["olga"]).await;

    // First visit: the browser keeps the checkpoint it was shown.
    let first = signed_size(&app, checkout).await;
    browser.goto(&app.url("/hubs/checkout/ledger")).await.unwrap();
    let (state, text) = consistency_verdict(browser, "").await;
    assert_eq!(state, "first", "{text}");
    assert!(text.contains(&format!("keeps this checkpoint ({first} entries)")), "{text}");
    let kept = browser
        .execute("return localStorage.getItem('ihf-checkpoint:' + document.getElementById('ledger-verdict').dataset.origin);", Vec::new())
        .await
        .unwrap();
    assert!(kept.as_str().unwrap_or_default().contains(&format!("\"size\":{first}")), "{kept:?}");

    // The log grew while the page was closed: the consistency proof from the kept checkpoint is
    // checked here, and passes. (Open, the page checks again when the live list changes.)
    browser.goto(&app.url("/")).await.unwrap();
    propose(&app, checkout, "Grown one").await;
    propose(&app, checkout, "Grown two").await;
    let now = signed_size(&app, checkout).await;
    browser.goto(&app.url("/hubs/checkout/ledger")).await.unwrap();
    let (state, text) = consistency_verdict(browser, "first").await;
    assert_eq!(state, "ok", "{text}");
    assert!(
        text.contains(&format!("Consistent with the last checkpoint you saw ({first} entries, now {now})")),
        "{text}"
    );

    // A kept checkpoint that the log's history does not extend (another root at that size, as
    // after a rewrite): the proof does not verify against it.
    let fake_root = BASE64.encode([7u8; 32]);
    browser
        .execute(
            &format!(
                "localStorage.setItem('ihf-checkpoint:' + document.getElementById('ledger-verdict').dataset.origin, JSON.stringify({{size: {first}, root: '{fake_root}'}}));"
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    browser.refresh().await.unwrap();
    let (state, text) = consistency_verdict(browser, "ok").await;
    assert_eq!(state, "bad", "{text}");
    assert!(text.contains("NOT consistent") && text.contains("rewritten"), "{text}");
    // A bad verdict does not replace what the browser kept.
    let kept = browser
        .execute("return localStorage.getItem('ihf-checkpoint:' + document.getElementById('ledger-verdict').dataset.origin);", Vec::new())
        .await
        .unwrap();
    assert!(kept.as_str().unwrap_or_default().contains(&fake_root), "{kept:?}");

    // A kept checkpoint larger than the log: entries were removed.
    browser
        .execute(
            &format!(
                "localStorage.setItem('ihf-checkpoint:' + document.getElementById('ledger-verdict').dataset.origin, JSON.stringify({{size: {}, root: '{fake_root}'}}));",
                now + 5
            ),
            Vec::new(),
        )
        .await
        .unwrap();
    browser.refresh().await.unwrap();
    let (state, text) = consistency_verdict(browser, "ok").await;
    assert_eq!(state, "bad", "{text}");
    assert!(text.contains("Entries were removed"), "{text}");
    app.handle.stop(true).await;
}
