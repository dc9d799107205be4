//! The data API: its OpenAPI document walked and called, API keys, listings, writes and their
//! rules, CORS, event ingestion (validation, 413, 429), the subscription stream, and isolation
//! probes between tenants, on both databases; on PostgreSQL also with the application's own
//! checks switched off, proving Row Level Security holds alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;
mod embed_support;

use std::collections::HashSet;
use std::time::Duration;

use common::TestApp;
use embed_support::{LIVE, SseReader, count, host_token, visitor_token, widget};
use ihf::db::Backend;
use ihf::db::annotations::{self, NewAnnotation};
use ihf::db::api_keys;
use reqwest::Method;
use serde_json::{Value, json};

async fn actor(app: &TestApp, handle: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor")
}

/// A live API key of the hub made by `handle`.
async fn api_key(app: &TestApp, hub_id: i64, handle: &str) -> String {
    api_keys::create(&app.db, hub_id, "tests", actor(app, handle).await).await.expect("key").1
}

async fn call(app: &TestApp, method: Method, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create(app: &TestApp, key: &str, bearer: &str, body: &str) -> Value {
    let (status, json) =
        call(app, Method::POST, &format!("/api/v1/widgets/{key}/annotations"), bearer, Some(json!({ "body": body })))
            .await;
    assert_eq!(status, 201, "{json}");
    json
}

/// An annotation by `handle` on the widget `slug`, written through the store.
async fn by_someone_else(app: &TestApp, slug: &str, handle: &str, body: &str) -> i64 {
    let (widget_id, hub_id, _, _) = widget(app, slug).await;
    let category_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    let new = NewAnnotation {
        hub_id,
        widget_id,
        actor_id: actor(app, handle).await,
        body,
        category_id,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: ihf::db::now_ms(),
        idempotency_key: None,
    };
    annotations::create(&app.db, &new).await.expect("annotation")
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"].as_array().expect("items").iter().map(|a| a["id"].as_i64().expect("id")).collect()
}

/// The `required` keys of a `$ref`'d schema are in `body`.
fn check_schema(doc: &Value, schema: &Value, body: &Value, what: &str) {
    let Some(reference) = schema["$ref"].as_str() else { return };
    let name = reference.rsplit('/').next().expect("schema name");
    for field in doc["components"]["schemas"][name]["required"].as_array().into_iter().flatten() {
        let field = field.as_str().expect("field");
        assert!(body.get(field).is_some(), "{what}: {name}.{field} is documented as required but missing in {body}");
    }
}

dual_test!(openapi_document_matches_the_routes, |app| {
    app.seed_demo().await;
    let (_, hub, key, _) = widget(&app, "cart-summary").await;
    let bearer = api_key(&app, hub, "olga").await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("document");
    assert_eq!(doc["openapi"], "3.1.0");
    let base = doc["servers"][0]["url"].as_str().expect("server url").to_owned();
    let mut called = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let mut url = format!("{base}{path}").replace("{embed_key}", &key);
            if url.contains("{id}") {
                // A fresh annotation of the key's operator, so every operation on it is allowed;
                // support is given to someone else's.
                let id = if path.ends_with("/support") {
                    by_someone_else(&app, "cart-summary", "wendy", "Supported in the OpenAPI walk.").await
                } else {
                    create(&app, &key, &bearer, "Made for the OpenAPI walk.").await["id"].as_i64().expect("id")
                };
                url = url.replace("{id}", &id.to_string());
                if url.contains("{reply_id}") {
                    let replies = format!("/api/v1/widgets/{key}/annotations/{id}/replies");
                    let (status, reply) =
                        call(&app, Method::POST, &replies, &bearer, Some(json!({"body": "A reply to edit."}))).await;
                    assert_eq!(status, 201, "{reply}");
                    url = url.replace("{reply_id}", &reply["id"].to_string());
                }
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = app.client.request(method.clone(), app.url(&url)).bearer_auth(&bearer);
            if let Some(example) = operation["requestBody"]["content"]["application/json"].get("example") {
                request = request.json(example);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16().to_string();
            let what = format!("{method} {path}");
            assert!(status.starts_with('2'), "{what} answered {status}");
            let documented = &operation["responses"][&status];
            assert!(documented.is_object(), "{what}: status {status} is not documented");
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            if content_type.starts_with("text/event-stream") {
                assert!(documented["content"].get("text/event-stream").is_some(), "{what}: stream not documented");
                let first = SseReader::new(response).next(LIVE).await.expect("a first event");
                assert_eq!(first.event, "snapshot");
            } else if status != "204" {
                assert!(content_type.starts_with("application/json"), "{what}: {content_type}");
                let body: Value = response.json().await.expect("JSON");
                check_schema(&doc, &documented["content"]["application/json"]["schema"], &body, &what);
            }
            called.push(what);
        }
    }
    assert_eq!(called.len(), 16, "every operation was called: {called:?}");

    // Errors have the documented shape.
    let (status, error) = call(&app, Method::GET, "/api/v1/widgets/no-such-key", &bearer, None).await;
    assert_eq!(status, 404);
    check_schema(&doc, &json!({"$ref": "#/components/schemas/Error"}), &error, "error");
    assert_eq!(error["error"], "not_found");
});

dual_test!(api_keys_are_made_by_operators_shown_once_and_revoked_at_once, |app| {
    let logins = app.seed_demo().await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let page_url = "/hubs/checkout/settings/api-keys";
    let page = olga.get(app.url(page_url)).send().await.expect("page");
    assert_eq!(page.status(), 200);
    let csrf = common::csrf_from(&page.text().await.expect("body"));

    // A mistake keeps what was typed.
    let long = "x".repeat(81);
    let refused = olga
        .post(app.url(page_url))
        .form(&[("name", long.as_str()), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("body").contains(&long));

    let made = olga
        .post(app.url(page_url))
        .form(&[("name", "Nightly export"), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(made.status(), 201);
    let html = made.text().await.expect("body");
    let key = common::text_attr(&html, "<code id=\"new-api-key\">")
        .map(|k| k.split('<').next().unwrap_or_default().to_owned());
    let key = key.expect("the key is shown");
    assert!(key.starts_with("ihf_"));
    let stored: String =
        sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE hub_id = $1 AND name = 'Nightly export'")
            .bind(hub_id)
            .fetch_one(app.db.reader())
            .await
            .expect("stored");
    assert_ne!(stored, key, "stored hashed");
    assert_eq!(stored, ihf::crypto::sha256_hex(key.as_bytes()));
    let again = olga.get(app.url(page_url)).send().await.expect("page").text().await.expect("body");
    assert!(!again.contains(&key), "shown once only");
    assert!(again.contains("Nightly export"));

    // The key reaches its hub's widgets only.
    let (status, widgets) = call(&app, Method::GET, "/api/v1/widgets", &key, None).await;
    assert_eq!(status, 200);
    let hubs: HashSet<&str> =
        widgets["items"].as_array().expect("items").iter().map(|w| w["hub"].as_str().expect("hub")).collect();
    assert_eq!(hubs, HashSet::from(["checkout"]));

    // Others may not make or revoke keys; nothing changes.
    let anna = app.signed_in("anna", &logins["anna"]).await;
    assert_eq!(anna.get(app.url(page_url)).send().await.expect("page").status(), 403);
    let anna_csrf = app.csrf(&anna, "/hubs/checkout").await;
    let before = count(&app, "SELECT COUNT(*) FROM api_keys WHERE hub_id = $1", hub_id).await;
    let denied =
        anna.post(app.url(page_url)).form(&[("name", "mine"), ("csrf_token", &anna_csrf)]).send().await.expect("post");
    assert_eq!(denied.status(), 403);
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'Nightly export'")
        .fetch_one(app.db.reader())
        .await
        .expect("id");
    let revoke_url = format!("{page_url}/{key_id}/revoke");
    let denied = anna.post(app.url(&revoke_url)).form(&[("csrf_token", &anna_csrf)]).send().await.expect("post");
    assert_eq!(denied.status(), 403);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM api_keys WHERE hub_id = $1 AND revoked_at IS NULL", hub_id).await,
        before
    );
    assert_eq!(call(&app, Method::GET, "/api/v1/widgets", &key, None).await.0, 200);

    // Revoked: refused on the very next request.
    let revoked = olga.post(app.url(&revoke_url)).form(&[("csrf_token", &csrf)]).send().await.expect("post");
    assert_eq!(revoked.status(), 303);
    let (status, error) = call(&app, Method::GET, "/api/v1/widgets", &key, None).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"], "unauthorized");
    assert_eq!(call(&app, Method::GET, "/api/v1/widgets", "ihf_made-up", None).await.0, 401);
});

dual_test!(the_document_and_the_answers_agree_on_the_edges, |app| {
    app.seed_demo().await;
    let (_, hub, key, _) = widget(&app, "cart-summary").await;
    let bearer = api_key(&app, hub, "olga").await;
    let annotations = format!("/api/v1/widgets/{key}/annotations");
    let made = create(&app, &key, &bearer, "Edges of the document.").await;
    let one = format!("{annotations}/{}", made["id"]);

    // Methods a path does not list: 405 with the methods it does.
    for (path, allow) in [
        ("/api/v1/widgets".to_owned(), "GET"),
        (annotations.clone(), "GET, POST"),
        (one.clone(), "GET, PATCH, DELETE"),
        (format!("/api/v1/widgets/{key}/events"), "GET, POST"),
        ("/api/v1/openapi.json".to_owned(), "GET"),
    ] {
        for method in ["TRACE", "PUT"] {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let response =
                app.client.request(method.clone(), app.url(&path)).bearer_auth(&bearer).send().await.expect("request");
            assert_eq!(response.status(), 405, "{method} {path}");
            let allowed = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let mut allowed: Vec<&str> = allowed.split(", ").collect();
            let mut want: Vec<&str> = allow.split(", ").collect();
            allowed.sort_unstable();
            want.sort_unstable();
            assert_eq!(allowed, want, "{method} {path}");
            let error: Value = response.json().await.expect("JSON error");
            assert_eq!(error["error"], "method_not_allowed");
        }
    }
    assert_eq!(call(&app, Method::GET, "/api/v1/no/such/route", &bearer, None).await.0, 404);

    // An empty cursor is the first page.
    let (status, first) = call(&app, Method::GET, &format!("{annotations}?cursor="), &bearer, None).await;
    assert_eq!(status, 200, "{first}");
    // A PATCH without Content-Type is read as JSON; another type is a 415.
    let response = app
        .client
        .patch(app.url(&one))
        .bearer_auth(&bearer)
        .body(r#"{"status": "triaged"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .patch(app.url(&one))
        .bearer_auth(&bearer)
        .header("Content-Type", "text/plain")
        .body(r#"{"status": "new"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 415);
    // `null` is documented where it is accepted; a version may be written 2.0.
    let (status, patched) =
        call(&app, Method::PATCH, &one, &bearer, Some(json!({"body": null, "category": null, "version": 2.0}))).await;
    assert_eq!(status, 200, "{patched}");
    let (status, _) = call(
        &app,
        Method::POST,
        &annotations,
        &bearer,
        Some(json!({"body": "With nulls.", "category": null, "idempotency_key": null})),
    )
    .await;
    assert_eq!(status, 201);
    // An unknown category filter is a 400, not an empty page.
    let (status, _) = call(&app, Method::GET, &format!("{annotations}?category=nonsense"), &bearer, None).await;
    assert_eq!(status, 400);

    // Read with the key, the document names its hub's widgets and categories, nothing else.
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("doc")
        .json()
        .await
        .expect("json");
    let keys: Vec<String> = doc["paths"]["/widgets/{embed_key}"]["get"]["parameters"][0]["schema"]["enum"]
        .as_array()
        .expect("an enum of embed keys")
        .iter()
        .map(|k| k.as_str().expect("key").to_owned())
        .collect();
    let hub_keys: Vec<String> =
        sqlx::query_scalar("SELECT embed_key FROM widgets WHERE hub_id = $1 AND archived_at IS NULL")
            .bind(hub)
            .fetch_all(app.db.reader())
            .await
            .expect("keys");
    let (mut got, mut want) = (keys.clone(), hub_keys);
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let categories = &doc["components"]["schemas"]["NewAnnotation"]["properties"]["category"]["enum"];
    assert!(categories.as_array().expect("categories").contains(&json!("friction")), "{categories}");
    // Without a key it stays general.
    let plain: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    assert!(plain["paths"]["/widgets/{embed_key}"]["get"]["parameters"][0]["schema"].get("enum").is_none());
});

dual_test!(an_api_key_stops_when_its_maker_loses_the_operator_role, |app| {
    let logins = app.seed_demo().await;
    let (_, hub, key, _) = widget(&app, "cart-summary").await;
    let tomas = actor(&app, "tomas").await;
    // tomas is made an operator, makes a key, and is then demoted, removed, restored.
    ihf::db::actors::grant(&app.db, hub, tomas, "operator").await.expect("grant");
    let bearer = api_key(&app, hub, "tomas").await;
    let members = format!("/api/v1/widgets/{key}/annotations");
    assert_eq!(call(&app, Method::GET, &members, &bearer, None).await.0, 200);
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let page = || async {
        olga.get(app.url("/hubs/checkout/settings/api-keys")).send().await.expect("page").text().await.expect("body")
    };

    ihf::db::actors::grant(&app.db, hub, tomas, "triager").await.expect("demote");
    let (status, error) = call(&app, Method::GET, &members, &bearer, None).await;
    assert_eq!(status, 401, "a demoted maker's key no longer authenticates: {error}");
    assert_eq!(call(&app, Method::GET, "/api/v1/widgets", &bearer, None).await.0, 401, "not even for public widgets");
    assert!(page().await.contains("suspended: its maker is no longer an operator"));

    ihf::db::actors::grant(&app.db, hub, tomas, "operator").await.expect("restore");
    assert_eq!(call(&app, Method::GET, &members, &bearer, None).await.0, 200);
    assert!(!page().await.contains("suspended"));

    ihf::db::actors::revoke(&app.db, hub, tomas).await.expect("remove");
    assert_eq!(call(&app, Method::GET, &members, &bearer, None).await.0, 401, "a removed maker's key stops");
    // A site administrator's key does not depend on a hub role.
    let admin_key = api_key(&app, hub, "admin").await;
    assert_eq!(call(&app, Method::GET, &members, &admin_key, None).await.0, 200);
});

dual_test!(listings_filter_order_and_page_like_the_database, |app| {
    app.seed_demo().await;
    let (widget_id, hub, key, _) = widget(&app, "cart-summary").await;
    let bearer = api_key(&app, hub, "olga").await;
    let mine = create(&app, &key, &bearer, "Olga's own note.").await["id"].as_i64().expect("id");
    let expected: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC",
    )
    .bind(widget_id)
    .fetch_all(app.db.reader())
    .await
    .expect("ids");
    assert!(expected.len() > 10);

    // Cursor pagination walks every row once, in order, both ways.
    for (order, want) in [("newest", expected.clone()), ("oldest", expected.iter().rev().copied().collect())] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/widgets/{key}/annotations?limit=7&order={order}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = call(&app, Method::GET, &path, &bearer, None).await;
            assert_eq!(status, 200, "{page}");
            got.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(got, want, "order {order}");
    }

    // Each filter matches the database.
    let middle: i64 = sqlx::query_scalar("SELECT created_at FROM annotations WHERE id = $1")
        .bind(expected[expected.len() / 2])
        .fetch_one(app.db.reader())
        .await
        .expect("time");
    let cases: Vec<(String, &str, i64)> = vec![
        (
            "category=bug".into(),
            "SELECT COUNT(*) FROM annotations a JOIN categories c ON c.id = a.category_id WHERE a.widget_id = $1 AND a.deleted_at IS NULL AND c.slug = 'bug'",
            0,
        ),
        (
            "status=new".into(),
            "SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL AND status = 'new'",
            0,
        ),
        (
            format!("created_after={middle}"),
            "SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL AND created_at >= $2",
            middle,
        ),
        (
            format!("created_before={middle}"),
            "SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL AND created_at < $2",
            middle,
        ),
    ];
    for (query, sql, bind) in cases {
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(widget_id);
        if sql.contains("$2") {
            q = q.bind(bind);
        }
        let want = q.fetch_one(app.db.reader()).await.expect("count");
        let (status, page) =
            call(&app, Method::GET, &format!("/api/v1/widgets/{key}/annotations?limit=200&{query}"), &bearer, None)
                .await;
        assert_eq!(status, 200);
        assert_eq!(ids(&page).len() as i64, want, "{query}");
    }
    let (_, page) =
        call(&app, Method::GET, &format!("/api/v1/widgets/{key}/annotations?author=me"), &bearer, None).await;
    assert_eq!(ids(&page), vec![mine]);
    assert_eq!(page["items"][0]["mine"], true);

    for bad in [
        "status=lost",
        "limit=0",
        "limit=201",
        "cursor=nonsense",
        "order=random",
        "author=olga",
        "colour=red",
        "created_after=yesterday",
    ] {
        let (status, error) =
            call(&app, Method::GET, &format!("/api/v1/widgets/{key}/annotations?{bad}"), &bearer, None).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert_eq!(error["error"], "bad_request");
    }
    assert_eq!(call(&app, Method::GET, &format!("/api/v1/widgets/{key}/annotations"), "", None).await.0, 401);
});

dual_test!(writes_follow_the_rules, |app| {
    let logins = app.seed_demo().await;
    let (widget_id, _, key, _) = widget(&app, "cart-summary").await;
    let author = visitor_token(&app, &key).await;
    let other = visitor_token(&app, &key).await;

    // Create, and a retry with the same idempotency key makes no second row.
    let path = format!("/api/v1/widgets/{key}/annotations");
    let body = json!({"body": "  The promo banner covers the total on small phones.  ", "category": "bug", "idempotency_key": "k1"});
    let (status, first) = call(&app, Method::POST, &path, &author, Some(body.clone())).await;
    assert_eq!(status, 201);
    assert_eq!(first["body"], "The promo banner covers the total on small phones.");
    assert_eq!(first["category"], "bug");
    assert_eq!(first["mine"], true);
    let id = first["id"].as_i64().expect("id");
    let (status, again) = call(&app, Method::POST, &path, &author, Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM annotations WHERE idempotency_key = 'k1' AND widget_id = $1", widget_id)
            .await,
        1
    );
    let kind: String =
        sqlx::query_scalar("SELECT p.kind FROM annotations a JOIN actors p ON p.id = a.actor_id WHERE a.id = $1")
            .bind(id)
            .fetch_one(app.db.reader())
            .await
            .expect("author kind");
    assert_eq!(kind, "visitor");

    // Invalid input: 422 (400 for what is not JSON, 413 for a huge body); nothing written.
    let before = count(&app, "SELECT COUNT(*) FROM annotations WHERE widget_id = $1", widget_id).await;
    for bad in [
        json!({"body": "   "}),
        json!({"body": "x".repeat(4001)}),
        json!({"body": "ok", "category": "nonsense"}),
        json!({"text": "wrong field"}),
    ] {
        let (status, error) = call(&app, Method::POST, &path, &author, Some(bad)).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["error"], "invalid");
    }
    let not_json = app
        .client
        .post(app.url(&path))
        .bearer_auth(&author)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), 400);
    let huge = json!({"body": "y".repeat(40_000)});
    assert_eq!(call(&app, Method::POST, &path, &author, Some(huge)).await.0, 413);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM annotations WHERE widget_id = $1", widget_id).await, before);

    // The author edits the body; version guards against lost updates.
    let one = format!("{path}/{id}");
    let (status, edited) =
        call(&app, Method::PATCH, &one, &author, Some(json!({"body": "Banner covers the total.", "version": 1}))).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["version"], 2);
    let (status, stale) =
        call(&app, Method::PATCH, &one, &author, Some(json!({"body": "Late edit", "version": 1}))).await;
    assert_eq!(status, 409, "{stale}");

    // Nobody else edits or deletes it; a visitor cannot triage, even their own.
    let snapshot = || async {
        sqlx::query_as::<_, (String, String, i64, Option<i64>)>(
            "SELECT body, status, version, deleted_at FROM annotations WHERE id = $1",
        )
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("row")
    };
    let kept = snapshot().await;
    assert_eq!(call(&app, Method::PATCH, &one, &other, Some(json!({"body": "hijacked"}))).await.0, 403);
    assert_eq!(call(&app, Method::DELETE, &one, &other, None).await.0, 403);
    assert_eq!(call(&app, Method::PATCH, &one, &author, Some(json!({"status": "dismissed"}))).await.0, 403);
    // Nothing to change is a no-op answered with the annotation as it is.
    let (status, unchanged) = call(&app, Method::PATCH, &one, &author, Some(json!({}))).await;
    assert_eq!(status, 200, "{unchanged}");
    assert_eq!(unchanged["version"], 2);
    assert_eq!(snapshot().await, kept);

    // A triager triages through a session, with the CSRF header; without it, nothing happens.
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let csrf = app.csrf(&tomas, "/hubs/checkout").await;
    let triage = json!({"status": "triaged", "category": "friction"});
    let no_csrf = tomas.patch(app.url(&one)).json(&triage).send().await.expect("patch");
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(snapshot().await, kept);
    let denied = tomas
        .patch(app.url(&one))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"body": "rewritten"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(denied.status(), 403, "staff do not edit bodies");
    let done = tomas.patch(app.url(&one)).header("X-CSRF-Token", &csrf).json(&triage).send().await.expect("patch");
    assert_eq!(done.status(), 200);
    let triaged: Value = done.json().await.expect("json");
    assert_eq!((triaged["status"].as_str(), triaged["category"].as_str()), (Some("triaged"), Some("friction")));
    let audit: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT field, old_value, new_value FROM annotation_changes WHERE annotation_id = $1 ORDER BY field",
    )
    .bind(id)
    .fetch_all(app.db.reader())
    .await
    .expect("audit");
    assert_eq!(
        audit,
        vec![("category".into(), "bug".into(), "friction".into()), ("status".into(), "new".into(), "triaged".into())]
    );

    // The author deletes it; then it is gone for everyone.
    assert_eq!(call(&app, Method::DELETE, &one, &author, None).await.0, 204);
    assert_eq!(call(&app, Method::GET, &one, &author, None).await.0, 404);
    assert_eq!(call(&app, Method::DELETE, &one, &author, None).await.0, 404);
    assert!(snapshot().await.3.is_some(), "soft-deleted");
});

