//! The triage board in real headless Chromium: five annotations triaged with the keyboard alone
//! (`j`, `2`, `t`, `x`, `z`), checked in the database and on a second triager's board, which
//! follows live. Runs when `IHF_TEST_BROWSER` is set (as `tests/browser.rs`); without it it
//! returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::TestApp;
use common::browser::{browser, enabled, press, sign_in};
use fantoccini::Client;
use ihf::db::Backend;

/// Polls a script returning a boolean until it is true (8 s at most), with this suite's page dump.
async fn wait_until(browser: &Client, what: &str, script: &str) {
    common::browser::wait_until_or_dump(
        browser,
        what,
        script,
        "return [document.activeElement.outerHTML.slice(0, 200), \
                     document.getElementById('toast') && document.getElementById('toast').textContent, \
                     document.getElementById('flash').textContent]",
    )
    .await;
}

async fn focused_row(browser: &Client) -> String {
    let id = browser.execute("return document.activeElement.id", Vec::new()).await.expect("focus");
    id.as_str().unwrap_or_default().to_owned()
}

/// Waits for the toast to say `text` (each action shows one).
async fn toast(browser: &Client, text: &str) {
    let script = format!("return document.getElementById('toast').textContent.includes({text:?})");
    wait_until(browser, &format!("the toast {text:?}"), &script).await;
}

async fn row_gone(browser: &Client, id: i64) {
    wait_until(browser, &format!("#{id} to leave the queue"), &format!("return !document.getElementById('row-{id}')"))
        .await;
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Row {
    category_id: i64,
    status: String,
    dismiss_reason: Option<String>,
}

async fn row(app: &TestApp, id: i64) -> Row {
    sqlx::query_as("SELECT category_id, status, dismiss_reason FROM annotations WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("annotation")
}

async fn category(app: &TestApp, slug: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT c.id FROM categories c JOIN hubs h ON h.id = c.hub_id WHERE h.slug = 'checkout' AND c.slug = $1",
    )
    .bind(slug)
    .fetch_one(app.db.reader())
    .await
    .expect("category")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyboard_only_triage_of_five_annotations() {
    if !enabled() {
        return;
    }
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM annotations a JOIN hubs h ON h.id = a.hub_id
          WHERE h.slug = 'checkout' AND a.status = 'new' ORDER BY a.created_at, a.id LIMIT 5",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("queue");
    let [a, b, c, d, e] = ids[..] else { panic!("five new annotations") };
    let (bug, idea) = (category(&app, "bug").await, category(&app, "idea").await);
    // The key of a category each row does not have yet: 2 (Bug), or 3 (Idea) for a bug.
    let other = |row: &Row| if row.category_id == bug { ("3", idea, "Idea") } else { ("2", bug, "Bug") };
    let (a_key, a_category, a_label) = other(&row(&app, a).await);
    let (d_key, d_category, d_label) = other(&row(&app, d).await);
    let c_before = row(&app, c).await;

    let tomas = browser().await;
    let olga = browser().await;
    let (t, o) = (&tomas.client, &olga.client);
    sign_in(t, &app, "tomas", &logins["tomas"]).await;
    sign_in(o, &app, "olga", &logins["olga"]).await;
    for browser in [t, o] {
        browser.goto(&app.url("/hubs/checkout/triage")).await.expect("board");
        wait_until(browser, "the live stream", "return document.getElementById('live').dataset.liveStatus === 'open'")
            .await;
    }

    // a: j focuses it, 2 makes it a bug (3 an idea if it is one), t triages it; it leaves the queue of new ones and the
    // focus moves to the row now in its place.
    press(t, "j").await;
    assert_eq!(focused_row(t).await, format!("row-{a}"));
    press(t, a_key).await;
    toast(t, &format!("#{a}: category {a_label}.")).await;
    assert_eq!(focused_row(t).await, format!("row-{a}"), "the focus stays on the row");
    press(t, "t").await;
    toast(t, &format!("#{a} marked triaged.")).await;
    row_gone(t, a).await;
    assert_eq!(focused_row(t).await, format!("row-{b}"));

    // b: x opens the reasons, 1 picks "not actionable".
    press(t, "x").await;
    wait_until(t, "the reasons", "return document.getElementById('triage-dialog').open").await;
    press(t, "1").await;
    toast(t, &format!("#{b} dismissed (not actionable).")).await;
    row_gone(t, b).await;

    // c: triaged by mistake, z undoes it: it comes back as it was.
    assert_eq!(focused_row(t).await, format!("row-{c}"));
    press(t, "t").await;
    toast(t, &format!("#{c} marked triaged.")).await;
    press(t, "z").await;
    toast(t, &format!("Undone: #{c} restored.")).await;
    wait_until(t, "c back in the queue", &format!("return !!document.getElementById('row-{c}')")).await;

    // d: recategorized, then dismissed as "out of scope" (the second reason). When c left, the focus
    // went to d in its place; c came back above it.
    if focused_row(t).await == format!("row-{c}") {
        press(t, "j").await;
    }
    assert_eq!(focused_row(t).await, format!("row-{d}"));
    press(t, d_key).await;
    toast(t, &format!("#{d}: category {d_label}.")).await;
    press(t, "x").await;
    wait_until(t, "the reasons", "return document.getElementById('triage-dialog').open").await;
    press(t, "2").await;
    toast(t, &format!("#{d} dismissed (out of scope).")).await;
    row_gone(t, d).await;

    // e: triaged.
    assert_eq!(focused_row(t).await, format!("row-{e}"));
    press(t, "t").await;
    toast(t, &format!("#{e} marked triaged.")).await;

    // The database has every decision…
    assert_eq!(row(&app, a).await, Row { category_id: a_category, status: "triaged".into(), dismiss_reason: None });
    assert_eq!(row(&app, b).await.dismiss_reason.as_deref(), Some("not-actionable"));
    assert_eq!(row(&app, c).await, c_before, "undo restored c exactly");
    assert_eq!(
        row(&app, d).await,
        Row { category_id: d_category, status: "dismissed".into(), dismiss_reason: Some("out-of-scope".into()) }
    );
    assert_eq!(row(&app, e).await.status, "triaged");

    // …and the second board followed live, without a reload.
    let script = format!(
        "return [{a}, {b}, {d}, {e}].every(function (id) {{ return !document.getElementById('row-' + id); }})
            && !!document.getElementById('row-{c}')"
    );
    wait_until(o, "olga's board to follow", &script).await;
    let new_count: i64 = app
        .scalar("SELECT COUNT(*) FROM annotations a JOIN hubs h ON h.id = a.hub_id WHERE h.slug = 'checkout' AND a.status = 'new'")
        .await;
    let shown = o
        .execute("return document.querySelector('#triage-counts [data-status=new] .n').textContent", Vec::new())
        .await
        .expect("count");
    assert_eq!(shown.as_str(), Some(new_count.to_string().as_str()), "the counts too");
    let _ = t.clone().close().await;
    let _ = o.clone().close().await;
}
