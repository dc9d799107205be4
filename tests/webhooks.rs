//! Webhooks: triggers enqueue exactly once per write, the worker delivers signed JSON to a
//! local receiver, retries after a 500, survives a restart, never sends twice with two
//! instances, and refuses private addresses unless allowed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{PASSWORD, TestApp};
use hmac::{Hmac, Mac};
use ihf::db::annotations::{self, NewAnnotation};
use ihf::db::{Backend, Db};
use sha2::Sha256;

const SECRET: &str = "test-secret-0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: String,
    at: Instant,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    /// Statuses to answer with, in order; 200 when empty.
    script: Mutex<VecDeque<u16>>,
    /// Never answer (well past the worker's request timeout).
    hang: bool,
}

/// A tiny webhook receiver on a random local port.
struct Receiver {
    url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_with(Shared::default()).await
    }

    /// A receiver that takes every request and never answers.
    async fn start_hanging() -> Self {
        Self::start_with(Shared { hang: true, ..Shared::default() }).await
    }

    async fn start_with(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(hook)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .expect("bind receiver");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self { url: format!("http://127.0.0.1:{port}/hook"), shared }
    }

    fn answer_with(&self, statuses: &[u16]) {
        self.shared.script.lock().expect("lock").extend(statuses);
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Waits until `n` requests arrived (or fails after `timeout`).
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "expected {n} deliveries, got {}: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn hook(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let status = shared.script.lock().expect("lock").pop_front().unwrap_or(200);
    shared.received.lock().expect("lock").push(Received {
        event: header("IHF-Event"),
        delivery: header("IHF-Delivery"),
        signature: header("IHF-Signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    if shared.hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish()
}

/// Verifies `IHF-Signature: t=…,v1=…` the way a receiver would, independently of IHF's code.
fn verify(signature: &str, body: &str, secret: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let age = ihf::db::now_ms() / 1000 - t.parse::<i64>().unwrap_or(0);
    if !(0..300).contains(&age) {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{body}").as_bytes());
    let Ok(expected) = hex::decode(v1) else { return false };
    mac.verify_slice(&expected).is_ok()
}

/// Ids of what an annotation needs.
struct Fixture {
    hub_id: i64,
    widget_id: i64,
    category_id: i64,
    author_id: i64,
}

async fn fixture(app: &TestApp) -> Fixture {
    let hub = ihf::db::hubs::create(&app.db, "checkout", "Checkout", "").await.expect("hub");
    ihf::db::hubs::create(&app.db, "onboarding", "Onboarding", "").await.expect("hub");
    app.person("olga", &[("checkout", "operator"), ("onboarding", "operator")]).await;
    let author_id = app.person("anna", &[("checkout", "annotator")]).await;
    let widget = ihf::db::widgets::create(
        &app.db,
        &ihf::db::widgets::NewWidget {
            hub_id: hub.id,
            slug: "cart",
            name: "Cart",
            description: "",
            owner_id: None,
            policy_scope: "members",
            allowed_origins: "",
        },
    )
    .await
    .expect("widget");
    let category_id = app.scalar_i64("SELECT id FROM categories WHERE slug = 'bug' AND hub_id = $1", hub.id).await;
    Fixture { hub_id: hub.id, widget_id: widget.id, category_id, author_id }
}

async fn annotate(db: &Db, f: &Fixture, body: &str) -> i64 {
    annotations::create(
        db,
        &NewAnnotation {
            hub_id: f.hub_id,
            widget_id: f.widget_id,
            actor_id: f.author_id,
            body,
            category_id: f.category_id,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation")
}

/// Creates a webhook through the settings form, as an operator does; returns the response.
async fn create_webhook(app: &TestApp, hub: &str, url: &str, events: &[&str]) -> reqwest::Response {
    let olga = app.signed_in("olga", PASSWORD).await;
    let page = format!("/hubs/{hub}/settings/webhooks");
    let csrf = app.csrf(&olga, &page).await;
    let mut form = vec![("url", url), ("secret", SECRET), ("csrf_token", csrf.as_str())];
    form.extend(events.iter().map(|e| ("events", *e)));
    olga.post(app.url(&page)).form(&form).send().await.expect("POST")
}

async fn deliveries_by_event(db: &Db) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT event, COUNT(*) FROM webhook_deliveries GROUP BY event")
        .fetch_all(db.reader())
        .await
        .expect("counts");
    rows.into_iter().collect()
}

fn allow_private(config: &mut ihf::Config) {
    config.webhook_allow_private = true;
    config.webhook_retry_base_ms = 300;
}

async fn spawn(backend: Backend) -> TestApp {
    common::spawn_app_with(backend, allow_private).await
}

mod signed_deliveries {
    use super::*;

    async fn run(backend: Backend) {
        let app = spawn(backend).await;
        let f = fixture(&app).await;
        let receiver = Receiver::start().await;
        let created =
            create_webhook(&app, "checkout", &receiver.url, &["annotation.created", "annotation.triaged"]).await;
        assert_eq!(created.status(), 201);
        let html = created.text().await.expect("body");
        assert!(html.contains(&format!("data-webhook-secret>{SECRET}<")), "the secret is shown once");

        let id = annotate(&app.db, &f, "The coupon field eats my code").await;
        let got = receiver.wait_for(1, Duration::from_secs(10)).await;
        let first = &got[0];
        assert_eq!(first.event, "annotation.created");
        assert!(verify(&first.signature, &first.body, SECRET), "signature verifies: {first:?}");
        assert!(!verify(&first.signature, &first.body, "another secret"));
        assert!(!verify(&first.signature, &first.body.replace("coupon", "COUPON"), SECRET), "a changed body fails");
        let json: serde_json::Value = serde_json::from_str(&first.body).expect("JSON body");
        assert_eq!(json["event"], "annotation.created");
        assert_eq!(json["hub"]["slug"], "checkout");
        assert_eq!(json["annotation"]["id"], id);
        assert_eq!(json["annotation"]["body"], "The coupon field eats my code");
        assert_eq!(json["annotation"]["widget"]["slug"], "cart");
        assert_eq!(json["annotation"]["category"], "bug");
        assert_eq!(json["annotation"]["author"]["display_name"], "anna");

        // Triaged: the status left 'new'. Body edits are not subscribed: nothing.
        sqlx::query("UPDATE annotations SET status = 'triaged' WHERE id = $1")
            .bind(id)
            .execute(app.db.writer())
            .await
            .expect("triage");
        sqlx::query("UPDATE annotations SET body = 'edited' WHERE id = $1")
            .bind(id)
            .execute(app.db.writer())
            .await
            .expect("edit");
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(got[1].event, "annotation.triaged");
        let json: serde_json::Value = serde_json::from_str(&got[1].body).expect("JSON");
        assert_eq!(
            (json["previous_status"].as_str(), json["annotation"]["status"].as_str()),
            (Some("new"), Some("triaged"))
        );
        assert!(verify(&got[1].signature, &got[1].body, SECRET));

        // The delivery log shows both, delivered; replay sends the same body again.
        let webhook_id = app.scalar("SELECT id FROM webhooks").await;
        let first_delivery = app.scalar("SELECT MIN(id) FROM webhook_deliveries").await;
        let olga = app.signed_in("olga", PASSWORD).await;
        let log_page = format!("/hubs/checkout/settings/webhooks/{webhook_id}");
        let log = olga.get(app.url(&log_page)).send().await.expect("GET").text().await.expect("body");
        assert!(log.contains(&format!("id=\"delivery-{first_delivery}\" class=\"delivery-delivered\"")), "{log}");
        assert!(!log.contains(SECRET), "the secret is not shown again");
        let csrf = app.csrf(&olga, &log_page).await;
        let replay = olga
            .post(app.url(&format!("{log_page}/deliveries/{first_delivery}/replay")))
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .expect("POST");
        assert_eq!(replay.status(), 303);
        let got = receiver.wait_for(3, Duration::from_secs(10)).await;
        assert_eq!(got[2].body, got[0].body, "a replay sends the recorded payload");
        assert_ne!(got[2].delivery, got[0].delivery, "as a new delivery of the log");
        assert!(verify(&got[2].signature, &got[2].body, SECRET));
        // The worker records the answer just after the receiver got the request.
        let deadline = Instant::now() + Duration::from_secs(5);
        while app.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered'").await < 3 {
            assert!(Instant::now() < deadline, "all three deliveries are recorded as delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    crate::dual_run!();
}

dual_test!(every_write_path_enqueues_exactly_once, |app| {
    let f = fixture(&app).await;
    let receiver = Receiver::start().await;
    // This test counts what the triggers enqueued (the worker, without the private-address
    // flag here, refuses to send to the local receiver: delivery is tested below).
    let all = ihf::db::webhooks::EVENTS.join(" ");
    let hook = ihf::db::webhooks::create(&app.db, f.hub_id, &receiver.url, &all, SECRET).await.expect("webhook");
    let archived = ihf::db::webhooks::create(&app.db, f.hub_id, &receiver.url, &all, SECRET).await.expect("webhook");
    ihf::db::webhooks::set_archived(&app.db, f.hub_id, archived.id, true).await.expect("archive");
    let other_hub = app.scalar("SELECT id FROM hubs WHERE slug = 'onboarding'").await;
    ihf::db::webhooks::create(&app.db, other_hub, &receiver.url, &all, SECRET).await.expect("webhook");

    // Through the store, as the server.
    let a = annotate(&app.db, &f, "first").await;
    // As the author, under Row Level Security on PostgreSQL (the role has no rights on the
    // webhook tables: the trigger must still enqueue).
    let mut tx = app.db.begin_write_as(Some(f.author_id), None).await.expect("tx");
    let now = ihf::db::now_ms();
    let b = annotations::insert(
        &mut tx,
        &NewAnnotation {
            hub_id: f.hub_id,
            widget_id: f.widget_id,
            actor_id: f.author_id,
            body: "second",
            category_id: f.category_id,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: now,
            idempotency_key: None,
        },
    )
    .await
    .expect("insert as author");
    sqlx::query("UPDATE annotations SET body = 'second, edited', updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(b)
        .execute(&mut *tx)
        .await
        .expect("edit as author");
    tx.commit().await.expect("commit");
    // Plain SQL, as psql would.
    sqlx::query("UPDATE annotations SET status = 'triaged' WHERE id = $1")
        .bind(a)
        .execute(app.db.writer())
        .await
        .expect("triage");
    // Not events: another status change after triage, an update that keeps body and status.
    sqlx::query("UPDATE annotations SET status = 'dismissed' WHERE id = $1")
        .bind(a)
        .execute(app.db.writer())
        .await
        .expect("dismiss");
    sqlx::query("UPDATE annotations SET updated_at = updated_at + 1, body = body WHERE id = $1")
        .bind(b)
        .execute(app.db.writer())
        .await
        .expect("touch");
    // A rolled-back write enqueues nothing.
    let mut tx = app.db.writer().begin().await.expect("tx");
    sqlx::query("UPDATE annotations SET body = 'never' WHERE id = $1").bind(a).execute(&mut *tx).await.expect("edit");
    tx.rollback().await.expect("rollback");
    // Candidates: proposed (created) and decided.
    let olga = ihf::db::actors::by_handle(&app.db, "olga").await.expect("olga").id;
    let mut tx = app.db.writer().begin().await.expect("tx");
    let candidate =
        ihf::db::candidates::propose(&mut tx, f.hub_id, olga, "Fix coupons", "Because", &[a]).await.expect("propose");
    tx.commit().await.expect("commit");
    let mut tx = app.db.writer().begin().await.expect("tx");
    ihf::db::candidates::decide(
        &mut tx,
        &ihf::db::candidates::Decision {
            hub_id: f.hub_id,
            candidate_id: candidate,
            actor_id: olga,
            from: ihf::db::candidates::Status::Proposed,
            to: ihf::db::candidates::Status::Accepted,
            rationale: "yes",
        },
    )
    .await
    .expect("decide");
    tx.commit().await.expect("commit");

    let counts = deliveries_by_event(&app.db).await;
    let expected: HashMap<String, i64> = [
        ("annotation.created", 2),
        ("annotation.updated", 1),
        ("annotation.triaged", 1),
        ("candidate.created", 1),
        ("candidate.decided", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counts, expected);
    let to_others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id <> $1")
        .bind(hook.id)
        .fetch_one(app.db.reader())
        .await
        .expect("count");
    assert_eq!(to_others, 0, "archived webhooks and other hubs' webhooks get nothing");
    let decided: String =
        sqlx::query_scalar("SELECT payload FROM webhook_deliveries WHERE event = 'candidate.decided'")
            .fetch_one(app.db.reader())
            .await
            .expect("payload");
    let decided: serde_json::Value = serde_json::from_str(&decided).expect("JSON");
    assert_eq!(
        (decided["previous_status"].as_str(), decided["candidate"]["status"].as_str()),
        (Some("proposed"), Some("accepted"))
    );
    assert_eq!(decided["candidate"]["title"], "Fix coupons");
});

mod retries {
    use super::*;

    async fn run(backend: Backend) {
        let app = spawn(backend).await;
        let f = fixture(&app).await;
        let receiver = Receiver::start().await;
        receiver.answer_with(&[500, 503]);
        assert_eq!(create_webhook(&app, "checkout", &receiver.url, &["annotation.created"]).await.status(), 201);
        annotate(&app.db, &f, "retry me").await;
        let got = receiver.wait_for(3, Duration::from_secs(15)).await;
        assert!(
            got.iter().all(|r| r.delivery == got[0].delivery && r.body == got[0].body),
            "one delivery, three attempts"
        );
        // Exponential: 300 ms after the first failure, 600 ms after the second.
        let first_wait = got[1].at - got[0].at;
        let second_wait = got[2].at - got[1].at;
        assert!(first_wait >= Duration::from_millis(280), "{first_wait:?}");
        assert!(second_wait >= Duration::from_millis(580), "{second_wait:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (state, attempts, status): (String, i64, Option<i64>) =
            sqlx::query_as("SELECT state, attempts, last_status FROM webhook_deliveries")
                .fetch_one(app.db.reader())
                .await
                .expect("delivery");
        assert_eq!((state.as_str(), attempts, status), ("delivered", 3, Some(200)));
        assert_eq!(receiver.received().len(), 3, "nothing more once delivered");
    }

    crate::dual_run!();
}

dual_test!(deliveries_give_up_after_a_day, |app| {
    let f = fixture(&app).await;
    let hook = ihf::db::webhooks::create(&app.db, f.hub_id, "http://127.0.0.1:9/hook", "annotation.created", SECRET)
        .await
        .expect("webhook");
    // A delivery enqueued a day ago whose next attempt fails: it is given up, not retried.
    let day_ago = ihf::db::now_ms() - ihf::clock::DAY_MS - 1000;
    sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at, attempts) VALUES ($1, 'annotation.created', '{}', $2, $2, 20)",
    )
    .bind(hook.id)
    .bind(day_ago)
    .execute(app.db.writer())
    .await
    .expect("old delivery");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String =
            sqlx::query_scalar("SELECT state FROM webhook_deliveries").fetch_one(app.db.reader()).await.expect("state");
        if state == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "still {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error: String = sqlx::query_scalar("SELECT last_error FROM webhook_deliveries")
        .fetch_one(app.db.reader())
        .await
        .expect("error");
    assert!(error.contains("refused") || error.contains("gave up"), "{error}");
});

dual_test!(private_addresses_are_refused_without_the_flag, |app| {
    // The default configuration: no private addresses.
    let f = fixture(&app).await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.as_str(),
        "http://localhost:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/hook",
        "http://[::1]/hook",
        "ftp://example.com/hook",
    ] {
        let refused = create_webhook(&app, "checkout", url, &["annotation.created"]).await;
        assert_eq!(refused.status(), 422, "{url}");
        let html = refused.text().await.expect("body");
        assert!(html.contains("id=\"url-error\""), "{url}: {html}");
        assert!(html.contains("annotation.created\" checked"), "what was typed stays");
    }
    let none = create_webhook(&app, "checkout", "https://example.com/hook", &[]).await;
    assert_eq!(none.status(), 422);
    assert!(none.text().await.expect("body").contains("id=\"events-error\""));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM webhooks").await, 0);

    // A private URL that reached the table anyway (configuration changed since) is not sent to.
    ihf::db::webhooks::create(&app.db, f.hub_id, &receiver.url, "annotation.created", SECRET).await.expect("webhook");
    annotate(&app.db, &f, "do not send").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String =
            sqlx::query_scalar("SELECT state FROM webhook_deliveries").fetch_one(app.db.reader()).await.expect("state");
        if state == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "still {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(receiver.received().is_empty(), "nothing reached the private address");

    // A host name that resolves to loopback is refused at connect time too (DNS rebinding).
    let hook = ihf::db::webhooks::create(&app.db, f.hub_id, "http://localhost:9/hook", "annotation.created", SECRET)
        .await
        .expect("webhook");
    annotate(&app.db, &f, "nor this").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT state, last_error FROM webhook_deliveries WHERE webhook_id = $1 AND attempts > 0")
                .bind(hook.id)
                .fetch_optional(app.db.reader())
                .await
                .expect("row");
        if let Some((_, Some(error))) = row {
            assert!(error.contains("no public address"), "{error}");
            break;
        }
        assert!(Instant::now() < deadline, "not attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
});

mod survives_a_restart {
    use super::*;

    async fn run(backend: Backend) {
        let database_url = common::fresh_database_url(backend).await;
        let receiver = Receiver::start().await;
        let config = || {
            let mut config = ihf::Config::for_tests(database_url.clone());
            allow_private(&mut config);
            config
        };
        // First life: set up, then stop the app.
        let app = ihf::Application::build(config()).await.expect("build");
        let db = app.db().clone();
        let shutdown = app.shutdown();
        let running = tokio::spawn(app.run_until_stopped());
        let hub = ihf::db::hubs::create(&db, "checkout", "Checkout", "").await.expect("hub");
        ihf::db::webhooks::create(&db, hub.id, &receiver.url, "annotation.created", SECRET).await.expect("webhook");
        shutdown.trigger();
        running.await.expect("join").expect("stopped cleanly");

        // While no server runs, a write enqueues (the queue is in the database).
        let offline = Db::connect(&database_url, 2).await.expect("connect");
        let author = ihf::db::actors::create_person(&offline, "anna", "Anna", None, false).await.expect("person");
        let widget = ihf::db::widgets::create(
            &offline,
            &ihf::db::widgets::NewWidget {
                hub_id: hub.id,
                slug: "cart",
                name: "Cart",
                description: "",
                owner_id: None,
                policy_scope: "members",
                allowed_origins: "",
            },
        )
        .await
        .expect("widget");
        let category: i64 = sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND slug = 'idea'")
            .bind(hub.id)
            .fetch_one(offline.reader())
            .await
            .expect("category");
        let f = Fixture { hub_id: hub.id, widget_id: widget.id, category_id: category, author_id: author };
        annotate(&offline, &f, "written while the server was down").await;
        // A delivery claimed by an instance that died before recording it: its lease ran out.
        annotate(&offline, &f, "claimed by a dead instance").await;
        sqlx::query("UPDATE webhook_deliveries SET attempts = 1, next_attempt_at = $1 WHERE id = (SELECT MAX(id) FROM webhook_deliveries)")
            .bind(ihf::db::now_ms() - 1)
            .execute(offline.writer())
            .await
            .expect("lease expired");
        offline.close().await;
        assert!(receiver.received().is_empty());

        // Second life: the new instance delivers both.
        let app = ihf::Application::build(config()).await.expect("build again");
        let shutdown = app.shutdown();
        let running = tokio::spawn(app.run_until_stopped());
        let got = receiver.wait_for(2, Duration::from_secs(10)).await;
        let mut bodies: Vec<String> = got
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.body).expect("JSON")["annotation"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        bodies.sort();
        assert_eq!(bodies, ["claimed by a dead instance", "written while the server was down"]);
        shutdown.trigger();
        running.await.expect("join").expect("stopped cleanly");
    }

    crate::dual_run!();
}

mod two_instances_never_send_twice {
    use super::*;

    const N: usize = 300;

    async fn run(backend: Backend) {
        let a = spawn(backend).await;
        let b = common::spawn_on(a.database_url.clone(), backend, allow_private).await;
        let f = fixture(&a).await;
        let receiver = Receiver::start().await;
        ihf::db::webhooks::create(&a.db, f.hub_id, &receiver.url, "annotation.created", SECRET).await.expect("webhook");
        // One transaction: N deliveries become due at once, and both workers race for them.
        let mut tx = a.db.writer().begin().await.expect("tx");
        for i in 0..N {
            annotations::insert(
                &mut tx,
                &NewAnnotation {
                    hub_id: f.hub_id,
                    widget_id: f.widget_id,
                    actor_id: f.author_id,
                    body: &format!("note {i}"),
                    category_id: f.category_id,
                    status: ihf::db::annotations::AnnotationStatus::New,
                    created_at: ihf::db::now_ms(),
                    idempotency_key: None,
                },
            )
            .await
            .expect("insert");
        }
        tx.commit().await.expect("commit");
        let got = receiver.wait_for(N, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got_after = receiver.received();
        assert_eq!(got_after.len(), N, "no delivery arrived twice");
        let mut ids: Vec<&str> = got.iter().map(|r| r.delivery.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), N);
        assert_eq!(
            a.scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'delivered' AND attempts = 1").await,
            N as i64
        );
        drop(b);
    }

    crate::dual_run!();
}

/// One receiver that hangs never delays another's deliveries: with a hanging endpoint beside
/// a healthy one, every delivery to the healthy one still arrives within a second of its
/// annotation (the worker used to send a batch and wait for all of it: 16 s p50).
mod a_hanging_receiver_delays_no_other {
    use super::*;

    async fn run(backend: Backend) {
        let app = spawn(backend).await;
        let f = fixture(&app).await;
        let hanging = Receiver::start_hanging().await;
        let healthy = Receiver::start().await;
        assert_eq!(create_webhook(&app, "checkout", &hanging.url, &["annotation.created"]).await.status(), 201);
        assert_eq!(create_webhook(&app, "checkout", &healthy.url, &["annotation.created"]).await.status(), 201);
        const N: usize = 12;
        let mut written = Vec::new();
        for i in 0..N {
            annotate(&app.db, &f, &format!("Annotation {i} while one receiver hangs")).await;
            written.push(Instant::now());
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let got = healthy.wait_for(N, Duration::from_secs(10)).await;
        let mut latencies: Vec<Duration> = got
            .iter()
            .map(|r| {
                let json: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
                let body = json["annotation"]["body"].as_str().expect("body").to_owned();
                let i: usize = body.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("number");
                r.at.saturating_duration_since(written[i])
            })
            .collect();
        latencies.sort();
        let (p50, max) = (latencies[N / 2], latencies[N - 1]);
        eprintln!("healthy receiver beside a hanging one ({backend:?}): p50 {p50:?}, max {max:?}");
        assert!(max < Duration::from_secs(1), "a healthy receiver's deliveries arrive within a second: {latencies:?}");
        // The hanging one got its share, no more than the per-endpoint limit at a time.
        assert!(hanging.received().len() <= ihf::webhooks::worker::PER_ENDPOINT, "{:?}", hanging.received().len());
    }

    crate::dual_run!();
}