dual_test!(replies_and_support_through_the_api_follow_the_rules, |app| {
    let logins = app.seed_demo().await;
    let (_, hub, key, _) = widget(&app, "cart-summary").await;
    let olga = api_key(&app, hub, "olga").await;
    let id = by_someone_else(&app, "cart-summary", "wendy", "The totals row wraps on phones.").await;
    let one = format!("/api/v1/widgets/{key}/annotations/{id}");
    let replies = format!("{one}/replies");

    // The key acts as its operator: staff reply, publicly and internally.
    let (status, public) =
        call(&app, Method::POST, &replies, &olga, Some(json!({"body": "Thanks @tomas, on it."}))).await;
    assert_eq!(status, 201, "{public}");
    assert_eq!(
        (public["annotation"].as_i64(), public["internal"].as_bool(), public["mine"].as_bool()),
        (Some(id), Some(false), Some(true))
    );
    let (status, internal) =
        call(&app, Method::POST, &replies, &olga, Some(json!({"body": "INTERNAL only", "internal": true}))).await;
    assert_eq!(status, 201, "{internal}");
    // Bad input: the annotations' rules.
    for body in [json!({"body": "   "}), json!({"body": "x".repeat(4001)}), json!({"body": "ok", "extra": 1})] {
        assert_eq!(call(&app, Method::POST, &replies, &olga, Some(body)).await.0, 422);
    }
    let mentioned = count(
        &app,
        "SELECT COUNT(*) FROM notifications n JOIN actors p ON p.id = n.recipient_id WHERE n.reply_id = $1 AND p.handle = 'tomas'",
        public["id"].as_i64().expect("id"),
    )
    .await;
    assert_eq!(mentioned, 1, "a reply through the API notifies like one in IHF");

    // Staff read both; the author's session reads the public one only and may answer it, not
    // internally; another member may not reply.
    let (status, list) = call(&app, Method::GET, &replies, &olga, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().expect("items").len(), 2);
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let csrf = app.csrf(&wendy, "/").await;
    let as_wendy = |method: Method, path: String, body: Option<Value>| {
        let (wendy, csrf) = (wendy.clone(), csrf.clone());
        let url = app.url(&path);
        async move {
            let mut request = wendy.request(method, url).header("X-CSRF-Token", csrf);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, seen) = as_wendy(Method::GET, replies.clone(), None).await;
    assert_eq!(status, 200);
    let bodies: Vec<&str> =
        seen["items"].as_array().expect("items").iter().map(|r| r["body"].as_str().expect("body")).collect();
    assert_eq!(bodies, vec!["Thanks @tomas, on it."]);
    let (status, answer) =
        as_wendy(Method::POST, replies.clone(), Some(json!({"body": "It wraps below 360 px."}))).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(as_wendy(Method::POST, replies.clone(), Some(json!({"body": "x", "internal": true}))).await.0, 403);
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let anna_csrf = app.csrf(&anna, "/").await;
    let refused = anna
        .post(app.url(&replies))
        .header("X-CSRF-Token", anna_csrf.clone())
        .json(&json!({"body": "me too"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);

    // The author edits her reply (with its version), nobody else does; a stale version is a 409.
    let answer_url = format!("{replies}/{}", answer["id"]);
    let (status, edited) =
        as_wendy(Method::PATCH, answer_url.clone(), Some(json!({"body": "It wraps below 360 px wide.", "version": 1})))
            .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["version"], 2);
    assert_eq!(as_wendy(Method::PATCH, answer_url.clone(), Some(json!({"body": "again", "version": 1}))).await.0, 409);
    assert_eq!(call(&app, Method::PATCH, &answer_url, &olga, Some(json!({"body": "hijacked"}))).await.0, 403);
    let internal_url = format!("{replies}/{}", internal["id"]);
    assert_eq!(as_wendy(Method::PATCH, internal_url, Some(json!({"body": "x"}))).await.0, 404, "she does not read it");

    // "Me too": given once however often, taken back, never one's own.
    let support = format!("{one}/support");
    for _ in 0..2 {
        let (status, now) = call(&app, Method::PUT, &support, &olga, None).await;
        assert_eq!(status, 200);
        assert_eq!(now, json!({"count": 1, "mine": true}));
    }
    let anna_support =
        anna.put(app.url(&support)).header("X-CSRF-Token", anna_csrf).send().await.expect("put").json::<Value>().await;
    assert_eq!(anna_support.expect("json"), json!({"count": 2, "mine": true}));
    assert_eq!(as_wendy(Method::PUT, support.clone(), None).await.0, 409, "her own annotation");
    // The annotation carries its counts as the caller sees them.
    let (_, shown) = call(&app, Method::GET, &one, &olga, None).await;
    assert_eq!((shown["support"].clone(), shown["replies"].clone()), (json!({"count": 2, "mine": true}), json!(3)));
    let (_, by_author) = as_wendy(Method::GET, one.clone(), None).await;
    assert_eq!(
        (by_author["support"].clone(), by_author["replies"].clone()),
        (json!({"count": 2, "mine": false}), json!(2))
    );
    let (_, page) = call(&app, Method::GET, &format!("/api/v1/widgets/{key}/annotations"), &olga, None).await;
    let listed = page["items"].as_array().expect("items").iter().find(|a| a["id"] == id).expect("listed").clone();
    assert_eq!(listed["support"]["count"], 2);
    let (status, now) = call(&app, Method::DELETE, &support, &olga, None).await;
    assert_eq!((status, now), (200, json!({"count": 1, "mine": false})));
    assert_eq!(call(&app, Method::DELETE, &support, &olga, None).await.1, json!({"count": 1, "mine": false}));

    // Not on a private widget; an embed visitor supports on their own widget only.
    let (_, fraud_hub, fraud_key, _) = widget(&app, "fraud-review").await;
    let private = by_someone_else(&app, "fraud-review", "anna", "Flagged for nothing").await;
    let fraud = api_key(&app, fraud_hub, "olga").await;
    let on_private = format!("/api/v1/widgets/{fraud_key}/annotations/{private}/support");
    assert_eq!(call(&app, Method::PUT, &on_private, &fraud, None).await.0, 403);
    let visitor = visitor_token(&app, &key).await;
    let (status, now) = call(&app, Method::PUT, &support, &visitor, None).await;
    assert_eq!((status, now), (200, json!({"count": 2, "mine": true})));
    assert_eq!(call(&app, Method::PUT, &on_private, &visitor, None).await.0, 403, "a token for another widget");
    // A visitor reads the public replies and may not reply under someone else's feedback.
    let (status, seen) = call(&app, Method::GET, &replies, &visitor, None).await;
    assert_eq!(status, 200);
    assert_eq!(seen["items"].as_array().expect("items").len(), 2, "the public reply and the author's answer");
    assert_eq!(call(&app, Method::POST, &replies, &visitor, Some(json!({"body": "hi"}))).await.0, 403);
    // Unauthenticated: 401.
    let anonymous = app.client.get(app.url(&replies)).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
});

dual_test!(cors_answers_the_widgets_allowed_origins_only, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = widget(&app, "cart-summary").await;
    let path = app.url(&format!("/api/v1/widgets/{key}/annotations"));
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, &path)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization, content-type")
            .send()
    };
    for allowed in ["http://127.0.0.1:8081", "http://localhost:8081"] {
        let response = preflight(allowed).await.expect("preflight");
        assert_eq!(response.status(), 204, "{allowed}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], allowed);
        assert!(headers["access-control-allow-methods"].to_str().expect("methods").contains("PATCH"));
        assert!(headers["access-control-allow-headers"].to_str().expect("headers").contains("Authorization"));
        assert!(headers.get("access-control-allow-credentials").is_none(), "no cookies cross-origin");
    }
    for foreign in ["https://evil.example", "http://127.0.0.1:8082", "null"] {
        let response = preflight(foreign).await.expect("preflight");
        assert_eq!(response.status(), 403, "{foreign}");
        assert!(response.headers().get("access-control-allow-origin").is_none());
    }
    // Actual requests: allowed origins get the header; others are refused and change nothing.
    let token = visitor_token(&app, &key).await;
    let ok =
        app.client.get(&path).header("Origin", "http://127.0.0.1:8081").bearer_auth(&token).send().await.expect("get");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "http://127.0.0.1:8081");
    assert!(ok.headers()["vary"].to_str().expect("vary").contains("Origin"));
    let before = app.scalar("SELECT COUNT(*) FROM annotations").await;
    let refused = app
        .client
        .post(&path)
        .header("Origin", "https://evil.example")
        .bearer_auth(&token)
        .json(&json!({"body": "from evil"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    assert_eq!(app.scalar("SELECT COUNT(*) FROM annotations").await, before);
    // Another widget's origins are not this widget's.
    let (_, _, other_key, _) = widget(&app, "signup-wizard").await;
    sqlx::query("UPDATE widgets SET allowed_origins = 'https://signup.example' WHERE embed_key = $1")
        .bind(&other_key)
        .execute(app.db.writer())
        .await
        .expect("origins");
    let cross = app
        .client
        .get(app.url(&format!("/api/v1/widgets/{key}/annotations")))
        .header("Origin", "https://signup.example")
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(cross.status(), 403);
    // The document is for everyone.
    let doc = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .header("Origin", "https://anyone.example")
        .send()
        .await
        .expect("doc");
    assert_eq!(doc.headers()["access-control-allow-origin"], "https://anyone.example");
});

dual_test!(ingestion_checks_every_item, |app| {
    app.seed_demo().await;
    let (widget_id, hub_id, key, _) = widget(&app, "cart-summary").await;
    let path = app.url(&format!("/api/v1/widgets/{key}/events"));
    let shared = &app;
    let events = |sql: &'static str| async move { count(shared, sql, widget_id).await };
    let before = events("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1").await;
    let now = ihf::db::now_ms();
    let batch = json!({"events": [
        {"kind": "click", "payload": {"target": "apply-promo"}},
        {"kind": "teleport"},
        {"kind": "view", "occurred_at": now - 60_000},
        {"kind": "view", "occurred_at": now - 8 * 24 * 3_600_000_i64},
        {"kind": "error", "occurred_at": now + 3_600_000},
        {"kind": "scroll", "payload": [1, 2]},
        {"kind": "input", "payload": {"blob": "z".repeat(2000)}},
        "click",
        {"kind": "rage_click", "occurred_at": "now"},
        {"kind": "submit"}
    ]});
    // The embed key alone is the widget's write key, from an allowed origin or a server.
    let response =
        app.client.post(&path).header("Origin", "http://127.0.0.1:8081").json(&batch).send().await.expect("post");
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["accepted"], 3, "{report}");
    let rejected: Vec<(i64, String)> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["index"].as_i64().expect("index"), r["reason"].as_str().expect("reason").to_owned()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3, 4, 5, 6, 7, 8]);
    for (reason, needle) in
        rejected.iter().map(|r| &r.1).zip(["unknown kind", "7 days", "future", "object", "1024", "object", "integer"])
    {
        assert!(reason.contains(needle), "{reason} should mention {needle}");
    }
    assert_eq!(events("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1").await, before + 3);
    let stored: (i64, String) = sqlx::query_as("SELECT hub_id, payload FROM interaction_events WHERE widget_id = $1 AND kind = 'click' ORDER BY id DESC LIMIT 1")
        .bind(widget_id)
        .fetch_one(app.db.reader())
        .await
        .expect("stored");
    assert_eq!(stored.0, hub_id);
    assert_eq!(serde_json::from_str::<Value>(&stored.1).expect("payload"), json!({"target": "apply-promo"}));

    // Whole-batch refusals, none of which writes anything.
    let too_many = json!({"events": vec![json!({"kind": "view"}); 501]});
    let huge =
        format!("{{\"events\": [{{\"kind\": \"view\", \"payload\": {{\"x\": \"{}\"}}}}]}}", "a".repeat(1_100_000));
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (app.client.post(&path).json(&too_many), 422),
        (app.client.post(&path).header("content-type", "application/json").body(huge), 413),
        (app.client.post(&path).json(&json!({"events": []})), 422),
        (app.client.post(&path).json(&json!([{"kind": "view"}])), 422),
        (app.client.post(&path).header("content-type", "application/json").body("{{{"), 400),
        (app.client.post(&path).header("Origin", "https://evil.example").json(&batch), 403),
        (app.client.post(app.url("/api/v1/widgets/unknown/events")).json(&batch), 404),
    ];
    for (request, want) in cases {
        let response = request.send().await.expect("post");
        assert_eq!(response.status().as_u16(), want);
        let error: Value = response.json().await.expect("json error");
        assert!(error["error"].is_string() && error["message"].is_string());
    }
    assert_eq!(events("SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1").await, before + 3);

    // Reads are for hub members: a visitor may not, an operator's key may.
    let visitor = visitor_token(&app, &key).await;
    assert_eq!(call(&app, Method::GET, &format!("/api/v1/widgets/{key}/events"), &visitor, None).await.0, 403);
    let bearer = api_key(&app, hub_id, "olga").await;
    let (status, page) =
        call(&app, Method::GET, &format!("/api/v1/widgets/{key}/events?kind=click&limit=5"), &bearer, None).await;
    assert_eq!(status, 200);
    assert!(page["items"].as_array().expect("items").iter().all(|e| e["kind"] == "click"));
    assert_eq!(page["items"][0]["payload"], json!({"target": "apply-promo"}));
});

