//! The foundation: pages and fragments, counts, errors, health, migrations and the demo.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;

use common::{TestApp, section, text_after};
use ihf::db::Backend;

async fn admin(app: &TestApp) -> (reqwest::Client, HashMap<String, String>) {
    let logins = app.seed_demo().await;
    let client = app.signed_in("admin", &logins["admin"]).await;
    (client, logins)
}

async fn get(client: &reqwest::Client, app: &TestApp, path: &str, htmx: bool) -> (u16, Option<String>, String) {
    let mut request = client.get(app.url(path));
    if htmx {
        request = request.header("HX-Request", "true");
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    let vary = response.headers().get("vary").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, vary, response.text().await.expect("body"))
}

dual_test!(every_page_is_a_full_page_or_a_fragment, |app| {
    let (client, _) = admin(&app).await;
    for path in [
        "/",
        "/hubs",
        "/hubs/checkout",
        "/hubs/checkout/widgets-panel",
        "/hubs/checkout/signals",
        "/hubs/checkout/feed",
        "/login",
    ] {
        let (status, vary, full) = get(&client, &app, path, false).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(vary.as_deref(), Some("HX-Request"), "{path}: Vary");
        assert!(full.starts_with("<!doctype html>"), "{path}: full page");
        assert!(full.contains("</html>"));

        let (status, vary, fragment) = get(&client, &app, path, true).await;
        assert_eq!(status, 200, "{path} (htmx)");
        assert_eq!(vary.as_deref(), Some("HX-Request"), "{path} (htmx): Vary");
        assert!(!fragment.contains("<html"), "{path}: a fragment has no layout");
        assert!(!fragment.trim().is_empty(), "{path}: fragment is not empty");

        // A history restore says HX-Request too, but needs the whole page.
        let restore = client
            .get(app.url(path))
            .header("HX-Request", "true")
            .header("HX-History-Restore-Request", "true")
            .send()
            .await
            .expect("GET");
        assert!(restore.text().await.expect("body").starts_with("<!doctype html>"), "{path}: history restore");
    }
});

dual_test!(dashboard_fragment_is_the_page_content, |app| {
    let (client, _) = admin(&app).await;
    let (_, _, full) = get(&client, &app, "/hubs/checkout", false).await;
    let (_, _, fragment) = get(&client, &app, "/hubs/checkout", true).await;
    assert!(full.contains(fragment.trim()), "the fragment is exactly the page's content block");
    for region in ["region-widgets", "region-signals", "region-feed"] {
        assert!(fragment.contains(region), "{region}");
    }
});

dual_test!(dashboard_counts_match_the_database, |app| {
    let (client, _) = admin(&app).await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let since = ihf::db::now_ms() - ihf::clock::DAY_MS + 60_000; // a minute of slack
    let widgets: Vec<(i64, String)> = sqlx::query_as("SELECT id, slug FROM widgets WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_all(app.db.reader())
        .await
        .expect("widgets");
    assert_eq!(widgets.len(), 5);
    let (_, _, html) = get(&client, &app, "/hubs/checkout/widgets-panel", true).await;
    for (id, slug) in widgets {
        let row = section(&html, &format!("widget-{id}"), "</tr>").unwrap_or_else(|| panic!("row of {slug}"));
        let count = |sql: &'static str| {
            let db = app.db.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(db.reader()).await.expect("count") }
        };
        let total = count("SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL").await;
        let new =
            count("SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL AND status = 'new'")
                .await;
        let events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1 AND occurred_at >= $2")
                .bind(id)
                .bind(since)
                .fetch_one(app.db.reader())
                .await
                .expect("events");
        assert_eq!(text_after(row, "data-stat=\"total\">"), Some(total.to_string().as_str()), "{slug} total");
        assert_eq!(text_after(row, "data-stat=\"new\">"), Some(new.to_string().as_str()), "{slug} new");
        let shown: i64 = text_after(row, "data-stat=\"events\">").and_then(|t| t.parse().ok()).expect("events shown");
        assert!((events - shown).abs() <= 2, "{slug} events: {shown} shown, {events} counted");
        assert!(total > 0 && events > 0, "the demo gives {slug} feedback and events");
    }

    // The hubs index: awaiting triage = annotations with status new.
    let (_, _, index) = get(&client, &app, "/hubs", true).await;
    let awaiting = app.scalar("SELECT COUNT(*) FROM annotations a JOIN hubs h ON h.id = a.hub_id WHERE h.slug = 'checkout' AND a.status = 'new' AND a.deleted_at IS NULL").await;
    let card = section(&index, &format!("hub-{hub_id}"), "</li>").expect("hub card");
    assert_eq!(text_after(card, "data-stat=\"awaiting\">"), Some(awaiting.to_string().as_str()));
    assert_eq!(text_after(card, "data-stat=\"widgets\">"), Some("5"));
});

