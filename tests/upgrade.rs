//! Upgrading a database made by an earlier release: a database migrated to 0011 (the schema of
//! 2026-12-01) with people, a hub, a widget and feedback in it is opened by this release, which
//! applies the later migrations (replies and "me too", similar feedback, notifications) to it.
//! The old feedback is then found by the similar-feedback search (its index is built from the
//! rows already there), a reply to it notifies its author, and the server says it is ready.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::path::{Path, PathBuf};

use ihf::db::{Backend, Db};

/// The last migration of the release before replies and notifications.
const OLD_RELEASE: u32 = 11;

/// A folder holding the migrations of `backend` up to [`OLD_RELEASE`], as that release had them.
fn old_migrations(backend: Backend) -> PathBuf {
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    let to = std::env::temp_dir().join(format!("ihf-old-migrations-{dialect}-{}", std::process::id()));
    std::fs::create_dir_all(&to).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let number: u32 = name.split('_').next().and_then(|n| n.parse().ok()).expect("NNNN_name.sql");
        if number <= OLD_RELEASE {
            std::fs::copy(&path, to.join(&name)).unwrap();
            copied += 1;
        }
    }
    assert!(copied >= 8, "the old release's migrations are all there");
    to
}

const PASSWORD: &str = "upgrade-test-password";

/// Writes what people had written before the upgrade, with that release's columns only.
async fn old_data(db: &Db) -> i64 {
    let now = ihf::db::now_ms();
    let hash = ihf::auth::password::hash(PASSWORD).unwrap();
    let mut actors = Vec::new();
    for (handle, name) in [("alice", "Alice Old"), ("bob", "Bob Old"), ("carol", "Carol Old")] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO actors (handle, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(handle)
        .bind(name)
        .bind(&hash)
        .bind(now)
        .fetch_one(db.writer())
        .await
        .unwrap();
        actors.push(id);
    }
    let hub: i64 = sqlx::query_scalar(
        "INSERT INTO hubs (slug, name, created_at) VALUES ('legacy', 'Legacy checkout', $1) RETURNING id",
    )
    .bind(now)
    .fetch_one(db.writer())
    .await
    .unwrap();
    for (actor, role) in [(actors[0], "annotator"), (actors[1], "operator"), (actors[2], "annotator")] {
        sqlx::query("INSERT INTO hub_members (hub_id, actor_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(hub)
            .bind(actor)
            .bind(role)
            .bind(now)
            .execute(db.writer())
            .await
            .unwrap();
    }
    let widget: i64 = sqlx::query_scalar(
        "INSERT INTO widgets (hub_id, slug, name, policy_scope, embed_key, embed_secret, created_at)
         VALUES ($1, 'old-form', 'Old payment form', 'members', 'ek-upgrade', 'secret-upgrade', $2) RETURNING id",
    )
    .bind(hub)
    .bind(now)
    .fetch_one(db.writer())
    .await
    .unwrap();
    let category: i64 = sqlx::query_scalar(
        "INSERT INTO categories (hub_id, slug, label) VALUES ($1, 'friction', 'Friction') RETURNING id",
    )
    .bind(hub)
    .fetch_one(db.writer())
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
         VALUES ($1, $2, $3, 'The postcode field rejects valid postcodes', $4, $5, $5) RETURNING id",
    )
    .bind(hub)
    .bind(widget)
    .bind(actors[0])
    .bind(category)
    .bind(now)
    .fetch_one(db.writer())
    .await
    .unwrap()
}

async fn post(app: &common::TestApp, client: &reqwest::Client, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let csrf = app.csrf(client, "/").await;
    let response = client
        .post(app.url(path))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", csrf)
        .form(form)
        .send()
        .await
        .expect("POST");
    (response.status().as_u16(), response.text().await.expect("body"))
}

async fn upgrade(backend: Backend) {
    let url = common::fresh_database_url(backend).await;
    let db = Db::connect(&url, 2).await.expect("connect");
    let old = sqlx::migrate::Migrator::new(old_migrations(backend)).await.expect("the old migrations");
    old.run(db.writer()).await.expect("the old release's schema");
    let annotation = old_data(&db).await;
    db.close().await;

    // This release opens it and applies what is new.
    let app = common::spawn_on(url, backend, |_| {}).await;
    let ready = app.client.get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200, "every migration applied");
    let applied: i64 = app.scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").await;
    let shipped = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }))
    .unwrap()
    .count() as i64;
    assert_eq!(applied, shipped);

    // The old feedback is on its widget's page, and the similar-feedback search finds it.
    let page = "/hubs/legacy/widgets/old-form";
    let carol = app.signed_in("carol", PASSWORD).await;
    let html = carol.get(app.url(page)).send().await.expect("page").text().await.expect("body");
    assert!(html.contains("The postcode field rejects valid postcodes"), "{html}");
    let (status, similar) =
        post(&app, &carol, &format!("{page}/similar"), &[("body", "my postcode is rejected")]).await;
    assert_eq!(status, 200, "{similar}");
    assert!(similar.contains(&format!("id=\"similar-{annotation}\"")), "the old row is indexed: {similar}");

    // A reply to it (the operator's) reaches its author as a notification.
    let bob = app.signed_in("bob", PASSWORD).await;
    let (status, reply) = post(
        &app,
        &bob,
        &format!("{page}/annotations/{annotation}/replies"),
        &[("body", "Fixed in today's release, thanks")],
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let alice = app.signed_in("alice", PASSWORD).await;
    let notifications = alice.get(app.url("/notifications")).send().await.expect("page").text().await.expect("body");
    assert!(notifications.contains("Bob Old"), "the author hears back: {notifications}");
    app.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_release_is_upgraded_on_sqlite() {
    upgrade(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_previous_release_is_upgraded_on_postgres() {
    if !common::pg_enabled() {
        return;
    }
    upgrade(Backend::Postgres).await;
}
