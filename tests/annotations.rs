//! Annotations through HTTP: the composer component, the widget page and its thread, the
//! author's edit and delete, the feedback inbox, and markup safety.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;

use common::{PASSWORD, SseClient, TestApp, csrf_from, text_attr};

const PAYMENT: &str = "/hubs/checkout/widgets/payment-form";
const CART: &str = "/hubs/checkout/widgets/cart-summary";

/// A signed-in client on a widget page, with what it needs to post to the composer.
struct Writer {
    client: reqwest::Client,
    csrf: String,
    token: String,
}

async fn page(client: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let response = client.get(app.url(path)).send().await.expect("GET");
    (response.status().as_u16(), response.text().await.expect("body"))
}

fn token_of(html: &str) -> String {
    text_attr(html, "name=\"token\" value=\"").expect("a composer token")
}

async fn writer(app: &TestApp, handle: &str, password: &str, path: &str) -> Writer {
    let client = app.signed_in(handle, password).await;
    let (status, html) = page(&client, app, path).await;
    assert_eq!(status, 200, "{handle} opens {path}");
    Writer { csrf: csrf_from(&html), token: token_of(&html), client }
}

impl Writer {
    /// Posts the composer as htmx does.
    async fn htmx(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("token", self.token.as_str())];
        form.extend_from_slice(fields);
        self.client
            .post(app.url(&format!("{path}/composer")))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &self.csrf)
            .form(&form)
            .send()
            .await
            .expect("POST composer")
    }

    /// Posts the composer as a plain form (no JavaScript).
    async fn plain(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = vec![("token", self.token.as_str()), ("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.client.post(app.url(&format!("{path}/composer"))).form(&form).send().await.expect("POST composer")
    }

    /// A state-changing htmx POST anywhere.
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
}

async fn count_annotations(app: &TestApp) -> i64 {
    app.scalar("SELECT COUNT(*) FROM annotations").await
}

async fn id_of(app: &TestApp, body: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM annotations WHERE body = $1")
        .bind(body.to_owned())
        .fetch_one(app.db.reader())
        .await
        .expect("annotation by body")
}

async fn body_and_deleted(app: &TestApp, id: i64) -> (String, Option<i64>) {
    sqlx::query_as("SELECT body, deleted_at FROM annotations WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("annotation")
}

async fn demo(app: &TestApp) -> HashMap<String, String> {
    app.seed_demo().await
}

/// HTML-escapes like askama does for text, enough to find typed text in a page.
fn escaped(text: &str) -> String {
    ihf::web::markup::escape(text)
}

dual_test!(submit_creates_one_annotation_and_the_thread_shows_it, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    assert!(wendy.token.len() > 20);
    let before = count_annotations(&app).await;

    // Typing: the live count comes back, nothing is written.
    let typing =
        wendy.htmx(&app, PAYMENT, &[("body", "The 3-D Secure popup"), ("category", "bug"), ("action", "body")]).await;
    assert_eq!(typing.status(), 200);
    let html = typing.text().await.expect("body");
    assert!(html.contains("20 / 4000"), "live character count");
    assert!(html.contains("value=\"bug\" checked"), "the chosen category stays chosen");
    assert_eq!(count_annotations(&app).await, before);

    let text = "The 3-D Secure popup closes itself on Safari.";
    let response = wendy.htmx(&app, PAYMENT, &[("body", text), ("category", "bug"), ("action", "submit")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("hx-trigger").and_then(|v| v.to_str().ok()), Some("annotation-created"));
    let html = response.text().await.expect("body");
    assert!(html.contains("Thanks, your feedback was submitted."));
    assert!(!html.contains(text), "the composer is reset");
    assert!(html.contains("value=\"friction\" checked"), "back to the default category");
    assert_ne!(token_of(&html), wendy.token, "a new state, with a new idempotency key");
    let after = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: token_of(&html) };
    let typing = after.htmx(&app, PAYMENT, &[("body", ""), ("category", "friction"), ("action", "body")]).await;
    assert!(typing.headers().get("hx-trigger").is_none(), "only a creation refreshes the thread");
    assert!(typing.text().await.expect("body").contains("Thanks, your feedback was submitted."), "thanks stays");

    assert_eq!(count_annotations(&app).await, before + 1);
    let (actor, category, status): (String, String, String) = sqlx::query_as(
        "SELECT p.handle, c.slug, a.status FROM annotations a JOIN actors p ON p.id = a.actor_id
         JOIN categories c ON c.id = a.category_id WHERE a.body = $1",
    )
    .bind(text)
    .fetch_one(app.db.reader())
    .await
    .expect("the new annotation");
    assert_eq!((actor.as_str(), category.as_str(), status.as_str()), ("wendy", "bug", "new"));

    // The thread, for the author and for another member, shows it first.
    let thread = wendy.client.get(app.url(&format!("{PAYMENT}/thread"))).header("HX-Request", "true").send().await;
    let thread = thread.expect("thread").text().await.expect("body");
    assert!(!thread.contains("<html"), "a fragment");
    let first = thread.find("id=\"annotation-").expect("an annotation");
    assert!(thread[first..].starts_with(&format!("id=\"annotation-{}\"", id_of(&app, text).await)), "newest first");
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let (_, html) = page(&anna, &app, PAYMENT).await;
    assert!(html.contains(text));
});

dual_test!(the_composer_works_without_javascript, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let text = "Plain form post, no JavaScript at all.";
    let response = wendy.plain(&app, PAYMENT, &[("body", text), ("category", "idea"), ("action", "submit")]).await;
    assert_eq!(response.status(), 303);
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
    assert_eq!(location, format!("{PAYMENT}?thanks=1"));
    let (status, html) = page(&wendy.client, &app, &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("Thanks, your feedback was submitted."));
    assert!(html.contains(text), "the thread shows it");

    // Mistakes come back as the whole page, 422, with the text and the message.
    let response = wendy.plain(&app, PAYMENT, &[("body", "   "), ("category", "idea")]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.expect("body");
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("feedback cannot be empty"));
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM annotations WHERE body = $1")
            .bind(text)
            .fetch_one(app.db.reader())
            .await
            .expect("count"),
        1
    );
});

