//! Rough edges of the interface, in real headless Chromium (issue #20): each test failed before
//! its fix. Runs when `IHF_TEST_BROWSER` is set (as `tests/browser.rs`); without it each test
//! says it was skipped and returns.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use common::browser::{browser, enabled, phone, press, sign_in, wait_until};
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, Locator};
use ihf::clock::DAY_MS;
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
    let candidate =
        format!("/hubs/checkout/candidates/{}", app.scalar("SELECT MIN(id) FROM requirement_candidates").await);
    let history = format!(
        "/hubs/checkout/triage/annotations/{}",
        app.scalar("SELECT MIN(a.id) FROM annotations a JOIN hubs h ON h.id = a.hub_id WHERE h.slug = 'checkout'")
            .await
    );
    let session = phone(390).await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    let pages: Vec<&str> = vec![
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
        "/hubs/onboarding",
        "/hubs/checkout/widgets/payment-form/inbox",
        "/hubs/checkout/widgets/cart-summary",
        "/hubs/checkout/settings/widgets/payment-form?saved=1",
        candidate.as_str(),
        history.as_str(),
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

/// The pages of the feedback loop (#21: replies, "me too", similar feedback, the bell, the
/// roadmap) fit the narrowest phones, 320 px, with replies and support on the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feedback_loop_pages_fit_320_px() {
    if skipped("the_feedback_loop_pages_fit_320_px") {
        return;
    }
    let (app, logins) = app().await;
    let session = phone(320).await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout/widgets/payment-form")).await.expect("widget page");
    b.find(Locator::Css("#thread-list form.reply-form textarea"))
        .await
        .expect("a reply form")
        .send_keys("Thanks, we are looking into it: a reply long enough to wrap on a narrow phone.")
        .await
        .expect("type");
    b.find(Locator::Css("#thread-list form.reply-form button.reply-send"))
        .await
        .expect("send")
        .click()
        .await
        .expect("click");
    wait_until(b, "the reply", "return !!document.querySelector('#thread-list .reply-list .reply')").await;
    b.find(Locator::Css("#thread-list .support-toggle")).await.expect("me too").click().await.expect("click");
    wait_until(b, "the support", "return !!document.querySelector('#thread-list .support-toggle.supported')").await;
    let mut wide = Vec::new();
    for page in [
        "/hubs/checkout/widgets/payment-form",
        "/hubs/checkout/roadmap",
        "/hubs/checkout/roadmap/whats-new",
        "/notifications",
        "/settings/notifications",
        "/hubs/checkout",
        "/",
    ] {
        b.goto(&app.url(page)).await.expect("page");
        if page.ends_with("payment-form") {
            // The similar feedback beside the composer, while typing.
            b.find(Locator::Id("composer-body"))
                .await
                .expect("composer")
                .send_keys("The card number field")
                .await
                .expect("type");
            wait_until(b, "similar feedback", "return !!document.querySelector('#similar-list .similar-item')").await;
        }
        let scroll = js(b, "return document.documentElement.scrollWidth").await.as_i64().unwrap_or_default();
        if scroll > 320 {
            wide.push(format!("{page}: {scroll} px"));
        }
    }
    assert!(wide.is_empty(), "pages wider than 320 px: {wide:?}");
    let _ = b.clone().close().await;
}

/// The backends to run a browser test on: SQLite always, PostgreSQL when a server answers.
fn backends() -> Vec<Backend> {
    let mut list = vec![Backend::Sqlite];
    if common::pg_enabled() {
        list.push(Backend::Postgres);
    }
    list
}

/// Counts per UTC day of the last 14 days (oldest first) of `times`, as the charts count them.
fn per_day(times: &[i64], now: i64) -> Vec<i64> {
    let start = now.div_euclid(DAY_MS) * DAY_MS - 13 * DAY_MS;
    let mut out = vec![0; 14];
    for t in times.iter().filter(|t| **t >= start) {
        if let Some(slot) = out.get_mut(((t - start) / DAY_MS) as usize) {
            *slot += 1;
        }
    }
    out
}

