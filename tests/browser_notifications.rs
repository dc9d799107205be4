//! The notification bell in real headless Chromium: its count updates live, on a page that is
//! open, when an event for its person arrives (and for nobody else's bell), and when a triager
//! replies to one's feedback through the reply form's route. Runs when
//! `IHF_TEST_BROWSER` is set (as `tests/browser.rs`), on PostgreSQL when `IHF_TEST_PG` is set
//! too; without it it returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::Duration;

use common::browser::{browser, enabled, sign_in, wait_until};
use fantoccini::Client;
use ihf::db::Backend;
use ihf::db::annotations::NewAnnotation;

async fn unread(browser: &Client) -> String {
    let value = browser
        .execute("return document.querySelector('#bell .bell-count').dataset.unread", Vec::new())
        .await
        .expect("bell");
    value.as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bell_counts_up_live_when_an_event_arrives() {
    if !enabled() {
        return;
    }
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let hub = ihf::db::hubs::create(&app.db, "shop", "Shop", "").await.unwrap();
    let owner = app.person("owen", &[("shop", "annotator")]).await;
    let ana = app.person("ana", &[("shop", "annotator")]).await;
    let widget = ihf::db::widgets::create(
        &app.db,
        &ihf::db::widgets::NewWidget {
            hub_id: hub.id,
            slug: "checkout",
            name: "Checkout",
            description: "",
            owner_id: Some(owner),
            policy_scope: "members",
            allowed_origins: "",
        },
    )
    .await
    .unwrap();
    let category: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub.id)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    let annotate = |actor_id: i64, body: &'static str| {
        let db = app.db.clone();
        async move {
            let new = NewAnnotation {
                hub_id: hub.id,
                widget_id: widget.id,
                actor_id,
                body,
                category_id: category,
                status: ihf::db::annotations::AnnotationStatus::New,
                created_at: ihf::db::now_ms(),
                idempotency_key: None,
            };
            ihf::db::annotations::create(&db, &new).await.unwrap()
        }
    };

    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "owen", common::PASSWORD).await;
    b.goto(&app.url("/hubs/shop")).await.unwrap();
    wait_until(b, "the page to go live", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
    assert_eq!(unread(b).await, "0");

    // Ana's feedback on Owen's widget: his bell says 1, then 2, without a reload.
    annotate(ana, "the total is hidden").await;
    wait_until(b, "the bell to count 1", "return document.querySelector('#bell .bell-count').dataset.unread === '1'")
        .await;
    let label =
        b.execute("return document.getElementById('bell-link').getAttribute('aria-label')", Vec::new()).await.unwrap();
    assert_eq!(label.as_str(), Some("Notifications: 1 unread"));
    annotate(ana, "and the coupon field too").await;
    wait_until(b, "the bell to count 2", "return document.querySelector('#bell .bell-count').dataset.unread === '2'")
        .await;
    // His own feedback is no event for him; the bell stays.
    annotate(owner, "noted").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(unread(b).await, "2");

    // Marking all read on the notifications page brings it to 0.
    b.goto(&app.url("/notifications")).await.unwrap();
    wait_until(b, "the list", "return !!document.getElementById('notification-list')").await;
    b.find(fantoccini::Locator::Css("form[action='/notifications/read-all'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_until(b, "the bell to count 0", "return document.querySelector('#bell .bell-count').dataset.unread === '0'")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_reply_rings_the_authors_bell_live() {
    if !enabled() {
        return;
    }
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let hub = ihf::db::hubs::create(&app.db, "shop", "Shop", "").await.unwrap();
    let ana = app.person("ana", &[("shop", "annotator")]).await;
    app.person("tess", &[("shop", "triager")]).await;
    let widget = common::public_widget(&app.db, hub.id, "checkout").await;
    let category: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub.id)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    let new = NewAnnotation {
        hub_id: hub.id,
        widget_id: widget.id,
        actor_id: ana,
        body: "The coupon field eats my code",
        category_id: category,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: ihf::db::now_ms(),
        idempotency_key: None,
    };
    let id = ihf::db::annotations::create(&app.db, &new).await.unwrap();

    // Ana reads her widget's page; a triager replies from another session, through the same
    // route the reply form posts to.
    let chromium = browser().await;
    let b = &chromium.client;
    sign_in(b, &app, "ana", common::PASSWORD).await;
    b.goto(&app.url("/hubs/shop/widgets/checkout")).await.unwrap();
    wait_until(b, "the page to go live", "return document.getElementById('live').dataset.liveStatus === 'open'").await;
    assert_eq!(unread(b).await, "0");
    let tess = app.signed_in("tess", common::PASSWORD).await;
    let csrf = app.csrf(&tess, "/").await;
    let reply = |form: Vec<(&'static str, &'static str)>| {
        let (tess, csrf, url) =
            (tess.clone(), csrf.clone(), app.url(&format!("/hubs/shop/widgets/checkout/annotations/{id}/replies")));
        async move {
            let sent = tess
                .post(url)
                .header("HX-Request", "true")
                .header("X-CSRF-Token", csrf)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(sent.status(), 200);
        }
    };

    // An internal reply is for staff: Ana's bell stays, her page does not show it.
    reply(vec![("body", "INTERNAL: probably the trim bug"), ("internal", "1")]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(unread(b).await, "0");
    // The public reply: her bell says 1 and the reply shows under her feedback, no reload.
    reply(vec![("body", "Thanks Ana, a fix ships on Monday")]).await;
    wait_until(b, "the bell to count 1", "return document.querySelector('#bell .bell-count').dataset.unread === '1'")
        .await;
    let thread = format!(
        "return (document.getElementById('replies-{id}') || {{textContent: ''}}).textContent.includes('a fix ships on Monday')"
    );
    wait_until(b, "the reply under her feedback", &thread).await;
    let page = b.source().await.unwrap();
    assert!(!page.contains("probably the trim bug"), "no internal reply for the author");

    // The notifications page lists the reply, and its link leads back to the annotation.
    b.find(fantoccini::Locator::Id("bell-link")).await.unwrap().click().await.unwrap();
    wait_until(b, "the list", "return !!document.getElementById('notification-list')").await;
    let list = b.execute("return document.getElementById('notification-list').textContent", Vec::new()).await.unwrap();
    assert!(list.as_str().unwrap_or_default().contains("a fix ships on Monday"), "{list}");
    let href = b
        .execute(
            "var a = document.querySelector('#notification-list a[href*=\"annotation\"]'); return a ? a.getAttribute('href') : ''",
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(href.as_str().unwrap_or_default().contains(&id.to_string()), "a link back to the item: {href}");
}