dual_test!(each_invalid_input_is_422_with_the_message_and_the_typed_text, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let before = count_annotations(&app).await;
    let long = "x".repeat(4001);
    let cases: [(&str, &str, &str); 4] = [
        ("", "friction", "feedback cannot be empty"),
        ("  \n\t  ", "friction", "feedback cannot be empty"),
        (&long, "friction", "That is 4001 characters"),
        ("Keep this text, please", "no-such-category", "Choose one of this hub"),
    ];
    for (body, category, message) in cases {
        for htmx in [true, false] {
            let fields = [("body", body), ("category", category), ("action", "submit")];
            let response =
                if htmx { wendy.htmx(&app, PAYMENT, &fields).await } else { wendy.plain(&app, PAYMENT, &fields).await };
            assert_eq!(response.status(), 422, "{category} {body:.20?} htmx={htmx}");
            let html = response.text().await.expect("body");
            assert!(html.contains(message), "message {message:?} (htmx={htmx})");
            assert!(html.contains(&format!(">{}</textarea>", escaped(body))), "typed text kept");
            assert!(html.contains("class=\"field-error\""), "next to the field");
        }
    }
    // An archived category is not a choice either.
    sqlx::query("UPDATE categories SET archived_at = 1 WHERE slug = 'praise'")
        .execute(app.db.writer())
        .await
        .expect("archive");
    let response = wendy.htmx(&app, PAYMENT, &[("body", "Lovely"), ("category", "praise"), ("action", "submit")]).await;
    assert_eq!(response.status(), 422);
    assert_eq!(count_annotations(&app).await, before, "nothing was written");
});

dual_test!(a_widget_gone_or_closed_is_422_and_keeps_the_text, |app| {
    let logins = demo(&app).await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let temp = common::public_widget(&app.db, hub_id, "temp").await;
    let path = "/hubs/checkout/widgets/temp";
    let wendy = writer(&app, "wendy", &logins["wendy"], path).await;
    let before = count_annotations(&app).await;

    sqlx::query("UPDATE widgets SET archived_at = 1 WHERE id = $1")
        .bind(temp.id)
        .execute(app.db.writer())
        .await
        .expect("archive");
    let response = wendy.htmx(&app, path, &[("body", "Written while it closed"), ("category", "bug")]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.expect("body");
    assert!(html.contains("This widget no longer accepts feedback."));
    assert!(html.contains(">Written while it closed</textarea>"));

    sqlx::query("DELETE FROM widgets WHERE id = $1").bind(temp.id).execute(app.db.writer()).await.expect("delete");
    let response = wendy.htmx(&app, path, &[("body", "Written while it vanished"), ("category", "bug")]).await;
    assert_eq!(response.status(), 422);
    let html = response.text().await.expect("body");
    assert!(html.contains("This widget no longer accepts feedback."));
    assert!(html.contains(">Written while it vanished</textarea>"));

    // Someone who cannot read a widget cannot write to it either.
    let ali = app.signed_in("ali", &logins["ali"]).await;
    let ali_csrf = app.csrf(&ali, "/").await;
    let response = ali
        .post(app.url(&format!("{PAYMENT}/composer")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &ali_csrf)
        .form(&[("token", wendy_token_for(&app, &logins).await.as_str()), ("body", "Sneaky"), ("category", "bug")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 422);
    assert!(response.text().await.expect("body").contains(">Sneaky</textarea>"));
    assert_eq!(count_annotations(&app).await, before, "nothing was written");
});

async fn wendy_token_for(app: &TestApp, logins: &HashMap<String, String>) -> String {
    writer(app, "wendy", &logins["wendy"], PAYMENT).await.token
}

dual_test!(a_tampered_token_is_400_and_nothing_is_written, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let before = count_annotations(&app).await;
    let (payload, mac) = wendy.token.split_once('.').expect("payload.mac");
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("utf-8");
    let cart_id = app.scalar("SELECT id FROM widgets WHERE slug = 'cart-summary'").await;
    let payment_id = app.scalar("SELECT id FROM widgets WHERE slug = 'payment-form'").await;
    let forged = json.replace(&format!("\"widget_id\":{payment_id}"), &format!("\"widget_id\":{cart_id}"));
    assert_ne!(forged, json);
    let mut flipped = mac.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered = [
        format!("{}.{mac}", URL_SAFE_NO_PAD.encode(forged)),
        format!("{payload}.{}", String::from_utf8(flipped).expect("ascii")),
        format!("{payload}."),
        "not a token".to_owned(),
    ];
    for token in &tampered {
        let forged = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: token.clone() };
        for htmx in [true, false] {
            let fields = [("body", "Forged state"), ("category", "bug"), ("action", "submit")];
            let response = if htmx {
                forged.htmx(&app, PAYMENT, &fields).await
            } else {
                forged.plain(&app, PAYMENT, &fields).await
            };
            assert_eq!(response.status(), 400, "{token} htmx={htmx}");
        }
    }
    // A genuine token of another widget does not fit this one.
    let cart = writer(&app, "wendy", &logins["wendy"], CART).await;
    let moved = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: cart.token };
    assert_eq!(moved.htmx(&app, PAYMENT, &[("body", "Moved"), ("category", "bug")]).await.status(), 400);
    assert_eq!(count_annotations(&app).await, before, "nothing was written");
});

