//! Closing the loop in real headless Chromium: an embed visitor says "me too" and sees the count
//! change; the composer offers similar feedback while one types. Runs when `IHF_TEST_BROWSER` is
//! set (as `tests/browser.rs`); without it it returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::browser::{browser, enabled, sign_in, wait_for};
use fantoccini::Locator;
use ihf::db::annotations::{self, NewAnnotation};
use ihf::db::{Backend, now_ms};

async fn annotate(app: &common::TestApp, handle: &str, slug: &str, body: &str) -> i64 {
    let (widget_id, hub_id): (i64, i64) = sqlx::query_as("SELECT id, hub_id FROM widgets WHERE slug = $1")
        .bind(slug)
        .fetch_one(app.db.reader())
        .await
        .expect("widget");
    let category_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    let actor_id: i64 = sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor");
    let new = NewAnnotation {
        hub_id,
        widget_id,
        actor_id,
        body,
        category_id,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: now_ms(),
        idempotency_key: None,
    };
    annotations::create(&app.db, &new).await.expect("annotation")
}

fn backend() -> Backend {
    if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embed_visitor_adds_support_and_sees_the_count_change() {
    if !enabled() {
        return;
    }
    let app = common::spawn_app(backend()).await;
    app.seed_demo().await;
    let id = annotate(&app, "wendy", "cart-summary", "The cart total flickers when I change the quantity").await;
    let key: String = sqlx::query_scalar("SELECT embed_key FROM widgets WHERE slug = 'cart-summary'")
        .fetch_one(app.db.reader())
        .await
        .expect("key");
    let visitor = browser().await;
    let b = &visitor.client;
    b.goto(&app.url(&format!("/embed/{key}"))).await.expect("embed page");
    let toggle = format!("#support-{id} button");
    wait_for(b, "the support toggle", |html| html.contains(&format!("id=\"support-{id}\""))).await;
    b.find(Locator::Css(&toggle)).await.expect("toggle").click().await.expect("click");
    let element = |html: &str| -> String {
        let Some(at) = html.find(&format!("id=\"support-{id}\"")) else { return String::new() };
        let rest = &html[at..];
        rest[..rest.find("</span>").unwrap_or(rest.len())].to_owned()
    };
    let html = wait_for(b, "the count to become 1", |html| {
        let e = element(html);
        e.contains("aria-pressed=\"true\"") && e.contains("data-count=\"1\"")
    })
    .await;
    assert!(element(&html).contains("Me too"));
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM annotation_supports WHERE annotation_id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("count");
    assert_eq!(stored, 1);
    // Again: taken back.
    b.find(Locator::Css(&toggle)).await.expect("toggle").click().await.expect("click");
    wait_for(b, "the count to go back to 0", |html| {
        let e = element(html);
        e.contains("aria-pressed=\"false\"") && e.contains("data-count=\"0\"")
    })
    .await;
    let _ = b.clone().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_composer_offers_similar_feedback_while_typing() {
    if !enabled() {
        return;
    }
    let app = common::spawn_app(backend()).await;
    let logins = app.seed_demo().await;
    let id = annotate(&app, "anna", "payment-form", "The expiry field rejects valid dates on the card form").await;
    let writer = browser().await;
    let b = &writer.client;
    sign_in(b, &app, "wendy", &logins["wendy"]).await;
    b.goto(&app.url("/hubs/checkout/widgets/payment-form")).await.expect("widget page");
    let composer = b.find(Locator::Id("composer-body")).await.expect("composer");
    composer.send_keys("My card expiry keeps being rejected").await.expect("type");
    let html = wait_for(b, "similar feedback", |html| html.contains("Same as yours?")).await;
    assert!(html.contains(&format!("id=\"similar-{id}\"")), "the matching annotation is offered");
    // Supporting it from the suggestion.
    b.find(Locator::Css(&format!("#similar-support-{id} button"))).await.expect("toggle").click().await.expect("click");
    wait_for(b, "the suggestion's count", |html| {
        html.find(&format!("id=\"similar-support-{id}\"")).is_some_and(|at| html[at..].contains("data-count=\"1\""))
    })
    .await;
    let value = b.find(Locator::Id("composer-body")).await.expect("composer").prop("value").await.expect("value");
    assert_eq!(value.as_deref(), Some("My card expiry keeps being rejected"), "the draft is untouched");
    let _ = b.clone().close().await;
}
