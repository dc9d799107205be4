//! Live regions through the raw SSE stream, on both databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::time::Duration;

use common::{SseClient, TestApp};
use ihf::db::annotations::NewAnnotation;
use ihf::db::events::NewEvent;

const QUIET: Duration = Duration::from_millis(600);
const WAIT: Duration = Duration::from_secs(5);

struct Hub {
    id: i64,
    widget: i64,
    category: i64,
}

async fn hub(app: &TestApp, slug: &str) -> Hub {
    let id: i64 = sqlx::query_scalar("SELECT id FROM hubs WHERE slug = $1")
        .bind(slug)
        .fetch_one(app.db.reader())
        .await
        .expect("hub");
    let widget: i64 = sqlx::query_scalar("SELECT MIN(id) FROM widgets WHERE hub_id = $1 AND policy_scope = 'public'")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("widget");
    let category: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    Hub { id, widget, category }
}

async fn annotate(app: &TestApp, hub: &Hub, body: &str) -> i64 {
    let author = app.scalar("SELECT MIN(id) FROM actors").await;
    ihf::db::annotations::create(
        &app.db,
        &NewAnnotation {
            hub_id: hub.id,
            widget_id: hub.widget,
            actor_id: author,
            body,
            category_id: hub.category,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation")
}

async fn event(app: &TestApp, hub: &Hub, kind: &'static str) {
    ihf::db::events::insert(
        &app.db,
        &[NewEvent {
            hub_id: hub.id,
            widget_id: hub.widget,
            kind,
            actor_id: None,
            occurred_at: ihf::db::now_ms(),
            payload: "{}".into(),
        }],
    )
    .await
    .expect("event");
}

/// Opens the dashboard as `client` and its stream, which is quiet at first (nothing changed).
async fn dashboard_stream(app: &TestApp, client: &reqwest::Client, slug: &str) -> SseClient {
    page_stream(app, client, &format!("/hubs/{slug}")).await
}

/// Opens the page at `path` as `client` and its stream without the bell, quiet at first.
async fn page_stream(app: &TestApp, client: &reqwest::Client, path: &str) -> SseClient {
    let url = page_stream_url(app, client, path).await;
    let mut stream = SseClient::open(app, client, &url, None).await;
    let early = stream.events_within(Duration::from_millis(300)).await;
    assert!(early.is_empty(), "nothing changed since the page was rendered: {early:?}");
    stream
}

/// The stream URL of the page at `path` as `client` sees it, without the bell.
async fn page_stream_url(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let page = client.get(app.url(path)).send().await.expect("page").text().await.expect("body");
    let url = common::text_attr(&page, "sse-connect=\"").expect("the page has a live stream").replace("&#38;", "&");
    assert!(url.starts_with("/live?regions="), "{url}");
    // Every page's stream carries the viewer's notification bell too (tests/notifications.rs):
    // these tests watch the page's own regions.
    let (regions, rest) = url["/live?regions=".len()..].split_once('&').unwrap_or((&url["/live?regions=".len()..], ""));
    let regions: Vec<&str> = regions.split(',').filter(|k| !k.starts_with("bell:")).collect();
    format!("/live?regions={}&{rest}", regions.join(","))
}

/// The first event within `timeout` that `wanted` accepts.
async fn until(
    stream: &mut SseClient,
    timeout: Duration,
    wanted: impl Fn(&common::SseEvent) -> bool,
) -> Option<common::SseEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = stream.next_event(left).await?;
        if wanted(&event) {
            return Some(event);
        }
    }
}

/// Whether the stream ends (or says its session ended) within `timeout`.
async fn ends_within(stream: &mut SseClient, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        match stream.next_event(left).await {
            Some(event) if event.event == "session" => return true,
            Some(_) => {}
            // Ended (or timed out: then `left` is zero next time round).
            None => return tokio::time::Instant::now() < deadline,
        }
    }
}

fn names(events: &[common::SseEvent]) -> Vec<&str> {
    let mut names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    names.sort_unstable();
    names
}

dual_test!(a_write_reaches_exactly_the_affected_regions, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let checkout = hub(&app, "checkout").await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;

    annotate(&app, &checkout, "The coupon field rejects lowercase codes").await;
    let events = stream.events_within(Duration::from_millis(1500)).await;
    assert_eq!(names(&events), ["feed", "widgets"], "an annotation changes the feed and the widget counts");
    let feed = events.iter().find(|e| e.event == "feed").expect("feed");
    assert!(feed.data.contains("The coupon field rejects lowercase codes"));
    assert!(feed.id.as_deref().is_some_and(|id| id.parse::<i64>().is_ok()), "events carry the change sequence");

    event(&app, &checkout, "rage_click").await;
    let events = stream.events_within(Duration::from_millis(1500)).await;
    assert_eq!(names(&events), ["signals", "widgets"], "an event changes the signals and the counts");
});