dual_test!(a_double_submit_creates_one_annotation, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let before = count_annotations(&app).await;
    let fields = [("body", "Clicked twice, by accident."), ("category", "friction"), ("action", "submit")];
    let (a, b) = tokio::join!(wendy.htmx(&app, PAYMENT, &fields), wendy.htmx(&app, PAYMENT, &fields));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    // A retry after a timeout: the same state again, later, and as a plain form.
    assert_eq!(wendy.htmx(&app, PAYMENT, &fields).await.status(), 200);
    assert_eq!(wendy.plain(&app, PAYMENT, &fields).await.status(), 303);
    assert_eq!(count_annotations(&app).await, before + 1);

    // The next state makes the next annotation.
    let html = wendy.htmx(&app, PAYMENT, &fields).await.text().await.expect("body");
    let next = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: token_of(&html) };
    assert_eq!(next.htmx(&app, PAYMENT, &fields).await.status(), 200);
    assert_eq!(count_annotations(&app).await, before + 2);
});

dual_test!(a_database_error_keeps_the_text, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    sqlx::query("ALTER TABLE annotations RENAME TO annotations_away").execute(app.db.writer()).await.expect("rename");
    let response = wendy.htmx(&app, PAYMENT, &[("body", "Saved after all?"), ("category", "bug")]).await;
    let status = response.status().as_u16();
    let html = response.text().await.expect("body");
    sqlx::query("ALTER TABLE annotations_away RENAME TO annotations")
        .execute(app.db.writer())
        .await
        .expect("rename back");
    assert!(status >= 500, "{status}");
    assert!(html.contains("id=\"composer-failure\""), "an error note");
    assert!(html.contains(">Saved after all?</textarea>"), "the text is intact");
    // Submitting the same state again, now that the database is back, works once.
    assert_eq!(wendy.htmx(&app, PAYMENT, &[("body", "Saved after all?"), ("category", "bug")]).await.status(), 200);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM annotations WHERE body = 'Saved after all?'").await, 1);
});

dual_test!(only_the_author_edits_deletes_and_restores, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let text = "Original words of wendy.";
    assert_eq!(wendy.htmx(&app, PAYMENT, &[("body", text), ("category", "bug")]).await.status(), 200);
    let id = id_of(&app, text).await;
    let item = format!("{PAYMENT}/annotations/{id}");

    // Others: a fellow annotator, a triager, an operator and a stranger: 403/404, nothing changes.
    let anna = writer(&app, "anna", &logins["anna"], PAYMENT).await;
    let tomas = writer(&app, "tomas", &logins["tomas"], PAYMENT).await;
    let olga = writer(&app, "olga", &logins["olga"], PAYMENT).await;
    for other in [&anna, &tomas, &olga] {
        let page = other.client.get(app.url(&format!("{item}/edit"))).send().await.expect("GET edit");
        assert_eq!(page.status(), 403);
        assert_eq!(other.post(&app, &item, &[("body", "Hijacked")]).await.status(), 403);
        assert_eq!(other.post(&app, &format!("{item}/delete"), &[]).await.status(), 403);
        let (_, html) = page_html(&other.client, &app, PAYMENT).await;
        assert!(!html.contains(&format!("{item}/edit")), "no edit control for others");
    }
    let ali = app.signed_in("ali", &logins["ali"]).await;
    let ali_csrf = app.csrf(&ali, "/").await;
    let response = ali.post(app.url(&item)).header("X-CSRF-Token", &ali_csrf).form(&[("body", "x")]).send().await;
    assert_eq!(response.expect("POST").status(), 403, "outsiders may not read the members widget");
    let anonymous = app.new_client();
    let anon_csrf = app.csrf(&anonymous, "/login").await;
    let response =
        anonymous.post(app.url(&item)).header("X-CSRF-Token", &anon_csrf).form(&[("body", "x")]).send().await;
    assert_eq!(response.expect("POST").status(), 401);
    assert_eq!(body_and_deleted(&app, id).await, (text.to_owned(), None), "nothing changed");

    // The author: the edit form, a refused edit that keeps the text, then a real one.
    let (_, html) = page_html(&wendy.client, &app, PAYMENT).await;
    assert!(html.contains(&format!("{item}/edit")), "an edit control for the author");
    let form = wendy.client.get(app.url(&format!("{item}/edit"))).header("HX-Request", "true").send().await;
    let form = form.expect("edit").text().await.expect("body");
    assert!(form.contains("data-editing") && form.contains(&format!(">{text}</textarea>")));
    let long = "y".repeat(4001);
    let refused = wendy.post(&app, &item, &[("body", &long)]).await;
    assert_eq!(refused.status(), 422);
    let html = refused.text().await.expect("body");
    assert!(html.contains("That is 4001 characters") && html.contains(&format!(">{long}</textarea>")));
    let edited = wendy.post(&app, &item, &[("body", "Edited words of wendy.")]).await;
    assert_eq!(edited.status(), 200);
    assert!(edited.text().await.expect("body").contains("Edited words of wendy."));
    assert_eq!(body_and_deleted(&app, id).await.0, "Edited words of wendy.");

    // Delete: gone for others, an undo note for the author, and undo brings it back.
    let deleted = wendy.post(&app, &format!("{item}/delete"), &[]).await;
    assert_eq!(deleted.status(), 200);
    assert!(deleted.text().await.expect("body").contains("/restore"), "an undo button");
    assert!(body_and_deleted(&app, id).await.1.is_some());
    assert!(!page_html(&anna.client, &app, PAYMENT).await.1.contains("Edited words of wendy."));
    assert!(page_html(&wendy.client, &app, PAYMENT).await.1.contains(&format!("{item}/restore")));
    for other in [&anna, &tomas] {
        assert_eq!(other.post(&app, &format!("{item}/restore"), &[]).await.status(), 403);
    }
    assert!(body_and_deleted(&app, id).await.1.is_some(), "still deleted");
    let restored = wendy.post(&app, &format!("{item}/restore"), &[]).await;
    assert_eq!(restored.status(), 200);
    assert!(restored.text().await.expect("body").contains("Edited words of wendy."));
    assert_eq!(body_and_deleted(&app, id).await, ("Edited words of wendy.".to_owned(), None));

    // Too late to undo.
    assert_eq!(wendy.post(&app, &format!("{item}/delete"), &[]).await.status(), 200);
    sqlx::query("UPDATE annotations SET deleted_at = 1000 WHERE id = $1")
        .bind(id)
        .execute(app.db.writer())
        .await
        .expect("age");
    assert_eq!(wendy.post(&app, &format!("{item}/restore"), &[]).await.status(), 409);
    assert_eq!(body_and_deleted(&app, id).await.1, Some(1000));
    assert!(!page_html(&wendy.client, &app, PAYMENT).await.1.contains(&format!("{item}/restore")));
});