fn csv(values: &[i64]) -> String {
    values.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

async fn times(app: &TestApp, sql: &'static str, widget: i64) -> Vec<i64> {
    sqlx::query_scalar(sql).bind(widget).fetch_all(app.db.reader()).await.expect("times")
}

/// The dashboard's and widget page's charts show what the database holds (events and
/// annotations per widget and day, feedback by category, the triage backlog), and they follow
/// a write live; on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_show_the_database_and_follow_writes() {
    if skipped("the_charts_show_the_database_and_follow_writes") {
        return;
    }
    for backend in backends() {
        let app = common::spawn_app(backend).await;
        let logins = app.seed_demo().await;
        let session = browser().await;
        let b = &session.client;
        sign_in(b, &app, "olga", &logins["olga"]).await;
        b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
        wait_until(b, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
        let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
        let widgets: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, slug FROM widgets WHERE hub_id = $1 AND archived_at IS NULL ORDER BY id")
                .bind(hub)
                .fetch_all(app.db.reader())
                .await
                .expect("widgets");
        assert!(widgets.len() >= 2, "the demo hub has widgets");
        let now = ihf::db::now_ms();
        let mut any = 0;
        for (id, _) in &widgets {
            let events = per_day(
                &times(&app, "SELECT occurred_at FROM interaction_events WHERE widget_id = $1", *id).await,
                now,
            );
            let notes = per_day(
                &times(&app, "SELECT created_at FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL", *id)
                    .await,
                now,
            );
            any += events.iter().sum::<i64>() + notes.iter().sum::<i64>();
            let shown = js(
                b,
                &format!(
                    "var r = document.getElementById('widget-{id}');
                     return [r.querySelector('svg.spark-events').dataset.values,
                             r.querySelector('svg.spark-annotations').dataset.values,
                             r.querySelector('svg.spark-events').getAttribute('aria-label')];"
                ),
            )
            .await;
            assert_eq!(shown[0], csv(&events), "{backend:?}: events per day of widget {id}");
            assert_eq!(shown[1], csv(&notes), "{backend:?}: annotations per day of widget {id}");
            let total: i64 = events.iter().sum();
            assert!(
                shown[2].as_str().unwrap_or_default().contains(&format!("{total} events in the last 14 days")),
                "{backend:?}: the text alternative says the total: {}",
                shown[2]
            );
        }
        assert!(any > 0, "{backend:?}: the demo has activity in the last two weeks");
        // The table fallback holds the same figures as the lines.
        let (first, _) = &widgets[0];
        let slug = &widgets[0].1;
        let table = js(
            b,
            &format!(
                "return Array.from(document.querySelectorAll('#activity-table tr[data-widget=\"{slug}\"][data-what=\"events\"] td.num')).map(function (td) {{ return td.textContent; }}).join(',')"
            ),
        )
        .await;
        let first_events =
            per_day(&times(&app, "SELECT occurred_at FROM interaction_events WHERE widget_id = $1", *first).await, now);
        assert_eq!(table, csv(&first_events), "{backend:?}: the table fallback");
        // Category breakdown: today's and the window's totals per category.
        let by_category: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.slug, COUNT(a.id) FROM categories c JOIN annotations a ON a.category_id = c.id
               JOIN widgets w ON w.id = a.widget_id
              WHERE c.hub_id = $1 AND a.deleted_at IS NULL AND w.archived_at IS NULL AND a.created_at >= $2
              GROUP BY c.slug",
        )
        .bind(hub)
        .bind(now.div_euclid(DAY_MS) * DAY_MS - 13 * DAY_MS)
        .fetch_all(app.db.reader())
        .await
        .expect("by category");
        for (slug, count) in &by_category {
            let shown = js(
                b,
                &format!(
                    "return Array.from(document.querySelectorAll('#chart-categories tr[data-category=\"{slug}\"] td')).reduce(function (s, td) {{ return s + Number(td.textContent); }}, 0)"
                ),
            )
            .await;
            assert_eq!(shown.as_i64(), Some(*count), "{backend:?}: category {slug}");
        }
        // The backlog now is the number of annotations awaiting triage.
        let backlog = app
            .scalar_i64(
                "SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id
                  WHERE a.hub_id = $1 AND a.status = 'new' AND a.deleted_at IS NULL AND w.archived_at IS NULL",
                hub,
            )
            .await;
        let backlog_js = "return document.querySelector('#chart-backlog svg').dataset.values.split(',').pop()";
        assert_eq!(js(b, backlog_js).await, backlog.to_string(), "{backend:?}: backlog now");

        // A write: an annotation and a batch of events on the first widget; the charts follow.
        let before = js(
            b,
            &format!(
                "return document.querySelector('#widget-{first} svg.spark-annotations').dataset.values.split(',').pop()"
            ),
        )
        .await;
        let category = app.scalar_i64("SELECT MIN(id) FROM categories WHERE hub_id = $1", hub).await;
        ihf::db::annotations::create(
            &app.db,
            &ihf::db::annotations::NewAnnotation {
                hub_id: hub,
                widget_id: *first,
                actor_id: 1,
                body: "The chart moved",
                category_id: category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: ihf::db::now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("annotation");
        let expected = before.as_str().unwrap_or("0").parse::<i64>().unwrap_or_default() + 1;
        wait_until(
            b,
            "the annotations sparkline to count the new one",
            &format!("return document.querySelector('#widget-{first} svg.spark-annotations').dataset.values.split(',').pop() === '{expected}'"),
        )
        .await;
        wait_until(b, "the backlog to grow", &format!("{backlog_js} === '{}'", backlog + 1)).await;
        let events_before = first_events.last().copied().unwrap_or_default();
        let batch: Vec<ihf::db::events::NewEvent> = (0..3)
            .map(|_| ihf::db::events::NewEvent {
                hub_id: hub,
                widget_id: *first,
                kind: "click",
                actor_id: None,
                occurred_at: ihf::db::now_ms(),
                payload: "{}".into(),
            })
            .collect();
        ihf::db::events::insert(&app.db, &batch).await.expect("events");
        wait_until(
            b,
            "the events sparkline to count the new batch",
            &format!(
                "return document.querySelector('#widget-{first} svg.spark-events').dataset.values.split(',').pop() === '{}'",
                events_before + 3
            ),
        )
        .await;

        // The widget page draws the same widget's lines, and follows a write too.
        b.goto(&app.url(&format!("/hubs/checkout/widgets/{slug}"))).await.expect("widget page");
        wait_until(b, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
        let notes = per_day(
            &times(&app, "SELECT created_at FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL", *first)
                .await,
            ihf::db::now_ms(),
        );
        assert_eq!(
            js(b, "return document.querySelector('#widget-charts svg.spark-annotations').dataset.values").await,
            csv(&notes)
        );
        ihf::db::annotations::create(
            &app.db,
            &ihf::db::annotations::NewAnnotation {
                hub_id: hub,
                widget_id: *first,
                actor_id: 1,
                body: "And again",
                category_id: category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: ihf::db::now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("annotation");
        // The widget page's charts are a live region of their own: the write shows without a reload.
        wait_until(
            b,
            "the widget page's sparkline to follow",
            &format!(
                "return document.querySelector('#widget-charts svg.spark-annotations').dataset.values.split(',').pop() === '{}'",
                notes.last().copied().unwrap_or_default() + 1
            ),
        )
        .await;
        let _ = b.clone().close().await;
    }
}

/// After "Load more", a held live update's button is in view, and showing the latest keeps
/// the rows that were loaded (issue #20, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn showing_held_updates_keeps_the_loaded_rows_and_is_in_view() {
    if skipped("showing_held_updates_keeps_the_loaded_rows_and_is_in_view") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
    wait_until(b, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
    let rows = "return document.querySelectorAll('#feed-list > li[id]:not(.more)').length";
    assert_eq!(js(b, rows).await, 20);
    b.find(Locator::Css("#feed-list [data-load-more]")).await.expect("load more").click().await.expect("click");
    wait_until(b, "the second page", "return document.querySelectorAll('#feed-list > li[id]:not(.more)').length > 20")
        .await;
    let loaded = js(b, rows).await.as_i64().unwrap_or_default();
    js(b, "window.scrollTo(0, document.documentElement.scrollHeight); return true").await;

    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let widget = app.scalar_i64("SELECT MIN(id) FROM widgets WHERE hub_id = $1", hub).await;
    let category = app.scalar_i64("SELECT MIN(id) FROM categories WHERE hub_id = $1", hub).await;
    let id = ihf::db::annotations::create(
        &app.db,
        &ihf::db::annotations::NewAnnotation {
            hub_id: hub,
            widget_id: widget,
            actor_id: 1,
            body: "Held until asked for",
            category_id: category,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation");
    wait_until(b, "the held-update button", "return !!document.querySelector('button.live-held')").await;
    wait_until(
        b,
        "the button in the viewport",
        "var r = document.querySelector('button.live-held').getBoundingClientRect();
         return r.top >= 0 && r.bottom <= innerHeight;",
    )
    .await;
    b.find(Locator::Css("button.live-held")).await.expect("button").click().await.expect("click");
    wait_until(b, "the new row", &format!("return !!document.getElementById('annotation-{id}')")).await;
    assert_eq!(js(b, rows).await.as_i64(), Some(loaded + 1), "the loaded rows stay, the new one on top");
    assert_eq!(
        js(b, "return document.querySelector('#feed-list > li[id]').id").await,
        format!("annotation-{id}"),
        "newest first"
    );
    assert_eq!(js(b, "return !!document.querySelector('#feed-list [data-load-more]')").await, true);
    let _ = b.clone().close().await;
}

/// With the server gone, the page says so across the top, and an action is refused with a
/// message naming it; nothing is applied behind the person's back (issue #20, item 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_actions_are_refused_out_loud() {
    if skipped("with_the_server_down_actions_are_refused_out_loud") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    // The connection chip sits in the flow: it covers no count of the board.
    assert_eq!(js(b, "return getComputedStyle(document.querySelector('.live-indicator')).position").await, "static");
    assert_eq!(js(b, "return document.getElementById('offline').hidden").await, true);
    press(b, "j").await;
    let id = js(b, "return document.activeElement.dataset.id").await.as_str().unwrap_or_default().to_owned();
    let status: String = sqlx::query_scalar("SELECT status FROM annotations WHERE id = $1")
        .bind(id.parse::<i64>().expect("a row id"))
        .fetch_one(app.db.reader())
        .await
        .expect("status");

    app.handle.stop(false).await;
    wait_until(
        b,
        "the offline banner",
        "var o = document.getElementById('offline'); var r = o.getBoundingClientRect();
         return !o.hidden && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight && /cannot be reached/.test(o.textContent);",
    )
    .await;
    press(b, "t").await;
    wait_until(
        b,
        "the refusal",
        "return /Not sent: .*Nothing was changed/.test(document.getElementById('offline').textContent)",
    )
    .await;
    assert_eq!(
        js(b, &format!("return !!document.getElementById('row-{id}')")).await,
        true,
        "the row stays where it was"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: String = sqlx::query_scalar("SELECT status FROM annotations WHERE id = $1")
        .bind(id.parse::<i64>().expect("a row id"))
        .fetch_one(app.db.reader())
        .await
        .expect("status");
    assert_eq!(after, status, "nothing applied");
    let _ = b.clone().close().await;
}

/// A long embedded thread does not stretch the host page: the iframe grows to its content up
/// to a cap (640 px unless the host asks otherwise) and scrolls inside (issue #20, item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_frame_stops_growing_at_its_cap_and_scrolls_inside() {
    if skipped("the_embed_frame_stops_growing_at_its_cap_and_scrolls_inside") {
        return;
    }
    let (app, _) = app().await;
    let (hub, widget): (i64, i64) = sqlx::query_as("SELECT hub_id, id FROM widgets WHERE slug = 'cart-summary'")
        .fetch_one(app.db.reader())
        .await
        .expect("the demo's public widget");
    let category = app.scalar_i64("SELECT MIN(id) FROM categories WHERE hub_id = $1", hub).await;
    for n in 0..30 {
        let body = format!("Public note number {n}: the totals should stay visible while scrolling the cart.");
        ihf::db::annotations::create(
            &app.db,
            &ihf::db::annotations::NewAnnotation {
                hub_id: hub,
                widget_id: widget,
                actor_id: 1,
                body: &body,
                category_id: category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: ihf::db::now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("annotation");
    }
    let (port, server) =
        ihf::demo_host::build(app.db.clone(), "127.0.0.1:0".parse().expect("addr"), app.address.clone())
            .expect("demo host");
    tokio::spawn(server);
    let host = format!("http://localhost:{port}");
    ihf::demo_host::allow_origin(&app.db, &host).await.expect("allow the demo host");
    let session = browser().await;
    let b = &session.client;
    b.goto(&format!("{host}/")).await.expect("demo host page");
    wait_until(
        b,
        "the first frame to size itself",
        "var f = document.querySelector('iframe.ihf-embed'); return !!f && f.height !== '360' && f.height !== '';",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // later resizes would have come by now
    let height = js(b, "return Number(document.querySelector('iframe.ihf-embed').height)").await;
    assert_eq!(height.as_i64(), Some(640), "capped at 640 px, not grown to the thread's length");
    let frame = b.find(Locator::Css("iframe.ihf-embed")).await.expect("frame");
    frame.enter_frame().await.expect("into the frame");
    let inside = js(b, "return [document.documentElement.scrollHeight, innerHeight]").await;
    let (scroll, inner) = (inside[0].as_i64().unwrap_or_default(), inside[1].as_i64().unwrap_or_default());
    assert!(scroll > inner + 100, "the thread scrolls inside the frame: {scroll} px in {inner} px");
    let _ = b.clone().close().await;
}

/// After an undo the focus is on the row it brought back, not on its neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_undo_the_focus_is_on_the_restored_row() {
    if skipped("after_undo_the_focus_is_on_the_restored_row") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    press(b, "j").await;
    let id = js(b, "return document.activeElement.dataset.id").await.as_str().unwrap_or_default().to_owned();
    press(b, "t").await;
    wait_until(b, "the row to leave", &format!("return !document.getElementById('row-{id}')")).await;
    wait_until(b, "the focus on the neighbour", "return document.activeElement.classList.contains('triage-row')").await;
    press(b, "z").await;
    wait_until(b, "the focus on the restored row", &format!("return document.activeElement.id === 'row-{id}'")).await;
    let _ = b.clone().close().await;
}

/// The duplicate dialog numbers its choices, a digit picks one (it does not go into the search
/// box), and closing the dialog gives the focus back to the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_dialog_numbers_its_choices_and_a_digit_picks_one() {
    if skipped("the_duplicate_dialog_numbers_its_choices_and_a_digit_picks_one") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    press(b, "j").await;
    let id = js(b, "return document.activeElement.dataset.id").await.as_str().unwrap_or_default().to_owned();
    press(b, "d").await;
    wait_until(b, "the duplicate dialog", "return document.getElementById('triage-dialog').open").await;
    wait_until(b, "the first choice focused", "return document.activeElement.dataset.choice === '1'").await;
    assert_eq!(
        js(b, "return Array.from(document.querySelectorAll('#dup-results [data-choice] kbd')).slice(0, 3).map(function (k) { return k.textContent; })").await,
        serde_json::json!(["1", "2", "3"]),
        "number hints"
    );
    // Escape closes it and the focus is back on the row.
    press(b, ESCAPE).await;
    wait_until(b, "the dialog closed", "return !document.getElementById('triage-dialog').open").await;
    wait_until(b, "the focus back on the row", &format!("return document.activeElement.id === 'row-{id}'")).await;
    press(b, "d").await;
    wait_until(b, "the first choice focused", "return document.activeElement.dataset.choice === '1'").await;
    let original = js(
        b,
        "return JSON.parse(document.querySelector('#dup-results [data-choice=\"1\"]').getAttribute('hx-vals')).of",
    )
    .await;
    press(b, "1").await;
    wait_until(b, "the dialog to close", "return !document.getElementById('triage-dialog').open").await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let of: Option<i64> = sqlx::query_scalar("SELECT duplicate_of FROM annotations WHERE id = $1")
            .bind(id.parse::<i64>().expect("id"))
            .fetch_one(app.db.reader())
            .await
            .expect("row");
        if of.is_some() {
            assert_eq!(of, original.as_i64(), "the first choice was picked");
            break;
        }
        assert!(Instant::now() < deadline, "the digit picked nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = b.clone().close().await;
}

/// A composer error puts the focus on the field it is about, not on the page body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composer_error_puts_the_focus_on_its_field() {
    if skipped("a_composer_error_puts_the_focus_on_its_field") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "anna", &logins["anna"]).await;
    b.goto(&app.url("/hubs/checkout/widgets/payment-form")).await.expect("widget page");
    b.find(Locator::Css("#composer button[type=submit]")).await.expect("send").click().await.expect("click");
    wait_until(b, "the error", "return !!document.getElementById('composer-body-error')").await;
    wait_until(b, "the focus on the body field", "return document.activeElement.id === 'composer-body'").await;
    let _ = b.clone().close().await;
}

/// New feedback arriving live is announced once, politely, with its count ("3 new
/// annotations"); a live morph that only changes figures says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_feedback_is_announced_politely_with_its_count() {
    if skipped("new_feedback_is_announced_politely_with_its_count") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout")).await.expect("dashboard");
    wait_until(b, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
    assert_eq!(js(b, "var a = document.getElementById('announce'); return a.getAttribute('aria-live') + ' ' + a.getAttribute('role')").await, "polite status");
    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let widget = app.scalar_i64("SELECT MIN(id) FROM widgets WHERE hub_id = $1", hub).await;
    // Events only: the widgets panel morphs, nothing is announced.
    let batch: Vec<ihf::db::events::NewEvent> = (0..2)
        .map(|_| ihf::db::events::NewEvent {
            hub_id: hub,
            widget_id: widget,
            kind: "view",
            actor_id: None,
            occurred_at: ihf::db::now_ms(),
            payload: "{}".into(),
        })
        .collect();
    ihf::db::events::insert(&app.db, &batch).await.expect("events");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(js(b, "return document.getElementById('announce').textContent").await, "");
    let category = app.scalar_i64("SELECT MIN(id) FROM categories WHERE hub_id = $1", hub).await;
    for n in 0..3 {
        let body = format!("Announced feedback {n}");
        ihf::db::annotations::create(
            &app.db,
            &ihf::db::annotations::NewAnnotation {
                hub_id: hub,
                widget_id: widget,
                actor_id: 1,
                body: &body,
                category_id: category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: ihf::db::now_ms(),
                idempotency_key: None,
            },
        )
        .await
        .expect("annotation");
    }
    wait_until(
        b,
        "the announcement",
        "return /^[123] new annotations?$/.test(document.getElementById('announce').textContent) && document.querySelectorAll('#feed-list > li[id]').length >= 20 && !!Array.from(document.querySelectorAll('#feed-list .body')).find(function (p) { return p.textContent === 'Announced feedback 2'; })",
    )
    .await;
    let _ = b.clone().close().await;
}

/// The duplicate dialog keeps the focus inside while it is open: Tab and Shift+Tab go round its
/// controls and never reach the page behind; Escape closes it and gives the focus back to the
/// row it was opened for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_dialog_traps_the_focus_and_escape_gives_it_back() {
    if skipped("the_duplicate_dialog_traps_the_focus_and_escape_gives_it_back") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    press(b, "j").await;
    let id = js(b, "return document.activeElement.dataset.id").await.as_str().unwrap_or_default().to_owned();
    press(b, "d").await;
    wait_until(b, "the duplicate dialog", "return document.getElementById('triage-dialog').open").await;
    wait_until(b, "the first choice focused", "return document.activeElement.dataset.choice === '1'").await;
    let inside = "return document.getElementById('triage-dialog').contains(document.activeElement)";
    let controls = js(
        b,
        "return Array.from(document.querySelectorAll('#triage-dialog button, #triage-dialog input, #triage-dialog a[href]')).filter(function (e) { return !e.disabled && e.offsetParent !== null; }).length",
    )
    .await
    .as_i64()
    .unwrap_or_default();
    assert!(controls >= 2, "the dialog has controls to go round: {controls}");
    let mut visited = std::collections::HashSet::new();
    for _ in 0..controls + 2 {
        press(b, "\u{E004}").await; // Tab
        assert_eq!(js(b, inside).await, true, "Tab stays in the dialog");
        visited.insert(js(b, "return document.activeElement.outerHTML.slice(0, 120)").await.to_string());
    }
    assert!(visited.len() >= 2, "Tab moves between the dialog's controls: {visited:?}");
    // Shift+Tab, from the first control backwards.
    let back = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: '\u{E008}' })
        .then(KeyAction::Down { value: '\u{E004}' })
        .then(KeyAction::Up { value: '\u{E004}' })
        .then(KeyAction::Up { value: '\u{E008}' });
    for _ in 0..controls + 2 {
        b.perform_actions(back.clone()).await.expect("shift+tab");
        assert_eq!(js(b, inside).await, true, "Shift+Tab stays in the dialog");
    }
    press(b, ESCAPE).await;
    wait_until(b, "the dialog closed", "return !document.getElementById('triage-dialog').open").await;
    wait_until(b, "the focus back on the row", &format!("return document.activeElement.id === 'row-{id}'")).await;
    let _ = b.clone().close().await;
}

/// A decision the server refuses (the annotation went meanwhile) puts the focus on the message
/// saying why, not on the page body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_decision_puts_the_focus_on_its_message() {
    if skipped("a_refused_decision_puts_the_focus_on_its_message") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    // Live updates would take the row away before the decision: the stream is let go.
    js(b, "window.dispatchEvent(new Event('pagehide')); return true").await;
    press(b, "j").await;
    let id = js(b, "return document.activeElement.dataset.id").await.as_str().unwrap_or_default().to_owned();
    sqlx::query("UPDATE annotations SET deleted_at = $1 WHERE id = $2")
        .bind(ihf::db::now_ms())
        .bind(id.parse::<i64>().expect("a row id"))
        .execute(app.db.writer())
        .await
        .expect("delete");
    press(b, "t").await;
    wait_until(
        b,
        "the focus on the refusal",
        "var a = document.activeElement; return !!a && a !== document.body && !!a.closest('#flash') && a.textContent.trim().length > 0",
    )
    .await;
    let _ = b.clone().close().await;
}

/// After a decision the toast (with its Undo) is shown where it covers none of the buttons of
/// the row being worked on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_toast_covers_no_row_button() {
    if skipped("the_decision_toast_covers_no_row_button") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "tomas", &logins["tomas"]).await;
    open_board(b, &app).await;
    for _ in 0..3 {
        press(b, "j").await;
    }
    press(b, "t").await;
    wait_until(b, "the toast", "return document.getElementById('toast').textContent.trim().length > 0").await;
    wait_until(b, "the focus on a row", "return document.activeElement.classList.contains('triage-row')").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let covered = js(
        b,
        "var t = document.getElementById('toast').getBoundingClientRect(); \
         var row = document.activeElement; \
         return Array.from(row.querySelectorAll('button, a[href]')).filter(function (e) { \
           var r = e.getBoundingClientRect(); if (r.width === 0) return false; \
           return !(r.right <= t.left || r.left >= t.right || r.bottom <= t.top || r.top >= t.bottom); \
         }).map(function (e) { return e.textContent.trim(); })",
    )
    .await;
    assert_eq!(covered, serde_json::json!([]), "buttons under the toast");
    assert_eq!(js(b, "return !!document.querySelector('#toast [data-undo]')").await, true, "the toast offers Undo");
    let _ = b.clone().close().await;
}

