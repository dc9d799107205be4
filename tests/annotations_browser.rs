//! The widget page in real headless Chromium: two people on the same widget, one submits, the
//! other sees it arrive live with their own half-typed text untouched. Runs when
//! `IHF_TEST_BROWSER` is set (as `tests/browser.rs`); without it it returns at once.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use ihf::db::Backend;

const PAYMENT: &str = "/hubs/checkout/widgets/payment-form";

fn enabled() -> bool {
    std::env::var("IHF_TEST_BROWSER").is_ok_and(|v| !v.is_empty())
}

/// A chromedriver process and a browser session, ended on drop.
struct Browser {
    client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn browser() -> Browser {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (Debian: chromium-driver)");
    let profile = std::env::temp_dir().join(format!("ihf-chromium-{port}"));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync", "--disable-quic", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Browser { client, driver },
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("could not start a browser session: {last_error:?}");
}

async fn sign_in(browser: &Client, app: &TestApp, handle: &str, password: &str) {
    browser.goto(&app.url("/login")).await.expect("login page");
    browser.find(Locator::Id("handle")).await.expect("handle").send_keys(handle).await.expect("type");
    browser.find(Locator::Id("password")).await.expect("password").send_keys(password).await.expect("type");
    browser.find(Locator::Css("form button[type=submit]")).await.expect("button").click().await.expect("submit");
    wait_for(browser, "signed in", |html| html.contains("Sign out")).await;
}

/// Polls the page's HTML until `ready` holds.
async fn wait_for(browser: &Client, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let html = browser.source().await.expect("page source");
        if ready(&html) {
            return html;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