async fn page_html(client: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    page(client, app, path).await
}

dual_test!(editing_works_without_javascript, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    assert_eq!(wendy.htmx(&app, PAYMENT, &[("body", "Before the edit"), ("category", "bug")]).await.status(), 200);
    let id = id_of(&app, "Before the edit").await;
    let item = format!("{PAYMENT}/annotations/{id}");
    let (status, html) = page(&wendy.client, &app, &format!("{item}/edit")).await;
    assert_eq!(status, 200);
    assert!(html.starts_with("<!doctype html>") && html.contains(">Before the edit</textarea>"));
    let csrf = csrf_from(&html);
    let response =
        wendy.client.post(app.url(&item)).form(&[("body", "After the edit"), ("csrf_token", &csrf)]).send().await;
    assert_eq!(response.expect("POST").status(), 303);
    assert_eq!(body_and_deleted(&app, id).await.0, "After the edit");
    let response = wendy.client.post(app.url(&item)).form(&[("body", ""), ("csrf_token", &csrf)]).send().await;
    let response = response.expect("POST");
    assert_eq!(response.status(), 422);
    assert!(response.text().await.expect("body").contains("feedback cannot be empty"));
    let response = wendy.client.post(app.url(&format!("{item}/delete"))).form(&[("csrf_token", &csrf)]).send().await;
    assert_eq!(response.expect("POST").status(), 303);
    assert!(body_and_deleted(&app, id).await.1.is_some());
});

dual_test!(the_inbox_is_for_the_owner_and_hub_staff, |app| {
    let logins = demo(&app).await;
    let inbox = format!("{PAYMENT}/inbox");
    for (handle, expected) in
        [("wendy", 200), ("tomas", 200), ("olga", 200), ("admin", 200), ("anna", 403), ("ali", 403), ("tara", 403)]
    {
        let client = app.signed_in(handle, &logins[handle]).await;
        for path in [inbox.clone(), format!("{inbox}/list")] {
            assert_eq!(page(&client, &app, &path).await.0, expected, "{handle} {path}");
        }
        let csrf = app.csrf(&client, "/").await;
        let response = client
            .post(app.url(&format!("{inbox}/read")))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &csrf)
            .form(&[("up_to", ihf::db::now_ms().to_string())])
            .send()
            .await
            .expect("POST read");
        assert_eq!(response.status().as_u16(), expected, "{handle} marks read");
    }
    let denied: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM inbox_reads r JOIN actors p ON p.id = r.actor_id WHERE p.handle IN ('anna', 'ali', 'tara')",
    )
    .fetch_one(app.db.reader())
    .await
    .expect("count");
    assert_eq!(denied, 0, "a refused request wrote nothing");
    assert_eq!(page(&app.new_client(), &app, &inbox).await.0, 401);
    // The widget page links the inbox only for those who may read it.
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    assert!(page(&wendy, &app, PAYMENT).await.1.contains(&format!("href=\"{inbox}\"")));
    let anna = app.signed_in("anna", &logins["anna"]).await;
    assert!(!page(&anna, &app, PAYMENT).await.1.contains(&format!("href=\"{inbox}\"")));
});