dual_test!(concurrent_batches_all_land_and_a_failing_batch_fails_alone, |app| {
    app.seed_demo().await;
    let (widget_id, hub_id, key, _) = widget(&app, "cart-summary").await;
    let stored = || count(&app, "SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1", widget_id);
    let before = stored().await;

    // Sixteen clients at once (on SQLite they commit in groups).
    let path = app.url(&format!("/api/v1/widgets/{key}/events"));
    let batch = json!({"events": vec![json!({"kind": "view", "payload": {"n": 1}}); 50]});
    let posts = (0..16).map(|_| async { app.client.post(&path).json(&batch).send().await.expect("post") });
    for response in futures_util::future::join_all(posts).await {
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.expect("report")["accepted"], 50);
    }
    assert_eq!(stored().await, before + 16 * 50);

    // A batch the database refuses (a widget that does not exist) fails on its own; the
    // batches committed with it in a group are retried alone and land.
    let ingest = ihf::db::ingest::EventIngest::start(app.db.clone()).expect("writer");
    let scope = ihf::db::api::RlsScope { embed_widget_id: Some(widget_id), ..Default::default() };
    let events = |widget_id: i64| {
        (0..20)
            .map(|i| ihf::db::events::NewEvent {
                hub_id,
                widget_id,
                kind: "click",
                actor_id: None,
                occurred_at: ihf::db::now_ms() - i,
                payload: "{}".into(),
            })
            .collect::<Vec<_>>()
    };
    let batches: Vec<_> = (0..9).map(|i| events(if i == 4 { i64::MAX } else { widget_id })).collect();
    let batches = batches.iter().map(|batch| ingest.insert(scope, batch));
    let outcomes = futures_util::future::join_all(batches).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(inserted) => assert!(i != 4 && *inserted == 20, "batch {i}: {inserted}"),
            Err(e) => assert_eq!(i, 4, "batch {i}: {e}"),
        }
    }
    assert_eq!(stored().await, before + 16 * 50 + 8 * 20);
});

