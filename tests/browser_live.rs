//! Live regions across many tabs in real headless Chromium: one live connection per browser
//! (a SharedWorker) shared by all its tabs, pages that release their regions on the way into
//! the back/forward cache and catch up when they come back, hidden tabs, and sign-out. Runs
//! when `IHF_TEST_BROWSER` is set (as `tests/browser.rs`), on PostgreSQL when `IHF_TEST_PG` is
//! set too; without it it returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use common::browser::{browser, enabled, press, sign_in};
use fantoccini::Client;
use fantoccini::wd::WindowHandle;
use ihf::db::Backend;
use ihf::db::annotations::NewAnnotation;

/// These tests measure what a person waits for (a page within 1 s, an update within 1 s): each
/// runs alone, so that two Chromiums and two servers do not share the machine's cores.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn app() -> (TestApp, std::collections::HashMap<String, String>) {
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    (app, logins)
}

struct Checkout {
    hub: i64,
    widget: i64,
    widget_slug: String,
    category: i64,
    candidate: i64,
}

async fn checkout(app: &TestApp) -> Checkout {
    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let (widget, widget_slug): (i64, String) =
        sqlx::query_as("SELECT id, slug FROM widgets WHERE hub_id = $1 ORDER BY id LIMIT 1")
            .bind(hub)
            .fetch_one(app.db.reader())
            .await
            .expect("widget");
    let category: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    let candidate: i64 = sqlx::query_scalar("SELECT MIN(id) FROM requirement_candidates WHERE hub_id = $1")
        .bind(hub)
        .fetch_one(app.db.reader())
        .await
        .expect("a candidate in the demo");
    Checkout { hub, widget, widget_slug, category, candidate }
}

