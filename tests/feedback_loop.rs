//! Closing the loop (#21): replies on annotations (who may write and read them, internal
//! replies, edits, bad input, live, the webhook) and "me too" support (the toggle, who may give
//! it, duplicates, the embed), on both databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{SseClient, TestApp};
use ihf::auth::Viewer;
use ihf::db::annotations::{self, NewAnnotation};
use ihf::db::{Backend, now_ms, replies};

const FRAUD: &str = "/hubs/checkout/widgets/fraud-review";
const PAYMENT: &str = "/hubs/checkout/widgets/payment-form";
const CART: &str = "/hubs/checkout/widgets/cart-summary";

/// A signed-in person with their CSRF token.
struct Person {
    client: reqwest::Client,
    csrf: String,
}

impl Person {
    async fn sign_in(app: &TestApp, logins: &HashMap<String, String>, handle: &str) -> Self {
        let client = app.signed_in(handle, &logins[handle]).await;
        let csrf = app.csrf(&client, "/").await;
        Self { client, csrf }
    }

    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(app.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &self.csrf)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    async fn get(&self, app: &TestApp, path: &str) -> (u16, String) {
        let response = self.client.get(app.url(path)).header("HX-Request", "true").send().await.expect("GET");
        (response.status().as_u16(), response.text().await.expect("body"))
    }
}

async fn id_of(app: &TestApp, sql: &'static str, name: &str) -> i64 {
    sqlx::query_scalar(sql).bind(name.to_owned()).fetch_one(app.db.reader()).await.expect("id")
}

async fn actor(app: &TestApp, handle: &str) -> i64 {
    id_of(app, "SELECT id FROM actors WHERE handle = $1", handle).await
}

/// Writes an annotation by `handle` on the widget `slug` and returns its id.
async fn annotate(app: &TestApp, handle: &str, slug: &str, body: &str) -> i64 {
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
    let new = NewAnnotation {
        hub_id,
        widget_id,
        actor_id: actor(app, handle).await,
        body,
        category_id,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: now_ms(),
        idempotency_key: None,
    };
    annotations::create(&app.db, &new).await.expect("annotation")
}

fn viewer(id: i64) -> Viewer {
    Viewer { actor_id: Some(id), ..Viewer::default() }
}

/// The replies `handle` reads on annotation `id` through the store (the policy's predicate,
/// and on PostgreSQL Row Level Security).
async fn bodies_read_by(app: &TestApp, handle: &str, id: i64) -> Vec<String> {
    let who = viewer(actor(app, handle).await);
    let found = replies::for_annotations(&app.db, &who, &[id]).await.expect("replies");
    found.get(&id).map(|r| r.iter().map(|r| r.body.clone()).collect()).unwrap_or_default()
}

/// On PostgreSQL: the replies Row Level Security alone lets `handle` read (no predicate).
async fn rls_count(app: &TestApp, handle: &str) -> Option<i64> {
    if app.backend != Backend::Postgres {
        return None;
    }
    let mut tx = app.db.begin_as(Some(actor(app, handle).await)).await.expect("begin");
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM annotation_replies").fetch_one(&mut *tx).await.expect("count");
    tx.rollback().await.expect("rollback");
    Some(n)
}