dual_test!(
    ingestion_is_rate_limited_per_key,
    |c: &mut ihf::Config| {
        c.ingest_per_key_per_min = 3;
        c.ingest_per_ip_per_min = 100
    },
    |app| {
        app.seed_demo().await;
        let (widget_id, _, key, _) = widget(&app, "cart-summary").await;
        let (_, _, other, _) = widget(&app, "promo-code").await;
        let before = count(&app, "SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1", widget_id).await;
        let batch = json!({"events": [{"kind": "view"}]});
        let post = |key: String| app.client.post(app.url(&format!("/api/v1/widgets/{key}/events"))).json(&batch).send();
        for _ in 0..3 {
            assert_eq!(post(key.clone()).await.expect("post").status(), 200);
        }
        let limited = post(key.clone()).await.expect("post");
        assert_eq!(limited.status(), 429);
        let retry: u64 = limited.headers()["retry-after"].to_str().expect("header").parse().expect("seconds");
        assert!((1..=60).contains(&retry));
        assert_eq!(limited.json::<Value>().await.expect("json")["error"], "rate_limited");
        assert_eq!(post(other).await.expect("post").status(), 200, "another key has its own budget");
        assert_eq!(
            count(&app, "SELECT COUNT(*) FROM interaction_events WHERE widget_id = $1", widget_id).await,
            before + 3
        );
    }
);