dual_test!(writes_elsewhere_or_without_visible_change_send_nothing, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let onboarding = hub(&app, "onboarding").await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;

    annotate(&app, &onboarding, "Another hub's note").await;
    event(&app, &onboarding, "click").await;
    assert!(stream.events_within(QUIET).await.is_empty(), "a write in another hub produces nothing");

    // A write that changes no HTML: the regions re-render, compare equal, and nothing is sent
    // (once the client holds HTML whose hash the server knows: after its first update).
    let checkout = hub(&app, "checkout").await;
    annotate(&app, &checkout, "A visible change first").await;
    assert!(!stream.events_within(Duration::from_millis(1500)).await.is_empty());
    sqlx::query(
        "UPDATE annotations SET version = version WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')",
    )
    .execute(app.db.writer())
    .await
    .expect("no-op update");
    assert!(stream.events_within(QUIET).await.is_empty(), "unchanged HTML is not sent");
});

/// Inserts `n` annotations from each of `tasks` concurrent writers.
async fn burst(app: &TestApp, hub: &Hub, tasks: usize, n: usize) {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let db = app.db.clone();
        let (hub_id, widget_id, category_id) = (hub.id, hub.widget, hub.category);
        handles.push(tokio::spawn(async move {
            for i in 0..n {
                let body = format!("burst {task}-{i}");
                ihf::db::annotations::create(
                    &db,
                    &NewAnnotation {
                        hub_id,
                        widget_id,
                        actor_id: 1,
                        body: &body,
                        category_id,
                        status: ihf::db::annotations::AnnotationStatus::New,
                        created_at: ihf::db::now_ms(),
                        idempotency_key: None,
                    },
                )
                .await
                .expect("insert");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
}

// The window is long here (2 s) so that the bound is tight and independent of how fast the
// machine is: at most one render per region per window, plus the first at once.
dual_test!(a_burst_is_coalesced, |config: &mut ihf::Config| config.live_window_ms = 2000, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let checkout = hub(&app, "checkout").await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;

    let started = std::time::Instant::now();
    burst(&app, &checkout, 10, 100).await;
    let lasted = started.elapsed();
    // The trailing render comes at most one window after the burst.
    let events = stream.events_within(Duration::from_millis(3000)).await;
    let windows = (lasted.as_millis() / 2000) as usize + 2;
    let feed_events = events.iter().filter(|e| e.event == "feed").count();
    assert!(feed_events >= 1, "the burst shows up");
    assert!(feed_events <= windows, "{feed_events} feed renders for 1,000 inserts in {lasted:?} (bound {windows})");
    assert!(events.len() <= 2 * windows, "{} events in all", events.len());
    let last_feed = events.iter().rev().find(|e| e.event == "feed").expect("feed");
    assert!(last_feed.data.contains("burst "), "last state wins");
    let newest: String = sqlx::query_scalar("SELECT body FROM annotations ORDER BY id DESC LIMIT 1")
        .fetch_one(app.db.reader())
        .await
        .expect("newest");
    assert!(last_feed.data.contains(&newest), "the trailing render has the last insert ({newest})");
});

// With a 5 s window, an isolated change still arrives at once: the leading edge renders it.
dual_test!(
    an_isolated_change_does_not_wait_for_the_window,
    |config: &mut ihf::Config| config.live_window_ms = 5000,
    |app| {
        let logins = app.seed_demo().await;
        let olga = app.signed_in("olga", &logins["olga"]).await;
        let checkout = hub(&app, "checkout").await;
        let mut stream = dashboard_stream(&app, &olga, "checkout").await;
        annotate(&app, &checkout, "Alone after a quiet period").await;
        let first = until(&mut stream, Duration::from_millis(2500), |e| {
            e.event == "feed" && e.data.contains("Alone after a quiet period")
        })
        .await;
        assert!(first.is_some(), "sent well before the 5 s window");
        // A second change within the window waits for it, then arrives (the trailing render).
        annotate(&app, &checkout, "Second, inside the window").await;
        let second = |e: &common::SseEvent| e.event == "feed" && e.data.contains("Second, inside the window");
        assert!(until(&mut stream, Duration::from_millis(1000), second).await.is_none(), "held for the window");
        assert!(until(&mut stream, Duration::from_millis(6000), second).await.is_some(), "then sent");
    }
);

dual_test!(reconnecting_with_last_event_id_gets_the_current_state, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let checkout = hub(&app, "checkout").await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;
    annotate(&app, &checkout, "Before the drop").await;
    let events = stream.events_within(Duration::from_millis(1000)).await;
    let last_id = events.last().and_then(|e| e.id.clone()).expect("an id");
    drop(stream);

    annotate(&app, &checkout, "Written while the client was away").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hub_id = checkout.id;
    let path = format!("/live?regions=widgets:{hub_id},signals:{hub_id},feed:{hub_id}");
    let mut resumed = SseClient::open(&app, &olga, &path, Some(&last_id)).await;
    let events = resumed.events_within(Duration::from_millis(800)).await;
    assert_eq!(names(&events), ["feed", "signals", "widgets"], "a resumed client gets every region");
    let feed = events.iter().find(|e| e.event == "feed").expect("feed");
    assert!(feed.data.contains("Written while the client was away"));
    let new_id: i64 = feed.id.as_deref().and_then(|id| id.parse().ok()).expect("id");
    assert!(new_id > last_id.parse::<i64>().expect("old id"));
});

dual_test!(streams_answer_to_the_access_policy, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    // Not a member of checkout: refused at connect.
    let ali = app.signed_in("ali", &logins["ali"]).await;
    let refused = ali.get(app.url(&format!("/live?regions=feed:{}", checkout.id))).send().await.expect("GET");
    assert_eq!(refused.status(), 403);
    let anonymous = app.new_client();
    let refused = anonymous.get(app.url(&format!("/live?regions=feed:{}", checkout.id))).send().await.expect("GET");
    assert_eq!(refused.status(), 401);
    assert_eq!(app.get("/live?regions=nonsense:1").await.status(), 400);

    // A member whose membership ends while the stream is open receives nothing more.
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let mut stream = dashboard_stream(&app, &anna, "checkout").await;
    annotate(&app, &checkout, "Anna may still see this").await;
    assert!(!stream.events_within(Duration::from_millis(1000)).await.is_empty());
    let anna_id = app.scalar("SELECT id FROM actors WHERE handle = 'anna'").await;
    ihf::db::actors::revoke(&app.db, checkout.id, anna_id).await.expect("revoke");
    tokio::time::sleep(Duration::from_millis(300)).await;
    annotate(&app, &checkout, "Secret after removal").await;
    let events = stream.events_within(QUIET).await;
    assert!(events.iter().all(|e| !e.data.contains("Secret after removal")), "{events:?}");
});

dual_test!(stream_limits_answer_503_with_retry_after, |app| {
    let _ = &app;
    let limited = common::spawn_app_with(app.backend, |config| {
        config.live_max_per_ip = 2;
        config.live_heartbeat_secs = 1;
    })
    .await;
    let _one = SseClient::open(&limited, &limited.client, "/live?regions=hubs", None).await;
    let _two = SseClient::open(&limited, &limited.client, "/live?regions=hubs", None).await;
    let third = limited.get("/live?regions=hubs").await;
    assert_eq!(third.status(), 503);
    assert!(third.headers().contains_key("retry-after"));
    drop(_one);
    // The server notices the closed connection and frees the slot.
    let deadline = std::time::Instant::now() + WAIT;
    let mut status = 0;
    while std::time::Instant::now() < deadline {
        status =
            limited.new_client().get(limited.url("/live?regions=hubs")).send().await.expect("GET").status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "a closed stream gives its slot back");
});

/// Opens a stream with no regions and returns it with its token (from the `hello` event).
async fn empty_stream(app: &TestApp, client: &reqwest::Client) -> (SseClient, String) {
    let mut stream = SseClient::open(app, client, "/live", None).await;
    let _ = stream.next_event(Duration::from_millis(300)).await;
    let hello: serde_json::Value = serde_json::from_str(stream.hello.as_deref().expect("hello")).expect("json");
    let token = hello["stream"].as_str().expect("token").to_owned();
    assert!(hello["events"].as_array().is_some_and(|names| names.iter().any(|n| n == "feed")));
    (stream, token)
}

/// `POST /live/{token}` as the shared worker does; returns the status and the refused keys.
async fn change_regions(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, Vec<String>) {
    let response = client
        .post(app.url(&format!("/live/{token}")))
        .header("X-CSRF-Token", csrf)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let refused = match response.json::<serde_json::Value>().await {
        Ok(answer) => answer["refused"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    (status, refused)
}

dual_test!(a_region_added_again_while_on_the_stream_is_brought_to_what_the_tab_has, |app| {
    // The browser's worker sends one change at a time, but a stream may still hold a region a tab
    // adds (a remove overtaken by the add before it, or lost): the add says what that tab shows.
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let csrf = app.csrf(&olga, "/").await;
    let checkout = hub(&app, "checkout").await;
    let (mut stream, token) = empty_stream(&app, &olga).await;
    let feed = format!("feed:{}", checkout.id);
    let (status, _) = change_regions(&app, &olga, &csrf, &token, serde_json::json!({ "add": [{ "key": feed }] })).await;
    assert_eq!(status, 200);
    let first = until(&mut stream, WAIT, |e| e.event == "feed").await.expect("the current feed");
    let old = first.data.lines().next().and_then(|l| l.split(' ').nth(1)).expect("KEY HASH").to_owned();
    annotate(&app, &checkout, "Seen by the tab that stayed").await;
    assert!(until(&mut stream, WAIT, |e| e.data.contains("Seen by the tab that stayed")).await.is_some());

    // A tab showing the old HTML adds the region the stream still has: it gets the current one.
    let (status, refused) =
        change_regions(&app, &olga, &csrf, &token, serde_json::json!({ "add": [{ "key": feed, "hash": old }] })).await;
    assert_eq!((status, refused.len()), (200, 0));
    let again = until(&mut stream, WAIT, |e| e.event == "feed").await.expect("the feed again");
    assert!(again.data.contains("Seen by the tab that stayed"), "the whole current region or its new rows: {again:?}");
    // Still one region on the stream: later changes come once.
    annotate(&app, &checkout, "One more").await;
    let events = stream.events_within(QUIET).await;
    assert_eq!(names(&events).iter().filter(|n| **n == "feed").count(), 1, "{events:?}");
});

dual_test!(one_stream_adds_and_removes_regions_while_open, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let csrf = app.csrf(&olga, "/").await;
    let checkout = hub(&app, "checkout").await;
    let onboarding = hub(&app, "onboarding").await;
    let (mut stream, token) = empty_stream(&app, &olga).await;

    // Two tabs' regions on one stream; the keys carry no page position: the current HTML comes.
    let feed = format!("feed:{}", checkout.id);
    let (status, refused) =
        change_regions(&app, &olga, &csrf, &token, serde_json::json!({ "add": [{ "key": feed }] })).await;
    assert_eq!((status, refused.len()), (200, 0));
    let first = until(&mut stream, WAIT, |e| e.event == "feed").await.expect("the current feed");
    let (key, hash) = first.data.lines().next().and_then(|l| l.split_once(' ')).expect("KEY HASH");
    assert_eq!(key, feed);
    assert_eq!(hash.len(), 16);

    // Added again with the hash it has (a tab coming back): nothing to send.
    let (other_tab, _) = change_regions(
        &app,
        &olga,
        &csrf,
        &token,
        serde_json::json!({ "remove": [feed], "add": [{ "key": feed, "hash": hash }, { "key": format!("signals:{}", checkout.id), "hash": "0" }] }),
    )
    .await;
    assert_eq!(other_tab, 200);
    let events = stream.events_within(QUIET).await;
    assert_eq!(names(&events), ["signals"], "only the region whose HTML the client lacks: {events:?}");

    annotate(&app, &checkout, "Reaches the shared stream").await;
    assert!(until(&mut stream, WAIT, |e| e.data.contains("Reaches the shared stream")).await.is_some());

    // Removed: its updates stop.
    let (status, _) = change_regions(&app, &olga, &csrf, &token, serde_json::json!({ "remove": [feed] })).await;
    assert_eq!(status, 200);
    annotate(&app, &checkout, "After the tab left").await;
    let events = stream.events_within(QUIET).await;
    assert!(events.iter().all(|e| e.event != "feed"), "{events:?}");

    // Access is checked for every region added: a hub Anna may not read is refused, alone.
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let anna_csrf = app.csrf(&anna, "/").await;
    let (mut anna_stream, anna_token) = empty_stream(&app, &anna).await;
    let mine = format!("feed:{}", checkout.id);
    let theirs = format!("feed:{}", onboarding.id);
    let (status, refused) = change_regions(
        &app,
        &anna,
        &anna_csrf,
        &anna_token,
        serde_json::json!({ "add": [{ "key": mine }, { "key": theirs }, { "key": "nonsense:1" }] }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(refused, [theirs.clone(), "nonsense:1".to_owned()]);
    annotate(&app, &onboarding, "Onboarding only").await;
    let events = anna_stream.events_within(QUIET).await;
    assert!(events.iter().all(|e| !e.data.contains("Onboarding only")), "{events:?}");

    // Another session cannot change Olga's stream; an unknown stream is 404.
    let (status, _) =
        change_regions(&app, &anna, &anna_csrf, &token, serde_json::json!({ "add": [{ "key": mine }] })).await;
    assert_eq!(status, 403);
    let (status, _) =
        change_regions(&app, &olga, &csrf, "no-such-stream", serde_json::json!({ "add": [{ "key": mine }] })).await;
    assert_eq!(status, 404);
});

dual_test!(a_browser_taking_gzip_gets_the_same_events_compressed_and_a_complete_body, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let url = page_stream_url(&app, &olga, "/hubs/checkout").await;
    let mut plain = SseClient::open(&app, &olga, &url, None).await;
    let mut gzip = SseClient::open_gzip(&app, &olga, &url).await;
    // The later updates are compressed after the earlier ones (they refer back to them): each
    // still decodes to the same event.
    for n in 1..=3 {
        let body = format!("Compressed once for everyone, number {n}");
        annotate(&app, &checkout, &body).await;
        let wanted = |e: &common::SseEvent| e.data.contains(&body);
        let a = until(&mut plain, WAIT, wanted).await.expect("the plain stream gets the new row");
        let b = until(&mut gzip, WAIT, wanted).await.expect("the gzip stream gets the new row");
        assert_eq!((a.event, a.data), (b.event, b.data), "the same event, whatever the encoding");
    }

    // Signing out ends the stream; its body is a complete gzip member (trailer included).
    let csrf = app.csrf(&olga, "/").await;
    let out = olga.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.expect("logout");
    assert_eq!(out.status(), 303);
    let body = tokio::time::timeout(WAIT, gzip.gzip_body()).await.expect("the stream ends").expect("gzip");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).expect("a valid gzip body");
    assert!(text.starts_with("retry: 2000\n\nevent: hello\n"), "{text}");
    assert!(text.contains("Compressed once for everyone, number 3") && text.contains("event: session"), "{text}");
});

dual_test!(signing_out_or_a_revoked_session_ends_the_stream, |app| {
    let logins = app.seed_demo().await;
    // Sign-out through the form: this instance ends the stream at once.
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;
    let csrf = app.csrf(&olga, "/").await;
    let out = olga.post(app.url("/logout")).form(&[("csrf_token", csrf.as_str())]).send().await.expect("logout");
    assert_eq!(out.status(), 303);
    assert!(ends_within(&mut stream, WAIT).await, "signing out ends the stream");

    // Revoked in the database (another instance's sign-out, an operator, an expiry): within 5 s,
    // though stamped by a clock 10 s behind this one.
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL")
        .bind(ihf::db::now_ms() - 10_000)
        .execute(app.db.writer())
        .await
        .expect("revoke");
    assert!(ends_within(&mut stream, WAIT).await, "a revoked session's stream ends");

    let olga = app.signed_in("olga", &logins["olga"]).await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;
    sqlx::query("UPDATE sessions SET expires_at = $1 WHERE revoked_at IS NULL")
        .bind(ihf::db::now_ms() - 1)
        .execute(app.db.writer())
        .await
        .expect("expire");
    assert!(ends_within(&mut stream, WAIT).await, "an expired session's stream ends");

    // A new password signs the person out everywhere (what `ihf user set-password` does).
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;
    let olga_id = app.scalar("SELECT id FROM actors WHERE handle = 'olga'").await;
    ihf::db::sessions::revoke_all(&app.db, olga_id, ihf::db::now_ms()).await.expect("revoke all");
    assert!(ends_within(&mut stream, WAIT).await, "a password change's revocation ends the stream");
});

dual_test!(a_revoked_admin_stops_receiving_other_hubs_regions, |app| {
    let logins = app.seed_demo().await;
    let root: i64 = app.person("root", &[]).await;
    sqlx::query("UPDATE actors SET is_admin = 1 WHERE id = $1")
        .bind(root)
        .execute(app.db.writer())
        .await
        .expect("admin");
    let admin = app.signed_in("root", common::PASSWORD).await;
    let _ = logins;
    let checkout = hub(&app, "checkout").await;
    // An administrator sees every hub, members or not.
    let mut stream = dashboard_stream(&app, &admin, "checkout").await;
    annotate(&app, &checkout, "Seen by the admin").await;
    assert!(until(&mut stream, WAIT, |e| e.data.contains("Seen by the admin")).await.is_some());

    sqlx::query("UPDATE actors SET is_admin = 0 WHERE id = $1")
        .bind(root)
        .execute(app.db.writer())
        .await
        .expect("demote");
    assert!(ends_within(&mut stream, WAIT).await, "the stream opened with admin rights ends");
    annotate(&app, &checkout, "Not for the former admin").await;
    let events = stream.events_within(QUIET).await;
    assert!(events.iter().all(|e| !e.data.contains("Not for the former admin")), "{events:?}");
    // Reconnecting with the new rights: the hub's regions are refused.
    let refused = admin.get(app.url(&format!("/live?regions=feed:{}", checkout.id))).send().await.expect("GET");
    assert_eq!(refused.status(), 403);
});

mod postgres_only {
    use super::*;
    use ihf::db::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_through_one_instance_reaches_clients_of_another() {
        if !common::pg_enabled() {
            return;
        }
        let a = common::spawn_app(Backend::Postgres).await;
        let logins = a.seed_demo().await;
        let b = common::spawn_on(a.database_url.clone(), Backend::Postgres, |_| {}).await;
        let olga = b.signed_in("olga", &logins["olga"]).await;
        let mut stream = dashboard_stream(&b, &olga, "checkout").await;
        let checkout = hub(&a, "checkout").await;

        // Through instance A's store…
        annotate(&a, &checkout, "Written on instance A").await;
        let events = stream.events_within(Duration::from_millis(1500)).await;
        assert!(events.iter().any(|e| e.event == "feed" && e.data.contains("Written on instance A")), "{events:?}");

        // …and with plain SQL, as psql would.
        sqlx::query(
            "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
             VALUES ($1, $2, 1, 'Inserted by hand', $3, $4, $4)",
        )
        .bind(checkout.id)
        .bind(checkout.widget)
        .bind(checkout.category)
        .bind(ihf::db::now_ms())
        .execute(a.db.writer())
        .await
        .expect("plain insert");
        let events = stream.events_within(Duration::from_millis(1500)).await;
        assert!(events.iter().any(|e| e.data.contains("Inserted by hand")), "{events:?}");

        // Kill B's LISTEN connection: B's clients are resynced once it reconnects.
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_one(a.db.writer())
        .await
        .expect("terminate listeners");
        assert!(killed >= 1, "found the listener connections");
        // While the listeners are down, a write: its notification is lost…
        annotate(&a, &checkout, "Written while the listener was down").await;
        // …but the reconnect resyncs every region, so it arrives anyway.
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = false;
        while std::time::Instant::now() < deadline && !seen {
            let events = stream.events_within(Duration::from_millis(500)).await;
            seen = events.iter().any(|e| e.data.contains("Written while the listener was down"));
        }
        assert!(seen, "the client caught up after the listener reconnected");
    }

    /// Two writers commit out of sequence order around a page render: A takes its sequence
    /// number first but commits after B and after the page was rendered (at B's position). The
    /// page's stream must still get A's annotation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_committed_out_of_sequence_order_is_not_missed() {
        if !common::pg_enabled() {
            return;
        }
        let app = common::spawn_app(Backend::Postgres).await;
        let logins = app.seed_demo().await;
        let olga = app.signed_in("olga", &logins["olga"]).await;
        let checkout = hub(&app, "checkout").await;
        let insert = "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
                      VALUES ($1, $2, 1, $3, $4, $5, $5)";
        let mut a = app.db.writer().begin().await.expect("A begins");
        sqlx::query(insert)
            .bind(checkout.id)
            .bind(checkout.widget)
            .bind("Writer A, first in sequence, last to commit")
            .bind(checkout.category)
            .bind(ihf::db::now_ms())
            .execute(&mut *a)
            .await
            .expect("A inserts");
        sqlx::query(insert)
            .bind(checkout.id)
            .bind(checkout.widget)
            .bind("Writer B, committed first")
            .bind(checkout.category)
            .bind(ihf::db::now_ms())
            .execute(app.db.writer())
            .await
            .expect("B commits");
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The page: B's change is in, A's is not.
        let page = olga.get(app.url("/hubs/checkout")).send().await.expect("page").text().await.expect("body");
        assert!(page.contains("Writer B, committed first") && !page.contains("Writer A, first in sequence"));
        let url = common::text_attr(&page, "sse-connect=\"").expect("live").replace("&#38;", "&");
        a.commit().await.expect("A commits");
        // A's notification arrives and is dispatched before the stream opens: nobody watched.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut stream = SseClient::open(&app, &olga, &url, None).await;
        let caught_up =
            until(&mut stream, WAIT, |e| e.event == "feed" && e.data.contains("Writer A, first in sequence")).await;
        assert!(caught_up.is_some(), "the page's stream brings A's change");
    }
}

/// A person's id by handle.
async fn actor(app: &TestApp, handle: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor")
}

/// An annotation by `author` on the widget `widget_slug` of `hub`.
async fn annotate_as(app: &TestApp, hub: &Hub, widget_slug: &str, author: i64, body: &str) -> i64 {
    let widget: i64 = sqlx::query_scalar("SELECT id FROM widgets WHERE hub_id = $1 AND slug = $2")
        .bind(hub.id)
        .bind(widget_slug)
        .fetch_one(app.db.reader())
        .await
        .expect("widget");
    ihf::db::annotations::create(
        &app.db,
        &NewAnnotation {
            hub_id: hub.id,
            widget_id: widget,
            actor_id: author,
            body,
            category_id: hub.category,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation")
}

/// Whether a region event is the rows that changed (`KEY HASH BASE` first line), not the whole.
fn is_rows(event: &common::SseEvent) -> bool {
    event.data.lines().next().is_some_and(|head| head.split(' ').count() == 3)
}

dual_test!(staff_share_one_render_and_a_private_annotation_reaches_only_its_author_and_staff, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let mut streams = Vec::new();
    for handle in ["olga", "tomas", "wendy", "anna"] {
        let client = app.signed_in(handle, &logins[handle]).await;
        streams.push((handle, dashboard_stream(&app, &client, "checkout").await, client));
    }
    // Wendy (an annotator) writes on a private widget: she, the operator and the triager may read it.
    let wendy = actor(&app, "wendy").await;
    let body = "The fraud review queue shows my card number";
    annotate_as(&app, &checkout, "fraud-review", wendy, body).await;
    for (handle, stream, _) in &mut streams {
        let got = until(stream, if *handle == "anna" { Duration::from_millis(1500) } else { WAIT }, |e| {
            e.event == "feed" && e.data.contains(body)
        })
        .await;
        if *handle == "anna" {
            assert!(got.is_none(), "anna may not read a private widget's annotation: {got:?}");
        } else {
            let feed = got.unwrap_or_else(|| panic!("{handle} sees the new annotation"));
            // One new row: the rows that changed, not the whole feed (~13 KB).
            assert!(is_rows(&feed), "{handle}: {}", feed.data);
            assert!(feed.data.len() < 1200, "{handle}: {} bytes", feed.data.len());
            assert!(
                feed.data.matches("<li ").count() <= 2,
                "{handle}: the new row (and the load-more row): {}",
                feed.data
            );
        }
    }
    // Staff share one render, so the HTML is the same for both; Wendy's is her own.
    let page = |client: &reqwest::Client| {
        let url = app.url("/hubs/checkout/feed");
        let client = client.clone();
        async move { client.get(url).header("HX-Request", "true").send().await.expect("feed").text().await.expect("body") }
    };
    let (olga, tomas) = (page(&streams[0].2).await, page(&streams[1].2).await);
    assert_eq!(olga, tomas, "the staff audience sees the same feed");
    assert!(page(&streams[2].2).await.contains(body) && !page(&streams[3].2).await.contains(body));
});

dual_test!(a_member_removed_from_the_hub_stops_receiving_within_one_window, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let mut olga_stream = dashboard_stream(&app, &olga, "checkout").await;
    let mut tomas_stream = dashboard_stream(&app, &tomas, "checkout").await;
    let tomas_id = actor(&app, "tomas").await;
    sqlx::query("DELETE FROM hub_members WHERE hub_id = $1 AND actor_id = $2")
        .bind(checkout.id)
        .bind(tomas_id)
        .execute(app.db.writer())
        .await
        .expect("remove tomas");
    annotate(&app, &checkout, "Written after the triager left").await;
    assert!(
        until(&mut olga_stream, WAIT, |e| e.event == "feed" && e.data.contains("Written after the triager left"))
            .await
            .is_some(),
        "the operator still receives"
    );
    let events = tomas_stream.events_within(Duration::from_millis(1500)).await;
    assert!(
        !events.iter().any(|e| e.data.contains("Written after the triager left")),
        "a removed member receives nothing more: {events:?}"
    );
    assert!(events.iter().any(|e| e.event == "refused" && e.data.starts_with("feed:")), "told so: {events:?}");
});

// One triage board (one set of filters) is the same for all the hub's staff: a change renders it
// once for them all; a triager made an annotator is dropped from it and told so.
dual_test!(the_staff_share_one_render_of_a_triage_board_and_a_demoted_triager_leaves_it, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    // Filtered to the writes (the queue's first page holds the oldest new annotations).
    let board = "/hubs/checkout/triage?q=Queued";
    let mut olga_stream = page_stream(&app, &olga, board).await;
    let mut tomas_stream = page_stream(&app, &tomas, board).await;
    // Two viewers, two regions: two topics (one audience), not four.
    assert_eq!(app.handle.live().topics(), 2, "the operator and the triager share the board's topics");
    annotate(&app, &checkout, "Queued for the whole staff").await;
    let olga_queue =
        until(&mut olga_stream, WAIT, |e| e.event == "triage-queue" && e.data.contains("Queued for the whole staff"))
            .await
            .expect("the operator's board");
    let tomas_queue =
        until(&mut tomas_stream, WAIT, |e| e.event == "triage-queue" && e.data.contains("Queued for the whole staff"))
            .await
            .expect("the triager's board");
    assert_eq!(olga_queue.data, tomas_queue.data, "one render for the staff");

    let tomas_id = actor(&app, "tomas").await;
    sqlx::query("UPDATE hub_members SET role = 'annotator' WHERE hub_id = $1 AND actor_id = $2")
        .bind(checkout.id)
        .bind(tomas_id)
        .execute(app.db.writer())
        .await
        .expect("demote tomas");
    annotate(&app, &checkout, "Queued after the demotion").await;
    assert!(
        until(&mut olga_stream, WAIT, |e| e.event == "triage-queue" && e.data.contains("Queued after the demotion"))
            .await
            .is_some(),
        "the operator still receives"
    );
    let events = tomas_stream.events_within(Duration::from_millis(1500)).await;
    assert!(!events.iter().any(|e| e.data.contains("Queued after the demotion")), "{events:?}");
    assert!(events.iter().any(|e| e.event == "refused" && e.data.starts_with("triage-queue:")), "told so: {events:?}");
});

