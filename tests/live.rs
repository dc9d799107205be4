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
            status: "new",
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
    let page = client.get(app.url(&format!("/hubs/{slug}"))).send().await.expect("page").text().await.expect("body");
    let url =
        common::text_attr(&page, "sse-connect=\"").expect("the dashboard has a live stream").replace("&#38;", "&");
    assert!(url.starts_with("/live?regions="), "{url}");
    let mut stream = SseClient::open(app, client, &url, None).await;
    let early = stream.events_within(Duration::from_millis(300)).await;
    assert!(early.is_empty(), "nothing changed since the page was rendered: {early:?}");
    stream
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

    // A write that changes no HTML: the regions re-render, compare equal, and nothing is sent.
    sqlx::query(
        "UPDATE annotations SET version = version WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')",
    )
    .execute(app.db.writer())
    .await
    .expect("no-op update");
    assert!(stream.events_within(QUIET).await.is_empty(), "unchanged HTML is not sent");
});

dual_test!(a_burst_is_coalesced, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let checkout = hub(&app, "checkout").await;
    let mut stream = dashboard_stream(&app, &olga, "checkout").await;

    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for task in 0..10 {
        let db = app.db.clone();
        let (hub_id, widget_id, category_id) = (checkout.id, checkout.widget, checkout.category);
        tasks.push(tokio::spawn(async move {
            for n in 0..100 {
                let body = format!("burst {task}-{n}");
                ihf::db::annotations::create(
                    &db,
                    &NewAnnotation {
                        hub_id,
                        widget_id,
                        actor_id: 1,
                        body: &body,
                        category_id,
                        status: "new",
                        created_at: ihf::db::now_ms(),
                        idempotency_key: None,
                    },
                )
                .await
                .expect("insert");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let burst = started.elapsed();
    let events = stream.events_within(Duration::from_millis(1500)).await;
    // The bound: one render per region per coalescing window (50 ms in tests) while the burst
    // lasts, plus the flush after it, plus the poll interval's slack.
    let windows = (burst.as_millis() / 50) as usize + 3;
    let feed_events = events.iter().filter(|e| e.event == "feed").count();
    assert!(feed_events >= 1, "the burst shows up");
    assert!(feed_events <= windows, "{feed_events} feed renders for 1,000 inserts in {burst:?} (bound {windows})");
    assert!(events.len() <= 2 * windows, "{} events in all", events.len());
    let last_feed = events.iter().rev().find(|e| e.event == "feed").expect("feed");
    assert!(last_feed.data.contains("burst "), "last state wins");
});

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
}