dual_test!(
    ingestion_is_rate_limited_per_ip,
    |c: &mut ihf::Config| {
        c.ingest_per_key_per_min = 100;
        c.ingest_per_ip_per_min = 3
    },
    |app| {
        app.seed_demo().await;
        let keys: Vec<String> = sqlx::query_scalar("SELECT embed_key FROM widgets ORDER BY id LIMIT 4")
            .fetch_all(app.db.reader())
            .await
            .expect("keys");
        let before = app.scalar("SELECT COUNT(*) FROM interaction_events").await;
        let batch = json!({"events": [{"kind": "view"}]});
        let mut statuses = Vec::new();
        for key in &keys {
            let response = app
                .client
                .post(app.url(&format!("/api/v1/widgets/{key}/events")))
                .json(&batch)
                .send()
                .await
                .expect("post");
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"));
            }
        }
        assert_eq!(statuses, vec![200, 200, 200, 429], "one IP across widgets");
        assert_eq!(app.scalar("SELECT COUNT(*) FROM interaction_events").await, before + 3);
    }
);

dual_test!(refused_tokens_get_401, |app| {
    app.seed_demo().await;
    let (_, _, key, secret) = widget(&app, "cart-summary").await;
    let (_, _, other_key, other_secret) = widget(&app, "promo-code").await;
    let path = format!("/api/v1/widgets/{key}/annotations");
    let good = host_token(&secret, &key, "u-1", "Uma", 300);
    assert_eq!(call(&app, Method::GET, &path, &good, None).await.0, 200);
    for (what, token) in [
        ("expired", host_token(&secret, &key, "u-1", "Uma", -3600)),
        ("too long-lived", host_token(&secret, &key, "u-1", "Uma", 3600)),
        ("badly signed", host_token("not the secret", &key, "u-1", "Uma", 300)),
        ("for another widget", host_token(&other_secret, &other_key, "u-1", "Uma", 300)),
        ("garbage", "abc.def.ghi".to_owned()),
    ] {
        let (status, error) = call(&app, Method::GET, &path, &token, None).await;
        // A valid token of another widget is authenticated, then refused for this one.
        let want = if what == "for another widget" { 403 } else { 401 };
        assert_eq!(status, want, "{what}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
});

/// Reads the stream until an event named `name` about annotation `id`.
async fn expect_event(
    reader: &mut SseReader,
    name: &str,
    id: i64,
) -> (Vec<embed_support::SseEvent>, embed_support::SseEvent) {
    let (seen, found) = reader.until(name, LIVE, |e| e.json()["id"] == id).await;
    (seen.clone(), found.unwrap_or_else(|| panic!("no {name} event for annotation {id}; saw {seen:?}")))
}

dual_test!(the_stream_sends_what_the_caller_may_see_and_nothing_else, |app| {
    let logins = app.seed_demo().await;
    // A members-only widget: a visitor reads their own annotations only.
    let (_, _, key, _) = widget(&app, "payment-form").await;
    let me = visitor_token(&app, &key).await;
    let stranger = visitor_token(&app, &key).await;
    let mine = create(&app, &key, &me, "The card field rejects spaces.").await["id"].as_i64().expect("id");
    let stream_path = format!("/api/v1/widgets/{key}/annotations/stream");
    let open = |last: Option<String>| {
        let mut request = app.new_client().get(app.url(&stream_path)).bearer_auth(&me);
        if let Some(last) = last {
            request = request.header("Last-Event-ID", last);
        }
        request.send()
    };
    let mut reader = SseReader::new(open(None).await.expect("stream"));
    let snapshot = reader.next(LIVE).await.expect("snapshot");
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(ids(&snapshot.json()), vec![mine], "only the visitor's own");

    // Someone else's annotation on the widget: never sent. A triager's change to mine: sent.
    let theirs = create(&app, &key, &stranger, "Secret of another visitor.").await["id"].as_i64().expect("id");
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let csrf = app.csrf(&tomas, "/hubs/checkout").await;
    let patched = tomas
        .patch(app.url(&format!("/api/v1/widgets/{key}/annotations/{mine}")))
        .header("X-CSRF-Token", &csrf)
        .json(&json!({"status": "triaged"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let (seen, update) = expect_event(&mut reader, "update", mine).await;
    assert_eq!(update.json()["status"], "triaged");
    assert!(seen.iter().all(|e| !e.data.contains("Secret of another visitor")), "{seen:?}");

    // The visitor's writes from another client arrive too: insert, then delete.
    let second = create(&app, &key, &me, "And the expiry field too.").await["id"].as_i64().expect("id");
    let (seen, insert) = expect_event(&mut reader, "insert", second).await;
    assert_eq!(insert.json()["body"], "And the expiry field too.");
    assert!(seen.iter().all(|e| !e.data.contains(&format!("\"id\":{theirs}"))));
    assert_eq!(
        call(&app, Method::DELETE, &format!("/api/v1/widgets/{key}/annotations/{second}"), &me, None).await.0,
        204
    );
    let (_, deleted) = expect_event(&mut reader, "delete", second).await;
    let resume_from = deleted.id.clone().expect("event id");
    drop(reader);

    // Missed while away: a reconnect with Last-Event-ID gets it, without a snapshot.
    let edited = call(
        &app,
        Method::PATCH,
        &format!("/api/v1/widgets/{key}/annotations/{mine}"),
        &me,
        Some(json!({"body": "Spaces in the card number are rejected."})),
    )
    .await;
    assert_eq!(edited.0, 200);
    let mut resumed = SseReader::new(open(Some(resume_from)).await.expect("stream"));
    let first = resumed.next(LIVE).await.expect("an event");
    assert_ne!(first.event, "snapshot");
    let (seen, update) = if first.event == "update"
        && first.json()["id"] == mine
        && first.json()["body"] == "Spaces in the card number are rejected."
    {
        (Vec::new(), first)
    } else {
        resumed
            .until("update", LIVE, |e| e.json()["body"] == "Spaces in the card number are rejected.")
            .await
            .1
            .map(|u| (vec![first.clone()], u))
            .expect("the missed update")
    };
    assert_eq!(update.json()["id"], mine);
    assert!(seen.iter().chain([&update]).all(|e| !e.data.contains("Secret of another visitor")));

    // On a public widget, another visitor's annotation does arrive.
    let (_, _, public_key, _) = widget(&app, "cart-summary").await;
    let watcher = visitor_token(&app, &public_key).await;
    let response = app
        .new_client()
        .get(app.url(&format!("/api/v1/widgets/{public_key}/annotations/stream?limit=1&access_token={watcher}")))
        .send()
        .await
        .expect("stream");
    let mut public = SseReader::new(response);
    assert_eq!(public.next(LIVE).await.expect("snapshot").event, "snapshot");
    let writer = visitor_token(&app, &public_key).await;
    let posted = create(&app, &public_key, &writer, "Public for everyone.").await["id"].as_i64().expect("id");
    let (_, insert) = expect_event(&mut public, "insert", posted).await;
    assert_eq!(insert.json()["mine"], false);
});

dual_test!(a_revoked_key_ends_its_stream, |app| {
    app.seed_demo().await;
    let (_, hub, key, _) = widget(&app, "cart-summary").await;
    let olga = actor(&app, "olga").await;
    let (key_id, bearer) = api_keys::create(&app.db, hub, "stream", olga).await.expect("key");
    let response = app
        .new_client()
        .get(app.url(&format!("/api/v1/widgets/{key}/annotations/stream")))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("stream");
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next(LIVE).await.expect("snapshot").event, "snapshot");
    api_keys::revoke(&app.db, hub, key_id).await.expect("revoke");
    let (_, end) = reader.until("end", LIVE, |_| true).await;
    assert_eq!(end.expect("an end event").json()["reason"], "unauthorized");
});

/// Distinctive annotations in widgets the probing credentials must never reach.
async fn plant_secret(app: &TestApp, slug: &str) -> (String, i64, String) {
    let (widget_id, hub_id, key, _) = widget(app, slug).await;
    let category: i64 = sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND slug = 'bug'")
        .bind(hub_id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    let author = actor(app, "olga").await;
    let marker = format!("SECRET-{slug}");
    let id = annotations::create(
        &app.db,
        &NewAnnotation {
            hub_id,
            widget_id,
            actor_id: author,
            body: &marker,
            category_id: category,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("secret");
    (key, id, marker)
}

async fn foreign_state(app: &TestApp) -> Vec<(i64, String, String, i64, i64)> {
    sqlx::query_as(
        "SELECT a.id, a.body, a.status, a.version, COALESCE(a.deleted_at, 0) FROM annotations a
         JOIN widgets w ON w.id = a.widget_id WHERE w.slug IN ('signup-wizard', 'billing-setup', 'promo-code') ORDER BY a.id",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("state")
}

/// With widget A's credentials, every route and filter that could reach another widget's
/// annotations, events or counts returns nothing of it, and every write to it is refused.
/// With `rls_only` the application's own checks are off: PostgreSQL's policies alone hold.
async fn probe_isolation(app: &TestApp, rls_only: bool) {
    app.seed_demo().await;
    let (own_id, own_hub, own_key, own_secret) = widget(app, "cart-summary").await;
    let public_elsewhere = plant_secret(app, "signup-wizard").await; // public, other hub
    let private_elsewhere = plant_secret(app, "billing-setup").await; // private, other hub
    let same_hub = plant_secret(app, "promo-code").await; // public, same hub
    let visitor = visitor_token(app, &own_key).await;
    create(app, &own_key, &visitor, "The visitor's own note.").await;
    let identified = host_token(&own_secret, &own_key, "customer-7", "Casey", 300);
    let key = api_key(app, own_hub, "olga").await;
    let events_before: i64 = app.scalar("SELECT COUNT(*) FROM interaction_events").await;
    let state_before = foreign_state(app).await;

    let credentials = [
        ("visitor token", visitor.clone(), vec![&public_elsewhere, &private_elsewhere, &same_hub]),
        ("host token", identified.clone(), vec![&public_elsewhere, &private_elsewhere, &same_hub]),
        ("API key", key.clone(), vec![&public_elsewhere, &private_elsewhere]),
    ];
    let filters = [
        "",
        "?category=bug",
        "?status=new",
        "?author=me",
        "?created_after=0",
        "?created_before=99999999999999",
        "?order=oldest",
        "?limit=200",
    ];
    for (who, bearer, foreign) in &credentials {
        let markers: Vec<&str> = foreign.iter().map(|f| f.2.as_str()).collect();
        let clean = |what: &str, status: u16, body: &str| {
            for marker in &markers {
                assert!(!body.contains(marker), "{who}: {what} ({status}) leaked {marker}: {body}");
            }
        };
        let request = |method: Method, path: String, body: Option<Value>| {
            let mut request = app.client.request(method, app.url(&path)).bearer_auth(bearer);
            if let Some(body) = body {
                request = request.json(&body);
            }
            async move {
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                let text = if response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
                {
                    let mut reader = SseReader::new(response);
                    reader.next(Duration::from_secs(2)).await.map(|e| e.data).unwrap_or_default()
                } else {
                    response.text().await.expect("body")
                };
                (status, text)
            }
        };

        // Its own widget: every filter lists only its own rows; the counts are its own.
        for filter in filters {
            let (status, body) =
                request(Method::GET, format!("/api/v1/widgets/{own_key}/annotations{filter}"), None).await;
            assert_eq!(status, 200, "{who}: own listing {filter}");
            clean(filter, status, &body);
            let page: Value = serde_json::from_str(&body).expect("json");
            assert!(
                page["items"].as_array().expect("items").iter().all(|a| a["widget"] == own_key.as_str()),
                "{who} {filter}"
            );
        }
        let (status, body) = request(Method::GET, format!("/api/v1/widgets/{own_key}"), None).await;
        assert_eq!(status, 200, "{who}: own widget");
        let own_live =
            count(app, "SELECT COUNT(*) FROM annotations WHERE widget_id = $1 AND deleted_at IS NULL", own_id).await;
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("json")["counts"]["annotations"],
            own_live,
            "{who}: counts"
        );
        let (status, body) = request(Method::GET, "/api/v1/widgets".into(), None).await;
        assert_eq!(status, 200);
        let listed: Vec<String> = serde_json::from_str::<Value>(&body).expect("json")["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|w| w["key"].as_str().expect("key").to_owned())
            .collect();
        for (foreign_key, _, _) in foreign {
            assert!(!listed.contains(foreign_key), "{who}: /widgets lists a foreign widget");
        }

        for (foreign_key, foreign_id, _) in foreign {
            // The widget itself, and its counts.
            let (status, body) = request(Method::GET, format!("/api/v1/widgets/{foreign_key}"), None).await;
            assert!(!(200..300).contains(&status), "{who}: GET foreign widget answered {status}: {body}");
            if who != &"API key" {
                // With the application's check the token is refused (403); without it, RLS hides the widget (404).
                assert_eq!(status, if rls_only { 404 } else { 403 }, "{who}: foreign widget");
            }
            for filter in filters {
                let (status, body) =
                    request(Method::GET, format!("/api/v1/widgets/{foreign_key}/annotations{filter}"), None).await;
                clean(&format!("foreign listing {filter}"), status, &body);
                assert!(!(200..300).contains(&status) || body.contains("\"items\":[]"), "{who}: {status} {body}");
            }
            for path in [
                format!("/api/v1/widgets/{foreign_key}/annotations/{foreign_id}"),
                format!("/api/v1/widgets/{own_key}/annotations/{foreign_id}"),
                format!("/api/v1/widgets/{foreign_key}/events"),
                format!("/api/v1/widgets/{foreign_key}/events?limit=200"),
                format!("/api/v1/widgets/{foreign_key}/annotations/stream"),
            ] {
                let (status, body) = request(Method::GET, path.clone(), None).await;
                clean(&path, status, &body);
                assert!(!(200..300).contains(&status), "{who}: GET {path} answered {status}: {body}");
            }
            // Writes: all refused.
            for path in [
                format!("/api/v1/widgets/{foreign_key}/annotations/{foreign_id}"),
                format!("/api/v1/widgets/{own_key}/annotations/{foreign_id}"),
            ] {
                for (method, body) in [
                    (Method::PATCH, Some(json!({"body": "overwritten"}))),
                    (Method::PATCH, Some(json!({"status": "dismissed"}))),
                    (Method::DELETE, None),
                ] {
                    let (status, text) = request(method.clone(), path.clone(), body).await;
                    clean(&path, status, &text);
                    assert!(!(200..300).contains(&status), "{who}: {method} {path} answered {status}");
                }
            }
            let (status, _) = request(
                Method::POST,
                format!("/api/v1/widgets/{foreign_key}/annotations"),
                Some(json!({"body": "planted"})),
            )
            .await;
            assert!(!(200..300).contains(&status), "{who}: annotation planted in a foreign widget ({status})");
            let (status, _) = request(
                Method::POST,
                format!("/api/v1/widgets/{foreign_key}/events"),
                Some(json!({"events": [{"kind": "view"}]})),
            )
            .await;
            assert!(!(200..300).contains(&status), "{who}: events planted in a foreign widget ({status})");
        }
    }

    // The embed routes with widget A's visitor token.
    for (foreign_key, _, marker) in [&private_elsewhere] {
        let thread =
            app.client.get(app.url(&format!("/embed/{foreign_key}/thread?vt={visitor}"))).send().await.expect("thread");
        assert!(!thread.text().await.expect("body").contains(marker.as_str()), "embed thread leaked");
    }
    for (foreign_key, _, marker) in [&public_elsewhere, &private_elsewhere, &same_hub] {
        // The foreign widget's own composer, posted with widget A's visitor token.
        let anyone = visitor_token(app, foreign_key).await;
        let (_, state) = embed_support::composer(app, foreign_key, &anyone).await;
        let action = format!("/embed/{foreign_key}/annotations?vt={visitor}");
        let fields = [("body", "planted through the embed"), ("category", "bug")];
        let posted = embed_support::post_composer(app, &action, &state, &fields, true, &[]).await;
        assert!(!posted.status().is_success(), "embed post to a foreign widget: {}", posted.status());
        let page =
            app.client.get(app.url(&format!("/embed/{foreign_key}?token={identified}"))).send().await.expect("page");
        let status = page.status().as_u16();
        let body = page.text().await.expect("body");
        if rls_only {
            // The hook takes the token for its own widget; RLS keeps the foreign thread empty.
            assert!(!body.contains(marker.as_str()), "embed page leaked {marker}");
        } else {
            assert_eq!(status, 401);
            assert!(body.contains("another widget"));
        }
    }

    assert_eq!(foreign_state(app).await, state_before, "nothing of the foreign widgets changed");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM interaction_events").await, events_before, "no events planted");
    let planted =
        app.scalar("SELECT COUNT(*) FROM annotations WHERE body IN ('planted', 'planted through the embed')").await;
    assert_eq!(planted, 0);
}

dual_test!(an_embed_key_reaches_its_own_widget_only, |app| {
    probe_isolation(&app, false).await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_alone_keeps_tenants_apart() {
    if !common::pg_enabled() {
        return;
    }
    let app = common::spawn_app_hooked(Backend::Postgres, ihf::TestHooks { rls_only: true }).await;
    probe_isolation(&app, true).await;
}