/// Saving a widget's settings and creating a hub end on a page that confirms it, in a status
/// the screen reader reads, in view at the top of the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_settings_and_creating_a_hub_are_confirmed() {
    if skipped("saving_settings_and_creating_a_hub_are_confirmed") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    let confirmed = |text: &'static str| {
        format!(
            "var n = document.getElementById('settings-notice'); if (!n) return false; var r = n.getBoundingClientRect(); \
             return n.getAttribute('role') === 'status' && n.textContent.includes('{text}') && r.top >= 0 && r.bottom <= innerHeight"
        )
    };
    sign_in(b, &app, "olga", &logins["olga"]).await;
    b.goto(&app.url("/hubs/checkout/settings/widgets/payment-form")).await.expect("widget settings");
    assert_eq!(js(b, "return !!document.getElementById('settings-notice')").await, false, "no notice before a save");
    let description = b.find(Locator::Id("widget-description")).await.expect("description");
    description.clear().await.expect("clear");
    description.send_keys("Card and wallet entry, saved from the browser.").await.expect("type");
    b.find(Locator::Css("#widget-form button[type=submit].primary, #widget-form button[type=submit]"))
        .await
        .expect("save")
        .click()
        .await
        .expect("click");
    wait_until(b, "the save's confirmation", &confirmed("Widget settings saved.")).await;
    let stored: String = sqlx::query_scalar("SELECT description FROM widgets WHERE slug = 'payment-form'")
        .fetch_one(app.db.reader())
        .await
        .expect("widget");
    assert_eq!(stored, "Card and wallet entry, saved from the browser.");
    // A plain visit of the page says nothing.
    b.goto(&app.url("/hubs/checkout/settings/widgets/payment-form")).await.expect("widget settings again");
    assert_eq!(js(b, "return !!document.getElementById('settings-notice')").await, false);

    b.delete_all_cookies().await.expect("sign out");
    sign_in(b, &app, "admin", &logins["admin"]).await;
    b.goto(&app.url("/settings/hubs")).await.expect("hubs settings");
    b.find(Locator::Id("hub-name")).await.expect("name").send_keys("Search").await.expect("type");
    b.find(Locator::Id("hub-slug")).await.expect("slug").send_keys("search").await.expect("type");
    b.find(Locator::Css("form[action='/settings/hubs'] button[type=submit]"))
        .await
        .expect("create")
        .click()
        .await
        .expect("click");
    wait_until(b, "the hub's settings", "return location.pathname === '/hubs/search/settings'").await;
    wait_until(b, "the creation's confirmation", &confirmed("Hub created.")).await;
    let _ = b.clone().close().await;
}