dual_test!(signals_show_the_twenty_most_recent_events, |app| {
    let (client, _) = admin(&app).await;
    let (_, _, html) = get(&client, &app, "/hubs/checkout/signals", true).await;
    let newest: Vec<i64> = sqlx::query_scalar(
        "SELECT e.id FROM interaction_events e JOIN hubs h ON h.id = e.hub_id WHERE h.slug = 'checkout'
         ORDER BY e.occurred_at DESC, e.id DESC LIMIT 20",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("events");
    assert_eq!(html.matches("class=\"signal ").count(), 20);
    for id in newest {
        assert!(html.contains(&format!("id=\"event-{id}\"")), "event {id} shown");
    }
});

dual_test!(feed_pages_with_load_more, |app| {
    let (client, _) = admin(&app).await;
    let (_, _, first) = get(&client, &app, "/hubs/checkout/feed", true).await;
    assert_eq!(first.matches("class=\"annotation ").count(), 20);
    let next = common::text_attr(&first, "hx-get=\"/hubs/checkout/feed?before=").expect("load more link");
    let (status, _, second) = get(&client, &app, &format!("/hubs/checkout/feed?before={next}"), true).await;
    assert_eq!(status, 200);
    assert_eq!(second.matches("class=\"annotation ").count(), 20);
    let first_ids: Vec<&str> = first.match_indices("id=\"annotation-").map(|(i, _)| &first[i..i + 24]).collect();
    for id in first_ids {
        assert!(!second.contains(id), "pages do not overlap");
    }
    let (status, _, _) = get(&client, &app, "/hubs/checkout/feed?before=nonsense", true).await;
    assert_eq!(status, 400);
});

dual_test!(unknown_hub_is_404_page_or_fragment, |app| {
    let (client, _) = admin(&app).await;
    let (status, vary, page) = get(&client, &app, "/hubs/no-such-hub", false).await;
    assert_eq!(status, 404);
    assert_eq!(vary.as_deref(), Some("HX-Request"));
    assert!(page.starts_with("<!doctype html>") && page.contains("Hub not found"));
    let (status, _, fragment) = get(&client, &app, "/hubs/no-such-hub/widgets-panel", true).await;
    assert_eq!(status, 404);
    assert!(!fragment.contains("<html") && fragment.contains("Hub not found"));
    let (status, _, _) = get(&client, &app, "/no/such/page", false).await;
    assert_eq!(status, 404);
});

// Liveness stays up (a server whose database is down must not be restarted for it);
// readiness follows the database (issue #13).
dual_test!(readyz_follows_the_database_healthz_stays_alive, |app| {
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.db.close().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
});

dual_test!(database_down_gives_a_clear_503, |app| {
    app.db.close().await;
    let response = app.get("/hubs/checkout").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body = response.text().await.expect("body");
    assert!(body.contains("Temporarily unavailable") && body.contains("Try again"), "{body}");
    let response = app.get_htmx("/hubs/checkout/widgets-panel").await;
    assert_eq!(response.status(), 503);
    assert!(!response.text().await.expect("body").contains("<html"));
});

dual_test!(migrations_and_demo_seeding_are_idempotent, |app| {
    app.db.migrate().await.expect("second migration run");
    app.seed_demo().await;
    let counts = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let mut out = Vec::new();
            for sql in [
                "SELECT COUNT(*) FROM hubs",
                "SELECT COUNT(*) FROM widgets",
                "SELECT COUNT(*) FROM actors",
                "SELECT COUNT(*) FROM interaction_events",
                "SELECT COUNT(*) FROM annotations",
                "SELECT COUNT(*) FROM requirement_candidates",
                "SELECT COUNT(*) FROM ledger_entries",
            ] {
                out.push(sqlx::query_scalar::<_, i64>(sql).fetch_one(db.reader()).await.expect("count"));
            }
            out
        }
    };
    let before = counts(&app).await;
    assert!(before[0] >= 2 && before[1] >= 8 && before[3] >= 2000 && before[4] >= 150 && before[5] >= 3, "{before:?}");
    assert!(ihf::demo::seed(&app.db).await.expect("seed again").is_none());
    app.db.migrate().await.expect("third migration run");
    assert_eq!(before, counts(&app).await);
    let scopes: Vec<String> = sqlx::query_scalar("SELECT DISTINCT policy_scope FROM widgets ORDER BY policy_scope")
        .fetch_all(app.db.reader())
        .await
        .expect("scopes");
    assert_eq!(scopes, ["members", "private", "public"]);
    let roles: Vec<String> = sqlx::query_scalar("SELECT DISTINCT role FROM hub_members ORDER BY role")
        .fetch_all(app.db.reader())
        .await
        .expect("roles");
    assert_eq!(roles, ["annotator", "operator", "triager"]);
    let report = ihf::db::ledger::verify_all(&app.db, None).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);
});