/// Counts on a widget computed straight from the database.
async fn db_count(app: &TestApp, widget: &str, category: Option<&str>, status: Option<&str>) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id JOIN categories c ON c.id = a.category_id
         WHERE w.slug = $1 AND a.deleted_at IS NULL AND ($2 = '' OR c.slug = $2) AND ($3 = '' OR a.status = $3)",
    )
    .bind(widget.to_owned())
    .bind(category.unwrap_or_default().to_owned())
    .bind(status.unwrap_or_default().to_owned())
    .fetch_one(app.db.reader())
    .await
    .expect("count")
}

fn items(html: &str) -> usize {
    html.matches("<li id=\"inbox-").count()
}

dual_test!(inbox_filters_and_counts, |app| {
    let logins = demo(&app).await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let inbox = format!("{CART}/inbox");
    let (status, html) = page(&olga, &app, &inbox).await;
    assert_eq!(status, 200);
    let total = db_count(&app, "cart-summary", None, None).await;
    assert!(total > 0);
    assert_eq!(common::text_after(&html, "data-count=\"all\">"), Some(total.to_string().as_str()));
    for category in ["friction", "bug", "idea", "praise", "question"] {
        let n = db_count(&app, "cart-summary", Some(category), None).await;
        assert_eq!(
            common::text_after(&html, &format!("data-count=\"{category}\">")),
            Some(n.to_string().as_str()),
            "{category}"
        );
    }
    assert_eq!(items(&html) as i64, total.min(30));

    // Filters in the URL: boosted links load the page for the new filter and push its URL.
    assert!(html.contains(&format!("href=\"{inbox}?category=bug\"")));
    assert!(html.contains("hx-boost=\"true\" hx-push-url=\"true\""));
    let boosted = olga
        .get(app.url(&format!("{inbox}?category=bug")))
        .header("HX-Request", "true")
        .header("HX-Boosted", "true")
        .send()
        .await
        .expect("GET");
    assert!(boosted.headers().get("vary").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("HX-Boosted")));
    let boosted = boosted.text().await.expect("body");
    assert!(boosted.starts_with("<!doctype html>"), "a boosted request gets the whole page, with its stream");
    assert!(boosted.contains("sse-connect=\"/live?regions=inbox:"));
    for (category, status) in [(Some("bug"), None), (None, Some("new")), (Some("friction"), Some("triaged"))] {
        let query = ihf::web::inbox::filter_query(category, status);
        let expected = db_count(&app, "cart-summary", category, status).await;
        let (code, full) = page(&olga, &app, &format!("{inbox}{query}")).await;
        assert_eq!(code, 200);
        assert_eq!(items(&full) as i64, expected.min(30), "{query}");
        if let Some(category) = category {
            assert_eq!(full.matches("data-category=").count(), items(&full), "{query}");
            assert_eq!(full.matches(&format!("data-category=\"{category}\"")).count(), items(&full), "{query}");
        }
        if let Some(status) = status {
            assert_eq!(full.matches(&format!("class=\"annotation status-{status}")).count(), items(&full), "{query}");
        }
        let region = olga.get(app.url(&format!("{inbox}/list{query}"))).header("HX-Request", "true").send().await;
        let region = region.expect("GET").text().await.expect("body");
        assert!(!region.contains("<html"));
        assert_eq!(items(&region), items(&full));
    }
    assert_eq!(page(&olga, &app, &format!("{inbox}?status=bogus")).await.0, 400);
    assert_eq!(page(&olga, &app, &format!("{inbox}?category=nothing-like-it")).await.0, 400);
});

/// Live annotations on the payment form written by someone other than `handle`.
async fn not_by(app: &TestApp, handle: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id JOIN actors p ON p.id = a.actor_id
         WHERE w.slug = 'payment-form' AND a.deleted_at IS NULL AND (p.handle IS NULL OR p.handle <> $1)",
    )
    .bind(handle.to_owned())
    .fetch_one(app.db.reader())
    .await
    .expect("count")
}

dual_test!(inbox_unread_markers_are_per_viewer, |app| {
    let logins = demo(&app).await;
    let inbox = format!("{PAYMENT}/inbox");
    let wendy = writer(&app, "wendy", &logins["wendy"], PAYMENT).await;
    let unread_now = |html: &str| common::text_after(html, "data-stat=\"unread\">").map(str::to_owned);
    let by_others = not_by(&app, "wendy").await;
    let html = page(&wendy.client, &app, &inbox).await.1;
    assert_eq!(unread_now(&html), Some(by_others.to_string()), "never opened: all of it is unread");

    let newest = app.scalar("SELECT MAX(created_at) FROM annotations").await;
    let marked = wendy.post(&app, &format!("{inbox}/read"), &[("up_to", &newest.to_string())]).await;
    assert_eq!(marked.status(), 200);
    assert_eq!(unread_now(&marked.text().await.expect("body")), Some("0".to_owned()));

    // Anna writes: wendy sees one unread, marked; her own writing is never unread.
    let anna = writer(&app, "anna", &logins["anna"], PAYMENT).await;
    assert_eq!(anna.htmx(&app, PAYMENT, &[("body", "Anna was here"), ("category", "idea")]).await.status(), 200);
    assert_eq!(wendy.htmx(&app, PAYMENT, &[("body", "Wendy was here"), ("category", "idea")]).await.status(), 200);
    let html = page(&wendy.client, &app, &inbox).await.1;
    assert_eq!(unread_now(&html), Some("1".to_owned()));
    let anna_id = id_of(&app, "Anna was here").await;
    let wendy_id = id_of(&app, "Wendy was here").await;
    assert!(html.contains(&format!("id=\"inbox-{anna_id}\" class=\"annotation status-new unread\"")));
    assert!(html.contains(&format!("id=\"inbox-{wendy_id}\" class=\"annotation status-new\"")));
    assert_eq!(common::text_after(&html, "data-unread=\"idea\">"), Some("1 unread"));

    // Markers are per viewer: tomas never opened it.
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let html = page(&tomas, &app, &inbox).await.1;
    assert_eq!(unread_now(&html), Some(not_by(&app, "tomas").await.to_string()));
    // The marker never moves back.
    assert_eq!(wendy.post(&app, &format!("{inbox}/read"), &[("up_to", "5")]).await.status(), 200);
    assert_eq!(unread_now(&page(&wendy.client, &app, &inbox).await.1), Some("1".to_owned()));
});