/// A widget's owner (an annotator, not staff) finds their inbox from the hub list and from the
/// widget's page, and it opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_owner_has_links_to_their_inbox() {
    if skipped("a_widget_owner_has_links_to_their_inbox") {
        return;
    }
    let (app, logins) = app().await;
    let session = browser().await;
    let b = &session.client;
    sign_in(b, &app, "wendy", &logins["wendy"]).await;
    b.goto(&app.url("/")).await.expect("hubs");
    let links = js(
        b,
        "return Array.from(document.querySelectorAll('.owned-inboxes a')).map(function (a) { return a.getAttribute('href'); }).sort()",
    )
    .await;
    assert_eq!(
        links,
        serde_json::json!(["/hubs/checkout/widgets/payment-form/inbox", "/hubs/checkout/widgets/promo-code/inbox"]),
        "one link per widget wendy owns"
    );
    b.find(Locator::Css(".owned-inboxes a[href$='payment-form/inbox']"))
        .await
        .expect("link")
        .click()
        .await
        .expect("click");
    wait_until(
        b,
        "the inbox",
        "return location.pathname === '/hubs/checkout/widgets/payment-form/inbox' && !!document.querySelector('h1')",
    )
    .await;
    b.goto(&app.url("/hubs/checkout/widgets/payment-form")).await.expect("widget page");
    assert_eq!(
        js(b, "var a = Array.from(document.querySelectorAll('.page-head a')).find(function (a) { return a.textContent === 'Feedback inbox'; }); return a ? a.getAttribute('href') : null").await,
        "/hubs/checkout/widgets/payment-form/inbox"
    );
    // Not on a widget someone else owns.
    b.goto(&app.url("/hubs/checkout/widgets/cart-summary")).await.expect("another widget");
    assert_eq!(
        js(b, "return Array.from(document.querySelectorAll('.page-head a')).some(function (a) { return a.textContent === 'Feedback inbox'; })").await,
        false
    );
    // And an annotator who owns nothing has no such section.
    b.delete_all_cookies().await.expect("sign out");
    sign_in(b, &app, "anna", &logins["anna"]).await;
    b.goto(&app.url("/")).await.expect("hubs");
    assert_eq!(js(b, "return !!document.querySelector('.owned-inboxes')").await, false);
    let _ = b.clone().close().await;
}