/// Opens a widget page as `client` and its stream (quiet at first).
async fn widget_stream(app: &TestApp, client: &reqwest::Client, path: &str) -> SseClient {
    let page = client.get(app.url(path)).send().await.expect("page").text().await.expect("body");
    let url = common::text_attr(&page, "sse-connect=\"").expect("the widget page is live").replace("&#38;", "&");
    let mut stream = SseClient::open(app, client, &url, None).await;
    let early = stream.events_within(Duration::from_millis(300)).await;
    assert!(early.is_empty(), "nothing changed since the page was rendered: {early:?}");
    stream
}

dual_test!(readers_of_a_thread_share_one_render_and_own_buttons_stay_personal, |app| {
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let path = "/hubs/checkout/widgets/payment-form";
    let mut streams = Vec::new();
    for handle in ["wendy", "anna", "olga"] {
        let client = app.signed_in(handle, &logins[handle]).await;
        streams.push((handle, widget_stream(&app, &client, path).await, client));
    }
    let wendy = actor(&app, "wendy").await;
    let body = "The card expiry field wants four digits";
    let id = annotate_as(&app, &checkout, "payment-form", wendy, body).await;
    let mut sent = Vec::new();
    for (handle, stream, _) in &mut streams {
        let event = until(stream, WAIT, |e| e.event == "thread" && e.data.contains(body))
            .await
            .unwrap_or_else(|| panic!("{handle} sees the new annotation"));
        assert!(is_rows(&event), "{handle}: only the new row: {}", event.data);
        assert!(event.data.contains(&format!("data-author=\"{wendy}\"")), "{}", event.data);
        assert!(!event.data.contains(&format!("annotations/{id}/edit")), "nobody's own buttons in the shared render");
        sent.push(event.data);
    }
    assert!(sent.windows(2).all(|w| w[0] == w[1]), "one render for every reader");
    // The page each gets on its own: the author's buttons on the author's row only.
    for (handle, _, client) in &streams {
        let html = client.get(app.url(&format!("{path}/thread"))).header("HX-Request", "true").send().await;
        let html = html.expect("thread").text().await.expect("body");
        assert!(html.contains(body));
        assert_eq!(html.contains(&format!("annotations/{id}/edit")), *handle == "wendy", "{handle}");
    }
    let page = streams[1].2.get(app.url(path)).send().await.expect("page").text().await.expect("body");
    assert!(page.contains("id=\"own-actions-template\""), "the page can add its viewer's buttons");
});