dual_test!(anyone_reads_a_public_widget_page, |app| {
    demo(&app).await;
    let anonymous = app.new_client();
    let (status, html) = page(&anonymous, &app, CART).await;
    assert_eq!(status, 200);
    let visible = db_count(&app, "cart-summary", None, None).await;
    assert_eq!(html.matches("id=\"annotation-").count() as i64, visible.min(20));
    assert!(!html.contains("id=\"composer\""), "read-only");
    assert!(html.contains("/login?next="), "an invitation to sign in");
    assert!(!html.contains("/edit\""), "no edit controls");
    assert!(!html.contains("/inbox\""), "no inbox link");
    let (status, fragment) = page(&anonymous, &app, &format!("{CART}/thread")).await;
    assert_eq!(status, 200);
    assert!(fragment.contains("id=\"region-thread\"") || fragment.contains("id=\"thread-list\""));

    // Paginated: the next page continues where the first ended.
    if visible > 20 {
        let cursor = text_attr(&html, "/thread?before=").expect("a next page");
        let next =
            anonymous.get(app.url(&format!("{CART}/thread?before={cursor}"))).header("HX-Request", "true").send().await;
        let next = next.expect("GET").text().await.expect("body");
        assert_eq!(next.matches("id=\"annotation-").count() as i64, (visible - 20).min(20));
    }
    // Anonymous visitors cannot write.
    let csrf = app.csrf(&anonymous, "/login").await;
    let response = anonymous
        .post(app.url(&format!("{CART}/composer")))
        .header("X-CSRF-Token", &csrf)
        .form(&[("token", "x.y"), ("body", "Hello")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 400, "the token is checked first");
    app.person("walker", &[]).await;
    let walker_token = writer(&app, "walker", PASSWORD, CART).await.token;
    let response = anonymous
        .post(app.url(&format!("{CART}/composer")))
        .header("X-CSRF-Token", &csrf)
        .form(&[("token", walker_token.as_str()), ("body", "Hello")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 401);
});

dual_test!(members_and_private_widgets_are_refused_to_others, |app| {
    let logins = demo(&app).await;
    let anonymous = app.new_client();
    let response = anonymous.get(app.url(PAYMENT)).send().await.expect("GET");
    assert_eq!(response.status(), 401);
    assert!(response.text().await.expect("body").contains("/login?next="));
    let response = anonymous.get(app.url(PAYMENT)).header("HX-Request", "true").send().await.expect("GET");
    assert!(response.headers().contains_key("hx-redirect"), "htmx is sent to sign in");
    assert_eq!(page(&anonymous, &app, &format!("{PAYMENT}/thread")).await.0, 401);

    let ali = app.signed_in("ali", &logins["ali"]).await;
    let (status, html) = page(&ali, &app, PAYMENT).await;
    assert_eq!(status, 403);
    assert!(!html.contains("id=\"annotation-"));
    assert_eq!(page(&ali, &app, &format!("{PAYMENT}/thread")).await.0, 403);

    let fraud = "/hubs/checkout/widgets/fraud-review";
    let anna = app.signed_in("anna", &logins["anna"]).await;
    assert_eq!(page(&anna, &app, fraud).await.0, 403, "private: not for annotators");
    let olga = app.signed_in("olga", &logins["olga"]).await;
    assert_eq!(page(&olga, &app, fraud).await.0, 200, "private: its owner");
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    assert_eq!(page(&tomas, &app, fraud).await.0, 200, "private: the hub's triagers");
    assert_eq!(page(&olga, &app, "/hubs/checkout/widgets/nope").await.0, 404);
    assert_eq!(page(&olga, &app, "/hubs/nope/widgets/payment-form").await.0, 404);
});

dual_test!(pages_and_regions_are_full_pages_or_fragments, |app| {
    let logins = demo(&app).await;
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    for path in [
        PAYMENT.to_owned(),
        format!("{PAYMENT}/thread"),
        format!("{PAYMENT}/inbox"),
        format!("{PAYMENT}/inbox/list?category=bug"),
    ] {
        for htmx in [false, true] {
            let mut request = wendy.get(app.url(&path));
            if htmx {
                request = request.header("HX-Request", "true");
            }
            let response = request.send().await.expect("GET");
            assert_eq!(response.status(), 200, "{path}");
            let vary = response.headers().get("vary").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert!(vary.starts_with("HX-Request"), "{path}: Vary {vary}");
            let html = response.text().await.expect("body");
            assert_eq!(html.starts_with("<!doctype html>"), !htmx, "{path} htmx={htmx}");
        }
    }
});

/// Payloads from the usual XSS lists.
const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"><svg onload=alert(1)>",
    "'><iframe src=javascript:alert(1)></iframe>",
    "<a href=\"javascript:alert(1)\">click</a>",
    "javascript:alert(document.cookie)",
    "https://example.com/\"><script>alert(1)</script>",
    "https://example.com/' onmouseover='alert(1)",
    "https://example.com/\" onmouseover=\"alert(1)",
    "<<script>script>alert(1)<</script>/script>",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<body onload=alert(1)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "</textarea><script>alert(1)</script>",
    "</li></ol><script>alert(1)</script>",
    "<div hx-get=\"/logout\" hx-trigger=\"load\">x</div>",
    "{{ 7*7 }} {% if true %}x{% endif %}",
    "<style>@import 'https://example.com/x.css';</style>",
];

/// Every tag in `html` is one our templates write, with no event handler or style attribute.
fn assert_inert(html: &str, context: &str) {
    // The reply form under each annotation (#21) brings form, label, textarea and input.
    const TAGS: &[&str] =
        &["li", "div", "span", "time", "p", "a", "button", "ol", "form", "label", "textarea", "input"];
    for (i, _) in html.match_indices('<') {
        let tag = &html[i + 1..];
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        let name = tag.trim_start_matches('/').split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        assert!(TAGS.contains(&name.to_ascii_lowercase().as_str()), "{context}: unexpected tag <{tag}>");
        for attr in tag.split_whitespace().skip(1) {
            let attr = attr.to_ascii_lowercase();
            assert!(!attr.starts_with("on") && !attr.starts_with("style"), "{context}: attribute {attr} in <{tag}>");
            assert!(!attr.contains("javascript:"), "{context}: {attr}");
        }
    }
}

dual_test!(nothing_a_person_types_can_run_script, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], CART).await;
    let mut token = wendy.token.clone();
    for payload in XSS {
        let writer = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: token.clone() };
        let response = writer.htmx(&app, CART, &[("body", payload), ("category", "bug")]).await;
        assert_eq!(response.status(), 200, "{payload}");
        token = token_of(&response.text().await.expect("body"));
    }
    // Validation errors echo the text back into the textarea: escaped there too.
    let echo = Writer { client: wendy.client.clone(), csrf: wendy.csrf.clone(), token: token.clone() };
    let long = format!("</textarea><script>alert(1)</script>{}", "x".repeat(4000));
    let html = echo.htmx(&app, CART, &[("body", &long), ("category", "bug")]).await.text().await.expect("body");
    assert!(!html.contains("<script>alert(1)"), "escaped in the textarea");

    let anonymous = app.new_client();
    for client in [&wendy.client, &anonymous] {
        let thread = client.get(app.url(&format!("{CART}/thread"))).header("HX-Request", "true").send().await;
        let thread = thread.expect("GET").text().await.expect("body");
        for payload in XSS {
            assert!(thread.contains(&ihf::web::markup::body_html(payload)), "{payload} shown as text");
        }
        assert_inert(&thread, "thread");
    }
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let inbox = olga.get(app.url(&format!("{CART}/inbox/list"))).header("HX-Request", "true").send().await;
    let inbox = inbox.expect("GET").text().await.expect("body");
    let list = &inbox[inbox.find("<ol").expect("list")..];
    assert_inert(list, "inbox");
});