dual_test!(replies_are_read_like_their_annotation_and_internal_ones_by_staff_only, |app| {
    let logins = app.seed_demo().await;
    sqlx::query("DELETE FROM annotation_replies").execute(app.db.writer()).await.expect("clean");
    // Anna's feedback on the private fraud-review widget: she, its owner and staff read it.
    let id = annotate(&app, "anna", "fraud-review", "The review queue hides my order").await;
    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    let replies_url = format!("{FRAUD}/annotations/{id}/replies");

    let public = tomas.post(&app, &replies_url, &[("body", "Thanks, @anna: looking into it")]).await;
    assert_eq!(public.status(), 200);
    let html = public.text().await.expect("body");
    assert!(html.contains("looking into it") && html.contains(&format!("id=\"replies-{id}\"")), "{html}");
    let internal =
        tomas.post(&app, &replies_url, &[("body", "Probably the velocity rule again"), ("internal", "1")]).await;
    assert_eq!(internal.status(), 200);
    assert!(internal.text().await.expect("body").contains("internal"));

    // The author reads the public reply, not the internal one; staff read both; a member who
    // may not read the private widget reads neither.
    assert_eq!(bodies_read_by(&app, "anna", id).await, vec!["Thanks, @anna: looking into it"]);
    assert_eq!(bodies_read_by(&app, "olga", id).await.len(), 2);
    assert_eq!(bodies_read_by(&app, "admin", id).await.len(), 2);
    assert!(bodies_read_by(&app, "wendy", id).await.is_empty());
    assert!(bodies_read_by(&app, "ali", id).await.is_empty());
    // PostgreSQL's policies hold on their own.
    if let Some(anna) = rls_count(&app, "anna").await {
        assert_eq!(anna, 1, "RLS: the author reads the public reply only");
        assert_eq!(rls_count(&app, "wendy").await, Some(0), "RLS: a member of the hub reads no private reply");
        assert_eq!(rls_count(&app, "olga").await, Some(2), "RLS: staff read internal replies");
    }
    let anna = Person::sign_in(&app, &logins, "anna").await;
    let (status, html) = anna.get(&app, &replies_url).await;
    assert_eq!(status, 200);
    assert!(html.contains("looking into it") && !html.contains("velocity"), "{html}");
    let wendy = Person::sign_in(&app, &logins, "wendy").await;
    let (status, html) = wendy.get(&app, &replies_url).await;
    assert!(status == 403 || status == 404, "{status}");
    assert!(!html.contains("looking into it"));

    // The author replies on her own feedback, but not internally; another member may not reply.
    assert_eq!(anna.post(&app, &replies_url, &[("body", "It was order 1142")]).await.status(), 200);
    assert_eq!(anna.post(&app, &replies_url, &[("body", "secret"), ("internal", "1")]).await.status(), 403);
    let wendys = annotate(&app, "wendy", "payment-form", "The card field forgets the expiry").await;
    let on_wendys = format!("{PAYMENT}/annotations/{wendys}/replies");
    assert_eq!(anna.post(&app, &on_wendys, &[("body", "same here")]).await.status(), 403);
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM annotation_replies WHERE body = 'secret' OR body = 'same here'").await,
        0
    );
});