/// An annotation written elsewhere (through the store, as another person's request would).
async fn annotate(app: &TestApp, at: &Checkout, body: &str) {
    ihf::db::annotations::create(
        &app.db,
        &NewAnnotation {
            hub_id: at.hub,
            widget_id: at.widget,
            actor_id: 1,
            body,
            category_id: at.category,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation");
}

fn now_ms() -> i64 {
    ihf::db::now_ms()
}

/// Polls a script returning a boolean until it is true (8 s at most), with this suite's page dump.
async fn wait_until(browser: &Client, what: &str, script: &str) {
    common::browser::wait_until_or_dump(browser, what, script,
        "return [location.href, performance.getEntriesByType('navigation')[0].type, (document.getElementById('live') || document.body).getAttribute('sse-connect'), (document.getElementById('live') || document.body).dataset.liveStatus, String(window.__dbg || '')].join(' | ')",
    ).await;
}

const LIVE_OPEN: &str =
    "var live = document.getElementById('live'); return !!live && live.dataset.liveStatus === 'open'";

/// Makes the current page note (in `window.__seen`, browser clock) when `text` first appears.
async fn watch_for(browser: &Client, text: &str) {
    let script = "var text = arguments[0]; window.__seen = null; \
        var check = function () { if (!window.__seen && document.body.textContent.includes(text)) window.__seen = Date.now(); }; \
        check(); new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true }); \
        return true;";
    browser.execute(script, vec![serde_json::Value::String(text.into())]).await.expect("observer");
}

async fn seen_at(browser: &Client) -> Option<i64> {
    browser.execute("return window.__seen", Vec::new()).await.expect("seen").as_i64()
}

/// Opens `url` in a new tab of the browser's window and waits for its live regions.
async fn open_tab(b: &Client, url: &str) -> WindowHandle {
    let tab = b.new_window(true).await.expect("new tab").handle;
    b.switch_to_window(tab.clone()).await.expect("switch");
    b.goto(url).await.expect("page");
    wait_until(b, &format!("{url} to go live"), LIVE_OPEN).await;
    tab
}

/// How many live connections the server holds (its `/metrics` would say the same).
fn streams(app: &TestApp) -> usize {
    app.handle.live().open_streams()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_tabs_share_one_connection() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    let widget = format!("/hubs/checkout/widgets/{}", at.widget_slug);
    let pages = [
        ("/hubs/checkout".to_owned(), "annotation"),
        ("/hubs/checkout".to_owned(), "annotation"),
        ("/hubs/checkout".to_owned(), "annotation"),
        // Filtered to the write (the queue's first page holds the oldest 50 new ones).
        ("/hubs/checkout/triage?q=Twelve".to_owned(), "annotation"),
        ("/hubs/checkout/triage?q=Twelve".to_owned(), "annotation"),
        ("/hubs/checkout/triage?q=tabs".to_owned(), "annotation"),
        (widget.clone(), "annotation"),
        (widget.clone(), "annotation"),
        (format!("{widget}/inbox"), "annotation"),
        (format!("{widget}/inbox"), "annotation"),
        ("/hubs/checkout/ledger".to_owned(), "candidate"),
        ("/hubs/checkout/ledger".to_owned(), "candidate"),
    ];
    let first = b.window().await.expect("first tab");
    let mut tabs = Vec::new();
    for (i, (path, _)) in pages.iter().enumerate() {
        let tab = if i == 0 {
            b.goto(&app.url(path)).await.expect("page");
            wait_until(b, "the first tab to go live", LIVE_OPEN).await;
            first.clone()
        } else {
            open_tab(b, &app.url(path)).await
        };
        tabs.push(tab);
    }
    assert_eq!(streams(&app), 1, "twelve tabs, one live connection");

    // A write made elsewhere reaches every tab within 1 s.
    let (note, title) = ("Twelve tabs, one stream", "Renamed while twelve tabs watch");
    for (tab, (_, kind)) in tabs.iter().zip(&pages) {
        b.switch_to_window(tab.clone()).await.expect("switch");
        watch_for(b, if *kind == "annotation" { note } else { title }).await;
    }
    let wrote_note = now_ms();
    annotate(&app, &at, note).await;
    let wrote_title = now_ms();
    sqlx::query("UPDATE requirement_candidates SET title = $1 WHERE id = $2")
        .bind(title)
        .bind(at.candidate)
        .execute(app.db.writer())
        .await
        .expect("rename");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut delays = Vec::new();
    for (tab, (path, kind)) in tabs.iter().zip(&pages) {
        b.switch_to_window(tab.clone()).await.expect("switch");
        let seen = seen_at(b).await.unwrap_or_else(|| panic!("{path} never showed the write"));
        let wrote = if *kind == "annotation" { wrote_note } else { wrote_title };
        delays.push((path.as_str(), seen - wrote));
    }
    assert!(delays.iter().all(|(_, ms)| *ms <= 1000), "every tab within 1 s of the write: {delays:?}");

    // A triage key in one of the tabs is applied within 1 s, and the other boards follow.
    b.switch_to_window(tabs[3].clone()).await.expect("switch");
    let row = b
        .execute("return document.querySelector('#region-triage-queue [id^=row-]').id", Vec::new())
        .await
        .expect("a row");
    let row = row.as_str().expect("id").to_owned();
    press(b, "j").await;
    let started = Instant::now();
    press(b, "t").await;
    wait_until(b, "the row to leave the queue", &format!("return !document.getElementById('{row}')")).await;
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(1), "the triage key took {took:?}");
    b.switch_to_window(tabs[4].clone()).await.expect("switch");
    wait_until(b, "the other board to follow", &format!("return !document.getElementById('{row}')")).await;

    // A 13th tab loads within 2 s.
    let started = Instant::now();
    let thirteenth = open_tab(b, &app.url("/hubs/onboarding")).await;
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(2), "the 13th tab took {took:?}");
    assert_eq!(streams(&app), 1, "still one connection");

    // Signing out in one tab ends live updates in every tab of the session.
    b.switch_to_window(tabs[0].clone()).await.expect("switch");
    b.find(fantoccini::Locator::Css("form[action='/logout'] button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    wait_until(b, "signed out", "return document.body.textContent.includes('Sign in')").await;
    let after = "Written after signing out";
    for tab in tabs.iter().skip(1).chain(std::iter::once(&thirteenth)) {
        b.switch_to_window(tab.clone()).await.expect("switch");
        wait_until(
            b,
            "the indicator to say live updates stopped",
            "return document.getElementById('live').dataset.liveStatus !== 'open'",
        )
        .await;
        watch_for(b, after).await;
    }
    annotate(&app, &at, after).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for tab in tabs.iter().skip(1) {
        b.switch_to_window(tab.clone()).await.expect("switch");
        assert_eq!(seen_at(b).await, None, "no live update after signing out");
    }
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_and_forward_through_ten_live_pages() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    let widget = format!("/hubs/checkout/widgets/{}", at.widget_slug);
    let pages = [
        "/".to_owned(),
        "/hubs/checkout".to_owned(),
        widget.clone(),
        format!("{widget}/inbox"),
        // Filtered to the write (the queue's first page holds the oldest 50 new ones).
        "/hubs/checkout/triage?q=Written".to_owned(),
        "/hubs/checkout/ledger".to_owned(),
        "/hubs/onboarding".to_owned(),
        format!("/hubs/checkout/candidates/{}", at.candidate),
        "/hubs/onboarding/triage".to_owned(),
        "/hubs/checkout".to_owned(),
    ];
    for path in &pages {
        b.goto(&app.url(path)).await.expect("page");
        wait_until(b, &format!("{path} to go live"), LIVE_OPEN).await;
    }
    // Written while the pages that show it are in the back/forward cache (or gone).
    let note = "Written while you were on another page";
    annotate(&app, &at, note).await;
    let shows_note =
        |path: &str| path.starts_with("/hubs/checkout") && !path.contains("ledger") && !path.contains("candidates");
    let check = |path: &str| {
        if shows_note(path) {
            format!(
                "return document.getElementById('live').dataset.liveStatus === 'open' && document.body.textContent.includes({note:?})"
            )
        } else {
            LIVE_OPEN.to_owned()
        }
    };
    for path in pages.iter().rev().skip(1) {
        let started = Instant::now();
        b.back().await.expect("back");
        wait_until(b, &format!("{path} to be current again after going back"), &check(path)).await;
        assert!(started.elapsed() <= Duration::from_secs(1), "back to {path} took {:?}", started.elapsed());
    }
    for path in pages.iter().skip(1) {
        let started = Instant::now();
        b.forward().await.expect("forward");
        wait_until(b, &format!("{path} to be current again after going forward"), &check(path)).await;
        assert!(started.elapsed() <= Duration::from_secs(1), "forward to {path} took {:?}", started.elapsed());
    }
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_tab_is_current_when_shown() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
    wait_until(b, "the dashboard to go live", LIVE_OPEN).await;
    let dashboard = b.window().await.expect("tab");
    // Another tab in front: the dashboard is hidden while the writes happen.
    let _other = open_tab(b, &app.url("/hubs/onboarding")).await;
    let hidden = b.execute("return document.visibilityState", Vec::new()).await.expect("state");
    for n in 0..5 {
        annotate(&app, &at, &format!("Written while hidden {n}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    b.switch_to_window(dashboard).await.expect("back to the dashboard");
    wait_until(b, "the latest write", "return document.body.textContent.includes('Written while hidden 4')").await;
    assert!(started.elapsed() <= Duration::from_secs(1), "shown after {:?} ({hidden:?} before)", started.elapsed());
    let _ = b.clone().close().await;
}

/// The ids and outer HTML of the rows of every live list (`[data-live-list]`) of the page's
/// regions, and the same of a fresh GET of each region's fragment.
const ROWS_NOW_AND_FRESH: &str = "var done = arguments[0]; \
    var rows = function (root) { var out = {}; root.querySelectorAll('[data-live-list]').forEach(function (list) { \
      out[list.id] = Array.prototype.map.call(list.children, function (c) { return c.outerHTML; }); }); return out; }; \
    var shown = {}; ['region-feed', 'region-widgets'].forEach(function (id) { Object.assign(shown, rows(document.getElementById(id))); }); \
    Promise.all(['/hubs/checkout/feed', '/hubs/checkout/widgets-panel'].map(function (url) { \
      return fetch(url, { headers: { 'HX-Request': 'true' } }).then(function (r) { return r.text(); }); })) \
    .then(function (texts) { var fresh = {}; texts.forEach(function (html) { var t = document.createElement('template'); \
      t.innerHTML = html; var holder = document.createElement('div'); holder.appendChild(t.content); Object.assign(fresh, rows(holder)); }); \
      done({ shown: shown, fresh: fresh, rows: window.__rows || 0 }); });";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_updates_converge_to_the_full_render() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
    wait_until(b, "the dashboard to go live", LIVE_OPEN).await;
    b.execute(
        "window.__rows = 0; document.body.addEventListener('htmx:sseMessage', function (e) { if (e.detail && e.detail.rows) window.__rows++; }); return true;",
        Vec::new(),
    )
    .await
    .expect("count row updates");
    // New rows on top (the oldest falls off the first page, the load-more link moves on), a
    // changed status, a deleted row (another comes back at the bottom), a changed count.
    for n in 0..3 {
        annotate(&app, &at, &format!("Converging row {n}")).await;
        wait_until(b, "the new row", &format!("return document.body.textContent.includes('Converging row {n}')")).await;
    }
    let first: i64 = sqlx::query_scalar("SELECT id FROM annotations WHERE body = 'Converging row 0'")
        .fetch_one(app.db.reader())
        .await
        .expect("row");
    sqlx::query("UPDATE annotations SET status = 'triaged', version = version + 1 WHERE id = $1")
        .bind(first)
        .execute(app.db.writer())
        .await
        .expect("status");
    wait_until(
        b,
        "the changed status",
        &format!("var r = document.getElementById('annotation-{first}'); return !!r && r.classList.contains('status-triaged')"),
    )
    .await;
    sqlx::query("UPDATE annotations SET deleted_at = $1 WHERE body = 'Converging row 1'")
        .bind(now_ms())
        .execute(app.db.writer())
        .await
        .expect("delete");
    wait_until(b, "the deleted row to go", "return !document.body.textContent.includes('Converging row 1')").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = b.execute_async(ROWS_NOW_AND_FRESH, Vec::new()).await.expect("rows");
    assert!(got["rows"].as_i64().unwrap_or(0) >= 4, "the updates came as rows: {}", got["rows"]);
    assert!(got["fresh"]["feed-list"].as_array().is_some_and(|rows| rows.len() > 3), "{}", got["fresh"]);
    // The charts' day columns (SVG rows: the summary, then 14 days) are compared too.
    assert!(got["fresh"]["chart-categories-days"].as_array().is_some_and(|rows| rows.len() == 15), "{}", got["fresh"]);
    assert_eq!(got["shown"], got["fresh"], "the merged page equals a fresh render");
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_thread_shows_the_viewers_own_buttons_and_converges() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let (widget, wendy, anna): (i64, i64, i64) = (
        app.scalar("SELECT id FROM widgets WHERE slug = 'payment-form'").await,
        app.scalar("SELECT id FROM actors WHERE handle = 'wendy'").await,
        app.scalar("SELECT id FROM actors WHERE handle = 'anna'").await,
    );
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "wendy", &logins["wendy"]).await;
    b.goto(&app.url("/hubs/checkout/widgets/payment-form")).await.expect("widget page");
    wait_until(b, "the widget page to go live", LIVE_OPEN).await;
    for (n, author) in [wendy, anna, wendy].into_iter().enumerate() {
        ihf::db::annotations::create(
            &app.db,
            &NewAnnotation {
                hub_id: at.hub,
                widget_id: widget,
                actor_id: author,
                body: &format!("Shared thread row {n}"),
                category_id: at.category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("annotation");
        wait_until(b, "the new row", &format!("return document.body.textContent.includes('Shared thread row {n}')"))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let script = "var done = arguments[0]; var list = document.getElementById('thread-list'); \
        var rows = function (l) { return Array.prototype.map.call(l.children, function (c) { return c.outerHTML; }); }; \
        var mine = Array.prototype.filter.call(list.children, function (c) { return !!c.querySelector('.own-actions'); }) \
          .map(function (c) { return c.getAttribute('data-author'); }); \
        fetch('/hubs/checkout/widgets/payment-form/thread', { headers: { 'HX-Request': 'true' } }).then(function (r) { return r.text(); }) \
        .then(function (html) { var t = document.createElement('template'); t.innerHTML = html; \
          done({ shown: rows(list), fresh: rows(t.content.getElementById('thread-list')), mine: mine }); });";
    let got = b.execute_async(script, Vec::new()).await.expect("rows");
    let mine: Vec<String> = serde_json::from_value(got["mine"].clone()).expect("mine");
    assert!(mine.len() >= 2 && mine.iter().all(|a| *a == wendy.to_string()), "buttons on wendy's rows only: {mine:?}");
    assert_eq!(got["shown"], got["fresh"], "the merged thread equals a fresh render for this viewer");
    let _ = b.clone().close().await;
}

/// Shows `path` in the current tab as a browser without SharedWorker would: from a page of the
/// app, SharedWorker is removed and the document rewritten with the page's HTML (the window,
/// and so the removal, stays; the page's scripts run as on a load).
async fn open_without_shared_worker(b: &Client, app: &TestApp, path: &str) {
    b.goto(&app.url("/healthz")).await.expect("a page of the app");
    let script = "var done = arguments[1]; delete window.SharedWorker; \
        fetch(arguments[0]).then(function (r) { return r.text(); }).then(function (html) { \
          document.open(); document.write(html); document.close(); done(typeof window.SharedWorker); });";
    let kind = b.execute_async(script, vec![serde_json::Value::String(path.into())]).await.expect("rewrite");
    assert_eq!(kind, "undefined", "SharedWorker is gone");
    wait_until(b, &format!("{path} to go live without SharedWorker"), LIVE_OPEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_shared_worker_one_leader_tab_holds_the_connection_for_all() {
    if !enabled() {
        return;
    }
    let _alone = ALONE.lock().await;
    let (app, logins) = app().await;
    let at = checkout(&app).await;
    let chromium = browser().await;
    let b = &chromium.client;
    // Signed in outside the browser (its session cookie handed over on a page with no live
    // region), so no page of this browser ever ran the SharedWorker: every stream counted is
    // one of the two tabs'.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar.clone())
        .build()
        .expect("client");
    app.login(&client, "olga", &logins["olga"]).await;
    let cookies = reqwest::cookie::CookieStore::cookies(&*jar, &app.url("/").parse().expect("url")).expect("cookies");
    let session = cookies
        .to_str()
        .expect("cookie header")
        .split("; ")
        .find_map(|pair| pair.strip_prefix("ihf_session="))
        .expect("session cookie")
        .to_owned();
    b.goto(&app.url("/healthz")).await.expect("a page of the app");
    b.execute(
        "document.cookie = 'ihf_session=' + arguments[0] + '; path=/'; return true",
        vec![serde_json::Value::String(session)],
    )
    .await
    .expect("session cookie");
    let before = streams(&app);
    open_without_shared_worker(b, &app, "/hubs/checkout").await;
    let first = b.window().await.expect("first tab");
    let second = b.new_window(true).await.expect("new tab").handle;
    b.switch_to_window(second.clone()).await.expect("switch");
    open_without_shared_worker(b, &app, "/hubs/checkout").await;
    assert!(
        streams(&app) <= before + 1,
        "two tabs, one live connection (the leader's): {} then {}",
        before,
        streams(&app)
    );
    for tab in [&first, &second] {
        b.switch_to_window(tab.clone()).await.expect("switch");
        watch_for(b, "Through the leader tab").await;
    }
    let wrote = now_ms();
    annotate(&app, &at, "Through the leader tab").await;
    for tab in [&first, &second] {
        b.switch_to_window(tab.clone()).await.expect("switch");
        wait_until(b, "the write in every tab", "return window.__seen !== null").await;
        let seen = seen_at(b).await.expect("seen");
        assert!(seen - wrote <= 1000, "shown {} ms after the write", seen - wrote);
    }
    // The leader goes: the other tab takes the lock over and stays live.
    b.switch_to_window(first).await.expect("switch");
    b.close_window().await.expect("close the leader");
    b.switch_to_window(second).await.expect("switch");
    watch_for(b, "After the leader left").await;
    annotate(&app, &at, "After the leader left").await;
    wait_until(b, "the write after the leader left", "return window.__seen !== null").await;
    let _ = b.clone().close().await;
}