dual_test!(static_assets_are_cached_and_versioned, |app| {
    let page = app.get("/login").await.text().await.expect("body");
    let css = common::text_attr(&page, "href=\"/static/app.css?v=").expect("versioned css");
    let response = app.get(&format!("/static/app.css?v={css}")).await;
    assert_eq!(response.status(), 200);
    let cache = response.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cache.contains("max-age=31536000") && cache.contains("immutable"), "{cache}");
    // The live stream is live.js's (one per browser, #15); htmx's SSE extension is no longer linked.
    assert!(page.contains(&format!("/static/live.js?v={css}")));
    for vendored in ["htmx-2.0.11.min.js", "idiomorph-ext-0.8.0.min.js"] {
        assert!(page.contains(vendored));
        assert_eq!(app.get(&format!("/static/vendor/{vendored}")).await.status(), 200);
    }
});

/// 50 concurrent writers, 20 writes each, on SQLite: no `database is locked`, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers_lose_nothing() {
    let app = common::spawn_app(Backend::Sqlite).await;
    let hub = ihf::db::hubs::create(&app.db, "load", "Load", "").await.expect("hub");
    let actor = app.person("writer", &[("load", "annotator")]).await;
    let widget = common::public_widget(&app.db, hub.id, "w").await;
    let category = app.scalar("SELECT MIN(id) FROM categories").await;
    let mut tasks = Vec::new();
    for writer in 0..50 {
        let db = app.db.clone();
        let (hub_id, widget_id) = (hub.id, widget.id);
        tasks.push(tokio::spawn(async move {
            for n in 0..20 {
                let body = format!("writer {writer} note {n}");
                ihf::db::annotations::create(
                    &db,
                    &ihf::db::annotations::NewAnnotation {
                        hub_id,
                        widget_id,
                        actor_id: actor,
                        body: &body,
                        category_id: category,
                        status: ihf::db::annotations::AnnotationStatus::New,
                        created_at: ihf::db::now_ms(),
                        idempotency_key: None,
                    },
                )
                .await
                .map_err(|e| format!("{e:?}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("no write may fail");
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM annotations").await, 1000);
}

/// SQLite: the WAL is copied into the database file in the background, well before the
/// writer's own checkpoint threshold (16,000 pages) is reached.
#[tokio::test]
async fn sqlite_checkpoints_the_wal_in_the_background() {
    let url = common::fresh_database_url(Backend::Sqlite).await;
    let path = std::path::PathBuf::from(url.trim_start_matches("sqlite://"));
    let db = ihf::db::Db::connect(&url, 2).await.expect("connect");
    db.migrate().await.expect("migrate");
    let hub = ihf::db::hubs::create(&db, "wal", "WAL", "").await.expect("hub");
    let widget = common::public_widget(&db, hub.id, "w").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let payload = format!("{{\"note\":\"{}\"}}", "x".repeat(200));
    let events: Vec<ihf::db::events::NewEvent> = (0..5_000)
        .map(|i| ihf::db::events::NewEvent {
            hub_id: hub.id,
            widget_id: widget.id,
            kind: "view",
            actor_id: None,
            occurred_at: ihf::db::now_ms() - i,
            payload: payload.clone(),
        })
        .collect();
    assert_eq!(ihf::db::events::insert(&db, &events).await.expect("insert"), 5_000);
    // About 1.5 MB went to the WAL: a few hundred pages, far below the writer's threshold.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while size() < before + 1_000_000 {
        assert!(std::time::Instant::now() < deadline, "the WAL was not checkpointed ({} → {} bytes)", before, size());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    db.close().await;
}

// The demo is coherent (issue #20): everyone who can sign in and wrote feedback is a member of
// that widget's hub (and may read that widget), and each text is about the widget it is on.
dual_test!(the_demo_feedback_fits_its_widgets_and_its_authors_can_read_it, |app| {
    app.seed_demo().await;
    let strangers: i64 = app
        .scalar(
            "SELECT COUNT(*) FROM annotations a JOIN actors p ON p.id = a.actor_id JOIN widgets w ON w.id = a.widget_id
              WHERE p.password_hash IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = a.hub_id AND m.actor_id = p.id)",
        )
        .await;
    assert_eq!(strangers, 0, "an author without access to the hub appears there");
    let private_strangers: i64 = app
        .scalar(
            "SELECT COUNT(*) FROM annotations a JOIN actors p ON p.id = a.actor_id JOIN widgets w ON w.id = a.widget_id
               JOIN hub_members m ON m.hub_id = a.hub_id AND m.actor_id = p.id
              WHERE w.policy_scope = 'private' AND m.role = 'annotator' AND w.owner_id IS DISTINCT FROM p.id",
        )
        .await;
    assert_eq!(private_strangers, 0, "an annotator wrote on a private widget they cannot read");
    let off_topic: i64 = app
        .scalar(
            "SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id
              WHERE (w.slug IN ('signup-wizard', 'workspace-invite', 'product-tour', 'billing-setup')
                     AND (a.body LIKE '%cart%' OR a.body LIKE '%promo%' OR a.body LIKE '%card%'))
                 OR (w.slug = 'cart-summary' AND (a.body LIKE '%tour%' OR a.body LIKE '%workspace%'))",
        )
        .await;
    assert_eq!(off_topic, 0, "feedback about another widget");
    let widgets_with_feedback: i64 = app.scalar("SELECT COUNT(DISTINCT widget_id) FROM annotations").await;
    let widgets: i64 = app.scalar("SELECT COUNT(*) FROM widgets").await;
    assert_eq!(widgets_with_feedback, widgets, "every demo widget has feedback");
});

dual_test!(taken_slugs_are_typed_and_an_unexpected_unique_violation_is_409, |app| {
    use actix_web::ResponseError;
    use ihf::db::StoreError;
    use ihf::error::AppError;

    ihf::db::hubs::create(&app.db, "conflicts", "Conflicts", "").await.expect("hub");
    let again = ihf::db::hubs::create(&app.db, "conflicts", "Again", "").await.expect_err("taken");
    assert!(matches!(again, StoreError::SlugTaken), "{again:?}");
    assert_eq!(AppError::from(again).status_code().as_u16(), 409);

    // A unique violation no caller maps (the membership's primary key, written twice).
    let ana = app.person("conflicts-ana", &[]).await;
    let member = "INSERT INTO hub_members (hub_id, actor_id, role, created_at)
                  SELECT h.id, $1, 'annotator', 0 FROM hubs h WHERE h.slug = 'conflicts'";
    sqlx::query(member).bind(ana).execute(app.db.writer()).await.expect("first membership");
    let twice: StoreError = sqlx::query(member).bind(ana).execute(app.db.writer()).await.expect_err("second").into();
    assert!(matches!(twice, StoreError::Conflict { .. }), "{twice:?}");
    assert_eq!(AppError::from(twice).status_code().as_u16(), 409, "a conflict, never a 500");
});
