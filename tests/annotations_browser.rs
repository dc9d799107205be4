//! The widget page in real headless Chromium: two people on the same widget, one submits, the
//! other sees it arrive live with their own half-typed text untouched. Runs when
//! `IHF_TEST_BROWSER` is set (as `tests/browser.rs`); without it it returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::{Duration, Instant};

use common::browser::{browser, enabled, sign_in, wait_for};
use fantoccini::{Client, Locator};
use ihf::db::Backend;

const PAYMENT: &str = "/hubs/checkout/widgets/payment-form";

async fn script(browser: &Client, js: &str) -> serde_json::Value {
    browser.execute(js, vec![]).await.expect("script")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_annotation_appears_for_another_reader_without_touching_their_draft() {
    if !enabled() {
        return;
    }
    let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
    let app = common::spawn_app(backend).await;
    let logins = app.seed_demo().await;
    let (writer, reader) = (browser().await, browser().await);
    let (w, r) = (&writer.client, &reader.client);
    sign_in(w, &app, "wendy", &logins["wendy"]).await;
    sign_in(r, &app, "anna", &logins["anna"]).await;
    for b in [w, r] {
        b.goto(&app.url(PAYMENT)).await.expect("widget page");
        wait_for(b, "the live stream to open", |html| html.contains("data-live-status=\"open\"")).await;
    }

    // Anna is halfway through her own feedback, and keeps the focus in it.
    let draft = "Half-typed by anna, not sent";
    r.find(Locator::Id("composer-body")).await.expect("composer").send_keys(draft).await.expect("type");

    // Wendy writes, picks a category and submits.
    let text = "Seen live: the CVC hint overlaps the field on Android.";
    w.find(Locator::Css("input[name=category][value=bug]")).await.expect("pill").click().await.expect("choose");
    w.find(Locator::Id("composer-body")).await.expect("composer").send_keys(text).await.expect("type");
    let started = Instant::now();
    w.find(Locator::Css("button[value=submit]")).await.expect("submit").click().await.expect("submit");
    wait_for(w, "the thanks note", |html| html.contains("Thanks, your feedback was submitted.")).await;

    let html = wait_for(r, "the annotation to arrive", |html| html.contains(text)).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "arrived after {elapsed:?}");
    assert!(html.contains("data-live-status=\"open\""), "no reload: the same stream");
    let value = r.find(Locator::Id("composer-body")).await.expect("composer").prop("value").await.expect("value");
    assert_eq!(value.as_deref(), Some(draft), "her draft is untouched");
    assert_eq!(script(r, "return document.activeElement.id").await, "composer-body", "and keeps the focus");
    println!("annotation visible to the other reader {} ms after the click", elapsed.as_millis());

    let _ = w.clone().close().await;
    let _ = r.clone().close().await;
}