dual_test!(a_reply_returns_its_hook_and_keeps_the_annotations_bad_input_rules, |app| {
    let logins = app.seed_demo().await;
    let id = annotate(&app, "wendy", "payment-form", "Where is the CVC hint?").await;
    let url = format!("{PAYMENT}/annotations/{id}/replies");
    let tomas = Person::sign_in(&app, &logins, "tomas").await;

    // Empty and overlong replies: 422 with the message, and what was typed is kept.
    let empty = tomas.post(&app, &url, &[("body", "   ")]).await;
    assert_eq!(empty.status(), 422);
    assert!(empty.text().await.expect("body").contains("Write something first"));
    let long = format!("{}TAIL", "x".repeat(4000));
    let refused = tomas.post(&app, &url, &[("body", &long)]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.expect("body");
    assert!(html.contains("4004 characters") && html.contains("xxxxTAIL</textarea>"), "typed text kept");
    // NUL is refused by the input layer, before the store sees it.
    assert_eq!(tomas.post(&app, &url, &[("body", "a\u{0}b")]).await.status(), 422);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM annotation_replies").await, 0);

    // The store's hook: the reply, the annotation's author, the mentions.
    let new = replies::NewReply {
        annotation_id: id,
        actor_id: actor(&app, "tomas").await,
        body: &annotations::AnnotationBody::parse("@wendy @olga: fixed in the next release, thanks @wendy").unwrap(),
        internal: false,
    };
    let created = replies::create(&app.db, &new).await.expect("reply");
    assert_eq!(created.annotation_author_id, actor(&app, "wendy").await);
    assert_eq!(created.mentions, vec!["wendy", "olga"]);
    assert_eq!(created.reply.annotation_id, id);

    // Its author edits it (same rules); nobody else may.
    let edit_url = format!("{url}/{}", created.reply.id);
    let (status, form) = tomas.get(&app, &format!("{edit_url}/edit")).await;
    assert_eq!(status, 200);
    assert!(form.contains("fixed in the next release"));
    assert_eq!(tomas.post(&app, &edit_url, &[("body", "")]).await.status(), 422);
    let saved = tomas.post(&app, &edit_url, &[("body", "Fixed in 2.4")]).await;
    assert_eq!(saved.status(), 200);
    let html = saved.text().await.expect("body");
    assert!(html.contains("Fixed in 2.4") && html.contains("(edited)"), "{html}");
    let wendy = Person::sign_in(&app, &logins, "wendy").await;
    assert_eq!(wendy.post(&app, &edit_url, &[("body", "hijacked")]).await.status(), 403);
    let body: String = sqlx::query_scalar("SELECT body FROM annotation_replies WHERE id = $1")
        .bind(created.reply.id)
        .fetch_one(app.db.reader())
        .await
        .expect("reply");
    assert_eq!(body, "Fixed in 2.4");
});

dual_test!(replies_show_on_the_widget_page_live_and_reach_webhooks, |app| {
    let logins = app.seed_demo().await;
    let hub_id: i64 = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    sqlx::query(
        "INSERT INTO webhooks (hub_id, url, events, secret, created_at) VALUES ($1, 'https://hooks.example/ihf', 'annotation.replied', 's', 0)",
    )
    .bind(hub_id)
    .execute(app.db.writer())
    .await
    .expect("webhook");
    let id = annotate(&app, "wendy", "payment-form", "Apple Pay button is missing").await;
    let wendy = Person::sign_in(&app, &logins, "wendy").await;
    let page = wendy.client.get(app.url(PAYMENT)).send().await.expect("page").text().await.expect("body");
    assert!(page.contains(&format!("id=\"replies-{id}\"")), "the thread has a reply slot under each annotation");
    let live = common::text_attr(&page, "sse-connect=\"").expect("live stream").replace("&#38;", "&");
    let mut stream = SseClient::open(&app, &wendy.client, &live, None).await;
    let _ = stream.events_within(Duration::from_millis(300)).await;

    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    let url = format!("{PAYMENT}/annotations/{id}/replies");
    assert_eq!(tomas.post(&app, &url, &[("body", "Coming next sprint")]).await.status(), 200);
    assert_eq!(tomas.post(&app, &url, &[("body", "staff-only note"), ("internal", "1")]).await.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while tokio::time::Instant::now() < deadline && !seen {
        if let Some(event) = stream.next_event(Duration::from_secs(2)).await
            && event.event == "thread"
            && event.data.contains("Coming next sprint")
        {
            assert!(!event.data.contains("staff-only note"), "the author's stream leaves internal replies out");
            seen = true;
        }
    }
    assert!(seen, "the reply reached the author's thread live");
    // The widget page as the author: the reply, and a form to answer it.
    let page = wendy.client.get(app.url(PAYMENT)).send().await.expect("page").text().await.expect("body");
    assert!(page.contains("Coming next sprint") && !page.contains("staff-only note"));
    assert!(page.contains(&format!("hx-post=\"{url}\"")));

    // One delivery per reply, with the annotation and the reply.
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM webhook_deliveries WHERE event = 'annotation.replied' ORDER BY id")
            .fetch_all(app.db.reader())
            .await
            .expect("deliveries");
    assert_eq!(payloads.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&payloads[0]).expect("json");
    assert_eq!(first["event"], "annotation.replied");
    assert_eq!(first["annotation"]["id"], id);
    assert_eq!(first["reply"]["body"], "Coming next sprint");
    assert_eq!(first["reply"]["internal"], false);
    let second: serde_json::Value = serde_json::from_str(&payloads[1]).expect("json");
    assert_eq!(second["reply"]["internal"], true);
});

async fn supporters(app: &TestApp, id: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM annotation_supports WHERE annotation_id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("count")
}

dual_test!(me_too_toggles_once_per_person_on_public_and_members_widgets, |app| {
    let logins = app.seed_demo().await;
    let id = annotate(&app, "wendy", "cart-summary", "Totals jump when the coupon applies").await;
    let url = format!("{CART}/annotations/{id}/support");
    let anna = Person::sign_in(&app, &logins, "anna").await;
    let given = anna.post(&app, &url, &[]).await;
    assert_eq!(given.status(), 200);
    let html = given.text().await.expect("body");
    assert!(html.contains("aria-pressed=\"true\"") && html.contains("data-count=\"1\""), "{html}");
    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    assert!(tomas.post(&app, &url, &[]).await.text().await.expect("body").contains("data-count=\"2\""));
    assert_eq!(supporters(&app, id).await, 2);
    // A second time takes it back.
    let taken = anna.post(&app, &url, &[]).await.text().await.expect("body");
    assert!(taken.contains("aria-pressed=\"false\"") && taken.contains("data-count=\"1\""), "{taken}");
    assert_eq!(supporters(&app, id).await, 1);
    // Not one's own, not anonymously, not on a private widget.
    let wendy = Person::sign_in(&app, &logins, "wendy").await;
    assert_eq!(wendy.post(&app, &url, &[]).await.status(), 409);
    let anonymous = app.new_client().post(app.url(&url)).header("HX-Request", "true").send().await.expect("POST");
    assert!(matches!(anonymous.status().as_u16(), 401 | 403), "{}", anonymous.status());
    let private = annotate(&app, "anna", "fraud-review", "Flagged for no reason").await;
    let on_private = format!("{FRAUD}/annotations/{private}/support");
    assert_eq!(tomas.post(&app, &on_private, &[]).await.status(), 403);
    assert_eq!(supporters(&app, private).await, 0);
    // A members widget: members support, the count shows on the widget page and in the inbox.
    let members = annotate(&app, "anna", "payment-form", "Saved cards are not offered").await;
    let on_members = format!("{PAYMENT}/annotations/{members}/support");
    assert_eq!(wendy.post(&app, &on_members, &[]).await.status(), 200);
    let page = wendy.client.get(app.url(PAYMENT)).send().await.expect("page").text().await.expect("body");
    assert!(page.contains(&format!("id=\"support-{members}\"")));
    let inbox = wendy.client.get(app.url(&format!("{PAYMENT}/inbox"))).send().await.expect("inbox");
    assert_eq!(inbox.status(), 200, "wendy owns the payment form");
    assert!(inbox.text().await.expect("body").contains(&format!("id=\"support-{members}\"")));
    // On PostgreSQL the insert policy refuses support on a private widget by itself.
    if app.backend == Backend::Postgres {
        let tomas_id = actor(&app, "tomas").await;
        let mut tx = app.db.begin_write_as(Some(tomas_id), None).await.expect("begin");
        let refused =
            sqlx::query("INSERT INTO annotation_supports (annotation_id, actor_id, created_at) VALUES ($1, $2, 0)")
                .bind(private)
                .bind(tomas_id)
                .execute(&mut *tx)
                .await;
        assert!(refused.is_err(), "RLS refuses support on a private widget");
    }
});

dual_test!(marking_a_duplicate_moves_its_support_to_the_original, |app| {
    let logins = app.seed_demo().await;
    let original = annotate(&app, "olga", "cart-summary", "Shipping cost appears too late").await;
    let duplicate = annotate(&app, "wendy", "cart-summary", "I only see shipping at the very end").await;
    let anna = Person::sign_in(&app, &logins, "anna").await;
    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    for who in [&anna, &tomas] {
        assert_eq!(who.post(&app, &format!("{CART}/annotations/{duplicate}/support"), &[]).await.status(), 200);
    }
    assert_eq!(tomas.post(&app, &format!("{CART}/annotations/{original}/support"), &[]).await.status(), 200);
    let hub_id: i64 = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM annotations WHERE id = $1")
        .bind(duplicate)
        .fetch_one(app.db.reader())
        .await
        .expect("version");
    ihf::triage::apply(
        &app.db,
        hub_id,
        actor(&app, "tomas").await,
        &[(ihf::triage::Target { id: duplicate, version }, ihf::triage::Change::Duplicate { of: original })],
    )
    .await
    .expect("duplicate");
    // Anna's and Tomas's support, and Wendy (who asked for the same), count for the original once each.
    assert_eq!(supporters(&app, duplicate).await, 0);
    let moved: Vec<i64> =
        sqlx::query_scalar("SELECT actor_id FROM annotation_supports WHERE annotation_id = $1 ORDER BY actor_id")
            .bind(original)
            .fetch_all(app.db.reader())
            .await
            .expect("supporters");
    let mut expected = vec![actor(&app, "anna").await, actor(&app, "tomas").await, actor(&app, "wendy").await];
    expected.sort();
    assert_eq!(moved, expected);
    // Sorted by support, the original comes first; the next page goes on from there.
    let sorted = tomas
        .client
        .get(app.url("/hubs/checkout/triage?status=all&sort=support"))
        .send()
        .await
        .expect("board")
        .text()
        .await
        .expect("body");
    let first_row = sorted.find("id=\"row-").expect("rows");
    assert!(sorted[first_row..].contains("data-count=\"3\""), "the board shows the original's 3 supporters");
    assert_eq!(sorted[first_row..].find(&format!("id=\"row-{original}\"")), Some(0), "most supported first");
    assert!(
        sorted.contains("sort=support&amp;after=") || sorted.contains("sort=support&#38;after="),
        "paged in that order"
    );
    assert_eq!(tomas.get(&app, "/hubs/checkout/triage?sort=loudest").await.0, 400);
});

/// Who supports annotation `id`, by actor id.
async fn supporter_ids(app: &TestApp, id: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT actor_id FROM annotation_supports WHERE annotation_id = $1 ORDER BY actor_id")
        .bind(id)
        .fetch_all(app.db.reader())
        .await
        .expect("supporters")
}

/// Posts one triage action on annotation `id` as `who` and returns the toast's undo token.
async fn triage_action(app: &TestApp, who: &Person, id: i64, action: &str, extra: &[(&str, &str)]) -> String {
    let version: i64 = sqlx::query_scalar("SELECT version FROM annotations WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("version");
    let version = version.to_string();
    let mut form = vec![("action", action), ("version", version.as_str())];
    form.extend_from_slice(extra);
    let response = who.post(app, &format!("/hubs/checkout/triage/annotations/{id}"), &form).await;
    assert_eq!(response.status(), 200, "{action}");
    let html = response.text().await.expect("body");
    common::text_attr(&html, "name=\"token\" value=\"").expect("an undo token in the toast")
}

dual_test!(undoing_a_duplicate_gives_its_support_back, |app| {
    let logins = app.seed_demo().await;
    let original = annotate(&app, "olga", "cart-summary", "Shipping cost appears too late").await;
    let duplicate = annotate(&app, "wendy", "cart-summary", "I only see shipping at the very end").await;
    let another = annotate(&app, "olga", "cart-summary", "Where is the shipping cost?").await;
    let anna = Person::sign_in(&app, &logins, "anna").await;
    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    for who in [&anna, &tomas] {
        assert_eq!(who.post(&app, &format!("{CART}/annotations/{duplicate}/support"), &[]).await.status(), 200);
    }
    // Tomas supported the original already; Olga (its author) supports the third one.
    assert_eq!(tomas.post(&app, &format!("{CART}/annotations/{original}/support"), &[]).await.status(), 200);
    let (anna_id, tomas_id, wendy_id) =
        (actor(&app, "anna").await, actor(&app, "tomas").await, actor(&app, "wendy").await);
    let before_duplicate = supporter_ids(&app, duplicate).await;
    let before_original = supporter_ids(&app, original).await;
    assert_eq!(before_original, vec![tomas_id]);

    // Marked a duplicate, then undone from the toast: everything is back as it was.
    let of = original.to_string();
    let token = triage_action(&app, &tomas, duplicate, "duplicate", &[("of", &of)]).await;
    let mut moved = vec![anna_id, tomas_id, wendy_id];
    moved.sort();
    assert_eq!(supporter_ids(&app, original).await, moved);
    assert!(supporter_ids(&app, duplicate).await.is_empty());
    let undone = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", &token)]).await;
    assert_eq!(undone.status(), 200);
    assert_eq!(supporter_ids(&app, duplicate).await, before_duplicate, "the duplicate's supporters are back");
    assert_eq!(supporter_ids(&app, original).await, before_original, "and the original has only its own");
    let moves: i64 = app.scalar("SELECT COUNT(*) FROM support_moves").await;
    assert_eq!(moves, 0, "nothing is left to move back");

    // Reopening a duplicate gives its support back too; so does marking it a duplicate of
    // another (the support follows it there).
    triage_action(&app, &tomas, duplicate, "duplicate", &[("of", &of)]).await;
    triage_action(&app, &tomas, duplicate, "reopen", &[]).await;
    assert_eq!(supporter_ids(&app, duplicate).await, before_duplicate);
    assert_eq!(supporter_ids(&app, original).await, before_original);
    triage_action(&app, &tomas, duplicate, "duplicate", &[("of", &of)]).await;
    let elsewhere = another.to_string();
    triage_action(&app, &tomas, duplicate, "duplicate", &[("of", &elsewhere)]).await;
    assert_eq!(supporter_ids(&app, original).await, before_original, "the original lost what the move gave it");
    assert_eq!(supporter_ids(&app, another).await, moved, "the other gained it");

    // Two duplicates of one original that both moved Anna's support: undoing one keeps her
    // support on the original (the other still counts it); undoing both takes it away.
    triage_action(&app, &tomas, duplicate, "reopen", &[]).await;
    let second = annotate(&app, "tomas", "cart-summary", "Shipping costs show up only at the end").await;
    assert_eq!(anna.post(&app, &format!("{CART}/annotations/{second}/support"), &[]).await.status(), 200);
    let first_token = triage_action(&app, &tomas, duplicate, "duplicate", &[("of", &of)]).await;
    let second_token = triage_action(&app, &tomas, second, "duplicate", &[("of", &of)]).await;
    assert!(supporter_ids(&app, original).await.contains(&anna_id));
    assert_eq!(tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", &first_token)]).await.status(), 200);
    assert!(supporter_ids(&app, original).await.contains(&anna_id), "the second duplicate still counts Anna");
    assert_eq!(supporter_ids(&app, duplicate).await, before_duplicate);
    assert_eq!(tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", &second_token)]).await.status(), 200);
    assert_eq!(supporter_ids(&app, original).await, before_original);
    assert_eq!(supporter_ids(&app, second).await, vec![anna_id]);
});

dual_test!(an_embed_visitor_supports_once_and_sees_the_count, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = ihf_widget(&app, "cart-summary").await;
    let id = annotate(&app, "wendy", "cart-summary", "The embed totals are off by a cent").await;
    let page = app.new_client().get(app.url(&format!("/embed/{key}"))).send().await.expect("embed");
    let html = page.text().await.expect("body");
    let vt = common::text_attr(&html, "data-visitor-token=\"").expect("visitor token");
    assert!(html.contains(&format!("id=\"support-{id}\"")), "the embed thread shows the support toggle");
    let url = format!("/embed/{key}/annotations/{id}/support?vt={vt}");
    let post = || {
        app.new_client().post(app.url(&url)).header("HX-Request", "true").header("Origin", app.address.clone()).send()
    };
    let given = post().await.expect("support");
    assert_eq!(given.status(), 200);
    let html = given.text().await.expect("body");
    assert!(html.contains("data-count=\"1\"") && html.contains("aria-pressed=\"true\""), "{html}");
    assert_eq!(supporters(&app, id).await, 1);
    let taken = post().await.expect("support").text().await.expect("body");
    assert!(taken.contains("data-count=\"0\""), "{taken}");
    // A foreign page may not post it.
    let forged =
        app.new_client().post(app.url(&url)).header("Origin", "https://evil.example").send().await.expect("forged");
    assert_eq!(forged.status(), 403);
    assert_eq!(supporters(&app, id).await, 0);
});

async fn ihf_widget(app: &TestApp, slug: &str) -> (i64, i64, String, String) {
    sqlx::query_as("SELECT id, hub_id, embed_key, embed_secret FROM widgets WHERE slug = $1")
        .bind(slug)
        .fetch_one(app.db.reader())
        .await
        .expect("widget")
}

/// Proposes a candidate with `evidence` and walks it to each status of `path`.
async fn candidate(app: &TestApp, title: &str, evidence: &[i64], path: &[(&str, &str, &str)]) -> i64 {
    use ihf::db::candidates::{self, Decision, Status};
    let hub_id: i64 = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let olga = actor(app, "olga").await;
    let mut tx = app.db.begin_write().await.expect("begin");
    let id = candidates::propose(&mut tx, hub_id, olga, title, &format!("{title}, because people asked"), evidence)
        .await
        .expect("propose");
    for (from, to, rationale) in path {
        let (from, to) = (Status::parse(from).expect("status"), Status::parse(to).expect("status"));
        let decision = Decision { hub_id, candidate_id: id, actor_id: olga, from, to, rationale };
        candidates::decide(&mut tx, &decision).await.expect("decide");
    }
    tx.commit().await.expect("commit");
    id
}

dual_test!(the_public_roadmap_shows_only_what_it_may, |app| {
    let logins = app.seed_demo().await;
    let public = annotate(&app, "wendy", "cart-summary", "Show shipping costs before checkout").await;
    let private = annotate(&app, "anna", "fraud-review", "SECRET-FRAUD-DETAIL about my order").await;
    let members = annotate(&app, "anna", "payment-form", "MEMBERS-ONLY remark").await;
    let other = annotate(&app, "anna", "cart-summary", "A dark mode for the cart").await;
    let shipped_one = annotate(&app, "anna", "promo-code", "Promo codes should accept lowercase").await;
    let anna = Person::sign_in(&app, &logins, "anna").await;
    assert_eq!(anna.post(&app, &format!("{CART}/annotations/{public}/support"), &[]).await.status(), 200);
    let planned = candidate(
        &app,
        "Shipping costs up front",
        &[public, private, members],
        &[("proposed", "accepted", "RATIONALE-ACCEPT")],
    )
    .await;
    candidate(&app, "Dark cart", &[other], &[("proposed", "rejected", "RATIONALE-REJECT")]).await;
    let shipped = candidate(
        &app,
        "Case-insensitive promo codes",
        &[shipped_one],
        &[("proposed", "accepted", "ok"), ("accepted", "implemented", "RATIONALE-SHIPPED")],
    )
    .await;

    // Not public yet: nobody outside the hub learns it exists; members see that it is private.
    for path in ["/hubs/checkout/roadmap", "/hubs/checkout/roadmap.atom", "/hubs/checkout/roadmap/whats-new"] {
        assert_eq!(app.new_client().get(app.url(path)).send().await.expect("GET").status(), 404, "{path}");
    }
    let (status, html) = anna.get(&app, "/hubs/checkout/roadmap").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"roadmap-private\""));
    // Only operators publish it.
    assert_eq!(anna.post(&app, "/hubs/checkout/roadmap/visibility", &[("public", "1")]).await.status(), 403);
    let olga = Person::sign_in(&app, &logins, "olga").await;
    assert_eq!(olga.post(&app, "/hubs/checkout/roadmap/visibility", &[("public", "1")]).await.status(), 303);

    let page = app.new_client().get(app.url("/hubs/checkout/roadmap")).send().await.expect("roadmap");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    let planned_at = html.find("id=\"roadmap-planned\"").expect("planned list");
    let shipped_at = html.find("id=\"roadmap-shipped\"").expect("shipped list");
    let item = |id: i64| html.find(&format!("id=\"candidate-{id}\"")).expect("item");
    assert!(item(planned) > planned_at && item(planned) < shipped_at, "accepted is planned");
    assert!(item(shipped) > shipped_at, "implemented is shipped");
    assert!(html.contains("Shipping costs up front") && html.contains("Case-insensitive promo codes"));
    for never in ["Dark cart", "RATIONALE", "SECRET-FRAUD-DETAIL", "MEMBERS-ONLY"] {
        assert!(!html.contains(never), "the roadmap shows {never}");
    }
    // Support counts public evidence only: one annotation, its author and one supporter.
    let planned_html = &html[item(planned)..];
    let planned_html = &planned_html[..planned_html.find("</li>").expect("end")];
    assert!(
        planned_html.contains("data-annotations=\"1\"") && planned_html.contains("data-people=\"2\""),
        "{planned_html}"
    );
    assert!(html[item(shipped)..].contains("Shipped <time"), "shipped with its date");

    let feed = app.new_client().get(app.url("/hubs/checkout/roadmap.atom")).send().await.expect("feed");
    assert_eq!(feed.status(), 200);
    assert!(
        feed.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .starts_with("application/atom+xml")
    );
    let xml = feed.text().await.expect("xml");
    assert!(xml.starts_with("<?xml") && xml.contains("<feed xmlns=\"http://www.w3.org/2005/Atom\">"));
    assert!(xml.contains("<title>Planned: Shipping costs up front</title>"));
    assert!(xml.contains("<title>Shipped: Case-insensitive promo codes</title>"));
    for never in ["Dark cart", "RATIONALE", "SECRET-FRAUD-DETAIL", "MEMBERS-ONLY"] {
        assert!(!xml.contains(never), "the feed shows {never}");
    }

    let embed = app.new_client().get(app.url("/hubs/checkout/roadmap/whats-new")).send().await.expect("embed");
    assert_eq!(embed.status(), 200);
    let csp =
        embed.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(csp.contains("frame-ancestors http://127.0.0.1:8081"), "framable by the hub's embed origins: {csp}");
    let html = embed.text().await.expect("body");
    assert!(html.contains("Case-insensitive promo codes") && !html.contains("Shipping costs up front"));

    // Live: a new supporter of the public evidence updates the roadmap for anonymous readers.
    let reader = app.new_client();
    let page = reader.get(app.url("/hubs/checkout/roadmap")).send().await.expect("page").text().await.expect("body");
    let live = common::text_attr(&page, "sse-connect=\"").expect("live stream").replace("&#38;", "&");
    let mut stream = SseClient::open(&app, &reader, &live, None).await;
    let _ = stream.events_within(Duration::from_millis(300)).await;
    let tomas = Person::sign_in(&app, &logins, "tomas").await;
    assert_eq!(tomas.post(&app, &format!("{CART}/annotations/{public}/support"), &[]).await.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    while tokio::time::Instant::now() < deadline && !seen {
        if let Some(event) = stream.next_event(Duration::from_secs(2)).await {
            seen = event.event == "roadmap" && event.data.contains("data-people=\"3\"");
        }
    }
    assert!(seen, "the roadmap counted the new supporter live");

    // Taken down again: gone for everyone outside.
    assert_eq!(olga.post(&app, "/hubs/checkout/roadmap/visibility", &[("public", "0")]).await.status(), 303);
    assert_eq!(app.new_client().get(app.url("/hubs/checkout/roadmap.atom")).send().await.expect("GET").status(), 404);
});

dual_test!(similar_feedback_is_found_by_full_text_search_within_the_policy, |app| {
    let logins = app.seed_demo().await;
    let match_one =
        annotate(&app, "anna", "payment-form", "The expiry field rejects valid dates on the card form").await;
    let dismissed = annotate(&app, "olga", "payment-form", "Expiry dates rejected again and again").await;
    sqlx::query("UPDATE annotations SET status = 'dismissed', dismiss_reason = 'spam' WHERE id = $1")
        .bind(dismissed)
        .execute(app.db.writer())
        .await
        .expect("dismiss");
    let own = annotate(&app, "wendy", "payment-form", "My own note: expiry rejected").await;
    let elsewhere = annotate(&app, "anna", "cart-summary", "Cart expiry of items is rejected too").await;
    let wendy = Person::sign_in(&app, &logins, "wendy").await;
    let url = format!("{PAYMENT}/similar");
    let ask = |draft: &'static str| {
        let (wendy, app, url) = (&wendy, &app, &url);
        async move { wendy.post(app, url, &[("body", draft)]).await }
    };

    let html = ask("expiry keeps getting rejected").await.text().await.expect("body");
    assert!(html.contains("Same as yours?") && html.contains(&format!("id=\"similar-{match_one}\"")), "{html}");
    assert!(html.contains(&format!("id=\"similar-support-{match_one}\"")), "with its support toggle");
    for not in [dismissed, own, elsewhere] {
        assert!(!html.contains(&format!("id=\"similar-{not}\"")), "{not} is not suggested: {html}");
    }
    // A few words first; stemming finds "rejecting" for "rejects".
    assert!(!ask("expiry").await.text().await.expect("body").contains("similar-"));
    let stemmed = ask("it is rejecting my expiry").await.text().await.expect("body");
    assert!(stemmed.contains(&format!("id=\"similar-{match_one}\"")), "{stemmed}");
    // Supporting from the suggestion answers the suggestion's toggle.
    let toggled = wendy.post(&app, &format!("{PAYMENT}/annotations/{match_one}/support?slot=similar"), &[]).await;
    let toggled = toggled.text().await.expect("body");
    assert!(toggled.contains(&format!("id=\"similar-support-{match_one}\"")) && toggled.contains("data-count=\"1\""));
    // FTS syntax in a draft is just words.
    assert_eq!(ask("\"unbalanced NEAR( OR * quote").await.status(), 200);

    // An embed visitor on this members widget reads only their own annotations: nothing to suggest.
    let (_, _, key, _) = ihf_widget(&app, "payment-form").await;
    let page = app.new_client().get(app.url(&format!("/embed/{key}"))).send().await.expect("embed");
    let vt = common::text_attr(&page.text().await.expect("body"), "data-visitor-token=\"").expect("visitor token");
    let embed = app
        .new_client()
        .post(app.url(&format!("/embed/{key}/similar?vt={vt}")))
        .header("Origin", app.address.clone())
        .form(&[("body", "expiry keeps getting rejected")])
        .send()
        .await
        .expect("similar");
    assert_eq!(embed.status(), 200);
    assert!(!embed.text().await.expect("body").contains("similar-"), "the policy holds in the embed");
    // On the public cart widget the visitor is offered the public match.
    let (_, _, cart_key, _) = ihf_widget(&app, "cart-summary").await;
    let page = app.new_client().get(app.url(&format!("/embed/{cart_key}"))).send().await.expect("embed");
    let vt = common::text_attr(&page.text().await.expect("body"), "data-visitor-token=\"").expect("visitor token");
    let embed = app
        .new_client()
        .post(app.url(&format!("/embed/{cart_key}/similar?vt={vt}")))
        .header("Origin", app.address.clone())
        .form(&[("body", "items expiry rejected in my cart")])
        .send()
        .await
        .expect("similar");
    assert!(embed.text().await.expect("body").contains(&format!("id=\"similar-{elsewhere}\"")));
});