dual_test!(an_internal_reply_reaches_the_staffs_thread_live_and_no_one_else, |app| {
    // Staff share a thread render of their own: the internal replies only they read arrive live
    // there (and one a row change brings stays), while members' shared render never has them.
    let logins = app.seed_demo().await;
    let checkout = hub(&app, "checkout").await;
    let path = "/hubs/checkout/widgets/payment-form";
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let wendy_id = actor(&app, "wendy").await;
    let id = annotate_as(&app, &checkout, "payment-form", wendy_id, "The card form forgets my postcode").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut streams = Vec::new();
    for (handle, client) in [("olga", &olga), ("tomas", &tomas), ("wendy", &wendy)] {
        streams.push((handle, widget_stream(&app, client, path).await));
    }
    let csrf = app.csrf(&olga, path).await;
    let reply = |body: &'static str, internal: bool| {
        let (olga, app, csrf) = (&olga, &app, &csrf);
        async move {
            let mut form = vec![("body", body)];
            if internal {
                form.push(("internal", "1"));
            }
            let url = app.url(&format!("{path}/annotations/{id}/replies"));
            let response = olga.post(url).header("HX-Request", "true").header("X-CSRF-Token", csrf).form(&form).send();
            assert_eq!(response.await.expect("reply").status(), 200);
        }
    };
    reply("Velocity rule again, checking with fraud", true).await;
    for (handle, stream) in &mut streams[..2] {
        let event = until(stream, WAIT, |e| e.event == "thread" && e.data.contains("Velocity rule again")).await;
        assert!(event.is_some(), "{handle} (staff) sees the internal reply live");
    }
    let events = streams[2].1.events_within(Duration::from_millis(1500)).await;
    assert!(!events.iter().any(|e| e.data.contains("Velocity rule")), "the author never gets it: {events:?}");

    // A public reply changes the row again: staff keep the internal one, the author gets hers.
    reply("Thanks, we are on it", false).await;
    for (handle, stream) in &mut streams {
        let event = until(stream, WAIT, |e| e.event == "thread" && e.data.contains("Thanks, we are on it")).await;
        let event = event.unwrap_or_else(|| panic!("{handle} sees the public reply"));
        let staff = *handle != "wendy";
        assert_eq!(event.data.contains("Velocity rule again"), staff, "{handle}: {}", event.data);
    }
});