dual_test!(line_breaks_are_kept_and_urls_become_safe_links, |app| {
    let logins = demo(&app).await;
    let wendy = writer(&app, "wendy", &logins["wendy"], CART).await;
    let text = "First line\r\nsee https://example.com/help?a=1&b=2.";
    assert_eq!(wendy.htmx(&app, CART, &[("body", text), ("category", "idea")]).await.status(), 200);
    let (_, html) = page(&wendy.client, &app, CART).await;
    assert!(html.contains(
        "First line\nsee <a href=\"https://example.com/help?a=1&amp;b=2\" rel=\"nofollow noopener ugc\">https://example.com/help?a=1&amp;b=2</a>."
    ));
});

// ---- live: the thread and the inbox as live regions ------------------------------------------

const QUIET: Duration = Duration::from_millis(600);
const WAIT: Duration = Duration::from_secs(5);

/// Opens `path` as `client`, then the page's stream. Whatever it sends at first (the demo's
/// own writes may still be reaching the change feed) is read and dropped.
async fn live_page(app: &TestApp, client: &reqwest::Client, path: &str) -> SseClient {
    let (status, html) = page(client, app, path).await;
    assert_eq!(status, 200, "{path}");
    let url = text_attr(&html, "sse-connect=\"").expect("a live stream").replace("&#38;", "&");
    let mut stream = SseClient::open(app, client, &url, None).await;
    stream.events_within(Duration::from_millis(300)).await;
    stream
}

/// Waits for an event named `name` whose HTML contains `needle`.
async fn wait_for(stream: &mut SseClient, name: &str, needle: &str) -> common::SseEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = stream.next_event(left).await.unwrap_or_else(|| panic!("no {name} event with {needle:?}"));
        if event.event == name && event.data.contains(needle) {
            return event;
        }
    }
}

