//! Browser tests in real headless Chromium (Debian's `chromium` + `chromium-driver`), for what
//! only a browser shows: live updates arriving, swaps, recovery after a restart. They run when
//! `IHF_TEST_BROWSER` is set (CI sets it); without it they return at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::TestApp;
use common::browser::{Browser, browser, enabled, sign_in, wait_for};
use ihf::db::annotations::NewAnnotation;
use ihf::db::events::NewEvent;
use ihf::db::{Backend, Db};

use fantoccini::{Client, Locator};

async fn hub_ids(db: &Db) -> (i64, i64, i64) {
    let hub: i64 =
        sqlx::query_scalar("SELECT id FROM hubs WHERE slug = 'checkout'").fetch_one(db.reader()).await.expect("hub");
    let widget: i64 = sqlx::query_scalar("SELECT MIN(id) FROM widgets WHERE hub_id = $1")
        .bind(hub)
        .fetch_one(db.reader())
        .await
        .expect("widget");
    let category: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub)
        .fetch_one(db.reader())
        .await
        .expect("category");
    (hub, widget, category)
}

async fn annotate(db: &Db, body: &str) {
    let (hub_id, widget_id, category_id) = hub_ids(db).await;
    ihf::db::annotations::create(
        db,
        &NewAnnotation {
            hub_id,
            widget_id,
            actor_id: 1,
            body,
            category_id,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation");
}

/// The demo on a fresh app (PostgreSQL when `IHF_TEST_PG` is set), and Olga's dashboard open
/// in Chromium with its live stream up.
async fn open_dashboard() -> (TestApp, Browser) {
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    let browser = browser().await;
    let b = &browser.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
    wait_for(b, "the live stream to open", |html| html.contains("data-live-status=\"open\"")).await;
    (app, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_updates_live_and_recovers_after_a_restart() {
    if !enabled() {
        return;
    }
    let (app, browser) = open_dashboard().await;
    let backend = app.backend;
    let b = &browser.client;

    // An annotation and an event written through the store appear without a reload.
    annotate(&app.db, "Live in the browser: the promo field loses focus").await;
    let (hub_id, widget_id, _) = hub_ids(&app.db).await;
    ihf::db::events::insert(
        &app.db,
        &[NewEvent {
            hub_id,
            widget_id,
            kind: "dead_click",
            actor_id: None,
            occurred_at: ihf::db::now_ms(),
            payload: "{}".into(),
        }],
    )
    .await
    .expect("event");
    let html = wait_for(b, "the annotation and the event", |html| {
        html.contains("Live in the browser: the promo field loses focus") && html.contains(">dead click<")
    })
    .await;
    assert!(html.contains("id=\"region-feed\""), "swapped inside the region, page intact");

    // Stop the server: the page says it is disconnected…
    let port = app.port;
    app.handle.stop(true).await;
    wait_for(b, "the indicator to show the drop", |html| !html.contains("data-live-status=\"open\"")).await;
    // …a write happens meanwhile…
    // (through a pool of its own: connections the stopped server opened belonged to its worker
    // threads' runtimes, which are gone)
    let db = Db::connect(&app.database_url, 2).await.expect("database");
    annotate(&db, "Written while the server was down").await;
    // …and a new server on the same port and database brings the page back up to date.
    let restarted = common::spawn_on(app.database_url.clone(), backend, |config| {
        config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    })
    .await;
    wait_for(b, "the page to catch up", |html| {
        html.contains("Written while the server was down") && html.contains("data-live-status=\"open\"")
    })
    .await;
    annotate(&restarted.db, "After the restart").await;
    wait_for(b, "live updates after the restart", |html| html.contains("After the restart")).await;
    let _ = b.clone().close().await;
}

async fn feed_rows(b: &Client) -> (u64, bool) {
    let script = "const r = document.getElementById('region-feed'); \
                  return [r.querySelectorAll('li.annotation').length, r.textContent.includes('Held while older rows are open')];";
    let value = b.execute(script, Vec::new()).await.expect("script");
    (value[0].as_u64().expect("count"), value[1].as_bool().expect("bool"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_with_more_rows_loaded_holds_live_updates_until_asked() {
    if !enabled() {
        return;
    }
    let (app, browser) = open_dashboard().await;
    let b = &browser.client;

    // Someone reading older feedback: the second page is loaded under the first.
    b.find(Locator::Css("#region-feed [data-load-more]")).await.expect("load more").click().await.expect("click");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    while feed_rows(b).await.0 <= ihf::web::dashboard::FEED_PAGE as u64 {
        assert!(std::time::Instant::now() < deadline, "the second page did not load");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (loaded, _) = feed_rows(b).await;

    // New feedback arrives: the rows stay, and a button offers the latest instead.
    annotate(&app.db, "Held while older rows are open").await;
    wait_for(b, "the held-update button", |html| html.contains("New activity: show latest")).await;
    assert_eq!(feed_rows(b).await, (loaded, false), "the loaded rows stay put");

    // Asked for, the latest first page is merged in and the loaded rows stay (issue #20, item
    // 5: showing the latest used to drop the list back to its first page).
    b.find(Locator::Css(".live-held")).await.expect("button").click().await.expect("click");
    wait_for(b, "the latest feed", |html| html.contains("Held while older rows are open")).await;
    assert_eq!(feed_rows(b).await, (loaded + 1, true));
    let html = b.source().await.expect("source");
    assert!(!html.contains("New activity: show latest"), "the button is gone");

    // Still reading the older rows: the next update is held again, and shown when asked for.
    annotate(&app.db, "Straight in again").await;
    wait_for(b, "the held-update button again", |html| html.contains("New activity: show latest")).await;
    b.find(Locator::Css(".live-held")).await.expect("button").click().await.expect("click");
    wait_for(b, "the next update", |html| html.contains("Straight in again")).await;
    assert_eq!(feed_rows(b).await.0, loaded + 2, "the loaded rows still stay");
    let _ = b.clone().close().await;
}
