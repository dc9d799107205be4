//! Rough edges of the interface, in real headless Chromium (issue #20): each test failed before
//! its fix. Runs when `IHF_TEST_BROWSER` is set (as `tests/browser.rs`); without it each test
//! says it was skipped and returns.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use common::browser::{browser, enabled, phone, sign_in};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, Locator};
use ihf::db::Backend;

fn skipped(name: &str) -> bool {
    if enabled() {
        return false;
    }
    eprintln!("skipped {name}: IHF_TEST_BROWSER is not set");
    true
}

async fn app() -> (TestApp, std::collections::HashMap<String, String>) {
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    (app, logins)
}

/// Polls a script returning a boolean until it is true (8 s at most).
async fn wait_until(browser: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        if browser.execute(script, Vec::new()).await.expect("script") == serde_json::Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types text (and `\u{E00C}` Escape, `\u{E007}` Enter) into whatever has the focus.
async fn press(browser: &Client, keys: &str) {
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys.chars() {
        actions = actions.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    }
    browser.perform_actions(actions).await.expect("keys");
}

async fn js(browser: &Client, script: &str) -> serde_json::Value {
    browser.execute(script, Vec::new()).await.expect("script")
}

async fn open_board(b: &Client, app: &TestApp) {
    b.goto(&app.url("/hubs/checkout/triage")).await.expect("board");
    wait_until(b, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
}

const ESCAPE: &str = "\u{E00C}";
const ENTER: &str = "\u{E007}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_leaves_the_triage_search_and_keeps_it() {
    if skipped("escape_leaves_the_triage_search_and_keeps_it") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    let all = js(b, "return document.querySelectorAll('#triage-queue tr.triage-row').length").await;

    press(b, "/").await;
    press(b, "total").await;
    wait_until(b, "the filtered queue", "return location.search.includes('q=total')").await;
    wait_until(
        b,
        "fewer rows",
        &format!("return document.querySelectorAll('#triage-queue tr.triage-row').length < {all}"),
    )
    .await;
    let filtered = js(b, "return document.querySelectorAll('#triage-queue tr.triage-row').length").await;
    press(b, ESCAPE).await;
    tokio::time::sleep(Duration::from_millis(800)).await; // a refilter would have happened by now
    assert_eq!(js(b, "return document.getElementById('q').value").await, "total", "the search text stays");
    assert_eq!(js(b, "return document.activeElement.classList.contains('triage-row')").await, true, "focus on a row");
    assert!(js(b, "return location.search").await.as_str().unwrap_or_default().contains("q=total"));
    assert_eq!(js(b, "return document.querySelectorAll('#triage-queue tr.triage-row').length").await, filtered);
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_typed_into_the_promote_dialog_replaces_the_prefilled_one() {
    if skipped("a_title_typed_into_the_promote_dialog_replaces_the_prefilled_one") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    open_board(b, &app).await;
    press(b, "j").await;
    press(b, "p").await;
    wait_until(b, "the promote dialog", "return document.getElementById('triage-dialog').open").await;
    wait_until(b, "the title field focused", "return document.activeElement.name === 'title'").await;
    press(b, "Show the total on every step").await;
    press(b, ENTER).await;
    wait_until(b, "the dialog to close", "return !document.getElementById('triage-dialog').open").await;
    let deadline = Instant::now() + Duration::from_secs(8);
    let title: String = loop {
        let title: Option<String> =
            sqlx::query_scalar("SELECT title FROM requirement_candidates ORDER BY id DESC LIMIT 1")
                .fetch_optional(app.db.reader())
                .await
                .expect("candidates");
        match title {
            Some(t) if t.starts_with("Show the total") => break t,
            _ if Instant::now() > deadline => panic!("no candidate titled as typed: {title:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(title, "Show the total on every step");
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_buttons_are_disabled_until_something_is_selected() {
    if skipped("bulk_buttons_are_disabled_until_something_is_selected") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    let disabled = "return Array.from(document.querySelectorAll('#triage-bulk [data-bulk]')).map(function (b) { return b.disabled; })";
    assert_eq!(js(b, disabled).await, serde_json::json!([true, true, true]));
    b.find(Locator::Css("#triage-queue tr.triage-row input[name=sel]"))
        .await
        .expect("box")
        .click()
        .await
        .expect("tick");
    wait_until(b, "enabled bulk buttons", &format!("{disabled}.every(function (d) {{ return !d; }})")).await;
    assert_eq!(js(b, "return document.getElementById('bulk-count').textContent").await, "1 selected");
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_typed_into_an_inline_edit_is_added_after_the_body() {
    if skipped("text_typed_into_an_inline_edit_is_added_after_the_body") {
        return;
    }
    let (app, logins) = app().await;
    let (id, slug, body): (i64, String, String) = sqlx::query_as(
        "SELECT a.id, w.slug, a.body FROM annotations a JOIN actors p ON p.id = a.actor_id
           JOIN widgets w ON w.id = a.widget_id JOIN hubs h ON h.id = a.hub_id
          WHERE p.handle = 'anna' AND h.slug = 'checkout' AND a.deleted_at IS NULL ORDER BY a.id LIMIT 1",
    )
    .fetch_one(app.db.reader())
    .await
    .expect("one of anna's annotations");
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "anna", &logins["anna"]).await;
    b.goto(&app.url(&format!("/hubs/checkout/widgets/{slug}"))).await.expect("widget page");
    b.find(Locator::Css(&format!("#annotation-{id} .own-actions .edit")))
        .await
        .expect("edit")
        .click()
        .await
        .expect("edit");
    wait_until(b, "the inline edit", &format!("return document.activeElement.id === 'edit-{id}'")).await;
    press(b, " (edited)").await;
    press(b, ENTER).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let now: String = sqlx::query_scalar("SELECT body FROM annotations WHERE id = $1")
            .bind(id)
            .fetch_one(app.db.reader())
            .await
            .expect("body");
        if now != body {
            assert_eq!(now, format!("{body} (edited)"));
            break;
        }
        assert!(Instant::now() < deadline, "the edit was not saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = b.clone().close().await;
}

/// At a phone's width (390 px) no page pans sideways: wide tables scroll inside their own box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_is_wider_than_a_phone() {
    if skipped("no_page_is_wider_than_a_phone") {
        return;
    }
    let (app, logins) = app().await;
    let session = phone(390).await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    let pages = [
        "/",
        "/hubs/checkout",
        "/hubs/checkout/triage",
        "/hubs/checkout/ledger",
        "/hubs/checkout/widgets/payment-form",
        "/inbox",
        "/hubs/checkout/export",
        "/hubs/checkout/settings",
        "/hubs/checkout/settings/widgets",
        "/hubs/checkout/settings/members",
        "/hubs/checkout/settings/categories",
        "/hubs/checkout/settings/webhooks",
        "/hubs/checkout/settings/api-keys",
        "/settings/hubs",
    ];
    let mut wide = Vec::new();
    for page in pages {
        b.goto(&app.url(page)).await.expect("page");
        // With mobile emulation the layout viewport grows to fit wide content, so innerWidth
        // is no reference: the page must fit the phone's 390 px.
        let scroll = js(b, "return document.documentElement.scrollWidth").await.as_i64().unwrap_or_default();
        if scroll > 390 {
            wide.push(format!("{page}: {scroll} px"));
        }
    }
    assert!(wide.is_empty(), "pages wider than the viewport: {wide:?}");
    let _ = b.clone().close().await;
}