dual_test!(a_public_widget_thread_streams_new_annotations_to_anyone, |app| {
    let logins = demo(&app).await;
    let anonymous = app.new_client();
    let mut public = live_page(&app, &anonymous, CART).await;
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let mut elsewhere = live_page(&app, &anna, PAYMENT).await;
    let mut author_view = {
        let wendy = app.signed_in("wendy", &logins["wendy"]).await;
        live_page(&app, &wendy, CART).await
    };

    let wendy = writer(&app, "wendy", &logins["wendy"], CART).await;
    let text = "Live: the shipping line shows twice after a coupon.";
    assert_eq!(wendy.htmx(&app, CART, &[("body", text), ("category", "bug")]).await.status(), 200);

    let event = wait_for(&mut public, "thread", text).await;
    assert!(event.id.as_deref().is_some_and(|id| id.parse::<i64>().is_ok()), "resumable: events carry the sequence");
    let id = id_of(&app, text).await;
    let edit = format!("annotations/{id}/edit");
    assert!(!event.data.contains(&edit), "an anonymous reader gets no edit controls");
    // Every reader is sent the same render (#16): the author's page adds their own buttons to the
    // rows marked as theirs (tests/browser_live.rs shows it), and their own GET has them.
    let own = wait_for(&mut author_view, "thread", text).await;
    assert_eq!(own.data, event.data, "one render for every reader");
    let wendy_id = app.scalar("SELECT id FROM actors WHERE handle = 'wendy'").await;
    assert!(
        own.data
            .contains(&format!("id=\"annotation-{id}\" class=\"annotation status-new\" data-author=\"{wendy_id}\""))
    );
    let (_, html) = page_html(&wendy.client, &app, CART).await;
    assert!(html.contains(&edit), "the author's own page has the buttons");
    let other: Vec<_> = elsewhere.events_within(QUIET).await;
    assert!(other.is_empty(), "another widget's thread is not touched: {other:?}");
});

dual_test!(a_viewer_who_may_not_read_the_widget_receives_nothing, |app| {
    let logins = demo(&app).await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let payment = app.scalar("SELECT id FROM widgets WHERE slug = 'payment-form'").await;
    let stream_url = format!("/live?regions=thread:{hub_id}:{payment}");
    let anonymous = app.new_client();
    let refused = anonymous.get(app.url(&stream_url)).send().await.expect("GET");
    assert_eq!(refused.status(), 401, "anonymous: a members widget's stream is refused");
    let ali = app.signed_in("ali", &logins["ali"]).await;
    assert_eq!(ali.get(app.url(&stream_url)).send().await.expect("GET").status(), 403, "outsider");

    // A public widget closes to members while a visitor holds its stream: nothing more arrives.
    let mut held = live_page(&app, &anonymous, CART).await;
    let mut member = live_page(&app, &app.signed_in("anna", &logins["anna"]).await, CART).await;
    sqlx::query("UPDATE widgets SET policy_scope = 'members' WHERE slug = 'cart-summary'")
        .execute(app.db.writer())
        .await
        .expect("close the widget");
    let wendy = writer(&app, "wendy", &logins["wendy"], CART).await;
    let text = "Only members may read this one.";
    assert_eq!(wendy.htmx(&app, CART, &[("body", text), ("category", "idea")]).await.status(), 200);
    wait_for(&mut member, "thread", text).await;
    let leaked: Vec<_> = held.events_within(QUIET).await;
    assert!(leaked.iter().all(|e| !e.data.contains(text)), "nothing of it reaches the visitor: {leaked:?}");
    // Only told that the region is gone (#16: viewers of a shared render are admitted again
    // when the widget changes).
    assert!(leaked.iter().all(|e| e.event == "refused"), "no region frame at all: {leaked:?}");
});

dual_test!(the_inbox_updates_live, |app| {
    let logins = demo(&app).await;
    let inbox = format!("{PAYMENT}/inbox");
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let mut owner = live_page(&app, &wendy, &inbox).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let mut bugs_only = live_page(&app, &tomas, &format!("{inbox}?category=bug")).await;
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let payment = app.scalar("SELECT id FROM widgets WHERE slug = 'payment-form'").await;
    let refused = anna.get(app.url(&format!("/live?regions=inbox:{hub_id}:{payment}:-:-"))).send().await;
    assert_eq!(refused.expect("GET").status(), 403, "annotators who do not own the widget get no inbox stream");

    let mut writer_anna = writer(&app, "anna", &logins["anna"], PAYMENT).await;
    let text = "Live inbox: the wallet button is hidden on small phones.";
    let response = writer_anna.htmx(&app, PAYMENT, &[("body", text), ("category", "idea")]).await;
    assert_eq!(response.status(), 200);
    writer_anna.token = token_of(&response.text().await.expect("body"));
    let id = id_of(&app, text).await;
    let event = wait_for(&mut owner, "inbox", text).await;
    assert!(event.data.contains(&format!("id=\"inbox-{id}\" class=\"annotation status-new unread\"")), "marked unread");
    assert!(event.data.contains("data-unread=\"idea\">"), "the counts moved too");

    // A filtered inbox stays filtered: the idea changes its counts, never its list.
    let filtered = bugs_only.events_within(QUIET).await;
    assert!(filtered.iter().all(|e| e.event == "inbox" && !e.data.contains(text)), "{filtered:?}");
    let bug = "Live inbox: the card number field accepts letters.";
    assert_eq!(writer_anna.htmx(&app, PAYMENT, &[("body", bug), ("category", "bug")]).await.status(), 200);
    wait_for(&mut bugs_only, "inbox", bug).await;
});