/// Every page of a hub names the viewer's role in it beside their name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_badge_is_on_every_hub_page() {
    if skipped("the_role_badge_is_on_every_hub_page") {
        return;
    }
    let (app, logins) = app().await;
    let candidate: i64 = app.scalar("SELECT MIN(id) FROM requirement_candidates").await;
    let session = browser().await;
    let b = &session.client;
    let badge = "var b = document.querySelector('header .viewer .badge'); return b ? b.textContent.trim() : null";
    for (handle, role, pages) in [
        (
            "olga",
            "operator",
            vec![
                "/hubs/checkout".to_owned(),
                "/hubs/checkout/triage".into(),
                "/hubs/checkout/ledger".into(),
                format!("/hubs/checkout/candidates/{candidate}"),
                "/hubs/checkout/export".into(),
                "/hubs/checkout/settings".into(),
                "/hubs/checkout/settings/categories".into(),
                "/hubs/checkout/settings/api-keys".into(),
                "/hubs/checkout/roadmap".into(),
                "/hubs/checkout/widgets/payment-form".into(),
                "/hubs/checkout/widgets/payment-form/inbox".into(),
            ],
        ),
        ("tomas", "triager", vec!["/hubs/checkout/triage".to_owned(), "/hubs/checkout/ledger".into()]),
        ("anna", "annotator", vec!["/hubs/checkout".to_owned(), "/hubs/checkout/widgets/payment-form".into()]),
    ] {
        b.delete_all_cookies().await.expect("sign out");
        sign_in(b, &app, handle, &logins[handle]).await;
        for page in pages {
            b.goto(&app.url(&page)).await.expect("page");
            assert_eq!(js(b, badge).await, role, "{handle}'s role on {page}");
        }
    }
    let _ = b.clone().close().await;
}
